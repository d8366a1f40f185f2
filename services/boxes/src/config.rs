//! Settings, all from the environment (or flags); `boxes --help` lists them with their defaults.

use clap::Parser;
use secrecy::SecretString;
use web_kit::config::{DatabaseSettings, OriginSettings, RedisSettings, ServerSettings, TokenSettings};
use web_kit::ratelimit::Quota;

#[derive(Debug, Clone, Parser)]
#[command(name = "boxes", about = "Encrypted boxes service: boxes, events, key shares, identities, crypto actions")]
pub struct Settings {
    /// Address and port to listen on (port 0 picks a free port).
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8081")]
    pub bind_addr: String,

    #[command(flatten)]
    pub database: DatabaseSettings,

    /// Maximum PostgreSQL connections in the pool.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: usize,

    #[command(flatten)]
    pub redis: RedisSettings,

    #[command(flatten)]
    pub tokens: TokenSettings,

    /// Address and port of the internal API (`PUT /internal/identities/{id}`), never served on
    /// `BIND_ADDR`; keep it reachable from auth-bridge only.
    #[arg(long, env = "INTERNAL_BIND_ADDR", default_value = "127.0.0.1:9081")]
    pub internal_bind_addr: String,

    /// Shared secret auth-bridge presents in `X-Internal-Token` on `/internal/*`; at least 32 bytes.
    #[arg(long, env = "INTERNAL_API_TOKEN", hide_env_values = true)]
    pub internal_api_token: SecretString,

    #[command(flatten)]
    pub origins: OriginSettings,

    /// PostgreSQL statement timeout in milliseconds.
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", default_value_t = 5000)]
    pub db_statement_timeout_ms: u64,

    #[command(flatten)]
    pub server: ServerSettings,

    /// Record Prometheus metrics (served at `/metrics` on `INTERNAL_BIND_ADDR`); `false` turns
    /// recording off.
    #[arg(long, env = "METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,

    #[command(flatten)]
    pub limits: web_kit::limits::LimitSettings,

    #[command(flatten)]
    pub files: FileSettings,

    #[command(flatten)]
    pub batch: crate::posts::BatchSettings,

    /// Invitations an identity may send, counted together: contact boxes
    /// (`POST /box-users/{id}/contact`) and `access.add` with `auto_invite`, each of which leaves
    /// a crypto action with someone else. `<count>/<seconds>`, all of `count` available at once,
    /// or `off`; kept in Redis, so the limit holds across instances.
    #[arg(long, env = "RATE_INVITES_PER_IDENTITY", default_value_t = INVITES_PER_IDENTITY)]
    pub invites_per_identity: Quota,

    /// Public-key lookups by identifier (`GET /identities/pubkey`) an identity may make: each
    /// answer tells whether someone with that email or phone uses the service, so the budget
    /// is tight. `<count>/<seconds>` or `off`; kept in Redis.
    #[arg(long, env = "RATE_PUBKEY_LOOKUPS_PER_IDENTITY", default_value_t = PUBKEY_LOOKUPS_PER_IDENTITY)]
    pub pubkey_lookups_per_identity: Quota,

    /// Entries kept in each identity's realtime history for recovery on reconnect (at least;
    /// Redis trims approximately). Every envelope boxes publishes is recorded there.
    #[arg(long, env = "HISTORY_MAX_LEN", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub history_max_len: u64,

    /// How long an envelope stays in the history, in seconds; an idle history expires after this.
    #[arg(long, env = "HISTORY_TTL_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub history_ttl_secs: u64,

    /// How long a stored notification (`GET /identities/{id}/notifications`) is kept, in seconds;
    /// older ones are no longer listed or counted, and writes of new ones delete them.
    #[arg(long, env = "NOTIFICATIONS_RETENTION_SECS", default_value_t = NOTIFICATIONS_RETENTION_SECS, value_parser = clap::value_parser!(u64).range(1..=315_360_000))]
    pub notifications_retention_secs: u64,
}

/// Encrypted files (issue 18): limits, the sweeper's grace period and where blobs are stored.
#[derive(Debug, Clone, clap::Args)]
pub struct FileSettings {
    /// Largest encrypted file accepted, in bytes (then 413).
    #[arg(long, env = "FILES_MAX_BYTES", default_value_t = FILES_MAX_BYTES)]
    pub files_max_bytes: u64,

    /// Storage quota of each identity, in bytes: its live uploads plus the files it saved.
    #[arg(long, env = "FILES_QUOTA_BYTES", default_value_t = FILES_QUOTA_BYTES)]
    pub files_quota_bytes: u64,

    /// How long an upload may stay pending, in seconds, before the sweeper removes its blob;
    /// blobs with no row at all are removed once they are this old too.
    #[arg(long, env = "FILES_PENDING_GRACE_SECS", default_value_t = FILES_PENDING_GRACE_SECS, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub files_pending_grace_secs: u64,

    /// Directory of the local blob store, used when `FILES_S3_URL` is not set.
    #[arg(long, env = "FILES_DIR", default_value = "data/files")]
    pub files_dir: String,

    /// S3-compatible bucket for blobs (`s3://bucket`); its endpoint, region and credentials come
    /// from `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    #[arg(long, env = "FILES_S3_URL")]
    pub files_s3_url: Option<String>,

    /// Endpoint of the S3-compatible store (`http://` allowed, for a local one); AWS when unset.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,

    /// Region of the S3-compatible store.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub aws_region: String,

    /// Access key of the S3-compatible store.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub aws_access_key_id: Option<SecretString>,

    /// Secret key of the S3-compatible store.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub aws_secret_access_key: Option<SecretString>,
}

/// Default of `FILES_MAX_BYTES`: 64 MiB.
pub const FILES_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Default of `FILES_QUOTA_BYTES`: 1 GiB.
pub const FILES_QUOTA_BYTES: u64 = 1024 * 1024 * 1024;

/// Default of `FILES_PENDING_GRACE_SECS`: one hour.
pub const FILES_PENDING_GRACE_SECS: u64 = 3600;

impl Default for FileSettings {
    fn default() -> Self {
        FileSettings {
            files_max_bytes: FILES_MAX_BYTES,
            files_quota_bytes: FILES_QUOTA_BYTES,
            files_pending_grace_secs: FILES_PENDING_GRACE_SECS,
            files_dir: "data/files".into(),
            files_s3_url: None,
            aws_endpoint_url: None,
            aws_region: "us-east-1".into(),
            aws_access_key_id: None,
            aws_secret_access_key: None,
        }
    }
}

/// Default of `NOTIFICATIONS_RETENTION_SECS`: 30 days.
pub const NOTIFICATIONS_RETENTION_SECS: u64 = 30 * 24 * 3600;

/// Default of `RATE_INVITES_PER_IDENTITY`.
pub const INVITES_PER_IDENTITY: Quota = Quota::per(100, 600);

/// Default of `RATE_PUBKEY_LOOKUPS_PER_IDENTITY`.
pub const PUBKEY_LOOKUPS_PER_IDENTITY: Quota = Quota::per(30, 600);

/// Shortest `INTERNAL_API_TOKEN` accepted, in bytes.
pub const INTERNAL_TOKEN_MIN_BYTES: usize = 32;

impl Settings {
    pub fn history_limits(&self) -> web_kit::history::HistoryLimits {
        web_kit::history::HistoryLimits {
            max_len: self.history_max_len,
            max_age_ms: self.history_ttl_secs.saturating_mul(1000),
        }
    }

    pub fn notifications_retention(&self) -> crate::store::notifications::Retention {
        crate::store::notifications::Retention(i64::try_from(self.notifications_retention_secs).unwrap_or(i64::MAX))
    }

    /// Refuses settings that must not reach production: a short internal token, a bad origin list.
    pub fn check(&self) -> anyhow::Result<()> {
        use secrecy::ExposeSecret;
        if self.internal_api_token.expose_secret().len() < INTERNAL_TOKEN_MIN_BYTES {
            anyhow::bail!("INTERNAL_API_TOKEN must be at least {INTERNAL_TOKEN_MIN_BYTES} bytes");
        }
        self.origins.policy()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn help_never_prints_secret_values() {
        // Unique values, so other tests of this process are not affected.
        std::env::set_var("DATABASE_URL", "postgres://u:db-secret-7f3a@h/boxes");
        std::env::set_var("REDIS_URL", "redis://:redis-secret-7f3a@h");
        std::env::set_var("INTERNAL_API_TOKEN", "internal-secret-7f3a-0123456789abcdef");
        std::env::set_var("AWS_ACCESS_KEY_ID", "aws-key-7f3a");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "aws-secret-7f3a");
        let help = super::Settings::command().render_long_help().to_string();
        for secret in [
            "db-secret-7f3a",
            "redis-secret-7f3a",
            "internal-secret-7f3a",
            "aws-key-7f3a",
            "aws-secret-7f3a",
            "postgres://",
            "redis://",
        ] {
            assert!(!help.contains(secret), "--help shows {secret}:\n{help}");
        }
        assert!(help.contains("INTERNAL_BIND_ADDR"));
    }
}
