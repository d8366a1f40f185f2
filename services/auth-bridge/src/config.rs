//! Settings of auth-bridge, read from the command line or the environment (`SPEC.md` §13.3).
//!
//! Tests build a [`Settings`] value directly; `--help` lists every variable and its default.
//! Secrets are `SecretString`, so `Debug` never prints them.

use std::path::PathBuf;

use clap::{ArgAction, Parser};
use secrecy::SecretString;
use web_kit::config::{DatabaseSettings, OriginSettings, RedisSettings};
use web_kit::ratelimit::Quota;

/// Everything auth-bridge needs to start.
#[derive(Debug, Clone, Parser)]
#[command(name = "auth-bridge", about = "Boxo Connect-style single sign-on for the boxes miniapp")]
pub struct Settings {
    /// Address and port to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8083")]
    pub bind_addr: String,

    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub redis: RedisSettings,

    /// Ed25519 private key that signs access tokens (PKCS#8 PEM).
    #[arg(long, env = "JWT_PRIVATE_KEY_FILE", default_value = ".stack/keys/jwt-private.pem")]
    pub jwt_private_key_file: PathBuf,

    /// Public keys (SPKI PEM), comma separated: the private key's own and, during a rotation, the
    /// ones tokens still in circulation were signed with. All are accepted and served at
    /// `/.well-known/jwks.json`.
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE", default_value = ".stack/keys/jwt-public.pem", value_delimiter = ',')]
    pub jwt_public_key_file: Vec<PathBuf>,

    /// `iss` claim of the access tokens.
    #[arg(long, env = "JWT_ISSUER", default_value = "auth-bridge")]
    pub jwt_issuer: String,

    /// Access token lifetime in seconds.
    #[arg(long, env = "ACCESS_TOKEN_TTL", default_value_t = 3600)]
    pub access_token_ttl: i64,

    /// Refresh token lifetime in seconds.
    #[arg(long, env = "REFRESH_TOKEN_TTL", default_value_t = 2_592_000)]
    pub refresh_token_ttl: i64,

    /// Absolute session lifetime in seconds, counted from the login: refreshing never extends it.
    #[arg(long, env = "SESSION_MAX_AGE", default_value_t = 2_592_000)]
    pub session_max_age: i64,

    /// `acr` claim given to hostapp SSO sessions.
    #[arg(long, env = "SESSION_ACR", default_value_t = 2)]
    pub session_acr: u32,

    /// Token sent as `X-Internal-Token` to the boxes internal API; at least 32 bytes.
    #[arg(long, env = "INTERNAL_API_TOKEN", value_parser = parse_secret, hide_env_values = true)]
    pub internal_api_token: SecretString,

    /// Base URL of the boxes internal API (boxes' `INTERNAL_BIND_ADDR`).
    #[arg(long, env = "BOXES_INTERNAL_URL", default_value = "http://127.0.0.1:9081")]
    pub boxes_internal_url: String,

    #[command(flatten)]
    pub origins: OriginSettings,

    /// Mark cookies `Secure`; turn off for local HTTP only.
    #[arg(long, env = "COOKIE_SECURE", default_value_t = true, action = ArgAction::Set)]
    pub cookie_secure: bool,

    /// Hostapp registry (TOML, §10.1). A secret may instead come from `HOSTAPP_SECRET_<CLIENT_ID>`.
    #[arg(long, env = "HOSTAPPS_CONFIG", default_value = ".stack/hostapps.toml")]
    pub hostapps_config: PathBuf,

    #[command(flatten)]
    pub limits: web_kit::limits::LimitSettings,

    #[command(flatten)]
    pub rates: RateSettings,

    #[command(flatten)]
    pub metrics: web_kit::metrics::MetricsSettings,
}

/// Rate limits (README, "Rate limits"): `<count>/<seconds>`, all of `count` available at once,
/// or `off`. Kept in Redis, so they hold across instances.
#[derive(Debug, Clone, clap::Args)]
pub struct RateSettings {
    /// `/auth/login` and `/api/v1/authorize/` per client address (IPv6: per /64).
    #[arg(long, env = "RATE_LOGIN_PER_ADDRESS", default_value_t = LOGIN_PER_ADDRESS)]
    pub login_per_address: Quota,

    /// `/auth/login` and `/api/v1/authorize/` per host app.
    #[arg(long, env = "RATE_LOGIN_PER_HOSTAPP", default_value_t = LOGIN_PER_HOSTAPP)]
    pub login_per_hostapp: Quota,

    /// `/auth/refresh` per session.
    #[arg(long, env = "RATE_REFRESH_PER_SESSION", default_value_t = REFRESH_PER_SESSION)]
    pub refresh_per_session: Quota,

    /// The consent endpoint per host app.
    #[arg(long, env = "RATE_CONSENT_PER_HOSTAPP", default_value_t = CONSENT_PER_HOSTAPP)]
    pub consent_per_hostapp: Quota,

    /// `/auth/hostapp/revoke` per host app.
    #[arg(long, env = "RATE_REVOKE_PER_HOSTAPP", default_value_t = REVOKE_PER_HOSTAPP)]
    pub revoke_per_hostapp: Quota,

    /// Proxies in front of the service that each append the address they saw to
    /// `X-Forwarded-For`; 0 takes the TCP peer as the client's address.
    #[arg(long, env = "TRUSTED_PROXY_HOPS", default_value_t = 0)]
    pub trusted_proxy_hops: usize,
}

impl Default for RateSettings {
    fn default() -> Self {
        RateSettings {
            login_per_address: LOGIN_PER_ADDRESS,
            login_per_hostapp: LOGIN_PER_HOSTAPP,
            refresh_per_session: REFRESH_PER_SESSION,
            consent_per_hostapp: CONSENT_PER_HOSTAPP,
            revoke_per_hostapp: REVOKE_PER_HOSTAPP,
            trusted_proxy_hops: 0,
        }
    }
}

const LOGIN_PER_ADDRESS: Quota = Quota::per(300, 60);
const LOGIN_PER_HOSTAPP: Quota = Quota::per(30_000, 60);
const REFRESH_PER_SESSION: Quota = Quota::per(30, 60);
const CONSENT_PER_HOSTAPP: Quota = Quota::per(6000, 60);
const REVOKE_PER_HOSTAPP: Quota = Quota::per(6000, 60);

fn parse_secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

/// Shortest `INTERNAL_API_TOKEN` accepted, in bytes.
pub const INTERNAL_TOKEN_MIN_BYTES: usize = 32;

impl Settings {
    /// Refuses settings that must not reach production: a short internal token, a bad origin
    /// list, no public key.
    pub fn check(&self) -> anyhow::Result<()> {
        use secrecy::ExposeSecret;
        if self.internal_api_token.expose_secret().len() < INTERNAL_TOKEN_MIN_BYTES {
            anyhow::bail!("INTERNAL_API_TOKEN must be at least {INTERNAL_TOKEN_MIN_BYTES} bytes");
        }
        if self.jwt_public_key_file.is_empty() {
            anyhow::bail!("JWT_PUBLIC_KEY_FILE names no key");
        }
        if self.session_max_age <= 0 {
            anyhow::bail!("SESSION_MAX_AGE must be positive");
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
        std::env::set_var("DATABASE_URL", "postgres://u:db-secret-9c1e@h/boxes");
        std::env::set_var("REDIS_URL", "redis://:redis-secret-9c1e@h");
        std::env::set_var("INTERNAL_API_TOKEN", "internal-secret-9c1e-0123456789abcdef");
        let help = super::Settings::command().render_long_help().to_string();
        for secret in ["db-secret-9c1e", "redis-secret-9c1e", "internal-secret-9c1e", "postgres://", "redis://"] {
            assert!(!help.contains(secret), "--help shows {secret}:\n{help}");
        }
    }
}
