//! Redis commands outside pub/sub: the revocation marker read at each handshake (§3.3), the unread
//! counter reset and the echo publish of a client `ack` (§9.5), and the readiness ping.
//!
//! One multiplexed connection (a `ConnectionManager`, which reconnects by itself) is shared by the
//! whole process. It is opened lazily, so the service starts, and answers 503, while Redis is down.

use std::time::Duration;

use anyhow::Context;
use domain::realtime::{counter_key, revoked_sid_key, user_channel};
use domain::{BoxId, IdentityId, SessionId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

/// Bound on every Redis round trip made on behalf of a request or a socket.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Store {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
}

impl Store {
    pub fn new(client: redis::Client) -> Self {
        Store { client, conn: tokio::sync::Mutex::new(None) }
    }

    async fn conn(&self) -> anyhow::Result<ConnectionManager> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(COMMAND_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT)
            .set_number_of_retries(1)
            .set_max_delay(500);
        let conn =
            tokio::time::timeout(2 * COMMAND_TIMEOUT, ConnectionManager::new_with_config(self.client.clone(), config))
                .await
                .context("connecting to Redis timed out")?
                .context("connecting to Redis")?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// §3.3 step 2: is the session revoked? An error means Redis could not answer (fail closed).
    pub async fn is_revoked(&self, sid: SessionId) -> anyhow::Result<bool> {
        let mut conn = self.conn().await?;
        let marker: Option<String> = tokio::time::timeout(COMMAND_TIMEOUT, conn.get(revoked_sid_key(sid)))
            .await
            .context("revocation lookup timed out")?
            .context("revocation lookup")?;
        Ok(marker.is_some())
    }

    /// §9.5: resets the counter, then publishes the ack to every socket of the identity.
    pub async fn ack(&self, sender: IdentityId, box_id: BoxId, envelope: &str) -> anyhow::Result<()> {
        let mut conn = self.conn().await?;
        let _: () = tokio::time::timeout(COMMAND_TIMEOUT, conn.del(counter_key(sender, box_id)))
            .await
            .context("counter reset timed out")?
            .context("counter reset")?;
        let _: () = tokio::time::timeout(COMMAND_TIMEOUT, conn.publish(user_channel(sender), envelope))
            .await
            .context("ack publish timed out")?
            .context("ack publish")?;
        Ok(())
    }

    /// Readiness: one PING round trip.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.conn().await?;
        let _: String = tokio::time::timeout(COMMAND_TIMEOUT, redis::cmd("PING").query_async(&mut conn))
            .await
            .context("ping timed out")?
            .context("ping")?;
        Ok(())
    }
}
