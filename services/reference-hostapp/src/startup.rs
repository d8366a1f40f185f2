//! Builds the HTTP server: binds the listener, shares the state and runs until a signal.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::config::Settings;
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
        let listener =
            TcpListener::bind(&settings.bind_addr).with_context(|| format!("binding {}", settings.bind_addr))?;
        let port = listener.local_addr().context("reading the bound address")?.port();
        tracing::info!(port, users = users.len(), static_codes = settings.static_codes, "reference hostapp listening");
        let state = web::Data::from(Arc::new(AppState { settings, users, grants: Grants::default() }));
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(web_kit::telemetry::log_request))
                .app_data(state.clone())
                .configure(routes::configure)
                .default_service(web::to(web_kit::not_found))
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
