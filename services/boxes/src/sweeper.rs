//! Removes the blobs of encrypted files that no committed event ever claimed (issue 18): rows
//! left `pending` longer than `FILES_PENDING_GRACE_SECS` (an upload whose process died, or whose
//! transaction never committed), blobs with no row at all older than that (a removal after
//! commit that failed), and, for the local store, staged parts of unfinished uploads.
//!
//! Every instance runs one; rounds are idempotent, so instances sharing a store do not conflict.

use std::time::{Duration, SystemTime};

use crate::blobs::{sweep_interval, Blobs};
use crate::store;

/// Rows or blobs handled per round at most; the next round goes on.
const BATCH: usize = 1000;

/// Spawns the sweeper; it runs for the life of the process.
pub fn start(db: deadpool_postgres::Pool, blobs: Blobs, grace: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(sweep_interval(grace));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sweep(&db, &blobs, grace).await {
                tracing::warn!(error = format!("{e:#}"), "file sweep failed");
            }
        }
    });
}

/// One round.
pub async fn sweep(db: &deadpool_postgres::Pool, blobs: &Blobs, grace: Duration) -> anyhow::Result<()> {
    let client = db.get().await?;
    let stale = store::files::take_stale_pending(&client, grace.as_secs_f64(), BATCH as i64).await?;
    blobs.delete_all(&stale).await;

    let before = SystemTime::now() - grace;
    let old = blobs.older_than(before, BATCH).await?;
    let known = store::files::known(&client, &old).await?;
    let orphans: Vec<_> = old.into_iter().filter(|id| !known.contains(id)).collect();
    blobs.delete_all(&orphans).await;

    let staged = blobs.sweep_staged(before).await?;
    if !stale.is_empty() || !orphans.is_empty() || staged > 0 {
        tracing::info!(pending = stale.len(), orphans = orphans.len(), staged, "file sweep removed blobs");
    }
    Ok(())
}
