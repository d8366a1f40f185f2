//! The boxes internal API client (`SPEC.md` §12): creates or refreshes the public identity at
//! each login (§10.2 step 5). Any failure makes the login answer 503 with no session.

use std::time::Duration;

use anyhow::{bail, Context};
use domain::identity::IdentityUpsert;
use domain::IdentityId;
use secrecy::{ExposeSecret, SecretString};

/// Time limit of one internal call (§13.3).
pub const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct BoxesInternal {
    http: reqwest::Client,
    base_url: String,
    token: SecretString,
}

impl BoxesInternal {
    pub fn new(base_url: &str, token: SecretString) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the internal API client")?;
        Ok(BoxesInternal { http, base_url: base_url.trim_end_matches('/').to_owned(), token })
    }

    /// `PUT {BOXES_INTERNAL_URL}/internal/identities/{id}`; only a 2xx counts as success.
    #[tracing::instrument(skip_all, fields(identity_id = %id))]
    pub async fn upsert_identity(&self, id: IdentityId, body: &IdentityUpsert) -> anyhow::Result<()> {
        let res = self
            .http
            .put(format!("{}/internal/identities/{id}", self.base_url))
            .header("X-Internal-Token", self.token.expose_secret())
            .json(body)
            .send()
            .await
            .context("calling the boxes internal API")?;
        if !res.status().is_success() {
            bail!("the boxes internal API answered {}", res.status());
        }
        Ok(())
    }
}
