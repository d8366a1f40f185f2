//! The route table of §7, §8 and §12. Literal routes come before the ones with a variable segment
//! that could match them (`/box-key-shares/encrypted-invitation-key-share`, §7.12;
//! `/identities/pubkey`).

use actix_web::web;

mod batch_events;
mod boxes;
mod contact;
mod counters;
mod crypto_actions;
mod events;
mod files;
mod health;
mod identities;
mod internal;
mod keyshares;
mod members;
mod notifications;
mod settings;

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(web_kit::method_not_allowed))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/readyz").route(web::get().to(health::readyz)))
        .service(resource("/boxes").route(web::post().to(boxes::create)))
        .service(
            resource("/boxes/joined").route(web::get().to(boxes::joined)).route(web::head().to(boxes::joined_count)),
        )
        .service(resource("/boxes/{id}").route(web::get().to(boxes::get)).route(web::delete().to(boxes::delete)))
        .service(resource("/boxes/{id}/public").route(web::get().to(boxes::public)))
        .service(
            resource("/boxes/{id}/events")
                .route(web::post().to(events::post))
                .route(web::get().to(events::list))
                .route(web::head().to(events::count)),
        )
        .service(resource("/boxes/{id}/encrypted-files").route(web::post().to(files::upload)))
        .service(resource("/boxes/{id}/used-space").route(web::get().to(files::used_space)))
        .service(resource("/encrypted-files/{id}").route(web::get().to(files::download)))
        .service(resource("/boxes/{id}/batch-events").route(web::post().to(batch_events::post)))
        .service(resource("/boxes/{id}/members").route(web::get().to(members::members)))
        .service(resource("/boxes/{id}/accesses").route(web::get().to(members::accesses)))
        .service(resource("/boxes/{id}/new-events-count/ack").route(web::put().to(counters::ack)))
        .service(resource("/box-key-shares").route(web::post().to(keyshares::create)))
        .service(
            resource("/box-key-shares/encrypted-invitation-key-share")
                .route(web::get().to(keyshares::encrypted_invitation_key_share)),
        )
        .service(resource("/box-key-shares/{other_share_hash}").route(web::get().to(keyshares::get)))
        .service(
            resource("/box-users/{id}/boxes/{bid}/settings")
                .route(web::get().to(settings::get))
                .route(web::put().to(settings::put)),
        )
        .service(resource("/box-users/{id}/contact").route(web::post().to(contact::contact)))
        .service(resource("/identities/pubkey").route(web::get().to(identities::pubkeys_by_identifier)))
        .service(resource("/identities/{id}").route(web::get().to(identities::get)))
        .service(resource("/identities/{id}/profile").route(web::get().to(identities::profile)))
        .service(resource("/identities/{id}/public-keys").route(web::put().to(identities::public_keys)))
        .service(
            resource("/identities/{id}/saved-files")
                .route(web::post().to(files::save))
                .route(web::get().to(files::saved)),
        )
        .service(resource("/identities/{id}/saved-files/{saved_file_id}").route(web::delete().to(files::unsave)))
        .service(resource("/identities/{id}/storage-quota").route(web::get().to(files::quota)))
        .service(resource("/identities/{id}/crypto/actions").route(web::get().to(crypto_actions::list)))
        .service(
            resource("/identities/{id}/notifications")
                .route(web::get().to(notifications::list))
                .route(web::head().to(notifications::count)),
        )
        .service(
            resource("/identities/{id}/notifications/acknowledgement").route(web::put().to(notifications::acknowledge)),
        )
        .service(
            resource("/identities/{id}/crypto/actions/{action_id}")
                .route(web::get().to(crypto_actions::get))
                .route(web::delete().to(crypto_actions::delete)),
        )
        .default_service(web::to(web_kit::not_found));
}

/// The routes of the internal listener (§12), which serves nothing else.
pub fn configure_internal(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/internal/identities/{id}").route(web::put().to(internal::upsert_identity)))
        .default_service(web::to(web_kit::not_found));
}
