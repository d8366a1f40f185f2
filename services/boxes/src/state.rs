//! What every handler shares: the PostgreSQL pool, the Redis connection, the token verifier.

use std::sync::Arc;

use domain::auth::Verifier;
use secrecy::SecretString;

use crate::auth::VerifiedTokens;

#[derive(Clone)]
pub struct AppState {
    pub db: deadpool_postgres::Pool,
    pub redis: redis::aio::ConnectionManager,
    pub verifier: Verifier,
    /// Recently verified tokens (see [`crate::auth::VerifiedTokens`]).
    pub verified: Arc<VerifiedTokens>,
    pub internal_token: SecretString,
}
