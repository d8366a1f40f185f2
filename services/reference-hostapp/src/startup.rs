//! Builds the HTTP server: binds the listener, shares the state and runs until a signal.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tracing::Instrument;

use crate::config::Settings;
use crate::error::not_found;
use crate::routes;
use crate::store::Grants;
use crate::users::Users;

/// What every handler shares.
pub struct AppState {
    pub settings: Settings,
    pub users: Users,
    pub grants: Grants,
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
        let listener = TcpListener::bind(&settings.bind_addr).with_context(|| format!("binding {}", settings.bind_addr))?;
        let port = listener.local_addr().context("reading the bound address")?.port();
        tracing::info!(port, users = users.len(), static_codes = settings.static_codes, "reference hostapp listening");
        let state = web::Data::from(Arc::new(AppState { settings, users, grants: Grants::default() }));
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(log_request))
                .app_data(state.clone())
                .configure(routes::configure)
                .default_service(web::to(not_found))
        })
        .listen(listener)
        .context("starting the HTTP server")?
        .shutdown_timeout(10)
        .run();
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

/// One span per request with a request id, and one line when it ends. Only the path is logged,
/// never the query string or headers.
async fn log_request(req: ServiceRequest, next: Next<impl MessageBody>) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let span = tracing::info_span!("request", request_id = %uuid::Uuid::new_v4(), method = %req.method(), path = %req.path());
    async move {
        let started = std::time::Instant::now();
        let res = next.call(req).await?;
        tracing::info!(status = res.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request done");
        Ok(res)
    }
    .instrument(span)
    .await
}
