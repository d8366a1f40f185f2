//! The one way a service serves HTTP: an actix-web `HttpServer` on a bound listener, with the
//! shared middleware stack (request log, metrics, CORS, request limits) around the service's own
//! app, and graceful shutdown: on SIGINT or SIGTERM it stops accepting and lets in-flight
//! requests finish for up to [`SHUTDOWN_TIMEOUT_SECS`].

use std::net::TcpListener;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Condition};
use actix_web::{App, HttpServer};
use anyhow::Context;

use crate::limits::Limits;
use crate::origins::OriginPolicy;

/// How long in-flight requests may run after a shutdown signal.
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// What the shared middleware does on one listener.
#[derive(Default)]
pub struct Serve {
    /// The `service` label of the listener's requests in the metrics; `None` records none.
    pub metrics: Option<&'static str>,
    /// Browser origins answered with CORS; `None` for a listener browsers have no business on.
    pub origins: Option<OriginPolicy>,
    /// Body size and time limits (`web_kit::limits`); `None` leaves requests unbounded.
    pub limits: Option<Limits>,
    /// HTTP worker threads; 0 takes one per core.
    pub workers: usize,
}

/// Serves the app `app` builds (its routes and state) on `listener` until a signal.
pub fn serve<F, T, B>(listener: TcpListener, options: Serve, app: F) -> anyhow::Result<Server>
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    let Serve { metrics, origins, limits, workers } = options;
    let mut server = HttpServer::new(move || {
        let cors = origins.as_ref().map(OriginPolicy::cors);
        let app = match &limits {
            Some(limits) => app().app_data(limits.clone()),
            None => app(),
        };
        app.wrap(from_fn(crate::limits::enforce))
            .wrap(Condition::new(cors.is_some(), cors.unwrap_or_default()))
            .wrap(Condition::new(
                metrics.is_some(),
                from_fn(move |req, next| crate::metrics::track(metrics.unwrap_or_default(), req, next)),
            ))
            .wrap(from_fn(crate::telemetry::carry_context))
            .wrap(crate::telemetry::logger())
    })
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)
    .context("starting the HTTP server")?;
    if workers > 0 {
        server = server.workers(workers);
    }
    Ok(server.run())
}

/// Resolves at the first SIGINT or SIGTERM, for servers that run their own shutdown.
pub async fn shutdown_signal() {
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
