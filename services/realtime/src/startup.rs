//! Wiring: settings in, a running server out. `Application::build` binds the listener (port 0
//! works, for tests), starts the Redis subscriber task and the HTTP server; `run_until_stopped`
//! serves until a signal or [`AppHandle::stop`], then closes every socket with a close frame and
//! exits as soon as they are closed.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::HttpService;
use actix_server::Server;
use actix_service::{fn_service, map_config};
use actix_web::dev::AppConfig;
use actix_web::{web, App};
use anyhow::Context;
use domain::auth::Verifier;
use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use web_kit::redis::Target;

use crate::config::{mask_userinfo, Settings};
use crate::registry::{Hub, HubLimits};
use crate::routes;
use crate::socket::SocketConfig;
use crate::store::Store;
use crate::subscriber::{run_subscriber, SubscriberConfig};

/// What handlers share.
pub struct AppState {
    pub verifier: Verifier,
    pub store: Arc<Store>,
    /// Revoked sessions, kept in memory from Redis (see `web_kit::revocations`), read at each
    /// handshake.
    pub revocations: Arc<web_kit::revocations::Revocations>,
    pub hub: Hub,
    pub origins: web_kit::origins::OriginPolicy,
    pub socket: SocketConfig,
    /// The socket tasks, which outlive the HTTP connections they came from; shutdown waits for
    /// them to send their close frames.
    pub sockets: TaskTracker,
}

pub struct Application {
    port: u16,
    server: Server,
    subscriber: JoinHandle<()>,
    handle: AppHandle,
    metrics: Option<web_kit::metrics::Listener>,
}

/// Controls a running application from outside (tests, tools).
#[derive(Clone)]
pub struct AppHandle {
    hub: Hub,
    sockets: TaskTracker,
    stop: Arc<Notify>,
    shutdown_timeout: Duration,
}

impl AppHandle {
    /// Starts the graceful shutdown, as SIGTERM does.
    pub fn stop(&self) {
        self.stop.notify_one();
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let origins = settings.origins.policy()?;
        let metrics = settings.metrics.start()?;
        let verifier = web_kit::keys::verifier(&settings.tokens.jwt_public_key_files, &settings.tokens.jwt_issuer)?;
        let target = match settings.redis.target() {
            Ok(target) => target,
            Err(_) if settings.redis.cluster_nodes.is_empty() => {
                anyhow::bail!("parsing REDIS_URL {}", mask_userinfo(settings.redis.url.expose_secret()))
            }
            Err(e) => return Err(e),
        };

        let (hub, wake) = Hub::new(HubLimits {
            queue_capacity: usize::try_from(settings.queue_capacity).unwrap_or(64),
            max_per_identity: usize::try_from(settings.max_sockets_per_identity).unwrap_or(usize::MAX),
            max_total: usize::try_from(settings.max_sockets).unwrap_or(usize::MAX),
        });
        let subscriber_config = SubscriberConfig {
            reconnect_max: Duration::from_millis(settings.redis_reconnect_max_ms),
            health_interval: Duration::from_millis(settings.redis_health_interval_ms),
        };
        web_kit::metrics::record(web_kit::metrics::Group::Realtime);
        let watched = hub.clone();
        web_kit::metrics::on_scrape(move || {
            let stats = watched.stats();
            let f = &*web_kit::metrics::FAMILIES;
            f.realtime_open_sockets.set(i64::try_from(stats.sockets).unwrap_or(i64::MAX));
            f.realtime_connected_identities.set(i64::try_from(stats.identities).unwrap_or(i64::MAX));
        });
        let subscriber = match &target {
            Target::Single(client) => {
                tokio::spawn(run_subscriber(hub.clone(), client.clone(), wake, subscriber_config))
            }
            Target::Cluster(seeds) => {
                tokio::spawn(crate::shards::run(hub.clone(), seeds.clone(), wake, subscriber_config))
            }
        };
        let revocations = web_kit::revocations::start(target.clone());
        revocations.wait_ready(Duration::from_secs(2)).await;

        let sockets = TaskTracker::new();
        let state = web::Data::new(AppState {
            verifier,
            store: Arc::new(Store::new(target, settings.history_limits(), settings.replay_limits())),
            revocations,
            hub: hub.clone(),
            origins,
            socket: SocketConfig {
                ping_interval: settings.ping_interval(),
                idle_timeout: settings.idle_timeout(),
                write_timeout: settings.write_timeout(),
                max_frame_bytes: settings.max_frame_bytes,
            },
            sockets: sockets.clone(),
        });

        let listener =
            TcpListener::bind(&settings.bind_addr).with_context(|| format!("binding {}", settings.bind_addr))?;
        let port = listener.local_addr().context("reading the bound address")?.port();
        // actix-web's `HttpServer` has no hook for upgrades, so the server is assembled from its
        // parts: requests carrying `Upgrade: websocket` go to `routes::ws::upgrade` with their
        // connection, every other request to the app.
        let api = web::Data::new(web_kit::apidoc::ApiJson::new(&routes::openapi()));
        let mut server = Server::build()
            .listen("realtime", listener, move || {
                let app = App::new()
                    .wrap(actix_web::middleware::from_fn(|req, next| web_kit::metrics::track("realtime", req, next)))
                    .wrap(actix_web::middleware::from_fn(web_kit::telemetry::carry_context))
                    .wrap(web_kit::telemetry::logger())
                    .app_data(state.clone())
                    .app_data(api.clone())
                    .configure(|cfg| routes::table().configure(cfg));
                let state = state.clone();
                HttpService::build()
                    .upgrade(fn_service(move |upgrade| routes::ws::upgrade(state.clone(), upgrade)))
                    .finish(map_config(app, |_| AppConfig::default()))
                    .tcp()
            })
            .context("listening")?
            .disable_signals()
            .shutdown_timeout(settings.shutdown_timeout_secs);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        tracing::info!(port, settings = ?settings, "realtime listening");
        let server = server.run();
        let handle = AppHandle {
            hub,
            sockets,
            stop: Arc::new(Notify::new()),
            shutdown_timeout: Duration::from_secs(settings.shutdown_timeout_secs),
        };
        Ok(Application { port, server, subscriber, handle, metrics })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the `/metrics` listener, when `METRICS_BIND_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(web_kit::metrics::Listener::port)
    }

    pub fn handle(&self) -> AppHandle {
        self.handle.clone()
    }

    /// Serves until SIGINT, SIGTERM or [`AppHandle::stop`]; then stops accepting, sends every
    /// socket a close frame (1001), waits for their closing handshakes (at most
    /// `SHUTDOWN_TIMEOUT_SECS`) and stops at once.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application { server, subscriber, handle, metrics, .. } = self;
        let server_handle = server.handle();
        let watcher = tokio::spawn(async move {
            tokio::select! {
                _ = handle.stop.notified() => {}
                _ = web_kit::serve::shutdown_signal() => {}
            }
            server_handle.pause().await;
            let closed = handle.hub.shutdown();
            tracing::info!(sockets = closed, "shutting down");
            handle.sockets.close();
            if tokio::time::timeout(handle.shutdown_timeout, handle.sockets.wait()).await.is_err() {
                tracing::warn!(sockets = handle.sockets.len(), "sockets still open at the shutdown timeout");
            }
            // Not graceful: what is left are idle keep-alive HTTP connections, which actix would
            // wait for until its timeout, and health checks or handshakes in flight, which are
            // refused during shutdown anyway.
            server_handle.stop(false).await;
        });
        let result = server.await.context("http server");
        watcher.abort();
        subscriber.abort();
        if let Some(metrics) = metrics {
            metrics.stop().await;
        }
        tracing::info!("stopped");
        result
    }
}
