//! HTTP handlers, one module per resource, and the route table. A wrong method on a known path
//! answers 405; an unknown path answers 404 (both with the §4 body).

pub mod authorize;
pub mod connect;
pub mod consent;
pub mod health;
pub mod hostapp;
pub mod jwks;
pub mod sessions;

use actix_web::{web, Route};

fn resource(path: &str, routes: Vec<Route>) -> actix_web::Resource {
    routes
        .into_iter()
        .fold(web::resource(path), |r, route| r.route(route))
        .default_service(web::to(web_kit::method_not_allowed))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/login", vec![web::post().to(sessions::login)]))
        .service(resource("/auth/refresh", vec![web::post().to(sessions::refresh)]))
        .service(resource("/auth/logout", vec![web::post().to(sessions::logout)]))
        .service(resource("/auth/boxo/connect", vec![web::post().to(connect::connect)]))
        .service(resource("/auth/hostapp/revoke", vec![web::post().to(hostapp::revoke)]))
        .service(resource("/.well-known/jwks.json", vec![web::get().to(jwks::jwks)]))
        .service(resource("/api/v1/accounts/consent/get_consent/", vec![web::get().to(consent::get_consent)]))
        .service(resource("/api/v1/accounts/consent/get_consent", vec![web::get().to(consent::get_consent)]))
        .service(resource("/api/v1/authorize/", vec![web::post().to(authorize::authorize)]))
        .service(resource("/api/v1/authorize", vec![web::post().to(authorize::authorize)]))
        .service(resource("/healthz", vec![web::get().to(health::healthz)]))
        .service(resource("/readyz", vec![web::get().to(health::readyz)]));
}
