//! Not yet implemented.

use actix_web::HttpResponse;

pub async fn get() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn profile() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn public_keys() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

