//! What every handler shares: the PostgreSQL pool, the Redis connection, the token verifier.

use domain::auth::Verifier;
use secrecy::SecretString;

#[derive(Clone)]
pub struct AppState {
    pub db: deadpool_postgres::Pool,
    pub redis: redis::aio::ConnectionManager,
    pub verifier: Verifier,
    pub internal_token: SecretString,
}
