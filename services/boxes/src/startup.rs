//! Building and running the service: its state and its two listeners (the public API and the
//! internal one); pools, migrations and serving are `web_kit`'s.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App};
use anyhow::Context;
use secrecy::ExposeSecret;
use web_kit::redis::Target;
use web_kit::serve::{serve, Serve};

use crate::config::Settings;
use crate::routes;
use crate::state::AppState;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The `service` label of the public API's requests in the metrics.
const SERVICE: &str = "boxes";
/// The `service` label of the internal API's requests.
const INTERNAL_SERVICE: &str = "boxes-internal";

pub struct Application {
    port: u16,
    internal_port: u16,
    server: Server,
    internal: Server,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.check()?;
        let origins = settings.origins.policy()?;
        web_kit::metrics::set_enabled(settings.metrics);
        let pg = web_kit::postgres::config(settings.database.url.expose_secret(), settings.db_statement_timeout_ms)?;
        let db = web_kit::postgres::pool(pg.clone(), settings.database_pool_size)?;
        web_kit::metrics::watch_pool(db.clone());
        web_kit::postgres::migrate(&pg, "boxes", embedded::migrations::runner()).await?;
        let target = settings.redis.target()?;
        let redis = connect_redis(&target).await?;
        let verifier = web_kit::keys::verifier(&settings.tokens.jwt_public_key_files, &settings.tokens.jwt_issuer)?;
        let revocations = web_kit::revocations::start(target.clone());
        revocations.wait_ready(Duration::from_secs(2)).await;
        let blobs = crate::blobs::Blobs::open(&settings.files)?;
        let grace = Duration::from_secs(settings.files.files_pending_grace_secs);
        crate::sweeper::start(db.clone(), blobs.clone(), grace);
        let posts = crate::posts::Posts::start(db.clone(), redis.clone(), settings.history_limits(), settings.batch);
        let state = AppState {
            db,
            redis,
            revocations,
            verifier,
            verified: Default::default(),
            internal_token: settings.internal_api_token.clone(),
            invites_per_identity: settings.invites_per_identity,
            pubkey_lookups_per_identity: settings.pubkey_lookups_per_identity,
            history: settings.history_limits(),
            notifications: settings.notifications_retention(),
            files: crate::state::Files {
                blobs,
                max_bytes: settings.files.files_max_bytes,
                quota_bytes: settings.files.files_quota_bytes,
            },
            posts,
        };

        let listener =
            TcpListener::bind(&settings.bind_addr).with_context(|| format!("binding {}", settings.bind_addr))?;
        let port = listener.local_addr()?.port();
        let internal_listener = TcpListener::bind(&settings.internal_bind_addr)
            .with_context(|| format!("binding INTERNAL_BIND_ADDR {}", settings.internal_bind_addr))?;
        let internal_port = internal_listener.local_addr()?.port();
        let internal_state = web::Data::new(state.clone());
        let api = web::Data::new(web_kit::apidoc::ApiJson::new(&routes::openapi()));
        let internal_api = web::Data::new(web_kit::apidoc::ApiJson::new(&routes::internal_openapi()));
        let public = Serve {
            metrics: Some(SERVICE),
            origins: Some(origins),
            limits: Some(web_kit::limits::Limits::new(&settings.limits)),
            workers: settings.server.workers,
        };
        let server = serve(listener, public, move || {
            let (state, target) = (state.clone(), target.clone());
            App::new()
                .app_data(api.clone())
                .data_factory(move || worker_state(state.clone(), target.clone()))
                .configure(|cfg| routes::table().configure(cfg))
        })?;
        // The internal API has its own listener and no CORS: browsers have no business there.
        // Prometheus scrapes `/metrics` there too.
        let internal = Serve { metrics: Some(INTERNAL_SERVICE), workers: 1, ..Serve::default() };
        let internal = serve(internal_listener, internal, move || {
            App::new()
                .app_data(internal_state.clone())
                .app_data(internal_api.clone())
                .route("/metrics", web::get().to(web_kit::metrics::serve))
                .configure(|cfg| routes::internal_table().configure(cfg))
        })?;
        tracing::info!(port, internal_port, "boxes listening");
        Ok(Application { port, internal_port, server, internal })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the internal API.
    pub fn internal_port(&self) -> u16 {
        self.internal_port
    }

    /// Runs until SIGINT/SIGTERM, then stops accepting and lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (public, internal) = futures_util::join!(self.server, self.internal);
        public.context("running the HTTP server")?;
        internal.context("running the internal HTTP server")
    }
}

/// The state of one worker: the shared state with a Redis connection of its own, whose I/O task
/// then runs on the worker's thread, so a Redis call does not hop to the main thread and back.
async fn worker_state(state: AppState, target: Target) -> Result<AppState, std::convert::Infallible> {
    match connect_redis(&target).await {
        Ok(redis) => Ok(AppState { redis, ..state }),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "worker Redis connection failed; using the shared one");
            Ok(state)
        }
    }
}

async fn connect_redis(target: &Target) -> anyhow::Result<web_kit::redis::Redis> {
    web_kit::redis::connect(target).await.context("connecting to Redis")
}
