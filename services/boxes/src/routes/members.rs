//! Not yet implemented.

use actix_web::HttpResponse;

pub async fn members() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn accesses() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

