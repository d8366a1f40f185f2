//! HTTP handlers, one module per resource, and the route table. A wrong method on a known path
//! answers 405; an unknown path answers 404 (both with the §4 body).

pub mod authorize;
pub mod connect;
pub mod consent;
pub mod health;
pub mod hostapp;
pub mod jwks;
pub mod sessions;

use web_kit::apidoc::{self, RouteTable};
use web_kit::route;

/// The routes, each with its description (`#[utoipa::path]` on the handler).
pub fn table() -> RouteTable {
    let mut t = RouteTable::new(apidoc::LIMITED);
    route!(t, POST "/auth/login", Public, sessions::login);
    route!(t, POST "/auth/refresh", AsDescribed, sessions::refresh);
    route!(t, POST "/auth/logout", Session, sessions::logout);
    route!(t, POST "/auth/boxo/connect", AsDescribed, connect::connect);
    route!(t, POST "/auth/hostapp/revoke", AsDescribed, hostapp::revoke);
    route!(t, GET "/.well-known/jwks.json", Public, jwks::jwks);
    route!(t, GET "/api/v1/accounts/consent/get_consent/", AsDescribed, consent::get_consent);
    route!(t, GET "/api/v1/accounts/consent/get_consent", AsDescribed, consent::get_consent, alias "consent_get_consent_unslashed");
    route!(t, POST "/api/v1/authorize/", Public, authorize::authorize);
    route!(t, POST "/api/v1/authorize", Public, authorize::authorize, alias "authorize_authorize_unslashed");
    route!(t, GET "/readyz", Public, health::readyz);
    t.with_healthz().with_docs();
    t
}

/// The service's description.
pub fn openapi() -> utoipa::openapi::OpenApi {
    table().document(web_kit::apidoc::base(
        "auth-bridge",
        "Host app logins, sessions and the Boxo platform endpoints (SPEC §10).",
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_described_and_every_description_routed() {
        assert_eq!(super::table().served(), web_kit::apidoc::described(&super::openapi()));
    }
}
