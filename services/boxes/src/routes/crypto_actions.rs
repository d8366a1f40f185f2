//! Not yet implemented.

use actix_web::HttpResponse;

pub async fn list() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn get() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn delete() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

