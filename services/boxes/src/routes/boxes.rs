//! Not yet implemented.

use actix_web::HttpResponse;

pub async fn create() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn joined() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn joined_count() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn get() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn delete() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn public() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

