//! The hostapp registry (`SPEC.md` §10.1): which hostapps may log users in, how to reach them and
//! the credentials they issued us. Loaded once at start from the TOML file `HOSTAPPS_CONFIG`; a
//! secret may come from the environment instead (`HOSTAPP_SECRET_<CLIENT_ID>`), which wins.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How get-user-data is called (the seed does not fix the method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserDataMethod {
    Get,
    Post,
}

/// One registered hostapp.
#[derive(Debug, Clone)]
pub struct HostApp {
    /// Boxo hostapp identifier, sent as `X-Hostapp-Client-ID`.
    pub client_id: String,
    /// The credential pair the hostapp issued us.
    pub hostapp_client_id: String,
    pub hostapp_secret_key: SecretString,
    pub token_prefix: String,
    pub get_access_token_url: reqwest::Url,
    pub get_user_data_url: reqwest::Url,
    pub user_data_method: UserDataMethod,
    pub allowed_app_ids: Vec<String>,
    pub timeout: Duration,
    /// The host app checks its users' email or phone before sending it (`verifies_identifiers`
    /// in the file, default false); only then may the identifier satisfy `identifier` access
    /// rules in boxes.
    pub verifies_identifiers: bool,
}

impl HostApp {
    /// `<token_prefix> base64(hostapp_client_id:hostapp_secret_key)`, standard alphabet, padded.
    pub fn credentials_header(&self) -> String {
        let pair = format!("{}:{}", self.hostapp_client_id, self.hostapp_secret_key.expose_secret());
        format!("{} {}", self.token_prefix, STANDARD.encode(pair))
    }

    pub fn allows_app(&self, app_id: &str) -> bool {
        self.allowed_app_ids.iter().any(|a| a == app_id)
    }

    /// Whether an `Authorization` header carries exactly this hostapp's credentials.
    pub fn credentials_match(&self, authorization: &str) -> bool {
        // Comparing digests keeps the comparison time independent of where the strings differ.
        Sha256::digest(authorization.trim().as_bytes()) == Sha256::digest(self.credentials_header().as_bytes())
    }
}

#[derive(Debug, Deserialize)]
struct FileEntry {
    client_id: String,
    hostapp_client_id: String,
    hostapp_secret_key: Option<String>,
    token_prefix: Option<String>,
    get_access_token_url: String,
    get_user_data_url: String,
    user_data_method: Option<String>,
    #[serde(default)]
    allowed_app_ids: Vec<String>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    verifies_identifiers: bool,
}

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    hostapp: Vec<FileEntry>,
}

/// Default per-hostapp timeout (§13.3).
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;

/// `HOSTAPP_SECRET_<client_id uppercased, every non-alphanumeric character replaced by `_`>`.
pub fn secret_env_var(client_id: &str) -> String {
    let suffix: String =
        client_id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("HOSTAPP_SECRET_{suffix}")
}

/// Every registered hostapp.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    apps: Vec<HostApp>,
}

impl Registry {
    /// Reads the file and takes secrets from the process environment.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the hostapp registry {}", path.display()))?;
        Self::parse(&text, |name| std::env::var(name).ok())
            .with_context(|| format!("loading the hostapp registry {}", path.display()))
    }

    /// Parses registry text; `env` looks up secret variables.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let file: File = toml::from_str(text).context("the registry is not valid TOML")?;
        let mut apps: Vec<HostApp> = Vec::new();
        for e in file.hostapp {
            let id = e.client_id.clone();
            if id.is_empty() || id.chars().count() > 100 {
                bail!("hostapp client_id must be 1-100 characters");
            }
            if apps.iter().any(|a| a.client_id == id) {
                bail!("hostapp {id} is registered twice");
            }
            let secret = env(&secret_env_var(&id)).or(e.hostapp_secret_key).with_context(|| {
                format!("hostapp {id} has no secret (hostapp_secret_key or {})", secret_env_var(&id))
            })?;
            let method = match e.user_data_method.as_deref().map(str::to_ascii_uppercase).as_deref() {
                None | Some("GET") => UserDataMethod::Get,
                Some("POST") => UserDataMethod::Post,
                Some(other) => bail!("hostapp {id}: user_data_method {other} is not GET or POST"),
            };
            let timeout_ms = e.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
            if timeout_ms == 0 {
                bail!("hostapp {id}: timeout_ms must be positive");
            }
            apps.push(HostApp {
                hostapp_client_id: e.hostapp_client_id,
                hostapp_secret_key: SecretString::from(secret),
                token_prefix: e.token_prefix.unwrap_or_else(|| "Token".to_owned()),
                get_access_token_url: reqwest::Url::parse(&e.get_access_token_url)
                    .with_context(|| format!("hostapp {id}: get_access_token_url"))?,
                get_user_data_url: reqwest::Url::parse(&e.get_user_data_url)
                    .with_context(|| format!("hostapp {id}: get_user_data_url"))?,
                user_data_method: method,
                allowed_app_ids: e.allowed_app_ids,
                timeout: Duration::from_millis(timeout_ms),
                verifies_identifiers: e.verifies_identifiers,
                client_id: id,
            });
        }
        Ok(Registry { apps })
    }

    pub fn get(&self, client_id: &str) -> Option<&HostApp> {
        self.apps.iter().find(|a| a.client_id == client_id)
    }

    /// The hostapp whose credentials an `Authorization` header carries.
    pub fn by_credentials(&self, authorization: &str) -> Option<&HostApp> {
        self.apps.iter().find(|a| a.credentials_match(authorization))
    }

    pub fn len(&self) -> usize {
        self.apps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[[hostapp]]
client_id = "ref-hostapp"
hostapp_client_id = "ref-hostapp"
hostapp_secret_key = "ref-secret"
token_prefix = "Token"
get_access_token_url = "http://localhost:8090/hostapp/get-access-token"
get_user_data_url   = "http://localhost:8090/hostapp/get-user-data"
user_data_method = "GET"
allowed_app_ids = ["boxes-miniapp"]
timeout_ms = 5000
verifies_identifiers = true

[[hostapp]]
client_id = "other.app-2"
hostapp_client_id = "o"
get_access_token_url = "http://localhost:1/a"
get_user_data_url   = "http://localhost:1/b"
user_data_method = "post"
"#;

    #[test]
    fn parses_the_spec_sample_and_takes_secrets_from_the_environment() {
        let env = |name: &str| (name == "HOSTAPP_SECRET_OTHER_APP_2").then(|| "from-env".to_owned());
        let reg = Registry::parse(SAMPLE, env).unwrap_or_default();
        assert_eq!(reg.len(), 2);
        let r = reg.get("ref-hostapp");
        assert_eq!(r.map(|a| a.credentials_header()).as_deref(), Some("Token cmVmLWhvc3RhcHA6cmVmLXNlY3JldA=="));
        assert_eq!(r.map(|a| a.timeout), Some(Duration::from_millis(5000)));
        assert!(r.is_some_and(|a| a.allows_app("boxes-miniapp") && !a.allows_app("x")));
        let o = reg.get("other.app-2");
        assert_eq!(o.map(|a| a.hostapp_secret_key.expose_secret().to_owned()).as_deref(), Some("from-env"));
        assert_eq!(o.map(|a| a.user_data_method), Some(UserDataMethod::Post));
        assert_eq!(o.map(|a| a.timeout), Some(Duration::from_millis(DEFAULT_TIMEOUT_MS)));
        assert_eq!((r.map(|a| a.verifies_identifiers), o.map(|a| a.verifies_identifiers)), (Some(true), Some(false)));
        assert!(reg
            .by_credentials("Token cmVmLWhvc3RhcHA6cmVmLXNlY3JldA==")
            .is_some_and(|a| a.client_id == "ref-hostapp"));
        assert!(reg.by_credentials("Token bm9wZQ==").is_none());
    }

    #[test]
    fn a_missing_secret_is_an_error() {
        assert!(Registry::parse(SAMPLE, |_| None).is_err());
    }

    #[test]
    fn env_var_names() {
        assert_eq!(secret_env_var("ref-hostapp"), "HOSTAPP_SECRET_REF_HOSTAPP");
        assert_eq!(secret_env_var("a.b c9"), "HOSTAPP_SECRET_A_B_C9");
    }
}
