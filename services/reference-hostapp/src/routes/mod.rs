//! HTTP handlers, one module per resource, and the route table.

pub mod auth_codes;
pub mod hostapp;
pub mod platform;

use actix_web::web;

/// Every route of the service; wrong methods on a known path answer 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/hostapp/get-access-token")
            .route(web::post().to(hostapp::get_access_token))
            .default_service(web::to(web_kit::method_not_allowed)),
    )
    .service(
        web::resource("/hostapp/get-user-data")
            .route(web::get().to(hostapp::get_user_data))
            .route(web::post().to(hostapp::get_user_data))
            .default_service(web::to(web_kit::method_not_allowed)),
    )
    .service(
        web::resource("/_platform/login")
            .route(web::post().to(platform::login))
            .default_service(web::to(web_kit::method_not_allowed)),
    )
    .service(
        web::resource("/_test/auth-codes")
            .route(web::post().to(auth_codes::create))
            .default_service(web::to(web_kit::method_not_allowed)),
    )
    .service(
        web::resource("/healthz")
            .route(web::get().to(web_kit::health::healthz))
            .default_service(web::to(web_kit::method_not_allowed)),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(web_kit::health::healthz))
            .default_service(web::to(web_kit::method_not_allowed)),
    );
}
