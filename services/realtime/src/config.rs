//! Settings of the realtime service, read from the environment (or flags) by clap.
//!
//! Every field is public so tests build a `Settings` directly, with short timings and a Redis URL
//! of their choice. `--help` lists each setting with its environment variable and default.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use secrecy::{ExposeSecret, SecretString};
use web_kit::config::{OriginSettings, RedisSettings, ServerSettings, TokenSettings};

#[derive(Clone, Parser)]
#[command(name = "realtime", version, about = "WebSocket notifications (GET /box-users/{id}/ws) fed by Redis pub/sub")]
pub struct Settings {
    /// Address and port the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8082")]
    pub bind_addr: String,

    #[command(flatten)]
    pub redis: RedisSettings,

    #[command(flatten)]
    pub tokens: TokenSettings,

    #[command(flatten)]
    pub origins: OriginSettings,

    /// Interval between server pings on each socket, in milliseconds.
    #[arg(long, env = "WS_PING_INTERVAL_MS", default_value_t = 45_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub ping_interval_ms: u64,

    /// A socket with no inbound frame (pongs count) for this long is closed, in milliseconds.
    #[arg(long, env = "WS_IDLE_TIMEOUT_MS", default_value_t = 120_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_ms: u64,

    /// How long one write to a socket may wait for the client before the socket is dropped, in milliseconds.
    #[arg(long, env = "WS_WRITE_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub write_timeout_ms: u64,

    /// Outbound messages queued per socket; a socket whose queue is full is closed with 1013.
    #[arg(long, env = "WS_QUEUE_CAPACITY", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub queue_capacity: u64,

    /// Largest message a client may send, in bytes, whether in one frame or reassembled from
    /// continuation frames; a frame whose header announces more closes the socket with 1009.
    #[arg(long, env = "WS_MAX_FRAME_BYTES", default_value_t = 8 * 1024)]
    pub max_frame_bytes: usize,

    /// Entries kept in each identity's history for recovery on reconnect (at least; Redis trims
    /// approximately). Realtime writes there the `ack` echoes it publishes.
    #[arg(long, env = "HISTORY_MAX_LEN", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub history_max_len: u64,

    /// How long an envelope stays in the history, in seconds; an idle history expires after this.
    #[arg(long, env = "HISTORY_TTL_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub history_ttl_secs: u64,

    /// Most envelopes replayed to a socket reconnecting with `?since=`; more is `recovered:false`.
    #[arg(long, env = "WS_REPLAY_MAX", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub replay_max: u64,

    /// Most bytes replayed to one socket; more is `recovered:false`.
    #[arg(long, env = "WS_REPLAY_MAX_BYTES", default_value_t = 4 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..=268_435_456))]
    pub replay_max_bytes: u64,

    /// Sockets one identity may hold on one process; the next handshake is refused with 429.
    #[arg(long, env = "WS_MAX_SOCKETS_PER_IDENTITY", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sockets_per_identity: u64,

    /// Sockets one process holds at most; the next handshake is refused with 429.
    #[arg(long, env = "WS_MAX_SOCKETS", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sockets: u64,

    /// Longest wait between two attempts to reconnect the Redis subscriber, in milliseconds.
    #[arg(long, env = "REDIS_RECONNECT_MAX_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub redis_reconnect_max_ms: u64,

    /// Interval between health pings on the Redis subscriber connection, in milliseconds.
    #[arg(long, env = "REDIS_HEALTH_INTERVAL_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub redis_health_interval_ms: u64,

    /// Time allowed for open connections to finish after a shutdown signal, in seconds.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,

    #[command(flatten)]
    pub server: ServerSettings,

    #[command(flatten)]
    pub metrics: web_kit::metrics::MetricsSettings,
}

impl Settings {
    /// Settings for tests and tools: spec defaults, the given keys and Redis, any free port.
    pub fn with_defaults(jwt_public_key_files: Vec<PathBuf>, redis_url: impl Into<String>) -> Self {
        Settings {
            bind_addr: "127.0.0.1:0".into(),
            redis: RedisSettings { url: SecretString::from(redis_url.into()), cluster_nodes: Vec::new() },
            tokens: TokenSettings { jwt_public_key_files, jwt_issuer: "auth-bridge".into() },
            origins: OriginSettings::default(),
            ping_interval_ms: 45_000,
            idle_timeout_ms: 120_000,
            write_timeout_ms: 30_000,
            queue_capacity: 64,
            max_frame_bytes: 8 * 1024,
            max_sockets_per_identity: 16,
            max_sockets: 50_000,
            history_max_len: 1000,
            history_ttl_secs: 600,
            replay_max: 1000,
            replay_max_bytes: 4 * 1024 * 1024,
            redis_reconnect_max_ms: 5_000,
            redis_health_interval_ms: 15_000,
            shutdown_timeout_secs: 10,
            server: ServerSettings { workers: 2, log_format: "pretty".into() },
            metrics: Default::default(),
        }
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    pub fn history_limits(&self) -> web_kit::history::HistoryLimits {
        web_kit::history::HistoryLimits {
            max_len: self.history_max_len,
            max_age_ms: self.history_ttl_secs.saturating_mul(1000),
        }
    }

    pub fn replay_limits(&self) -> web_kit::history::ReplayLimits {
        web_kit::history::ReplayLimits {
            max_entries: usize::try_from(self.replay_max).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(self.replay_max_bytes).unwrap_or(usize::MAX),
        }
    }
}

/// The Redis URL may carry a password, so it is masked.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("bind_addr", &self.bind_addr)
            .field("redis_url", &mask_userinfo(self.redis.url.expose_secret()))
            .field("tokens", &self.tokens)
            .field("origins", &self.origins)
            .field("ping_interval_ms", &self.ping_interval_ms)
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .field("write_timeout_ms", &self.write_timeout_ms)
            .field("queue_capacity", &self.queue_capacity)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("max_sockets_per_identity", &self.max_sockets_per_identity)
            .field("max_sockets", &self.max_sockets)
            .field("history_max_len", &self.history_max_len)
            .field("history_ttl_secs", &self.history_ttl_secs)
            .field("replay_max", &self.replay_max)
            .field("replay_max_bytes", &self.replay_max_bytes)
            .field("redis_reconnect_max_ms", &self.redis_reconnect_max_ms)
            .field("redis_health_interval_ms", &self.redis_health_interval_ms)
            .field("shutdown_timeout_secs", &self.shutdown_timeout_secs)
            .field("server", &self.server)
            .finish()
    }
}

/// `redis://user:secret@host` → `redis://***@host`.
pub fn mask_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => format!("{}://***{}", &url[..scheme_end], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_redis_passwords() {
        assert_eq!(mask_userinfo("redis://:pw@127.0.0.1:6379/0"), "redis://***@127.0.0.1:6379/0");
        assert_eq!(mask_userinfo("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn defaults_follow_the_spec() {
        let s = Settings::parse_from(["realtime", "--jwt-public-key-file", "a.pem,b.pem"]);
        assert_eq!(s.tokens.jwt_public_key_files.len(), 2);
        assert_eq!(s.ping_interval(), Duration::from_secs(45));
        assert_eq!(s.idle_timeout(), Duration::from_secs(120));
        assert_eq!(s.queue_capacity, 64);
        assert_eq!(s.max_frame_bytes, 8192);
        assert!(s.origins.policy().is_ok_and(|p| !p.allows("https://a.example")));
        assert_eq!(s.max_sockets_per_identity, 16);
    }

    #[test]
    fn help_never_prints_secret_values() {
        use clap::CommandFactory;
        std::env::set_var("REDIS_URL", "redis://:redis-secret-4b2d@h");
        let help = Settings::command().render_long_help().to_string();
        for secret in ["redis-secret-4b2d", "redis://"] {
            assert!(!help.contains(secret), "--help shows {secret}:\n{help}");
        }
    }
}
