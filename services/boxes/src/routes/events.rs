//! Not yet implemented.

use actix_web::HttpResponse;

pub async fn post() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn list() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn count() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

