//! Encrypted files (issue 18): upload and download, ranges, membership, the size limit, deletion
//! cleanup, saved files, quota, the sweeper, bad multipart bodies. The core tests run against
//! both blob stores: the local directory and a real S3-compatible server (`s3s-fs`, installed by
//! `scripts/test`, whose binary `S3S_FS_BIN` names).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use boxes::blobs::Blobs;
use boxes::config::FileSettings;
use domain::{ErrorCode, EventId, FileId};
use reqwest::{Method, Response};
use secrecy::SecretString;
use serde_json::{json, Value};

use boxes_client::body::{FileMessage, NewEvent, SaveFile};
use domain::event::Event;
use domain::files::{StorageQuotaView, UsedSpaceView};

use crate::helpers::{assert_error, assert_refused, bid, db, files_dir, seed_box, spawn_app_with, Auth, TestApp, User};

const CIPHERTEXT: &str = "bWVzc2FnZSBrZXkgZW5jcnlwdGVk";
const PUBLIC_KEY: &str = "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw";
const BOUNDARY: &str = "----boxes-test-boundary-7f3a";

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Local,
    S3,
}

/// A running `s3s-fs` serving a temporary directory; killed when dropped.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub root: std::path::PathBuf,
}

pub const S3_ACCESS_KEY: &str = "boxes-test-access";
pub const S3_SECRET_KEY: &str = "boxes-test-secret-0123456789";

impl S3Server {
    /// Starts one, or `None` when `FILES_S3_TESTS=off` says the S3 tests are skipped; a missing
    /// `S3S_FS_BIN` otherwise fails the test.
    pub async fn start() -> Option<S3Server> {
        if std::env::var("FILES_S3_TESTS").is_ok_and(|v| v == "off") {
            eprintln!("FILES_S3_TESTS=off: skipping the S3 backend");
            return None;
        }
        let bin = std::env::var("S3S_FS_BIN")
            .expect("S3S_FS_BIN must name the s3s-fs binary (scripts/test installs it); FILES_S3_TESTS=off skips");
        let root = std::env::temp_dir().join(format!("boxes-s3-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&root).expect("s3 root");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(S3Server { child, endpoint: format!("http://127.0.0.1:{port}"), root })
    }

    /// File settings for a new bucket of this server.
    pub fn settings(&self) -> FileSettings {
        let bucket = format!("files-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        std::fs::create_dir_all(self.root.join(&bucket)).expect("bucket dir");
        FileSettings {
            files_s3_url: Some(format!("s3://{bucket}")),
            aws_endpoint_url: Some(self.endpoint.clone()),
            aws_access_key_id: Some(SecretString::from(S3_ACCESS_KEY.to_owned())),
            aws_secret_access_key: Some(SecretString::from(S3_SECRET_KEY.to_owned())),
            ..Default::default()
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// An app whose blobs go to `backend`; `None` when that backend is skipped.
pub struct FilesApp {
    pub app: TestApp,
    _s3: Option<S3Server>,
}

impl std::ops::Deref for FilesApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

pub async fn spawn(backend: Backend, tweak: impl FnOnce(&mut FileSettings)) -> Option<FilesApp> {
    let (mut files, s3) = match backend {
        Backend::Local => (FileSettings { files_dir: files_dir(), ..Default::default() }, None),
        Backend::S3 => {
            let s3 = S3Server::start().await?;
            (s3.settings(), Some(s3))
        }
    };
    tweak(&mut files);
    let app = spawn_app_with(|s| s.files = files).await;
    Some(FilesApp { app, _s3: s3 })
}

/// A `multipart/form-data` body of `parts`, in order: its content type and bytes.
pub fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, data) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        if *name == "encrypted_file" {
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"blob\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                    .as_bytes(),
            );
        } else {
            body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes());
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

pub async fn upload_parts(app: &TestApp, user: &User, box_id: &str, parts: &[(&str, &[u8])], auth: Auth) -> Response {
    let (content_type, body) = multipart(parts);
    app.request(user, Method::POST, &format!("/boxes/{box_id}/encrypted-files"), auth)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .expect("upload")
}

/// Uploads `data` through the typed client, as `user`.
pub async fn upload(app: &TestApp, user: &User, box_id: &str, data: &[u8]) -> boxes_client::Result<Event> {
    app.api(user).upload_file(bid(box_id), &FileMessage::new(CIPHERTEXT, PUBLIC_KEY), data.to_vec()).await
}

/// Uploads `data` and returns the `msg.file` event, as JSON.
pub async fn uploaded(app: &TestApp, user: &User, box_id: &str, data: &[u8]) -> Value {
    let event = upload(app, user, box_id, data).await.unwrap_or_else(|e| panic!("upload: {e}"));
    serde_json::to_value(event).expect("event json")
}

fn file_id(event: &Value) -> String {
    event["content"]["encrypted_file_id"].as_str().expect("encrypted_file_id").to_owned()
}

fn typed_file_id(event: &Value) -> FileId {
    FileId::parse(&file_id(event)).expect("a file id")
}

fn event_id(event: &Value) -> EventId {
    EventId::parse(event["id"].as_str().expect("event id")).expect("an event id")
}

async fn download(app: &TestApp, user: &User, id: &str, headers: &[(&str, &str)]) -> Response {
    let mut b = app.request(user, Method::GET, &format!("/encrypted-files/{id}"), Auth::Bearer);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.send().await.expect("download")
}

/// Bytes that differ along the file, so a wrong offset shows.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i / 251) as u8).collect()
}

/// The blobs in the app's store, staged uploads of the local store included.
async fn blobs_left(app: &TestApp) -> usize {
    let blobs = Blobs::open(&app.files).expect("open blobs");
    let listed = blobs.older_than(SystemTime::now() + Duration::from_secs(3600), 10_000).await.expect("list").len();
    let staged = match app.files.files_s3_url {
        Some(_) => 0,
        None => std::fs::read_dir(std::path::Path::new(&app.files.files_dir).join("files"))
            .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().contains('#')).count())
            .unwrap_or(0),
    };
    listed + staged
}

async fn file_rows(app: &TestApp) -> i64 {
    db(app).await.query_one("SELECT count(*) FROM boxes.files", &[]).await.expect("count files").get(0)
}

/// Waits up to 10 s for `check` to hold.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 10 s: {what}");
}

async fn nothing_left(app: &TestApp) {
    eventually("no file row and no blob left", || async { file_rows(app).await == 0 && blobs_left(app).await == 0 })
        .await;
}

// ---- the core tests, on both backends ----

async fn round_trip(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else { return };
    let (alice, bob) = (app.user("Alice").await, app.user("Bob").await);
    let box_id = seed_box(&app, &alice, &[&bob]).await;
    // Larger than one part (5 MiB), not a multiple of it.
    let data = pattern(7 * 1024 * 1024 + 123);
    let event = uploaded(&app, &alice, &box_id, &data).await;
    assert_eq!(event["type"], "msg.file");
    assert_eq!(event["content"]["encrypted"], CIPHERTEXT);
    assert_eq!(event["content"]["public_key"], PUBLIC_KEY);
    assert_eq!(event["content"]["size"], data.len());
    let id = file_id(&event);

    let res = download(&app, &bob, &id, &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    assert_eq!(res.headers()["content-length"], data.len().to_string().as_str());
    assert_eq!(res.headers()["accept-ranges"], "bytes");
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() == 66, "strong sha256 etag: {etag}");
    let body = res.bytes().await.unwrap();
    assert!(body[..] == data[..], "downloaded bytes differ");

    // The event is in the box's history, like any message.
    let events: Value = app.get(&bob, &format!("/boxes/{box_id}/events")).await.json().await.unwrap();
    assert_eq!(events[0]["content"]["encrypted_file_id"], id.as_str());
    assert_eq!(file_rows(&app).await, 1);
    assert_eq!(blobs_left(&app).await, 1);
}

async fn ranges(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else { return };
    let alice = app.user("Alice").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    let data = pattern(100_000);
    let id = file_id(&uploaded(&app, &alice, &box_id, &data).await);
    let etag = download(&app, &alice, &id, &[]).await.headers()["etag"].to_str().unwrap().to_owned();

    let res = download(&app, &alice, &id, &[("Range", "bytes=10-19")]).await;
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], "bytes 10-19/100000");
    assert_eq!(res.headers()["content-length"], "10");
    assert_eq!(res.bytes().await.unwrap()[..], data[10..20]);

    let res = download(&app, &alice, &id, &[("Range", "bytes=99990-")]).await;
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.unwrap()[..], data[99_990..]);

    let res = download(&app, &alice, &id, &[("Range", "bytes=-5")]).await;
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], "bytes 99995-99999/100000");
    assert_eq!(res.bytes().await.unwrap()[..], data[99_995..]);

    let res = download(&app, &alice, &id, &[("Range", "bytes=100000-100010")]).await;
    assert_eq!(
        res.headers().get("content-range").map(|v| v.to_str().unwrap().to_owned()),
        Some("bytes */100000".into())
    );
    let body = assert_error(res, 416, "Range", "invalid").await;
    assert_eq!(body["code"], "range_not_satisfiable");

    // If-Range: the current ETag keeps the range, another one gets the whole file.
    let res = download(&app, &alice, &id, &[("Range", "bytes=0-0"), ("If-Range", &etag)]).await;
    assert_eq!(res.status(), 206);
    let res = download(&app, &alice, &id, &[("Range", "bytes=0-0"), ("If-Range", "\"other\"")]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), data.len());

    let res = download(&app, &alice, &id, &[("If-None-Match", &etag)]).await;
    assert_eq!(res.status(), 304);
    let res = download(&app, &alice, &id, &[("If-None-Match", "\"other\"")]).await;
    assert_eq!(res.status(), 200);
}

async fn deletion_removes_blobs(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else { return };
    let (alice, bob) = (app.user("Alice").await, app.user("Bob").await);
    let box_id = seed_box(&app, &alice, &[&bob]).await;
    let first = uploaded(&app, &bob, &box_id, &pattern(1000)).await;
    let second = uploaded(&app, &bob, &box_id, &pattern(2000)).await;
    assert_eq!(blobs_left(&app).await, 2);

    let bob_api = app.api(&bob);
    bob_api.delete_message(bid(&box_id), event_id(&first)).await.unwrap();
    eventually("the deleted message's blob is gone", || async { blobs_left(&app).await == 1 }).await;
    assert_refused(bob_api.download_file(typed_file_id(&first)).await, 404, "id", "not_found");
    assert_eq!(bob_api.download_file(typed_file_id(&second)).await.unwrap().len(), 2000);

    app.api(&alice).delete_box(bid(&box_id)).await.unwrap();
    nothing_left(&app).await;
    assert_refused(bob_api.download_file(typed_file_id(&second)).await, 404, "id", "not_found");
}

async fn size_limit(backend: Backend) {
    let Some(app) = spawn(backend, |f| f.files_max_bytes = 1024 * 1024).await else { return };
    let alice = app.user("Alice").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    // Within the declared-length allowance, so the limit is met while streaming, past a part.
    let res = upload(&app, &alice, &box_id, &pattern(1024 * 1024 + 1)).await;
    let body = assert_refused(res, 413, "encrypted_file", "invalid");
    assert_eq!(body.code, ErrorCode::RequestEntityTooLarge);
    nothing_left(&app).await;
    // Declared far beyond the limit: refused before the body is read.
    let res = upload(&app, &alice, &box_id, &pattern(3 * 1024 * 1024)).await;
    assert_eq!(res.err().and_then(|e| e.status()), Some(413));
    nothing_left(&app).await;
    let events: Value = app.get(&alice, &format!("/boxes/{box_id}/events")).await.json().await.unwrap();
    assert!(events.as_array().unwrap().iter().all(|e| e["type"] != "msg.file"), "{events}");
    // At the limit exactly it passes.
    uploaded(&app, &alice, &box_id, &pattern(1024 * 1024)).await;
}

async fn sweeper(backend: Backend) {
    let Some(app) = spawn(backend, |f| f.files_pending_grace_secs = 1).await else { return };
    let alice = app.user("Alice").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    let live = file_id(&uploaded(&app, &alice, &box_id, &pattern(5000)).await);
    let blobs = Blobs::open(&app.files).unwrap();
    // A pending row with its blob (an upload that never committed), and a blob with no row.
    let (pending, orphan) = (FileId::new_v4(), FileId::new_v4());
    let c = db(&app).await;
    let box_uuid = uuid::Uuid::parse_str(&box_id).unwrap();
    c.execute(
        "INSERT INTO boxes.files (id, box_id, uploader_id, state) VALUES ($1, $2, $3, 'pending')",
        &[pending.as_uuid(), &box_uuid, alice.id.as_uuid()],
    )
    .await
    .unwrap();
    for id in [pending, orphan] {
        let mut w = blobs.writer(id).await.unwrap();
        w.write(&pattern(10_000));
        w.finish().await.unwrap();
    }
    assert!(blobs.exists(pending).await.unwrap() && blobs.exists(orphan).await.unwrap());
    eventually("the sweeper removes the pending and the orphan blob", || async {
        !blobs.exists(pending).await.unwrap() && !blobs.exists(orphan).await.unwrap()
    })
    .await;
    let rows: i64 =
        c.query_one("SELECT count(*) FROM boxes.files WHERE id = $1", &[pending.as_uuid()]).await.unwrap().get(0);
    assert_eq!(rows, 0, "the pending row goes too");
    // The live file is untouched.
    assert_eq!(download(&app, &alice, &live, &[]).await.status(), 200);
    assert_eq!(blobs_left(&app).await, 1);
}

macro_rules! on_both_backends {
    ($($name:ident),*) => {
        mod local {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Local).await })*
        }
        mod s3 {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::S3).await })*
        }
    };
}

on_both_backends!(round_trip, ranges, deletion_removes_blobs, size_limit, sweeper);

// ---- the rules, on the local store ----

async fn local() -> FilesApp {
    spawn(Backend::Local, |_| {}).await.expect("local backend")
}

#[tokio::test]
async fn only_members_upload_and_download() {
    let app = local().await;
    let (alice, bob, eve) = (app.user("Alice").await, app.user("Bob").await, app.user("Eve").await);
    let box_id = seed_box(&app, &alice, &[&bob]).await;
    assert_refused(upload(&app, &eve, &box_id, b"ciphertext").await, 403, "reason", "not_member");
    let unknown_box = uuid::Uuid::new_v4().to_string();
    assert_refused(upload(&app, &alice, &unknown_box, b"x").await, 403, "reason", "not_member");

    let event = uploaded(&app, &alice, &box_id, b"ciphertext").await;
    let (id, file) = (file_id(&event), typed_file_id(&event));
    assert_refused(app.api(&eve).download_file(file).await, 403, "reason", "not_member");
    assert_eq!(&app.api(&bob).download_file(file).await.unwrap()[..], b"ciphertext");
    // A member that leaves can no longer read it.
    app.api(&bob).post_event(bid(&box_id), &NewEvent::MemberLeave).await.unwrap();
    assert_refused(app.api(&bob).download_file(file).await, 403, "reason", "not_member");
    // No token at all.
    let res = app.client.get(app.url(&format!("/encrypted-files/{id}"))).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(file_rows(&app).await, 1);
}

#[tokio::test]
async fn unknown_pending_and_deleted_files_are_404() {
    let app = local().await;
    let alice = app.user("Alice").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_error(download(&app, &alice, &unknown, &[]).await, 404, "id", "not_found").await;
    assert_error(download(&app, &alice, "not-a-uuid", &[]).await, 400, "id", "malformed").await;
    let pending = uuid::Uuid::new_v4();
    db(&app)
        .await
        .execute(
            "INSERT INTO boxes.files (id, box_id, uploader_id, state) VALUES ($1, $2, $3, 'pending')",
            &[&pending, &uuid::Uuid::parse_str(&box_id).unwrap(), alice.id.as_uuid()],
        )
        .await
        .unwrap();
    assert_error(download(&app, &alice, &pending.to_string(), &[]).await, 404, "id", "not_found").await;
    let event = uploaded(&app, &alice, &box_id, b"bytes").await;
    app.api(&alice).delete_message(bid(&box_id), event_id(&event)).await.unwrap();
    assert_refused(app.api(&alice).download_file(typed_file_id(&event)).await, 404, "id", "not_found");
}

#[tokio::test]
async fn the_upload_is_announced_like_a_message() {
    let app = local().await;
    let (alice, bob) = (app.user("Alice").await, app.user("Bob").await);
    let box_id = seed_box(&app, &alice, &[&bob]).await;
    let mut sub = test_support::Subscriber::new(&[format!("user_{}:ws", bob.id)]).await.unwrap();
    let event = uploaded(&app, &alice, &box_id, b"bytes").await;
    let (_, envelope) = sub.next_json(Duration::from_secs(5)).await.expect("event.new for bob");
    assert_eq!(envelope["type"], "event.new");
    assert_eq!(envelope["object"]["id"], event["id"]);
    assert_eq!(envelope["object"]["content"]["encrypted_file_id"], event["content"]["encrypted_file_id"]);
}

#[tokio::test]
async fn saved_files_outlive_the_box_and_go_with_their_last_reference() {
    let app = local().await;
    let (alice, bob, carol) = (app.user("Alice").await, app.user("Bob").await, app.user("Carol").await);
    let box_id = seed_box(&app, &alice, &[&bob, &carol]).await;
    let data = pattern(4096);
    let event = uploaded(&app, &alice, &box_id, &data).await;
    let file = typed_file_id(&event);
    let body = |metadata: &str, fingerprint: &str| SaveFile {
        encrypted_file_id: file,
        encrypted_metadata: metadata.to_owned(),
        key_fingerprint: fingerprint.to_owned(),
    };
    let save = |who: &User| {
        let (api, id) = (app.api(who), who.id);
        let body = body("bWV0YWRhdGE", "fp-1");
        async move { api.save_file(id, &body).await }
    };
    let (bob_api, carol_api) = (app.api(&bob), app.api(&carol));
    let saved = save(&bob).await.unwrap();
    assert_eq!((saved.identity_id, saved.encrypted_file_id), (bob.id, file));
    assert_eq!((saved.encrypted_metadata.as_str(), saved.key_fingerprint.as_str()), ("bWV0YWRhdGE", "fp-1"));
    assert_refused(save(&bob).await, 409, "encrypted_file_id", "conflict");
    save(&carol).await.unwrap();
    // Someone else's path, and a file one cannot read.
    assert_eq!(bob_api.save_file(carol.id, &body("AAAA", "x")).await.err().and_then(|e| e.status()), Some(403));
    let eve = app.user("Eve").await;
    assert_refused(save(&eve).await, 403, "reason", "not_member");
    let unknown = SaveFile { encrypted_file_id: FileId::new_v4(), ..body("AAAA", "x") };
    assert_refused(bob_api.save_file(bob.id, &unknown).await, 404, "encrypted_file_id", "not_found");

    // Bob leaves: his saved file still reads.
    bob_api.post_event(bid(&box_id), &NewEvent::MemberLeave).await.unwrap();
    assert!(bob_api.download_file(file).await.unwrap()[..] == data[..]);
    let list = bob_api.saved_files(bob.id).await.unwrap();
    assert_eq!(list, std::slice::from_ref(&saved));

    // The message is deleted and then the box: the blob stays while saved files reference it.
    let alice_api = app.api(&alice);
    alice_api.delete_message(bid(&box_id), event_id(&event)).await.unwrap();
    alice_api.delete_box(bid(&box_id)).await.unwrap();
    assert_eq!(bob_api.download_file(file).await.unwrap().len(), data.len());
    assert_eq!(carol_api.download_file(file).await.unwrap().len(), data.len());
    assert_eq!(blobs_left(&app).await, 1);

    bob_api.unsave_file(bob.id, saved.id).await.unwrap();
    assert_refused(bob_api.download_file(file).await, 403, "reason", "not_member");
    assert_eq!(carol_api.download_file(file).await.unwrap().len(), data.len());
    assert_refused(bob_api.unsave_file(bob.id, saved.id).await, 404, "saved_file_id", "not_found");
    let carols = carol_api.saved_files(carol.id).await.unwrap();
    carol_api.unsave_file(carol.id, carols[0].id).await.unwrap();
    nothing_left(&app).await;
}

#[tokio::test]
async fn quota_and_usage_figures() {
    let Some(app) = spawn(Backend::Local, |f| f.files_quota_bytes = 10_000).await else { return };
    let (alice, bob) = (app.user("Alice").await, app.user("Bob").await);
    let box_id = seed_box(&app, &alice, &[&bob]).await;
    let quota = |who: &User| {
        let (api, id) = (app.api(who), who.id);
        async move { api.storage_quota(id).await.unwrap() }
    };
    assert_eq!(quota(&alice).await, StorageQuotaView { identity_id: alice.id, quota: 10_000, used: 0 });
    let first = uploaded(&app, &alice, &box_id, &pattern(6000)).await;
    uploaded(&app, &bob, &box_id, &pattern(1000)).await;
    assert_eq!(quota(&alice).await.used, 6000);
    // 6000 + 5000 is over the quota: refused, and nothing is kept.
    let res = upload(&app, &alice, &box_id, &pattern(5000)).await;
    let body = assert_refused(res, 403, "encrypted_file", "quota_exceeded");
    assert_eq!(body.code, ErrorCode::Forbidden);
    assert_eq!(file_rows(&app).await, 2);
    eventually("the refused upload left no blob", || async { blobs_left(&app).await == 2 }).await;
    uploaded(&app, &alice, &box_id, &pattern(4000)).await;

    let bobs = app.api(&bob);
    assert_eq!(bobs.used_space(bid(&box_id)).await.unwrap(), UsedSpaceView { box_id: bid(&box_id), used: 11_000 });
    let eves = app.api(&app.user("Eve").await);
    assert_refused(eves.used_space(bid(&box_id)).await, 403, "reason", "not_member");
    assert_eq!(eves.storage_quota(alice.id).await.unwrap_err().status(), Some(403));

    // A saved file counts for the one who saved it; a deleted message no longer counts.
    let save = SaveFile {
        encrypted_file_id: typed_file_id(&first),
        encrypted_metadata: "AAAA".into(),
        key_fingerprint: "fp".into(),
    };
    bobs.save_file(bob.id, &save).await.unwrap();
    assert_eq!(quota(&bob).await.used, 7000);
    app.api(&alice).delete_message(bid(&box_id), event_id(&first)).await.unwrap();
    assert_eq!(bobs.used_space(bid(&box_id)).await.unwrap().used, 5000);
}

/// A multipart part: its name and bytes.
type Part<'a> = (&'a str, &'a [u8]);

#[tokio::test]
async fn bad_multipart_bodies_are_400() {
    let app = local().await;
    let alice = app.user("Alice").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    let ct = CIPHERTEXT.as_bytes();
    let cases: Vec<(Vec<Part>, &str, &str)> = vec![
        (vec![("encrypted_file", b"x")], "msg_encrypted_content", "required"),
        (vec![("msg_encrypted_content", ct)], "encrypted_file", "required"),
        (vec![("msg_encrypted_content", ct), ("colour", b"red"), ("encrypted_file", b"x")], "colour", "unknown"),
        (vec![("msg_encrypted_content", b"not b64u!"), ("encrypted_file", b"x")], "msg_encrypted_content", "malformed"),
        (
            vec![("msg_encrypted_content", ct), ("msg_public_key", b"+/="), ("encrypted_file", b"x")],
            "msg_public_key",
            "malformed",
        ),
        (
            vec![("msg_encrypted_content", ct), ("msg_encrypted_content", ct), ("encrypted_file", b"x")],
            "msg_encrypted_content",
            "conflict",
        ),
        (
            vec![("msg_encrypted_content", ct), ("encrypted_file", b"x"), ("msg_public_key", PUBLIC_KEY.as_bytes())],
            "encrypted_file",
            "invalid",
        ),
    ];
    for (parts, key, detail) in cases {
        let res = upload_parts(&app, &alice, &box_id, &parts, Auth::Bearer).await;
        assert_error(res, 400, key, detail).await;
    }
    // More parts than allowed: whichever rule a part breaks first, the answer is a 400.
    let res = upload_parts(&app, &alice, &box_id, &[("msg_public_key", PUBLIC_KEY.as_bytes()); 9], Auth::Bearer).await;
    assert_eq!(res.status(), 400);
    let long = "A".repeat(domain::files::ENCRYPTED_MAX + 4);
    let res = upload_parts(
        &app,
        &alice,
        &box_id,
        &[("msg_encrypted_content", long.as_bytes()), ("encrypted_file", b"x")],
        Auth::Bearer,
    )
    .await;
    assert_error(res, 400, "msg_encrypted_content", "invalid").await;
    // Not multipart at all, and a broken multipart body.
    let res = app
        .request(&alice, Method::POST, &format!("/boxes/{box_id}/encrypted-files"), Auth::Bearer)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "Content-Type", "invalid").await;
    let res = app
        .request(&alice, Method::POST, &format!("/boxes/{box_id}/encrypted-files"), Auth::Bearer)
        .header("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"encrypted_file\"\r\n\r\nunterminated"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    nothing_left(&app).await;
}

#[tokio::test]
async fn cookie_uploads_need_the_csrf_header() {
    let app = local().await;
    let alice = app.user("Alice").await;
    let box_id = seed_box(&app, &alice, &[]).await;
    let parts: [(&str, &[u8]); 2] = [("msg_encrypted_content", CIPHERTEXT.as_bytes()), ("encrypted_file", b"x")];
    let res = upload_parts(&app, &alice, &box_id, &parts, Auth::CookieNoCsrf).await;
    assert_error(res, 403, "X-CSRF-Token", "required").await;
    assert_eq!(file_rows(&app).await, 0);
    let res = upload_parts(&app, &alice, &box_id, &parts, Auth::Cookie).await;
    assert_eq!(res.status(), 201);
    // A cookie download is a read: no CSRF header needed.
    let id = file_id(&res.json().await.unwrap());
    let res =
        app.request(&alice, Method::GET, &format!("/encrypted-files/{id}"), Auth::CookieNoCsrf).send().await.unwrap();
    assert_eq!(res.status(), 200);
}
