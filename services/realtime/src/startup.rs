//! Wiring: settings in, a running server out. `Application::build` binds the listener (port 0
//! works, for tests), starts the Redis subscriber task and the HTTP server; `run_until_stopped`
//! serves until a signal or [`AppHandle::stop`], then closes every socket with a close frame and
//! lets open connections finish.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use domain::auth::Verifier;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::{mask_userinfo, Settings};
use crate::hub::{run_subscriber, Hub, SubscriberConfig};
use crate::routes;
use crate::routes::ws::OriginPolicy;
use crate::socket::SocketConfig;
use crate::store::Store;

/// What handlers share.
pub struct AppState {
    pub verifier: Verifier,
    pub store: Arc<Store>,
    pub hub: Hub,
    pub origins: OriginPolicy,
    pub socket: SocketConfig,
}

pub struct Application {
    port: u16,
    server: Server,
    subscriber: JoinHandle<()>,
    handle: AppHandle,
}

/// Controls a running application from outside (tests, tools).
#[derive(Clone)]
pub struct AppHandle {
    hub: Hub,
    stop: Arc<Notify>,
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
        let mut pems = Vec::new();
        for file in &settings.jwt_public_key_files {
            pems.push(std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?);
        }
        let verifier =
            Verifier::from_public_pems(&pems, &settings.jwt_issuer).context("loading JWT_PUBLIC_KEY_FILE")?;
        let client = redis::Client::open(settings.redis_url.as_str())
            .with_context(|| format!("parsing REDIS_URL {}", mask_userinfo(&settings.redis_url)))?;

        let queue_capacity = usize::try_from(settings.queue_capacity).unwrap_or(64);
        let (hub, wake) = Hub::new(queue_capacity);
        let subscriber_config = SubscriberConfig {
            reconnect_max: Duration::from_millis(settings.redis_reconnect_max_ms),
            health_interval: Duration::from_millis(settings.redis_health_interval_ms),
        };
        let subscriber = tokio::spawn(run_subscriber(hub.clone(), client.clone(), wake, subscriber_config));

        let state = web::Data::new(AppState {
            verifier,
            store: Arc::new(Store::new(client)),
            hub: hub.clone(),
            origins: OriginPolicy::from_settings(&settings.allowed_origins),
            socket: SocketConfig {
                ping_interval: settings.ping_interval(),
                idle_timeout: settings.idle_timeout(),
                write_timeout: settings.write_timeout(),
                max_frame_bytes: settings.max_frame_bytes,
            },
        });

        let listener =
            TcpListener::bind(&settings.bind_addr).with_context(|| format!("binding {}", settings.bind_addr))?;
        let port = listener.local_addr().context("reading the bound address")?.port();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(web_kit::telemetry::log_request))
                .app_data(state.clone())
                .service(
                    web::resource("/box-users/{id}/ws")
                        .route(web::get().to(routes::ws::ws))
                        .default_service(web::to(web_kit::method_not_allowed)),
                )
                .route("/healthz", web::get().to(routes::health::healthz))
                .route("/readyz", web::get().to(routes::health::readyz))
                .default_service(web::to(web_kit::not_found))
        })
        .listen(listener)
        .context("listening")?
        .disable_signals()
        .shutdown_timeout(settings.shutdown_timeout_secs);
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        tracing::info!(port, settings = ?settings, "realtime listening");
        let server = server.run();
        Ok(Application { port, server, subscriber, handle: AppHandle { hub, stop: Arc::new(Notify::new()) } })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> AppHandle {
        self.handle.clone()
    }

    /// Serves until SIGINT, SIGTERM or [`AppHandle::stop`]; then stops accepting, sends every
    /// socket a close frame (1001) and waits for connections to finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application { server, subscriber, handle, .. } = self;
        let server_handle = server.handle();
        let watcher = tokio::spawn(async move {
            tokio::select! {
                _ = handle.stop.notified() => {}
                _ = shutdown_signal() => {}
            }
            let closed = handle.hub.shutdown();
            tracing::info!(sockets = closed, "shutting down");
            server_handle.stop(true).await;
        });
        let result = server.await.context("http server");
        watcher.abort();
        subscriber.abort();
        tracing::info!("stopped");
        result
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
