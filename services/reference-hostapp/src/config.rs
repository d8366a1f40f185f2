//! Settings of the reference hostapp, read from the command line or the environment.
//!
//! Tests build a [`Settings`] value directly; `--help` lists every variable and its default.

use std::path::PathBuf;

use clap::{ArgAction, Parser};
use secrecy::SecretString;

/// Everything the reference hostapp needs to start.
#[derive(Debug, Clone, Parser)]
#[command(name = "reference-hostapp", about = "Reference Boxo hostapp backend for development and tests")]
pub struct Settings {
    /// Address and port to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8090")]
    pub bind_addr: String,

    /// Hostapp client id expected in `X-Hostapp-Client-ID` and in the credentials.
    #[arg(long, env = "REF_CLIENT_ID", default_value = "ref-hostapp")]
    pub client_id: String,

    /// Hostapp secret key, the second half of the `Authorization` credentials.
    #[arg(long, env = "REF_SECRET", default_value = "ref-secret", value_parser = parse_secret, hide_env_values = true, hide_default_value = true)]
    pub secret: SecretString,

    /// Miniapp ids accepted in `X-Miniapp-App-ID` (comma separated).
    #[arg(long, env = "REF_APP_IDS", default_value = "boxes-miniapp", value_delimiter = ',')]
    pub app_ids: Vec<String>,

    /// Accept the reusable static auth codes `code-<reference>`.
    #[arg(long, env = "REF_STATIC_CODES", default_value_t = true, action = ArgAction::Set)]
    pub static_codes: bool,

    /// JSON fixture file with the user table (an array of user data objects); built-in users when absent.
    #[arg(long, env = "REF_USERS_FILE")]
    pub users_file: Option<PathBuf>,

    /// How long the `fail-timeout` auth code makes get-access-token wait, in milliseconds.
    #[arg(long, env = "REF_TIMEOUT_DELAY_MS", default_value_t = 30_000)]
    pub timeout_delay_ms: u64,

    /// Encrypt the user data get-user-data answers: `AES-256-GCM` or `AES-256-CBC` (README,
    /// "Encrypted user data"); plain JSON when unset.
    #[arg(long, env = "REF_USER_DATA_ENCRYPTION")]
    pub user_data_encryption: Option<String>,

    /// The 32-byte user-data key, 64 hex digits or base64.
    #[arg(long, env = "REF_USER_DATA_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub user_data_key: Option<SecretString>,

    #[command(flatten)]
    pub platform: PlatformSettings,
}

/// The Boxo platform stand-in (`POST /_platform/login`): off unless a Connect URL is given.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PlatformSettings {
    /// The miniapp backend's Connect endpoint, e.g. `http://127.0.0.1:8083/auth/boxo/connect`.
    #[arg(long, env = "REF_PLATFORM_CONNECT_URL")]
    pub connect_url: Option<String>,

    /// The miniapp's Connect secret key (Basic `app_id:secret_key`).
    #[arg(long, env = "REF_PLATFORM_CONNECT_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub connect_secret: Option<SecretString>,

    /// Sign Connect calls: `HMAC`, `RSA2` or `ECDSA`; unsigned when unset.
    #[arg(long, env = "REF_PLATFORM_SIGNATURE")]
    pub signature: Option<String>,

    /// Hash of the signature: `SHA-256`, `SHA-384` or `SHA-512`.
    #[arg(long, env = "REF_PLATFORM_SIGNATURE_HASH", default_value = "SHA-256")]
    pub signature_hash: String,

    /// The HMAC secret.
    #[arg(long, env = "REF_PLATFORM_HMAC_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub hmac_secret: Option<SecretString>,

    /// The RSA or EC private key (PKCS#8 PEM) for RSA2 and ECDSA.
    #[arg(long, env = "REF_PLATFORM_PRIVATE_KEY_FILE")]
    pub private_key_file: Option<PathBuf>,

    /// The signature payload template (auth-bridge's default).
    #[arg(
        long,
        env = "REF_PLATFORM_PAYLOAD_TEMPLATE",
        default_value = "{timestamp}.{nonce}.{request_method}.{url}.{payload}"
    )]
    pub payload_template: String,
}

fn parse_secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

impl Settings {
    /// The documented defaults, listening on `bind_addr`.
    pub fn defaults(bind_addr: &str) -> Self {
        Settings {
            bind_addr: bind_addr.to_owned(),
            client_id: "ref-hostapp".to_owned(),
            secret: SecretString::from("ref-secret"),
            app_ids: vec!["boxes-miniapp".to_owned()],
            static_codes: true,
            users_file: None,
            timeout_delay_ms: 30_000,
            user_data_encryption: None,
            user_data_key: None,
            platform: PlatformSettings::default(),
        }
    }
}
