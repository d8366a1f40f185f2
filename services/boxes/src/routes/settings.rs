//! Not yet implemented.

use actix_web::HttpResponse;

pub async fn get() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn put() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

