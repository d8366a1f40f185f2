//! `/healthz` and `/readyz` (§13.3), which every service answers the same way (`web_kit::health`):
//! [`Boxes`](crate::Boxes) and [`Bridge`](crate::Bridge) call them, and so does anyone for
//! realtime, whose only other route is its socket.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{read, send, Result};
use crate::trim;

/// `/healthz`: the process is up.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Health {
    pub status: String,
}

/// `/readyz` answered 200: `status` and one entry per check (`postgres`, `redis`…), with what
/// the service adds. A service that is not ready refuses with 503 and the §4 body.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Readiness {
    pub status: String,
    #[serde(flatten)]
    pub checks: BTreeMap<String, serde_json::Value>,
}

/// `GET /healthz` of the service at `base`.
pub async fn healthz(http: &reqwest::Client, base: &str) -> Result<Health> {
    let what = "GET /healthz";
    read(what, 200, send(what, http.get(format!("{}/healthz", trim(base)))).await?).await
}

/// `GET /readyz` of the service at `base`: a 503 refusal names what is not available.
pub async fn readyz(http: &reqwest::Client, base: &str) -> Result<Readiness> {
    let what = "GET /readyz";
    read(what, 200, send(what, http.get(format!("{}/readyz", trim(base)))).await?).await
}
