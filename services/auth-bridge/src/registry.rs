//! The hostapp registry (`SPEC.md` §10.1): which hostapps may log users in, how to reach them and
//! the credentials they issued us. Loaded once at start from the TOML file `HOSTAPPS_CONFIG`; a
//! secret may come from the environment instead (`HOSTAPP_SECRET_<CLIENT_ID>`), which wins.
//!
//! For the Boxo platform path (`connect`) it also holds, from the environment only, the Connect
//! secret of each miniapp (`BOXO_CONNECT_SECRET_<APP_ID>`), and per host app the optional request
//! signature settings (`[hostapp.signature]`, HMAC secret in `HOSTAPP_HMAC_SECRET_<CLIENT_ID>`)
//! and user-data encryption (`user_data_encryption`, key in `HOSTAPP_USER_DATA_KEY_<CLIENT_ID>`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use domain::connect::{Algorithm, CipherMode, Hash, UserDataCipher, Verifier};
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
    /// When set, every Connect request for this host app must be signed so.
    pub signature: Option<SignatureConfig>,
    /// When set, a `user_data` string is decrypted with this key.
    pub user_data_cipher: Option<UserDataCipher>,
}

/// How a signed Connect request is checked (docs.boxo.io miniapp/Signaturing).
#[derive(Debug, Clone)]
pub struct SignatureConfig {
    pub verifier: Verifier,
    pub headers: SignatureHeaders,
    pub payload_template: String,
    pub signature_template: String,
    /// Timestamps are in milliseconds rather than seconds.
    pub millis: bool,
    /// Largest accepted distance between the request's timestamp and our clock.
    pub window: Duration,
    /// `{url}` as the platform calls it; when absent, rebuilt from the request.
    pub url: Option<String>,
    /// A nonce header is required (replay protection); default true.
    pub require_nonce: bool,
}

/// Header names of the headers map (Boxo's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub signature: String,
    pub timestamp: String,
    pub nonce: String,
    pub identity: String,
    pub client_id: String,
    pub merchant_id: String,
}

impl Default for SignatureHeaders {
    fn default() -> Self {
        SignatureHeaders {
            signature: "X-Signature".into(),
            timestamp: "X-Timestamp".into(),
            nonce: "X-Nonce".into(),
            identity: "X-Identity".into(),
            client_id: "X-Client-Id".into(),
            merchant_id: "X-Merchant-Id".into(),
        }
    }
}

/// Used when the registry names no payload template.
pub const DEFAULT_PAYLOAD_TEMPLATE: &str = "{timestamp}.{nonce}.{request_method}.{url}.{payload}";
/// Default timestamp window, seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 300;

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
    signature: Option<SignatureEntry>,
    user_data_encryption: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureEntry {
    algorithm: String,
    hash: String,
    public_key: Option<String>,
    public_key_file: Option<String>,
    #[serde(default)]
    headers: HashMap<String, String>,
    payload_template: Option<String>,
    signature_template: Option<String>,
    timespec: Option<String>,
    window_secs: Option<u64>,
    url: Option<String>,
    #[serde(default)]
    allow_weak_hash: bool,
    require_nonce: Option<bool>,
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
    env_name("HOSTAPP_SECRET", client_id)
}

/// `<PREFIX>_<id uppercased, every non-alphanumeric character replaced by `_`>`.
fn env_name(prefix: &str, id: &str) -> String {
    let suffix: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("{prefix}_{suffix}")
}

/// The Connect secret of a miniapp: `BOXO_CONNECT_SECRET_<APP_ID>`.
pub fn connect_secret_env_var(app_id: &str) -> String {
    env_name("BOXO_CONNECT_SECRET", app_id)
}

/// A host app's HMAC signature secret: `HOSTAPP_HMAC_SECRET_<CLIENT_ID>`.
pub fn hmac_secret_env_var(client_id: &str) -> String {
    env_name("HOSTAPP_HMAC_SECRET", client_id)
}

/// A host app's user-data key: `HOSTAPP_USER_DATA_KEY_<CLIENT_ID>`.
pub fn user_data_key_env_var(client_id: &str) -> String {
    env_name("HOSTAPP_USER_DATA_KEY", client_id)
}

fn signature_config(
    id: &str,
    e: SignatureEntry,
    env: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<SignatureConfig> {
    let algorithm = Algorithm::parse(&e.algorithm)
        .with_context(|| format!("hostapp {id}: signature algorithm {} is not HMAC, RSA2 or ECDSA", e.algorithm))?;
    let hash = Hash::parse(&e.hash).with_context(|| format!("hostapp {id}: unknown hash {}", e.hash))?;
    let verifier = match algorithm {
        Algorithm::Hmac => {
            let secret = env(&hmac_secret_env_var(id))
                .filter(|s| !s.is_empty())
                .with_context(|| format!("hostapp {id}: HMAC signatures need {}", hmac_secret_env_var(id)))?;
            Verifier::hmac(hash, secret.as_bytes(), e.allow_weak_hash)
        }
        _ => {
            let key = match (e.public_key, e.public_key_file) {
                (Some(k), None) => k.into_bytes(),
                (None, Some(f)) => std::fs::read(&f).with_context(|| format!("hostapp {id}: reading {f}"))?,
                _ => bail!("hostapp {id}: give exactly one of signature.public_key and signature.public_key_file"),
            };
            Verifier::public(algorithm, hash, &key, e.allow_weak_hash)
        }
    }
    .with_context(|| format!("hostapp {id}: signature key"))?;
    let mut headers = SignatureHeaders::default();
    for (field, name) in e.headers {
        let slot = match field.as_str() {
            "signature" => &mut headers.signature,
            "timestamp" => &mut headers.timestamp,
            "nonce" => &mut headers.nonce,
            "identity" => &mut headers.identity,
            "client_id" => &mut headers.client_id,
            "merchant_id" => &mut headers.merchant_id,
            other => bail!("hostapp {id}: signature.headers has unknown field {other}"),
        };
        if actix_web::http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            bail!("hostapp {id}: signature.headers.{field} is not a header name");
        }
        *slot = name;
    }
    let signature_template = e.signature_template.unwrap_or_else(|| "{signature}".to_owned());
    if signature_template.matches("{signature}").count() != 1 {
        bail!("hostapp {id}: signature.signature_template must hold {{signature}} once");
    }
    let millis = match e.timespec.as_deref() {
        None | Some("seconds") => false,
        Some("milliseconds") => true,
        Some(other) => bail!("hostapp {id}: signature.timespec {other} is not seconds or milliseconds"),
    };
    let window_secs = e.window_secs.unwrap_or(DEFAULT_WINDOW_SECS);
    if window_secs == 0 || window_secs > 3600 {
        bail!("hostapp {id}: signature.window_secs must be 1-3600");
    }
    Ok(SignatureConfig {
        verifier,
        headers,
        payload_template: e.payload_template.unwrap_or_else(|| DEFAULT_PAYLOAD_TEMPLATE.to_owned()),
        signature_template,
        millis,
        window: Duration::from_secs(window_secs),
        url: e.url,
        require_nonce: e.require_nonce.unwrap_or(true),
    })
}

/// Every registered hostapp, and the Connect secrets of the miniapps they allow.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    apps: Vec<HostApp>,
    connect_secrets: Vec<(String, SecretString)>,
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
            let signature = e.signature.map(|sig| signature_config(&id, sig, &env)).transpose()?;
            let user_data_cipher = match e.user_data_encryption {
                None => None,
                Some(mode) => {
                    let mode = CipherMode::parse(&mode).with_context(|| {
                        format!("hostapp {id}: user_data_encryption {mode} is not AES-256-GCM or AES-256-CBC")
                    })?;
                    let key = env(&user_data_key_env_var(&id)).with_context(|| {
                        format!("hostapp {id}: user_data_encryption needs {}", user_data_key_env_var(&id))
                    })?;
                    Some(
                        UserDataCipher::parse_key(mode, &key)
                            .with_context(|| format!("hostapp {id}: user data key"))?,
                    )
                }
            };
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
                signature,
                user_data_cipher,
                client_id: id,
            });
        }
        // A miniapp without a secret in the environment cannot use the Connect endpoint.
        let mut connect_secrets: Vec<(String, SecretString)> = Vec::new();
        for app_id in apps.iter().flat_map(|a| a.allowed_app_ids.iter()) {
            if connect_secrets.iter().any(|(a, _)| a == app_id) {
                continue;
            }
            if let Some(secret) = env(&connect_secret_env_var(app_id)).filter(|s| !s.is_empty()) {
                connect_secrets.push((app_id.clone(), SecretString::from(secret)));
            }
        }
        Ok(Registry { apps, connect_secrets })
    }

    /// The miniapp whose Connect credentials an `Authorization: Basic base64(app_id:secret_key)`
    /// header carries. The secret is compared through digests, in time independent of where it
    /// differs.
    pub fn connect_caller(&self, authorization: &str) -> Option<&str> {
        let (scheme, encoded) = authorization.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = STANDARD.decode(encoded.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (app_id, secret) = decoded.split_once(':')?;
        let (known, expected) = self.connect_secrets.iter().find(|(a, _)| a == app_id)?;
        let matches = Sha256::digest(secret.as_bytes()) == Sha256::digest(expected.expose_secret().as_bytes());
        matches.then_some(known.as_str())
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

    const BASE: &str = r#"
[[hostapp]]
client_id = "h"
hostapp_client_id = "h"
hostapp_secret_key = "s"
get_access_token_url = "http://localhost:1/a"
get_user_data_url   = "http://localhost:1/b"
allowed_app_ids = ["boxes-miniapp", "other-app"]
"#;

    fn with(extra: &str, env: &[(&str, &str)]) -> anyhow::Result<Registry> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Registry::parse(&format!("{BASE}{extra}"), move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn signature_settings_and_their_refusals() {
        let hmac = "[hostapp.signature]\nalgorithm = \"HMAC\"\nhash = \"SHA-256\"\n";
        let reg = with(hmac, &[("HOSTAPP_HMAC_SECRET_H", "k")]).unwrap_or_default();
        let sig = reg.get("h").and_then(|a| a.signature.clone());
        assert!(sig.as_ref().is_some_and(|s| s.headers == SignatureHeaders::default()
            && s.payload_template == DEFAULT_PAYLOAD_TEMPLATE
            && s.window == Duration::from_secs(DEFAULT_WINDOW_SECS)
            && s.require_nonce));
        // No secret in the environment: the registry does not load.
        assert!(with(hmac, &[]).is_err());
        // MD5 and SHA-1 only when enabled; every other hash of the dashboard as it is.
        for hash in ["MD5", "SHA-1"] {
            let weak = hmac.replace("SHA-256", hash);
            assert!(with(&weak, &[("HOSTAPP_HMAC_SECRET_H", "k")]).is_err(), "{hash}");
            let allowed = format!("{weak}allow_weak_hash = true\n");
            assert!(with(&allowed, &[("HOSTAPP_HMAC_SECRET_H", "k")]).is_ok(), "{hash}");
        }
        for hash in ["SHA-224", "SHA-384", "SHA-512"] {
            assert!(with(&hmac.replace("SHA-256", hash), &[("HOSTAPP_HMAC_SECRET_H", "k")]).is_ok(), "{hash}");
        }
        // Custom headers, template and timespec.
        let custom = format!(
            "{hmac}headers = {{ signature = \"X-Sig\", nonce = \"X-N\" }}\npayload_template = \"{{payload}}\"\ntimespec = \"milliseconds\"\nsignature_template = \"v1={{signature}}\"\n"
        );
        let reg = with(&custom, &[("HOSTAPP_HMAC_SECRET_H", "k")]).unwrap_or_default();
        let sig = reg.get("h").and_then(|a| a.signature.clone());
        assert!(sig.as_ref().is_some_and(|s| s.headers.signature == "X-Sig" && s.headers.nonce == "X-N" && s.millis));
        assert!(with(&format!("{hmac}headers = {{ nope = \"X\" }}\n"), &[("HOSTAPP_HMAC_SECRET_H", "k")]).is_err());
        assert!(with(&format!("{hmac}signature_template = \"none\"\n"), &[("HOSTAPP_HMAC_SECRET_H", "k")]).is_err());
        // A public-key algorithm without a key, or with a bad one.
        assert!(with("[hostapp.signature]\nalgorithm = \"RSA2\"\nhash = \"SHA-256\"\n", &[]).is_err());
        assert!(with("[hostapp.signature]\nalgorithm = \"RSA2\"\nhash = \"SHA-256\"\npublic_key = \"junk\"\n", &[])
            .is_err());
        let ec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ec256-public.pem"))
            .unwrap_or_default();
        let ec_sig = |hash: &str| {
            format!("[hostapp.signature]\nalgorithm = \"ECDSA\"\nhash = \"{hash}\"\npublic_key = \"\"\"\n{ec}\"\"\"\n")
        };
        for hash in ["SHA-224", "SHA-256", "SHA-384", "SHA-512"] {
            assert!(with(&ec_sig(hash), &[]).is_ok(), "{hash}");
        }
        assert!(with(&ec_sig("MD5"), &[]).is_err());
        // RSA with MD5 or SHA-224 is refused even when weak hashes are enabled.
        let rsa = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rsa-public.pem"))
            .unwrap_or_default();
        let rsa_sig = |hash: &str| {
            format!("[hostapp.signature]\nalgorithm = \"RSA2\"\nhash = \"{hash}\"\nallow_weak_hash = true\npublic_key = \"\"\"\n{rsa}\"\"\"\n")
        };
        assert!(with(&rsa_sig("SHA-1"), &[]).is_ok());
        assert!(with(&rsa_sig("MD5"), &[]).is_err() && with(&rsa_sig("SHA-224"), &[]).is_err());
        assert!(with("[hostapp.signature]\nalgorithm = \"DSA\"\nhash = \"SHA-256\"\n", &[]).is_err());
    }

    #[test]
    fn connect_secrets_and_user_data_keys_come_from_the_environment_only() {
        let reg = with("", &[("BOXO_CONNECT_SECRET_BOXES_MINIAPP", "cs")]).unwrap_or_default();
        let b = |id: &str, s: &str| format!("Basic {}", STANDARD.encode(format!("{id}:{s}")));
        assert_eq!(reg.connect_caller(&b("boxes-miniapp", "cs")), Some("boxes-miniapp"));
        assert_eq!(reg.connect_caller(&b("boxes-miniapp", "cs2")), None);
        // other-app has no secret: nothing lets it in.
        assert_eq!(reg.connect_caller(&b("other-app", "")), None);
        assert_eq!(reg.connect_caller(&b("other-app", "cs")), None);
        let enc = "user_data_encryption = \"AES-256-CBC\"\n";
        assert!(with(enc, &[]).is_err());
        assert!(with(enc, &[("HOSTAPP_USER_DATA_KEY_H", "short")]).is_err());
        let reg = with(enc, &[("HOSTAPP_USER_DATA_KEY_H", &"ab".repeat(32))]).unwrap_or_default();
        assert!(reg.get("h").is_some_and(|a| a.user_data_cipher.is_some()));
        assert!(
            with("user_data_encryption = \"AES-128-ECB\"\n", &[("HOSTAPP_USER_DATA_KEY_H", &"ab".repeat(32))]).is_err()
        );
    }

    #[test]
    fn env_var_names() {
        assert_eq!(secret_env_var("ref-hostapp"), "HOSTAPP_SECRET_REF_HOSTAPP");
        assert_eq!(secret_env_var("a.b c9"), "HOSTAPP_SECRET_A_B_C9");
    }
}
