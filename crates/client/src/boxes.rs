//! boxes' public API (§7, §8) and its internal API (§12).

use bytes::Bytes;
use domain::boxes::{BoxSetting, BoxView, PublicBox};
use domain::crypto_action::CryptoAction;
use domain::event::Event;
use domain::identity::{Identity, IdentityUpsert, IdentityView, Profile};
use domain::keyshare::KeyShare;
use domain::notification::ListedNotification;
use domain::{BoxId, EventId, IdentityId};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::body::{Contact, NewBox, NewEvent, PublicKeys};
use crate::error::{read, send, Result};
use crate::{trim, Auth};

/// boxes' public API, as one caller (or none).
#[derive(Clone, Debug)]
pub struct Boxes {
    http: reqwest::Client,
    base: String,
    auth: Option<Auth>,
}

impl Boxes {
    /// An anonymous client of the boxes at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(http: reqwest::Client, base: &str) -> Boxes {
        Boxes { http, base: trim(base), auth: None }
    }

    /// The same client, calling as `auth`.
    pub fn as_user(&self, auth: Auth) -> Boxes {
        Boxes { http: self.http.clone(), base: self.base.clone(), auth: Some(auth) }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` with this caller's credentials, for what the typed calls do not cover.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Some(a) => a.apply(rb),
            None => rb,
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        expected: u16,
    ) -> Result<T> {
        let what = format!("{method} {path}");
        let mut rb = self.request(method, path);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        read(&what, expected, send(&what, rb).await?).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None::<&()>, 200).await
    }

    pub async fn create_box(&self, b: &NewBox) -> Result<BoxView> {
        self.call(Method::POST, "/boxes", Some(b), 201).await
    }

    pub async fn get_box(&self, id: BoxId) -> Result<BoxView> {
        self.get(&format!("/boxes/{id}")).await
    }

    pub async fn public_box(&self, id: BoxId) -> Result<PublicBox> {
        self.get(&format!("/boxes/{id}/public")).await
    }

    pub async fn joined_boxes(&self) -> Result<Vec<BoxView>> {
        self.get("/boxes/joined").await
    }

    pub async fn delete_box(&self, id: BoxId) -> Result<()> {
        let confirm = serde_json::json!({"user_confirmation": "delete"});
        self.call(Method::DELETE, &format!("/boxes/{id}"), Some(&confirm), 204).await
    }

    /// `POST /box-users/{caller}/contact`: a box with `contact` in it, invited.
    pub async fn contact(&self, caller: IdentityId, contact: &Contact) -> Result<BoxView> {
        self.call(Method::POST, &format!("/box-users/{caller}/contact"), Some(contact), 201).await
    }

    pub async fn post_event(&self, box_id: BoxId, event: &NewEvent) -> Result<Event> {
        self.call(Method::POST, &format!("/boxes/{box_id}/events"), Some(event), 201).await
    }

    /// Posts a body already serialised, for callers that send the same bytes many times.
    pub async fn post_event_bytes(&self, box_id: BoxId, body: Bytes) -> Result<Event> {
        let path = format!("/boxes/{box_id}/events");
        let what = format!("POST {path}");
        let rb = self.request(Method::POST, &path).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        read(&what, 201, send(&what, rb).await?).await
    }

    /// The newest visible events, folded for this caller (§7.4); `query` is e.g. `?limit=50`.
    pub async fn events(&self, box_id: BoxId, query: &str) -> Result<Vec<Event>> {
        self.get(&format!("/boxes/{box_id}/events{query}")).await
    }

    pub async fn members(&self, box_id: BoxId) -> Result<Vec<IdentityView>> {
        self.get(&format!("/boxes/{box_id}/members")).await
    }

    pub async fn accesses(&self, box_id: BoxId) -> Result<Vec<Event>> {
        self.get(&format!("/boxes/{box_id}/accesses")).await
    }

    pub async fn ack(&self, box_id: BoxId, caller: IdentityId) -> Result<()> {
        let body = serde_json::json!({"identity_id": caller});
        self.call(Method::PUT, &format!("/boxes/{box_id}/new-events-count/ack"), Some(&body), 204).await
    }

    /// Allows `member` in the box (`access.add` by this caller, the admin), then has `member`
    /// join (§6.3): what makes an identity a member.
    pub async fn add_member(&self, box_id: BoxId, member: IdentityId, member_auth: Auth) -> Result<EventId> {
        self.post_event(box_id, &NewEvent::allow(member)).await?;
        Ok(self.as_user(member_auth).post_event(box_id, &NewEvent::MemberJoin).await?.id)
    }

    pub async fn identity(&self, id: IdentityId) -> Result<Identity> {
        self.get(&format!("/identities/{id}")).await
    }

    pub async fn profile(&self, id: IdentityId) -> Result<Profile> {
        self.get(&format!("/identities/{id}/profile")).await
    }

    pub async fn set_public_keys(&self, id: IdentityId, keys: &PublicKeys) -> Result<Identity> {
        self.call(Method::PUT, &format!("/identities/{id}/public-keys"), Some(keys), 200).await
    }

    pub async fn crypto_actions(&self, id: IdentityId) -> Result<Vec<CryptoAction>> {
        self.get(&format!("/identities/{id}/crypto/actions")).await
    }

    pub async fn notifications(&self, id: IdentityId) -> Result<Vec<ListedNotification>> {
        self.get(&format!("/identities/{id}/notifications")).await
    }

    pub async fn key_share(&self, other_share_hash: &str) -> Result<KeyShare> {
        self.get(&format!("/box-key-shares/{other_share_hash}")).await
    }

    pub async fn box_settings(&self, caller: IdentityId, box_id: BoxId) -> Result<BoxSetting> {
        self.get(&format!("/box-users/{caller}/boxes/{box_id}/settings")).await
    }
}

/// boxes' internal API (§12), on the internal listener, with the internal token.
#[derive(Clone)]
pub struct Internal {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Internal {
    pub fn new(http: reqwest::Client, base: &str, token: &str) -> Internal {
        Internal { http, base: trim(base), token: token.to_owned() }
    }

    /// `PUT /internal/identities/{id}`: creates or updates the identity.
    pub async fn upsert_identity(&self, id: IdentityId, identity: &IdentityUpsert) -> Result<()> {
        let what = "PUT /internal/identities/{id}";
        let rb = self
            .http
            .put(format!("{}/internal/identities/{id}", self.base))
            .header("X-Internal-Token", &self.token)
            .json(identity);
        read(what, 204, send(what, rb).await?).await
    }
}

impl std::fmt::Debug for Internal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Internal").field("base", &self.base).finish_non_exhaustive()
    }
}
