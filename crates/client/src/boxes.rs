//! boxes' public API (§7, §8) and its internal API (§12).

use bytes::Bytes;
use domain::boxes::{BoxSetting, BoxView, PublicBox};
use domain::crypto_action::CryptoAction;
use domain::event::Event;
use domain::files::{SavedFile, StorageQuotaView, UsedSpaceView};
use domain::identity::{Identity, IdentityUpsert, IdentityView, Profile};
use domain::keyshare::KeyShare;
use domain::notification::ListedNotification;
use domain::{BoxId, CryptoActionId, EventId, FileId, IdentityId, NotificationId, SavedFileId};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::body::{
    AccessBatch, Contact, FileMessage, KeyShareCreate, NewBox, NewEvent, PublicKeys, SaveFile, Settings,
};
use crate::error::{read, refusal, send, Error, Result};
use crate::health::{self, Health, Readiness};
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

    /// `GET /identities/pubkey?identifier_value=`: the keys to encrypt an invitation for each
    /// identity with that verified email or phone, oldest first (one lookup of the caller's budget).
    pub async fn pubkeys(&self, identifier_value: &str) -> Result<Vec<String>> {
        // The address stays out of `what`, which error messages carry.
        let what = "GET /identities/pubkey";
        let rb = self.request(Method::GET, "/identities/pubkey").query(&[("identifier_value", identifier_value)]);
        read(what, 200, send(what, rb).await?).await
    }

    pub async fn crypto_actions(&self, id: IdentityId) -> Result<Vec<CryptoAction>> {
        self.get(&format!("/identities/{id}/crypto/actions")).await
    }

    /// `GET /identities/{id}/crypto/actions/{action_id}`.
    pub async fn crypto_action(&self, id: IdentityId, action: CryptoActionId) -> Result<CryptoAction> {
        self.get(&format!("/identities/{id}/crypto/actions/{action}")).await
    }

    /// `DELETE /identities/{id}/crypto/actions/{action_id}`: once the action is processed.
    pub async fn delete_crypto_action(&self, id: IdentityId, action: CryptoActionId) -> Result<()> {
        self.call(Method::DELETE, &format!("/identities/{id}/crypto/actions/{action}"), None::<&()>, 204).await
    }

    pub async fn notifications(&self, id: IdentityId) -> Result<Vec<ListedNotification>> {
        self.get(&format!("/identities/{id}/notifications")).await
    }

    /// `PUT /identities/{id}/notifications/acknowledgement`: `until` and every older
    /// notification are acknowledged.
    pub async fn acknowledge_notifications(&self, id: IdentityId, until: NotificationId) -> Result<()> {
        let body = serde_json::json!({ "until_id": until });
        self.call(Method::PUT, &format!("/identities/{id}/notifications/acknowledgement"), Some(&body), 204).await
    }

    /// `POST /box-key-shares`: one more share of a box the caller belongs to.
    pub async fn create_key_share(&self, share: &KeyShareCreate) -> Result<KeyShare> {
        self.call(Method::POST, "/box-key-shares", Some(share), 201).await
    }

    pub async fn key_share(&self, other_share_hash: &str) -> Result<KeyShare> {
        self.get(&format!("/box-key-shares/{other_share_hash}")).await
    }

    /// `GET /box-key-shares/encrypted-invitation-key-share?box_id=`: the newest share's
    /// encrypted invitation share.
    pub async fn encrypted_invitation_key_share(&self, box_id: BoxId) -> Result<String> {
        self.get(&format!("/box-key-shares/encrypted-invitation-key-share?box_id={box_id}")).await
    }

    pub async fn box_settings(&self, caller: IdentityId, box_id: BoxId) -> Result<BoxSetting> {
        self.get(&format!("/box-users/{caller}/boxes/{box_id}/settings")).await
    }

    /// `PUT /box-users/{caller}/boxes/{box_id}/settings`.
    pub async fn set_box_settings(&self, caller: IdentityId, box_id: BoxId, settings: &Settings) -> Result<()> {
        self.call(Method::PUT, &format!("/box-users/{caller}/boxes/{box_id}/settings"), Some(settings), 204).await
    }

    /// `POST /boxes/{id}/batch-events`: access changes (`access.add`, `access.rm`) applied all
    /// or none; the events created, the kicks they caused included.
    pub async fn batch_accesses(&self, box_id: BoxId, events: &[NewEvent]) -> Result<Vec<Event>> {
        let body = AccessBatch { batch_type: "accesses", events };
        self.call(Method::POST, &format!("/boxes/{box_id}/batch-events"), Some(&body), 201).await
    }

    /// `POST /boxes/{id}/encrypted-files`: the message's text parts, then `file` (the ciphertext,
    /// streamed as it is read when it is a stream); the `msg.file` event.
    pub async fn upload_file(
        &self,
        box_id: BoxId,
        message: &FileMessage,
        file: impl Into<reqwest::Body>,
    ) -> Result<Event> {
        let path = format!("/boxes/{box_id}/encrypted-files");
        let what = format!("POST {path}");
        let mut form = reqwest::multipart::Form::new().text("msg_encrypted_content", message.encrypted.clone());
        if let Some(key) = &message.public_key {
            form = form.text("msg_public_key", key.clone());
        }
        let file = reqwest::multipart::Part::stream(file).file_name("encrypted_file");
        let rb = self.request(Method::POST, &path).multipart(form.part("encrypted_file", file));
        read(&what, 201, send(&what, rb).await?).await
    }

    /// `GET /encrypted-files/{id}` answered 200, its body not yet read: for reading a large file
    /// as a stream (`bytes_stream`).
    pub async fn file_response(&self, id: FileId) -> Result<reqwest::Response> {
        let path = format!("/encrypted-files/{id}");
        let what = format!("GET {path}");
        let res = send(&what, self.request(Method::GET, &path)).await?;
        let status = res.status().as_u16();
        if status == 200 {
            return Ok(res);
        }
        let bytes = res.bytes().await.map_err(|source| Error::Http { what: what.clone(), source })?;
        Err(refusal(&what, status, &bytes))
    }

    /// `GET /encrypted-files/{id}`: the whole ciphertext.
    pub async fn download_file(&self, id: FileId) -> Result<Bytes> {
        let what = format!("GET /encrypted-files/{id}");
        self.file_response(id).await?.bytes().await.map_err(|source| Error::Http { what, source })
    }

    /// Deletes a message with `msg.delete`: for a `msg.file`, the file goes with it (once no
    /// saved file refers to it).
    pub async fn delete_message(&self, box_id: BoxId, message: EventId) -> Result<Event> {
        self.post_event(box_id, &NewEvent::MsgDelete { referrer_id: message }).await
    }

    /// `POST /identities/{caller}/saved-files`.
    pub async fn save_file(&self, caller: IdentityId, file: &SaveFile) -> Result<SavedFile> {
        self.call(Method::POST, &format!("/identities/{caller}/saved-files"), Some(file), 201).await
    }

    /// `GET /identities/{caller}/saved-files`, newest first.
    pub async fn saved_files(&self, caller: IdentityId) -> Result<Vec<SavedFile>> {
        self.get(&format!("/identities/{caller}/saved-files")).await
    }

    /// `DELETE /identities/{caller}/saved-files/{id}`.
    pub async fn unsave_file(&self, caller: IdentityId, id: SavedFileId) -> Result<()> {
        self.call(Method::DELETE, &format!("/identities/{caller}/saved-files/{id}"), None::<&()>, 204).await
    }

    /// `GET /identities/{id}/storage-quota`: the bytes the caller may store and has stored.
    pub async fn storage_quota(&self, id: IdentityId) -> Result<StorageQuotaView> {
        self.get(&format!("/identities/{id}/storage-quota")).await
    }

    /// `GET /boxes/{id}/used-space`: the bytes of the box's live files.
    pub async fn used_space(&self, box_id: BoxId) -> Result<UsedSpaceView> {
        self.get(&format!("/boxes/{box_id}/used-space")).await
    }

    /// `GET /healthz`.
    pub async fn healthz(&self) -> Result<Health> {
        health::healthz(&self.http, &self.base).await
    }

    /// `GET /readyz`: PostgreSQL, Redis and the revoked sessions, or a 503 refusal naming what is down.
    pub async fn readyz(&self) -> Result<Readiness> {
        health::readyz(&self.http, &self.base).await
    }

    /// `HEAD` of a list: its `X-Total-Count`.
    async fn count(&self, path: &str) -> Result<u64> {
        let what = format!("HEAD {path}");
        let res = send(&what, self.request(Method::HEAD, path)).await?;
        let status = res.status().as_u16();
        if status != 204 {
            // A HEAD answer has no body, so a refusal is known by its status alone.
            return Err(Error::Unexpected { what, status, text: String::new() });
        }
        let total = res.headers().get("x-total-count").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        total.ok_or(Error::Unexpected { what, status, text: "no X-Total-Count".into() })
    }

    /// `HEAD /boxes/joined`: how many boxes the caller has joined.
    pub async fn joined_count(&self) -> Result<u64> {
        self.count("/boxes/joined").await
    }

    /// `HEAD /boxes/{id}/events`: how many events of the box the caller sees.
    pub async fn events_count(&self, box_id: BoxId) -> Result<u64> {
        self.count(&format!("/boxes/{box_id}/events")).await
    }

    /// `HEAD /identities/{id}/notifications`: how many notifications are not acknowledged.
    pub async fn notifications_count(&self, id: IdentityId) -> Result<u64> {
        self.count(&format!("/identities/{id}/notifications")).await
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
