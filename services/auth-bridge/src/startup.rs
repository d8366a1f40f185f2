//! Builds auth-bridge: loads keys and the hostapp registry, runs the migrations, connects to
//! PostgreSQL and Redis, binds the listener and serves until a signal (graceful shutdown).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App};
use anyhow::Context;
use deadpool_postgres::Pool;
use domain::auth::{Jwk, KeyError, Signer, Verifier};
use secrecy::ExposeSecret;
use web_kit::serve::Serve;

use crate::config::Settings;
use crate::hostapp::HostappClient;
use crate::internal::BoxesInternal;
use crate::registry::Registry;
use crate::revocation;
use crate::routes;
use crate::store;

/// Time limit of one SQL statement (§13.3).
const STATEMENT_TIMEOUT_MS: u64 = 5000;

/// PostgreSQL connections at most.
const POOL_SIZE: usize = 16;

/// What every handler shares.
pub struct AppState {
    pub settings: Settings,
    pub pool: Pool,
    pub redis: web_kit::redis::Redis,
    pub signer: Signer,
    pub verifier: Verifier,
    /// Every accepted public key, the signing one first.
    pub jwks: Vec<Jwk>,
    pub registry: Registry,
    pub hostapps: HostappClient,
    pub boxes: BoxesInternal,
    /// Revocations whose announcement to Redis failed, retried by [`revocation::Loader`].
    pub pending: Arc<revocation::Pending>,
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    loader: tokio::task::JoinHandle<()>,
    metrics: Option<web_kit::metrics::Listener>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.check()?;
        let origins = settings.origins.policy()?;
        let metrics = settings.metrics.start()?;
        web_kit::metrics::record(web_kit::metrics::Group::Auth);
        let state = build_state(settings).await?;
        web_kit::metrics::watch_pool(state.pool.clone());
        let listener = TcpListener::bind(&state.settings.bind_addr)
            .with_context(|| format!("binding {}", state.settings.bind_addr))?;
        let port = listener.local_addr().context("reading the bound address")?.port();
        tracing::info!(port, hostapps = state.registry.len(), "auth-bridge listening");
        let limits = web_kit::limits::Limits::new(&state.settings.limits);
        let loader = revocation::Loader {
            pool: state.pool.clone(),
            redis: state.redis.clone(),
            pending: state.pending.clone(),
            access_token_ttl: state.settings.access_token_ttl,
        };
        let state = web::Data::from(Arc::new(state));
        let api = web::Data::new(web_kit::apidoc::ApiJson::new(&routes::openapi()));
        let serve = Serve { metrics: Some("auth-bridge"), origins: Some(origins), limits: Some(limits), workers: 0 };
        let server = web_kit::serve::serve(listener, serve, move || {
            App::new().app_data(state.clone()).app_data(api.clone()).configure(|cfg| routes::table().configure(cfg))
        })?;
        let loader = tokio::spawn(loader.run());
        Ok(Application { port, server, loader, metrics })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the `/metrics` listener, when `METRICS_BIND_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(web_kit::metrics::Listener::port)
    }

    /// Serves until SIGINT/SIGTERM, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.loader.abort();
        if let Some(metrics) = self.metrics {
            metrics.stop().await;
        }
        result
    }
}

async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    let private_pem = std::fs::read_to_string(&settings.jwt_private_key_file)
        .with_context(|| format!("reading JWT_PRIVATE_KEY_FILE {}", settings.jwt_private_key_file.display()))?;
    let public_pems = web_kit::keys::read_pems(&settings.jwt_public_key_file)?;
    let (signer, jwks) = load_keys(&private_pem, &public_pems, &settings.jwt_issuer)?;
    let verifier = web_kit::keys::verifier(&settings.jwt_public_key_file, &settings.jwt_issuer)?;
    let registry = Registry::load(&settings.hostapps_config)?;

    let pg = web_kit::postgres::config(settings.database.url.expose_secret(), STATEMENT_TIMEOUT_MS)?;
    web_kit::postgres::migrate(&pg, "auth", store::migrations::runner()).await?;
    let pool = web_kit::postgres::pool(pg, POOL_SIZE)?;
    let redis = web_kit::redis::connect(&settings.redis.target()?).await.context("connecting to Redis")?;

    let boxes = BoxesInternal::new(&settings.boxes_internal_url, settings.internal_api_token.clone())?;
    let pending = Arc::default();
    Ok(AppState {
        settings,
        pool,
        redis,
        signer,
        verifier,
        jwks,
        registry,
        hostapps: HostappClient::new()?,
        boxes,
        pending,
    })
}

/// The token signer and the key set. The signer uses the private key with the listed public key
/// that matches it (refusing to start when none does); every listed key verifies, so tokens
/// signed before a rotation keep working until they expire. The Ed25519 key pair is parsed once
/// here: jsonwebtoken's own key would derive it again from the PKCS#8 DER at every signature,
/// which costs as much as the signature.
fn load_keys(private_pem: &str, public_pems: &[String], issuer: &str) -> anyhow::Result<(Signer, Vec<Jwk>)> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    use ed25519_dalek::Signer as _;
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(private_pem)
        .map_err(|_| KeyError::BadPrivateKey)
        .context("loading the JWT private key")?;
    let own = key.verifying_key().to_bytes();
    let mut jwks = Vec::with_capacity(public_pems.len());
    let mut signing_pem = None;
    for pem in public_pems {
        let raw = domain::auth::ed25519_public_raw(pem).context("a JWT public key is not Ed25519")?;
        let jwk = Jwk::from_public_pem(pem).context("a JWT public key is not Ed25519")?;
        if jwks.iter().any(|j: &Jwk| j.kid == jwk.kid) {
            continue;
        }
        if raw == own {
            signing_pem = Some(pem.as_str());
            jwks.insert(0, jwk);
        } else {
            jwks.push(jwk);
        }
    }
    let signing_pem = signing_pem.context("JWT_PUBLIC_KEY_FILE does not list the private key's public key")?;
    let signer = Signer::from_key_pair(Box::new(move |message| key.sign(message).to_bytes()), signing_pem, issuer)
        .context("loading the JWT key pair")?;
    Ok((signer, jwks))
}
