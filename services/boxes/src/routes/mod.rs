//! The route table of §7, §8 and §12. Literal routes come before the ones with a variable segment
//! that could match them (`/box-key-shares/encrypted-invitation-key-share`, §7.12;
//! `/identities/pubkey`).

use web_kit::apidoc::{self, RouteTable};
use web_kit::route;

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

/// The public listener's routes, each with its description (`#[utoipa::path]` on the handler).
pub fn table() -> RouteTable {
    let mut t = RouteTable::new(apidoc::LIMITED);
    // A request is matched against the paths in this order, each path with a parameter by a
    // regular expression (tens of thousands of instructions each): the most frequent requests,
    // posting and reading events, come first. No other path matches theirs.
    route!(t, POST "/boxes/{id}/events", Session, events::post);
    route!(t, GET "/boxes/{id}/events", Session, events::list);
    route!(t, HEAD "/boxes/{id}/events", Session, events::count);
    t.with_healthz();
    route!(t, GET "/readyz", Public, health::readyz);
    route!(t, POST "/boxes", Session, boxes::create);
    route!(t, GET "/boxes/joined", Session, boxes::joined);
    route!(t, HEAD "/boxes/joined", Session, boxes::joined_count);
    route!(t, GET "/boxes/{id}", Session, boxes::get);
    route!(t, DELETE "/boxes/{id}", Session, boxes::delete);
    route!(t, GET "/boxes/{id}/public", Public, boxes::public);
    route!(t, POST "/boxes/{id}/encrypted-files", Session, files::upload);
    route!(t, GET "/boxes/{id}/used-space", Session, files::used_space);
    route!(t, GET "/encrypted-files/{id}", Session, files::download);
    route!(t, POST "/boxes/{id}/batch-events", Session, batch_events::post);
    route!(t, GET "/boxes/{id}/members", Session, members::members);
    route!(t, GET "/boxes/{id}/accesses", Session, members::accesses);
    route!(t, PUT "/boxes/{id}/new-events-count/ack", Session, counters::ack);
    route!(t, POST "/box-key-shares", Session, keyshares::create);
    route!(t, GET "/box-key-shares/encrypted-invitation-key-share", Session, keyshares::encrypted_invitation_key_share);
    route!(t, GET "/box-key-shares/{other_share_hash}", Session, keyshares::get);
    route!(t, GET "/box-users/{id}/boxes/{bid}/settings", Session, settings::get);
    route!(t, PUT "/box-users/{id}/boxes/{bid}/settings", Session, settings::put);
    route!(t, POST "/box-users/{id}/contact", Session, contact::contact);
    route!(t, GET "/identities/pubkey", Session, identities::pubkeys_by_identifier);
    route!(t, GET "/identities/{id}", Session, identities::get);
    route!(t, GET "/identities/{id}/profile", Session, identities::profile);
    route!(t, PUT "/identities/{id}/public-keys", Session, identities::public_keys);
    route!(t, POST "/identities/{id}/saved-files", Session, files::save);
    route!(t, GET "/identities/{id}/saved-files", Session, files::saved);
    route!(t, DELETE "/identities/{id}/saved-files/{saved_file_id}", Session, files::unsave);
    route!(t, GET "/identities/{id}/storage-quota", Session, files::quota);
    route!(t, GET "/identities/{id}/crypto/actions", Session, crypto_actions::list);
    route!(t, GET "/identities/{id}/notifications", Session, notifications::list);
    route!(t, HEAD "/identities/{id}/notifications", Session, notifications::count);
    route!(t, PUT "/identities/{id}/notifications/acknowledgement", Session, notifications::acknowledge);
    route!(t, GET "/identities/{id}/crypto/actions/{action_id}", Session, crypto_actions::get);
    route!(t, DELETE "/identities/{id}/crypto/actions/{action_id}", Session, crypto_actions::delete);
    t.with_docs();
    t.link("boxes_create", "201", "/boxes/{id}", "id", "$response.body#/id")
        .link("boxes_create", "201", "/box-users/{id}/boxes/{bid}", "bid", "$response.body#/id")
        .link("contact_contact", "201", "/boxes/{id}", "id", "$response.body#/id")
        .link(
            "keyshares_create",
            "201",
            "/box-key-shares/{other_share_hash}",
            "other_share_hash",
            "$response.body#/other_share_hash",
        );
    t
}

/// The routes of the internal listener (§12), which serves nothing else.
pub fn internal_table() -> RouteTable {
    let mut t = RouteTable::new(&[]);
    t.with_healthz();
    route!(t, PUT "/internal/identities/{id}", AsDescribed, internal::upsert_identity);
    t.with_docs();
    t
}

/// The description of the public listener.
pub fn openapi() -> utoipa::openapi::OpenApi {
    table().document(apidoc::base("boxes", "Encrypted boxes, their events, key shares and identities (SPEC §7, §8)."))
}

/// The description of the internal listener.
pub fn internal_openapi() -> utoipa::openapi::OpenApi {
    internal_table().document(apidoc::base("boxes internal API", "Identity provisioning by auth-bridge (SPEC §12)."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_and_every_description_routed() {
        assert_eq!(table().served(), apidoc::described(&openapi()));
        assert_eq!(internal_table().served(), apidoc::described(&internal_openapi()));
    }
}
