//! Not yet implemented.

use actix_web::HttpResponse;

pub async fn upsert_identity() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

