//! Not yet implemented.

use actix_web::HttpResponse;

pub async fn ack() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

