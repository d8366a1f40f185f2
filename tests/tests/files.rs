//! Encrypted files (issue 18) against the boxes binary, each test with its own PostgreSQL
//! database, blob directory and process:
//!
//! - streaming: an upload and a download of several hundred MiB leave the process's peak
//!   resident memory (`VmHWM`) nearly where it was;
//! - a kill in the middle of an upload (SIGKILL) leaves no live event without its blob, and the
//!   sweeper of the restarted process removes the half-written blob after the grace period.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use boxes_client::body::{FileMessage, NewBox};
use boxes_client::Auth;
use domain::event::Event;
use domain::identity::{DisplayName, IdentifierKind, IdentityUpsert};
use domain::{BoxId, FileId};
use e2e::Service;
use futures_util::StreamExt;
use reqwest::Body;
use sha2::{Digest, Sha256};
use test_support::TestKeys;

const MIB: usize = 1024 * 1024;
const INTERNAL_TOKEN: &str = "internal-e2e-files-0123456789abcdef-token";

/// One boxes process, its database and its blob directory.
struct Boxes {
    service: Service,
    env: HashMap<String, String>,
    keys: TestKeys,
    dir: std::path::PathBuf,
    database_url: String,
    internal: String,
}

impl Boxes {
    async fn start(extra: &[(&str, &str)]) -> Boxes {
        let database_url = test_support::fresh_database().await.unwrap();
        let redis = test_support::redis_url();
        test_support::mark_revocations_loaded(&redis).await;
        let keys = TestKeys::generate();
        let dir = std::env::temp_dir().join(format!("e2e-files-{}", uuid::Uuid::new_v4().simple()));
        let internal_addr = format!("127.0.0.1:{}", e2e::free_port());
        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", database_url.as_str()),
            ("REDIS_URL", redis.as_str()),
            ("JWT_PUBLIC_KEY_FILE", &keys.public_file.path().display().to_string()),
            ("JWT_ISSUER", test_support::ISSUER),
            ("INTERNAL_API_TOKEN", INTERNAL_TOKEN),
            ("INTERNAL_BIND_ADDR", &internal_addr),
            ("FILES_DIR", &dir.display().to_string()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut service = Service::start("boxes", &env).unwrap();
        service.wait_ready("/readyz").await.unwrap();
        Boxes { service, env, keys, dir, database_url, internal: format!("http://{internal_addr}") }
    }

    /// Starts the process again on the same port, database and directory.
    async fn restart(&mut self) {
        let mut service = Service::start_on("boxes", &self.env, self.service.port).unwrap();
        service.wait_ready("/readyz").await.unwrap();
        self.service = service;
    }

    /// A new identity with a box of its own: the API as that identity, and the box id.
    async fn user_with_box(&self, http: &reqwest::Client) -> (boxes_client::Boxes, BoxId) {
        let id = domain::IdentityId::new_v4();
        let internal = boxes_client::Internal::new(http.clone(), &self.internal, INTERNAL_TOKEN);
        internal.upsert_identity(id, &identity(id)).await.unwrap();
        let bearer = self.keys.session(id).bearer();
        let api = boxes_client::Boxes::new(http.clone(), &self.service.url()).as_user(Auth::Bearer(bearer));
        let bx = api.create_box(&NewBox::new("Files", "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw")).await.unwrap();
        (api, bx.id)
    }

    fn vm_hwm_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.service.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmHWM value")
    }

    async fn db(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }

    /// Names in the blob directory (blobs, and staged parts of unfinished uploads).
    fn blob_names(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.join("files"))
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Boxes {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A verified e-mail identity named Alice.
fn identity(id: domain::IdentityId) -> IdentityUpsert {
    IdentityUpsert {
        display_name: DisplayName::parse("Alice").unwrap(),
        identifier_value: format!("{id}@example.com"),
        identifier_kind: IdentifierKind::Email,
        identifier_verified: true,
    }
}

/// The byte at `i` of a test file: differs along the file, so a misplaced part shows.
fn byte_at(i: usize) -> u8 {
    (i % 251) as u8 ^ (i / 65_536) as u8
}

/// `size` file bytes made on the fly, 256 KiB at a time, waiting `pause` between chunks; never
/// held whole by the test either.
fn streamed_file(size: usize, pause: Duration) -> Body {
    let chunk = 256 * 1024;
    let chunks = futures_util::stream::iter((0..size).step_by(chunk)).then(move |start| async move {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let end = (start + chunk).min(size);
        Ok::<_, std::io::Error>((start..end).map(byte_at).collect::<Vec<u8>>())
    });
    Body::wrap_stream(chunks)
}

/// Uploads a streamed file of `size` bytes (see [`streamed_file`]) into `box_id`.
async fn upload(api: &boxes_client::Boxes, box_id: BoxId, size: usize, pause: Duration) -> boxes_client::Result<Event> {
    let message = FileMessage { encrypted: "AAAA".into(), public_key: None };
    api.upload_file(box_id, &message, streamed_file(size, pause)).await
}

/// The `encrypted_file_id` of a `msg.file` event.
fn file_id(event: &Event) -> FileId {
    let id = event.content.as_ref().and_then(|c| c["encrypted_file_id"].as_str()).expect("encrypted_file_id");
    FileId::parse(id).expect("a file id")
}

#[tokio::test]
async fn a_large_upload_and_download_stream_with_bounded_memory() {
    let size = 300 * MIB;
    let boxes = Boxes::start(&[
        ("FILES_MAX_BYTES", &(512 * MIB).to_string()),
        ("FILES_QUOTA_BYTES", &(MIB * 1024).to_string()),
    ])
    .await;
    let http = reqwest::Client::new();
    let (api, box_id) = boxes.user_with_box(&http).await;
    // A small upload and download first, so the baseline includes what any upload allocates.
    let warm = upload(&api, box_id, MIB, Duration::ZERO).await.unwrap();
    assert_eq!(api.download_file(file_id(&warm)).await.unwrap().len(), MIB);
    let before = boxes.vm_hwm_kib();

    let started = Instant::now();
    let event = upload(&api, box_id, size, Duration::ZERO).await.unwrap();
    assert_eq!(event.content.as_ref().map(|c| c["size"].clone()), Some(size.into()));
    let uploaded_in = started.elapsed();
    let after_upload = boxes.vm_hwm_kib();

    let started = Instant::now();
    let res = api.file_response(file_id(&event)).await.unwrap();
    assert_eq!(res.content_length(), Some(size as u64));
    let mut stream = res.bytes_stream();
    let (mut got, mut digest, mut expected) = (0usize, Sha256::new(), Sha256::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        digest.update(&chunk);
        expected.update((got..got + chunk.len()).map(byte_at).collect::<Vec<u8>>());
        got += chunk.len();
    }
    assert_eq!(got, size);
    assert_eq!(digest.finalize(), expected.finalize(), "the downloaded bytes are the uploaded ones");
    let downloaded_in = started.elapsed();
    let after = boxes.vm_hwm_kib();
    eprintln!(
        "300 MiB: upload {uploaded_in:?}, download {downloaded_in:?}; VmHWM {before} KiB before, {after_upload} KiB after the upload, {after} KiB after the download"
    );
    assert!(after.saturating_sub(before) < 64 * 1024, "peak resident memory grew by {} KiB", after - before);
}

#[tokio::test]
async fn a_kill_mid_upload_leaves_no_event_without_blob_and_the_sweeper_removes_the_blob() {
    let mut boxes = Boxes::start(&[("FILES_PENDING_GRACE_SECS", "2")]).await;
    let http = reqwest::Client::new();
    let (api, box_id) = boxes.user_with_box(&http).await;
    // A finished upload, which must survive everything below.
    let kept = upload(&api, box_id, 6 * MIB, Duration::ZERO).await.unwrap();
    let kept_id = file_id(&kept).to_string();

    // A slow upload of 64 MiB: 256 KiB every 20 ms.
    let slow = {
        let api = api.clone();
        tokio::spawn(async move { upload(&api, box_id, 64 * MIB, Duration::from_millis(20)).await })
    };
    let db = boxes.db().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Kill once more than a part is written.
    loop {
        let staged = boxes.blob_names().iter().any(|n| n.contains('#'));
        let pending: i64 =
            db.query_one("SELECT count(*) FROM boxes.files WHERE state = 'pending'", &[]).await.unwrap().get(0);
        if staged && pending == 1 {
            let meta = std::fs::read_dir(boxes.dir.join("files"))
                .unwrap()
                .filter_map(Result::ok)
                .find(|e| e.file_name().to_string_lossy().contains('#'))
                .map(|e| e.metadata().unwrap().len());
            if meta.unwrap_or(0) > 0 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the upload never got going: {:?}", boxes.blob_names());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::process::Command::new("kill").args(["-KILL", &boxes.service.pid().to_string()]).status().unwrap();
    let _ = slow.await;
    while !boxes.service.exited() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // No live file without its blob, and no msg.file event but the finished one.
    let live: Vec<uuid::Uuid> = db
        .query("SELECT id FROM boxes.files WHERE state = 'live'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(live.len(), 1);
    for id in &live {
        assert!(boxes.blob_names().contains(&id.to_string()), "live file {id} has its blob");
    }
    let file_events: i64 =
        db.query_one("SELECT count(*) FROM boxes.events WHERE type = 'msg.file'", &[]).await.unwrap().get(0);
    assert_eq!(file_events, 1);
    let pending: i64 =
        db.query_one("SELECT count(*) FROM boxes.files WHERE state = 'pending'", &[]).await.unwrap().get(0);
    assert_eq!(pending, 1, "the killed upload's row is still pending");
    assert!(boxes.blob_names().iter().any(|n| n.contains('#')), "its half-written blob is still there");

    // The restarted process sweeps it after the grace period; the finished file stays.
    boxes.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending: i64 =
            db.query_one("SELECT count(*) FROM boxes.files WHERE state = 'pending'", &[]).await.unwrap().get(0);
        if pending == 0 && boxes.blob_names() == vec![kept_id.clone()] {
            break;
        }
        assert!(Instant::now() < deadline, "not swept: {pending} pending, blobs {:?}", boxes.blob_names());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(api.download_file(file_id(&kept)).await.unwrap().len(), 6 * MIB);
}
