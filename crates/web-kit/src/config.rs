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

    /// Redis Cluster seed nodes, comma separated URLs like `REDIS_URL`'s (a few masters are enough;
    /// the others are found from them). When set, the service runs against that cluster and
    /// `REDIS_URL` is not used.
    #[arg(
        long = "redis-cluster-nodes",
        value_name = "REDIS_CLUSTER_NODES",
        env = "REDIS_CLUSTER_NODES",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub cluster_nodes: Vec<SecretString>,
}

impl RedisSettings {
    /// The Redis Cluster of `REDIS_CLUSTER_NODES` when set, else the Redis of `REDIS_URL`.
    pub fn target(&self) -> anyhow::Result<crate::redis::Target> {
        use anyhow::Context;
        use secrecy::ExposeSecret;
        let nodes: Vec<&str> =
            self.cluster_nodes.iter().map(|n| n.expose_secret().trim()).filter(|n| !n.is_empty()).collect();
        let what = if nodes.is_empty() { "REDIS_URL" } else { "REDIS_CLUSTER_NODES" };
        crate::redis::Target::new(self.url.expose_secret(), &nodes).with_context(|| format!("parsing {what}"))
    }
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
