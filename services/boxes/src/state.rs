//! What every handler shares: the PostgreSQL pool, the Redis connection, the token verifier and
//! the revoked sessions.

use std::sync::Arc;

use domain::auth::Verifier;
use domain::IdentityId;
use secrecy::SecretString;
use web_kit::ratelimit::{Check, Quota};

use crate::auth::VerifiedTokens;
use crate::error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub db: deadpool_postgres::Pool,
    pub redis: web_kit::redis::Redis,
    pub verifier: Verifier,
    /// Revoked sessions, kept in memory from Redis (see `web_kit::revocations`).
    pub revocations: Arc<web_kit::revocations::Revocations>,
    /// Recently verified tokens (see [`crate::auth::VerifiedTokens`]).
    pub verified: Arc<VerifiedTokens>,
    pub internal_token: SecretString,
    /// `RATE_INVITES_PER_IDENTITY`.
    pub invites_per_identity: Quota,
    /// `RATE_PUBKEY_LOOKUPS_PER_IDENTITY`.
    pub pubkey_lookups_per_identity: Quota,
    /// Bounds of the per-identity realtime history every publish writes to.
    pub history: web_kit::history::HistoryLimits,
    /// `NOTIFICATIONS_RETENTION_SECS`.
    pub notifications: crate::store::notifications::Retention,
    /// Encrypted files: their blobs and limits.
    pub files: Files,
    /// The queue messages are committed through, in groups.
    pub posts: crate::posts::Posts,
}

/// The blob store of encrypted files and the limits of `crate::config::FileSettings`.
#[derive(Debug, Clone)]
pub struct Files {
    pub blobs: crate::blobs::Blobs,
    /// `FILES_MAX_BYTES`.
    pub max_bytes: u64,
    /// `FILES_QUOTA_BYTES`.
    pub quota_bytes: u64,
}

impl AppState {
    /// Charges one invitation (a crypto action left with someone else) to `sender`; 429 over
    /// the limit, 503 when Redis cannot tell (the limit fails closed, as authentication does).
    pub async fn charge_invitation(&self, sender: IdentityId) -> Result<(), ApiError> {
        let check = Check::new("invites_per_identity", sender, self.invites_per_identity);
        web_kit::ratelimit::enforce(&self.redis, &[check]).await.map_err(ApiError::from)
    }

    /// Charges one public-key lookup by identifier to `caller`, with the same failures.
    pub async fn charge_pubkey_lookup(&self, caller: IdentityId) -> Result<(), ApiError> {
        let check = Check::new("pubkey_lookups_per_identity", caller, self.pubkey_lookups_per_identity);
        web_kit::ratelimit::enforce(&self.redis, &[check]).await.map_err(ApiError::from)
    }
}
