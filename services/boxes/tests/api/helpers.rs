//! Starting the app and talking to it like a client does.

use boxes::config::Settings;
use boxes::startup::Application;
use clap::Parser;
use domain::identity::{DisplayName, IdentifierKind, IdentityUpsert};
use domain::IdentityId;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};
use test_support::{Session, TestKeys};

pub const INTERNAL_TOKEN: &str = "internal-test-token-0123456789abcdef";

pub struct TestApp {
    pub address: String,
    pub internal_address: String,
    pub keys: TestKeys,
    pub client: reqwest::Client,
    pub database_url: String,
    /// Where encrypted files' blobs go.
    pub files: boxes::config::FileSettings,
}

/// A user of the tests: an identity known to boxes and a session for it.
#[derive(Debug, Clone)]
pub struct User {
    pub id: IdentityId,
    pub session: Session,
    pub name: String,
    pub key: String,
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Bearer,
    /// Cookies `accesstoken` + `tokentype=bearer` and the `X-CSRF-Token` header.
    Cookie,
    /// Cookies without the CSRF header.
    CookieNoCsrf,
}

/// The service's own defaults, on port 0 with two workers, a small pool, an origin and a blob
/// directory of its own.
pub fn settings(database_url: &str, keys: &TestKeys) -> Settings {
    Settings::try_parse_from([
        "boxes",
        "--bind-addr=127.0.0.1:0",
        &format!("--database-url={database_url}"),
        "--database-pool-size=8",
        &format!("--redis-url={}", test_support::redis_url()),
        &format!("--jwt-public-key-file={}", keys.public_file.path().display()),
        "--internal-bind-addr=127.0.0.1:0",
        &format!("--internal-api-token={INTERNAL_TOKEN}"),
        "--allowed-origins=https://app.example",
        "--workers=2",
        &format!("--files-dir={}", files_dir()),
    ])
    .expect("settings")
}

/// The app on port 0, against a fresh database and the shared Redis.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`] with settings changed by `tweak`; the Redis it names must be running.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let database_url = test_support::fresh_database().await.expect("fresh database");
    let keys = TestKeys::generate();
    let mut s = settings(&database_url, &keys);
    tweak(&mut s);
    test_support::mark_revocations_loaded(secrecy::ExposeSecret::expose_secret(&s.redis.url)).await;
    let files = s.files.clone();
    let app = Application::build(s).await.expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let internal_address = format!("http://127.0.0.1:{}", app.internal_port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    TestApp { address, internal_address, keys, client, database_url, files }
}

impl TestApp {
    /// Starts another instance of the app on the same database and Redis, as a second replica;
    /// returns its public address.
    pub async fn another_instance(&self, tweak: impl FnOnce(&mut Settings)) -> String {
        let mut s = settings(&self.database_url, &self.keys);
        tweak(&mut s);
        let app = Application::build(s).await.expect("build app");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        address
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A URL on the internal listener.
    pub fn internal_url(&self, path: &str) -> String {
        format!("{}{}", self.internal_address, path)
    }

    /// Creates an identity through the internal API and a session for it, as a host app that
    /// verifies identifiers would. The identity has a `non_identified_pubkey` when `with_key` is
    /// set.
    pub async fn user_with(&self, name: &str, with_key: bool) -> User {
        let id = IdentityId::new_v4();
        let identity = IdentityUpsert {
            display_name: DisplayName::parse(name).expect("display name"),
            identifier_value: format!("{}@example.com", name.to_lowercase()),
            identifier_kind: IdentifierKind::Email,
            identifier_verified: true,
        };
        let internal = boxes_client::Internal::new(self.client.clone(), &self.internal_address, INTERNAL_TOKEN);
        internal.upsert_identity(id, &identity).await.unwrap_or_else(|e| panic!("internal upsert of {name}: {e}"));
        let session = self.keys.session(id);
        let key = test_key(name);
        let user = User { id, session, name: name.to_owned(), key: key.clone() };
        if with_key {
            let keys = boxes_client::body::PublicKeys { non_identified_pubkey: Some(key), ..Default::default() };
            self.api(&user).set_public_keys(id, &keys).await.unwrap_or_else(|e| panic!("public keys of {name}: {e}"));
        }
        user
    }

    pub async fn user(&self, name: &str) -> User {
        self.user_with(name, true).await
    }

    pub fn request(&self, user: &User, method: Method, path: &str, auth: Auth) -> RequestBuilder {
        let b = self.client.request(method, self.url(path));
        match auth {
            Auth::Bearer => b.header("Authorization", user.session.bearer()),
            Auth::Cookie => b.header("Cookie", user.session.cookie()).header("X-CSRF-Token", &user.session.csrf),
            Auth::CookieNoCsrf => b.header("Cookie", user.session.cookie()),
        }
    }

    /// Sends with bearer authentication and an optional JSON body.
    pub async fn send(&self, user: &User, method: Method, path: &str, body: Option<Value>) -> Response {
        self.send_as(user, method, path, body, Auth::Bearer).await
    }

    pub async fn send_as(&self, user: &User, method: Method, path: &str, body: Option<Value>, auth: Auth) -> Response {
        let mut b = self.request(user, method, path, auth);
        if let Some(body) = body {
            b = b.json(&body);
        }
        b.send().await.expect("request")
    }

    pub async fn get(&self, user: &User, path: &str) -> Response {
        self.send(user, Method::GET, path, None).await
    }

    pub async fn post(&self, user: &User, path: &str, body: Value) -> Response {
        self.send(user, Method::POST, path, Some(body)).await
    }

    /// Creates a box as `user` and returns its JSON.
    pub async fn create_box(&self, user: &User, title: &str) -> Value {
        let res = self
            .post(user, "/boxes", json!({"title": title, "public_key": box_key(title), "key_share": new_key_share()}))
            .await;
        assert_eq!(res.status(), 201);
        res.json().await.expect("box json")
    }

    /// Posts an event and returns the response.
    pub async fn post_event(&self, user: &User, box_id: &str, event: Value) -> Response {
        self.post(user, &format!("/boxes/{box_id}/events"), event).await
    }

    /// Posts a `msg.text` and returns the created event.
    pub async fn say(&self, user: &User, box_id: &str, ciphertext: &str) -> Value {
        let res = self.post_event(user, box_id, json!({"type":"msg.text","content":{"encrypted": ciphertext,"public_key":"SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw"}})).await;
        assert_eq!(res.status(), 201);
        res.json().await.expect("event json")
    }

    /// The active access rule of the box whose value is `value`, as `admin` lists it.
    pub async fn rule_for(&self, admin: &User, box_id: &str, value: &str) -> Value {
        let res = self.get(admin, &format!("/boxes/{box_id}/accesses")).await;
        assert_eq!(res.status(), 200, "GET accesses");
        let accesses: Value = res.json().await.expect("accesses json");
        let rule = accesses.as_array().and_then(|a| a.iter().find(|r| r["content"]["value"] == value)).cloned();
        rule.unwrap_or_else(|| panic!("no rule for {value} in {accesses}"))
    }

    /// boxes' API as `user`, through the typed client.
    pub fn api(&self, user: &User) -> boxes_client::Boxes {
        boxes_client::Boxes::new(self.client.clone(), &self.address)
            .as_user(boxes_client::Auth::Bearer(user.session.bearer()))
    }

    /// [`TestApp::api`] with the session cookies and the CSRF header, as a page calls.
    pub fn api_with_cookies(&self, user: &User) -> boxes_client::Boxes {
        let auth = boxes_client::Auth::Cookies { cookie: user.session.cookie(), csrf: user.session.csrf.clone() };
        boxes_client::Boxes::new(self.client.clone(), &self.address).as_user(auth)
    }

    /// Makes `admin` give `member` access to the box and `member` join it.
    pub async fn add_member(&self, admin: &User, member: &User, box_id: &str) {
        let box_id = domain::BoxId::parse(box_id).expect("box id");
        let as_admin = self.api(admin);
        let joined = as_admin.add_member(box_id, member.id, boxes_client::Auth::Bearer(member.session.bearer())).await;
        joined.unwrap_or_else(|e| panic!("adding {} to the box: {e}", member.name));
    }
}

/// A directory of its own for the blobs of one app.
pub fn files_dir() -> String {
    std::env::temp_dir().join(format!("boxes-files-{}", uuid::Uuid::new_v4())).display().to_string()
}

/// A deterministic b64u value that looks like a 32-byte key.
pub fn test_key(seed: &str) -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    for (i, b) in seed.bytes().enumerate() {
        bytes[i % 32] ^= b;
    }
    bytes[31] ^= seed.len() as u8;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn box_key(seed: &str) -> String {
    test_key(&format!("box-{seed}"))
}

/// A key share with a fresh, unique hash, as JSON.
pub fn new_key_share() -> Value {
    serde_json::to_value(new_share()).expect("a key share")
}

/// A key share with a fresh, unique hash.
pub fn new_share() -> boxes_client::body::KeyShare {
    boxes_client::body::KeyShare {
        misakey_share: "lBHT1vfwFAIBig5Nj+sD+w==".into(),
        other_share_hash: test_key(&uuid::Uuid::new_v4().to_string()),
        encrypted_invitation_key_share: Some("cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ=".into()),
    }
}

/// Asserts an error answer: status, `code`, and one detail.
pub async fn assert_error(res: Response, status: u16, key: &str, value: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status");
    assert_eq!(
        res.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "error content type"
    );
    let body: Value = res.json().await.expect("error json");
    assert_eq!(body["details"][key], value, "details of {body}");
    for field in ["code", "origin", "desc"] {
        assert!(body[field].is_string(), "{field} in {body}");
    }
    body
}

/// Asserts a refusal of a typed call: status and one detail of its §4 body.
#[track_caller]
pub fn assert_refused<T: std::fmt::Debug>(
    res: boxes_client::Result<T>,
    status: u16,
    key: &str,
    value: &str,
) -> domain::ErrorBody {
    let err = res.expect_err("a refusal");
    assert_eq!(err.status(), Some(status), "{err}");
    let body = err.body().unwrap_or_else(|| panic!("no §4 body: {err}")).clone();
    assert_eq!(body.details.get(key).map(String::as_str), Some(value), "details of {body:?}");
    body
}

/// A box id the tests hold as text, typed for the client.
pub fn bid(id: &str) -> domain::BoxId {
    domain::BoxId::parse(id).expect("a box id")
}

/// A direct connection to the test database, for seeding rows no endpoint creates directly and
/// for checking what is stored.
pub async fn db(app: &TestApp) -> tokio_postgres::Client {
    let (client, conn) =
        tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls).await.expect("connect test db");
    tokio::spawn(conn);
    client
}

/// A box without key shares created by `admin` through the API, which `members` have joined.
/// Returns the box id.
pub async fn seed_box(app: &TestApp, admin: &User, members: &[&User]) -> String {
    let new = boxes_client::body::NewBox::new("Seeded", &box_key("Seeded"));
    let box_id = app.api(admin).create_box(&new).await.expect("create box").id.to_string();
    for m in members {
        app.add_member(admin, m, &box_id).await;
    }
    box_id
}

/// Inserts a crypto action addressed to `to`, straight into the database. Returns its id.
pub async fn seed_crypto_action(
    app: &TestApp,
    to: &User,
    from: &User,
    box_id: &str,
    kind: &str,
    encrypted: &str,
) -> domain::CryptoActionId {
    let c = db(app).await;
    let id = uuid::Uuid::new_v4();
    let box_id = uuid::Uuid::parse_str(box_id).expect("box id");
    c.execute(
        "INSERT INTO boxes.crypto_actions (id, identity_id, type, box_id, sender_id, encryption_public_key, encrypted)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&id, to.id.as_uuid(), &kind, &box_id, from.id.as_uuid(), &to.key, &encrypted],
    )
    .await
    .expect("seed crypto action");
    id.into()
}
