//! Not yet implemented.

use actix_web::HttpResponse;

pub async fn create() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn encrypted_invitation_key_share() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

pub async fn get() -> HttpResponse {
    HttpResponse::NotImplemented().finish()
}

