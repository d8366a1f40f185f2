//! HTTP surface: the websocket handshake of §9.1 and the health endpoints of §13.3.

pub mod health;
pub mod ws;

use web_kit::apidoc::RouteTable;
use web_kit::route;

/// The routes the app serves, each with its description (`#[utoipa::path]` on the handler). A
/// request with `Upgrade: websocket` is answered by [`ws::upgrade`] before it reaches them.
pub fn table() -> RouteTable {
    let mut t = RouteTable::new(&[]);
    route!(t, GET "/box-users/{id}/ws", Session, ws::plain);
    route!(t, GET "/readyz", Public, health::readyz);
    t.with_healthz().with_docs();
    t
}

/// The service's description.
pub fn openapi() -> utoipa::openapi::OpenApi {
    table()
        .document(web_kit::apidoc::base("realtime", "The websocket handshake of SPEC §9.1 and the health endpoints."))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_described_and_every_description_routed() {
        assert_eq!(super::table().served(), web_kit::apidoc::described(&super::openapi()));
    }
}
