//! Redis commands outside pub/sub: the revocation marker read when a socket's subscription is
//! live (§3.3; the handshake reads the in-memory set, `web_kit::revocations`), the unread
//! counter reset and the echo publish of a client `ack` (§9.5), the identity's history read when a
//! socket becomes ready (`web_kit::history`), and the readiness ping.
//!
//! One multiplexed connection (`web_kit::redis::Redis`, which reconnects by itself) is shared by
//! the whole process. It is opened lazily, so the service starts, and answers 503, while Redis is down.
//! Every call, the lazy connect included, answers within `web_kit::redis::CALL_TIMEOUT`.

use anyhow::Context;
use domain::realtime::Position;
use domain::{BoxId, IdentityId, SessionId};
use web_kit::history::{HistoryLimits, Recovery, ReplayLimits};
use web_kit::redis::{query, Redis, Revocation, Target, CALL_TIMEOUT};

pub struct Store {
    target: Target,
    conn: tokio::sync::Mutex<Option<Redis>>,
    history: HistoryLimits,
    replay: ReplayLimits,
}

impl Store {
    pub fn new(target: Target, history: HistoryLimits, replay: ReplayLimits) -> Self {
        Store { target, conn: tokio::sync::Mutex::new(None), history, replay }
    }

    async fn conn(&self) -> anyhow::Result<Redis> {
        let open = async {
            let mut slot = self.conn.lock().await;
            if let Some(conn) = slot.as_ref() {
                return Ok(conn.clone());
            }
            let conn = web_kit::redis::connect(&self.target).await.context("connecting to Redis")?;
            *slot = Some(conn.clone());
            Ok(conn)
        };
        tokio::time::timeout(CALL_TIMEOUT, open).await.context("connecting to Redis timed out")?
    }

    /// §3.3 step 2 against the marker in Redis, for the socket whose subscription has just become
    /// live: a logout between its handshake and its subscription published `session.revoked`
    /// before the socket could hear it, and the notice to the in-memory set travels on another
    /// connection, so may not have arrived yet. An error means Redis could not answer, or has lost
    /// its revocation markers and auth-bridge has not loaded them again yet (fail closed).
    pub async fn is_revoked(&self, sid: SessionId) -> anyhow::Result<bool> {
        let conn = self.conn().await?;
        match web_kit::redis::revocation(&conn, sid).await.context("revocation lookup")? {
            Revocation::Live => Ok(false),
            Revocation::Revoked => Ok(true),
            Revocation::Unknown => anyhow::bail!("revocation markers are not loaded in Redis"),
        }
    }

    /// §9.5: resets the counter, then publishes the ack to every socket of the identity.
    pub async fn ack(&self, sender: IdentityId, box_id: BoxId, envelope: &str) -> anyhow::Result<()> {
        let conn = self.conn().await?;
        let keys = conn.keys();
        let _: () = query(&conn, redis::cmd("DEL").arg(keys.counter(sender, box_id))).await.context("counter reset")?;
        let publish = web_kit::history::publish_cmd(keys, sender, envelope, self.history);
        let _: String = query(&conn, &publish).await.context("ack publish")?;
        Ok(())
    }

    /// The head of the identity's history and, with `since`, the envelopes after it.
    pub async fn recovery(&self, identity: IdentityId, since: Option<Position>) -> anyhow::Result<Recovery> {
        let conn = self.conn().await?;
        web_kit::history::recovery(&conn, identity, since, self.replay, self.history.max_age_ms).await
    }

    /// Readiness: one PING round trip.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let conn = self.conn().await?;
        let _: String = query(&conn, &redis::cmd("PING")).await.context("ping")?;
        Ok(())
    }
}
