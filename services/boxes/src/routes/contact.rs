//! Not yet implemented.

use actix_web::HttpResponse;

pub async fn contact() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

