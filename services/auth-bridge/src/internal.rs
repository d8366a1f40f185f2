//! The boxes internal API client (`SPEC.md` §12): creates or refreshes the public identity at
//! each login (§10.2 step 5). Any failure makes the login answer 503 with no session.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use domain::identity::IdentityUpsert;
use domain::IdentityId;
use secrecy::{ExposeSecret, SecretString};
use tracing::Instrument;

/// Time limit of one internal call (§13.3).
pub const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct BoxesInternal {
    http: reqwest::Client,
    /// Parsed once: each call only appends its path segments.
    base_url: reqwest::Url,
    token: SecretString,
}

impl BoxesInternal {
    pub fn new(base_url: &str, token: SecretString) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the internal API client")?;
        let base_url = reqwest::Url::parse(base_url).context("parsing BOXES_INTERNAL_URL")?;
        if base_url.cannot_be_a_base() {
            bail!("BOXES_INTERNAL_URL must be an http(s) base URL");
        }
        Ok(BoxesInternal { http, base_url, token })
    }

    /// `PUT {BOXES_INTERNAL_URL}/internal/identities/{id}`; only a 2xx counts as success. Sends
    /// the login's `X-Request-Id` and its trace (`traceparent`, a new span of the same trace), so
    /// boxes logs the call under the same ids.
    #[tracing::instrument(skip_all, fields(identity_id = %id))]
    pub async fn upsert_identity(&self, id: IdentityId, body: &IdentityUpsert) -> anyhow::Result<()> {
        let mut req = self.http.put(self.identity_url(id)?).header("X-Internal-Token", self.token.expose_secret());
        let mut span = tracing::Span::none();
        if let Some(ctx) = web_kit::telemetry::current() {
            let call = ctx.child();
            tracing::debug!(span_id = %call.span_id, "calling the boxes internal API");
            span = web_kit::telemetry::otlp::call_span(&call, "boxes internal call");
            req = req
                .header(web_kit::telemetry::REQUEST_ID, &call.request_id)
                .header(web_kit::telemetry::TRACEPARENT, call.traceparent());
        }
        let res = req.json(body).send().instrument(span).await.context("calling the boxes internal API")?;
        if !res.status().is_success() {
            bail!("the boxes internal API answered {}", res.status());
        }
        Ok(())
    }

    /// `{BOXES_INTERNAL_URL}/internal/identities/{id}`, a trailing slash of the base ignored.
    fn identity_url(&self, id: IdentityId) -> anyhow::Result<reqwest::Url> {
        let mut url = self.base_url.clone();
        url.path_segments_mut().map_err(|()| anyhow!("BOXES_INTERNAL_URL cannot be a base"))?.pop_if_empty().extend([
            "internal",
            "identities",
            &id.to_string(),
        ]);
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_urls_append_to_the_base() {
        let id = IdentityId::new_v4();
        for (base, expected) in [
            ("http://127.0.0.1:8081", format!("http://127.0.0.1:8081/internal/identities/{id}")),
            ("http://boxes:8081/", format!("http://boxes:8081/internal/identities/{id}")),
            ("http://gw/boxes/", format!("http://gw/boxes/internal/identities/{id}")),
            ("http://gw/boxes", format!("http://gw/boxes/internal/identities/{id}")),
        ] {
            let client = BoxesInternal::new(base, SecretString::from("t")).ok();
            let url = client.and_then(|c| c.identity_url(id).ok()).map(String::from);
            assert_eq!(url, Some(expected), "{base}");
        }
        assert!(BoxesInternal::new("not a url", SecretString::from("t")).is_err());
    }
}
