//! Settings, all from the environment (or flags); `boxes --help` lists them with their defaults.

use clap::Parser;
use secrecy::SecretString;

#[derive(Debug, Clone, Parser)]
#[command(name = "boxes", about = "Encrypted boxes service: boxes, events, key shares, identities, crypto actions")]
pub struct Settings {
    /// Address and port to listen on (port 0 picks a free port).
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8081")]
    pub bind_addr: String,

    /// PostgreSQL URL; the service owns the `boxes` schema and migrates it at start.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/boxes")]
    pub database_url: SecretString,

    /// Maximum PostgreSQL connections in the pool.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: usize,

    /// Redis URL: realtime publishes, unread counters, session revocation markers.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: SecretString,

    /// Session-token public key files (Ed25519, SPKI PEM), comma-separated to accept several during a rotation.
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE", value_delimiter = ',', required = true)]
    pub jwt_public_key_file: Vec<String>,

    /// Expected `iss` of session tokens.
    #[arg(long, env = "JWT_ISSUER", default_value = "auth-bridge")]
    pub jwt_issuer: String,

    /// Shared secret auth-bridge presents in `X-Internal-Token` on `/internal/*`.
    #[arg(long, env = "INTERNAL_API_TOKEN")]
    pub internal_api_token: SecretString,

    /// Origins allowed by CORS, comma-separated, or `*`.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',', default_value = "*")]
    pub allowed_origins: Vec<String>,

    /// PostgreSQL statement timeout in milliseconds.
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", default_value_t = 5000)]
    pub db_statement_timeout_ms: u64,

    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Log format: `json` or `pretty`.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: String,

    #[command(flatten)]
    pub limits: web_kit::limits::LimitSettings,
}
