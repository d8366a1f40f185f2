//! Building and running the HTTP server: pools, migrations, routes, graceful shutdown.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer};
use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use domain::auth::Verifier;
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::routes;
use crate::state::AppState;

mod embedded {
    refinery::embed_migrations!("migrations");
}

pub struct Application {
    port: u16,
    internal_port: u16,
    server: Server,
    internal: Server,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.check()?;
        let origins = web_kit::origins::OriginPolicy::parse(&settings.allowed_origins)?;
        let db = connect_db(&settings).await?;
        migrate(&settings).await?;
        let redis = connect_redis(settings.redis_url.expose_secret()).await?;
        let pems = settings
            .jwt_public_key_file
            .iter()
            .map(|f| std::fs::read_to_string(f).with_context(|| format!("reading public key file {f}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let verifier = Verifier::from_public_pems(&pems, &settings.jwt_issuer).context("loading JWT public keys")?;
        let client = redis::Client::open(settings.redis_url.expose_secret()).context("parsing REDIS_URL")?;
        let revocations = web_kit::revocations::start(client);
        revocations.wait_ready(Duration::from_secs(2)).await;
        let blobs = crate::blobs::Blobs::open(&settings.files)?;
        let grace = Duration::from_secs(settings.files.files_pending_grace_secs);
        crate::sweeper::start(db.clone(), blobs.clone(), grace);
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
        };

        let listener =
            TcpListener::bind(&settings.bind_addr).with_context(|| format!("binding {}", settings.bind_addr))?;
        let port = listener.local_addr()?.port();
        let internal_listener = TcpListener::bind(&settings.internal_bind_addr)
            .with_context(|| format!("binding INTERNAL_BIND_ADDR {}", settings.internal_bind_addr))?;
        let internal_port = internal_listener.local_addr()?.port();
        let internal_state = actix_web::web::Data::new(state.clone());
        let redis_url = settings.redis_url.clone();
        let limits = web_kit::limits::Limits::new(&settings.limits);
        let mut server = HttpServer::new(move || {
            let (state, redis_url) = (state.clone(), redis_url.clone());
            App::new()
                .app_data(limits.clone())
                .wrap(from_fn(web_kit::limits::enforce))
                .wrap(origins.cors())
                .wrap(from_fn(web_kit::telemetry::log_request))
                .data_factory(move || worker_state(state.clone(), redis_url.clone()))
                .configure(routes::configure)
        })
        .shutdown_timeout(10)
        .listen(listener)?;
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        // The internal API has its own listener and no CORS: browsers have no business there.
        let internal = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(web_kit::telemetry::log_request))
                .app_data(internal_state.clone())
                .configure(routes::configure_internal)
        })
        .workers(1)
        .shutdown_timeout(10)
        .listen(internal_listener)?;
        tracing::info!(port, internal_port, "boxes listening");
        Ok(Application { port, internal_port, server: server.run(), internal: internal.run() })
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

fn pg_config(settings: &Settings) -> anyhow::Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config =
        settings.database_url.expose_secret().parse().context("parsing DATABASE_URL")?;
    config.options(format!("-c statement_timeout={}", settings.db_statement_timeout_ms));
    config.connect_timeout(Duration::from_secs(5));
    Ok(config)
}

async fn connect_db(settings: &Settings) -> anyhow::Result<Pool> {
    let manager = Manager::from_config(
        pg_config(settings)?,
        tokio_postgres::NoTls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    // LIFO: at low concurrency the same few connections (and PostgreSQL backends) serve every
    // request and stay hot in the CPU caches, instead of the whole pool taking turns.
    Pool::builder(manager)
        .max_size(settings.database_pool_size)
        .queue_mode(deadpool_postgres::QueueMode::Lifo)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .context("building the PostgreSQL pool")
}

/// Runs the embedded migrations under an advisory lock, so replicas starting together take turns.
async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let (mut client, conn) =
        pg_config(settings)?.connect(tokio_postgres::NoTls).await.context("connecting to PostgreSQL")?;
    let conn = tokio::spawn(conn);
    client.batch_execute("SELECT pg_advisory_lock(816001)").await?;
    client.batch_execute("CREATE SCHEMA IF NOT EXISTS boxes").await?;
    let outcome = embedded::migrations::runner()
        .set_migration_table_name("boxes.refinery_schema_history")
        .run_async(&mut client)
        .await;
    client.batch_execute("SELECT pg_advisory_unlock(816001)").await?;
    drop(client);
    let _ = conn.await;
    outcome.context("running migrations")?;
    Ok(())
}

/// The state of one worker: the shared state with a Redis connection of its own, whose I/O task
/// then runs on the worker's thread, so a Redis call does not hop to the main thread and back.
async fn worker_state(state: AppState, redis_url: secrecy::SecretString) -> Result<AppState, std::convert::Infallible> {
    match connect_redis(redis_url.expose_secret()).await {
        Ok(redis) => Ok(AppState { redis, ..state }),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "worker Redis connection failed; using the shared one");
            Ok(state)
        }
    }
}

async fn connect_redis(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    web_kit::redis::connect(url).await.context("connecting to Redis")
}
