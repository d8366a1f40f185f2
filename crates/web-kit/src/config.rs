//! Settings groups several services share, flattened into each service's clap `Settings` with
//! `#[command(flatten)]`. Only what at least two services read alike lives here; `BIND_ADDR`
//! stays in each service, whose default port differs.

use std::path::PathBuf;

use secrecy::SecretString;

use crate::origins::{OriginError, OriginPolicy};

/// HTTP workers and the log format.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerSettings {
    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Log format: `json` (production) or `pretty`.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: String,
}

/// The PostgreSQL connection.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseSettings {
    /// PostgreSQL URL; the service owns its schema and migrates it at start.
    #[arg(
        id = "database_url",
        long = "database-url",
        value_name = "DATABASE_URL",
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/boxes",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub url: SecretString,
}

/// The Redis connection.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisSettings {
    /// Redis URL: realtime pub/sub, revocation markers, unread counters, rate limits.
    #[arg(
        id = "redis_url",
        long = "redis-url",
        value_name = "REDIS_URL",
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub url: SecretString,
}

/// Verification of the session tokens auth-bridge signs.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenSettings {
    /// Ed25519 public key files (SPKI PEM) that session tokens may be signed with; several files,
    /// comma separated, during a key rotation.
    #[arg(
        long = "jwt-public-key-file",
        value_name = "JWT_PUBLIC_KEY_FILE",
        env = "JWT_PUBLIC_KEY_FILE",
        value_delimiter = ',',
        required = true
    )]
    pub jwt_public_key_files: Vec<PathBuf>,

    /// Expected `iss` of session tokens.
    #[arg(long, env = "JWT_ISSUER", default_value = "auth-bridge")]
    pub jwt_issuer: String,
}

/// The browser origins of CORS and websockets.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OriginSettings {
    /// Browser origins allowed by CORS and to open a websocket (comma separated); none when empty;
    /// `*` (local development only) allows any origin but never with credentials. Requests
    /// without an `Origin` header are always allowed.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',', default_value = "")]
    pub allowed_origins: Vec<String>,
}

impl OriginSettings {
    pub fn policy(&self) -> Result<OriginPolicy, OriginError> {
        OriginPolicy::parse(&self.allowed_origins)
    }
}
