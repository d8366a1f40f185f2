//! Builds the HTTP server: binds the listener, shares the state and runs until a signal.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App};
use anyhow::Context;

use domain::connect::{Algorithm, CipherMode, Hash, Signer, UserDataCipher};
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::routes;
use crate::store::Grants;
use crate::users::Users;

/// What every handler shares.
pub struct AppState {
    pub settings: Settings,
    pub users: Users,
    pub grants: Grants,
    /// Encrypts get-user-data's answers when configured.
    pub cipher: Option<UserDataCipher>,
    /// The Boxo platform stand-in, when configured.
    pub platform: Option<Platform>,
}

/// What the platform stand-in needs to call the miniapp backend.
pub struct Platform {
    pub connect_url: String,
    pub connect_secret: secrecy::SecretString,
    pub signer: Option<Signer>,
    pub payload_template: String,
    /// This host app's own base URL: the stand-in calls its Connect endpoints over HTTP.
    pub hostapp_base: String,
    pub http: reqwest::Client,
}

fn cipher(settings: &Settings) -> anyhow::Result<Option<UserDataCipher>> {
    let Some(mode) = &settings.user_data_encryption else { return Ok(None) };
    let mode = CipherMode::parse(mode).context("REF_USER_DATA_ENCRYPTION is not AES-256-GCM or AES-256-CBC")?;
    let key = settings.user_data_key.as_ref().context("REF_USER_DATA_ENCRYPTION needs REF_USER_DATA_KEY")?;
    Ok(Some(UserDataCipher::parse_key(mode, key.expose_secret()).context("REF_USER_DATA_KEY")?))
}

fn platform(settings: &Settings, port: u16) -> anyhow::Result<Option<Platform>> {
    let p = &settings.platform;
    let Some(connect_url) = &p.connect_url else { return Ok(None) };
    let connect_secret =
        p.connect_secret.clone().context("REF_PLATFORM_CONNECT_URL needs REF_PLATFORM_CONNECT_SECRET")?;
    let signer = match &p.signature {
        None => None,
        Some(alg) => {
            let algorithm = Algorithm::parse(alg).context("REF_PLATFORM_SIGNATURE is not HMAC, RSA2 or ECDSA")?;
            let hash = Hash::parse(&p.signature_hash).context("REF_PLATFORM_SIGNATURE_HASH")?;
            let signer = match algorithm {
                Algorithm::Hmac => {
                    let secret = p.hmac_secret.as_ref().context("HMAC needs REF_PLATFORM_HMAC_SECRET")?;
                    Signer::hmac(hash, secret.expose_secret().as_bytes())
                }
                _ => {
                    let file =
                        p.private_key_file.as_ref().context("RSA2 and ECDSA need REF_PLATFORM_PRIVATE_KEY_FILE")?;
                    let key = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
                    Signer::private(algorithm, hash, &key)
                }
            }
            .context("the platform signing key")?;
            Some(signer)
        }
    };
    Ok(Some(Platform {
        connect_url: connect_url.clone(),
        connect_secret,
        signer,
        payload_template: p.payload_template.clone(),
        hostapp_base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?,
    }))
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let users = match &settings.users_file {
            Some(path) => Users::from_file(path)?,
            None => Users::builtin(),
        };
        let listener =
            TcpListener::bind(&settings.bind_addr).with_context(|| format!("binding {}", settings.bind_addr))?;
        let port = listener.local_addr().context("reading the bound address")?.port();
        tracing::info!(port, users = users.len(), static_codes = settings.static_codes, "reference hostapp listening");
        let cipher = cipher(&settings)?;
        let platform = platform(&settings, port)?;
        let state =
            web::Data::from(Arc::new(AppState { settings, users, grants: Grants::default(), cipher, platform }));
        // No dependencies, so `/readyz` is `/healthz`.
        let server = web_kit::serve::serve(listener, Default::default(), move || {
            App::new().app_data(state.clone()).configure(routes::configure).default_service(web::to(web_kit::not_found))
        })?;
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
