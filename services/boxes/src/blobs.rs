//! The blobs of encrypted files (issue 18), behind `object_store`: a local directory by default,
//! or an S3-compatible bucket. A blob is named `files/<file id>`; what a blob means (its box, its
//! state) is `store::files`'s, and this module never decides whether one may be removed.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use domain::FileId;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore, WriteMultipart};
use secrecy::ExposeSecret;

use crate::config::FileSettings;

/// Size of the parts an upload is written in (S3's smallest part but the last is 5 MiB).
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// Parts of one upload being written at the same time: bounds an upload's memory to about
/// `(PARTS_IN_FLIGHT + 1) * PART_SIZE`.
pub const PARTS_IN_FLIGHT: usize = 2;

const PREFIX: &str = "files";

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// The directory of the local store: unfinished uploads are staged there as `<name>#<n>`,
    /// which the store's own listing does not show, so the sweeper looks for them itself.
    local_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blobs({})", self.store)
    }
}

impl Blobs {
    /// The S3-compatible bucket of `FILES_S3_URL` when set, else the directory `FILES_DIR`.
    pub fn open(s: &FileSettings) -> anyhow::Result<Self> {
        // An empty variable (a compose file's `${FILES_S3_URL:-}`) means unset.
        let set = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        if let Some(url) = set(&s.files_s3_url) {
            let mut b = AmazonS3Builder::new().with_url(url).with_region(&s.aws_region);
            if let Some(endpoint) = set(&s.aws_endpoint_url) {
                b = b.with_allow_http(endpoint.starts_with("http://")).with_endpoint(endpoint);
            }
            if let Some(key) = &s.aws_access_key_id {
                b = b.with_access_key_id(key.expose_secret());
            }
            if let Some(secret) = &s.aws_secret_access_key {
                b = b.with_secret_access_key(secret.expose_secret());
            }
            let store = b.build().context("configuring the S3 store of FILES_S3_URL")?;
            return Ok(Blobs { store: Arc::new(store), local_dir: None });
        }
        let dir = PathBuf::from(&s.files_dir);
        std::fs::create_dir_all(dir.join(PREFIX)).with_context(|| format!("creating FILES_DIR {}", s.files_dir))?;
        let dir = dir.canonicalize().with_context(|| format!("resolving FILES_DIR {}", s.files_dir))?;
        let store = LocalFileSystem::new_with_prefix(&dir).context("opening FILES_DIR")?;
        Ok(Blobs { store: Arc::new(store), local_dir: Some(dir) })
    }

    fn path(id: FileId) -> Path {
        Path::from_iter([PREFIX, &id.to_string()])
    }

    /// Starts writing the blob of `id` in parts of [`PART_SIZE`].
    pub async fn writer(&self, id: FileId) -> object_store::Result<WriteMultipart> {
        let upload = self.store.put_multipart(&Self::path(id)).await?;
        Ok(WriteMultipart::new_with_chunk_size(upload, PART_SIZE))
    }

    /// Makes a finished blob durable before its event commits: the local store writes without
    /// `fsync`, so the file and its directory entry are synced here; S3 stores are durable once
    /// an upload completes.
    pub async fn sync(&self, id: FileId) -> std::io::Result<()> {
        let Some(dir) = &self.local_dir else {
            return Ok(());
        };
        let (dir, name) = (dir.join(PREFIX), id.to_string());
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(dir.join(name))?.sync_all()?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Removes a blob; one that is not there is already removed.
    pub async fn delete(&self, id: FileId) -> object_store::Result<()> {
        match self.store.delete(&Self::path(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes blobs whose rows are gone, logging failures: a blob left behind has no row, so
    /// the sweeper removes it later.
    pub async fn delete_all(&self, ids: &[FileId]) {
        for id in ids {
            if let Err(e) = self.delete(*id).await {
                tracing::warn!(file_id = %id, error = %e, "removing a blob failed; the sweeper will retry");
            }
        }
    }

    /// Reads a blob, or the bytes `range` of it, as a stream.
    pub async fn read(
        &self,
        id: FileId,
        range: Option<Range<u64>>,
    ) -> object_store::Result<BoxStream<'static, std::io::Result<Bytes>>> {
        let options = GetOptions { range: range.map(GetRange::Bounded), ..Default::default() };
        let got = self.store.get_opts(&Self::path(id), options).await?;
        let range = got.range.clone();
        Ok(match got.payload {
            // The local store's own stream reads 8 KiB per blocking call: too slow for files.
            GetResultPayload::File(file, _) => file_stream(file, range),
            GetResultPayload::Stream(stream) => stream.map_err(std::io::Error::other).boxed(),
        })
    }

    /// Whether the blob of `id` exists.
    pub async fn exists(&self, id: FileId) -> object_store::Result<bool> {
        match self.store.head(&Self::path(id)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Blobs last written before `before`, at most `limit` of them; names that are not file ids
    /// are not ours and are left alone.
    pub async fn older_than(&self, before: SystemTime, limit: usize) -> object_store::Result<Vec<FileId>> {
        let before: chrono::DateTime<chrono::Utc> = before.into();
        let prefix = Path::from(PREFIX);
        let mut listing = self.store.list(Some(&prefix));
        let mut found = Vec::new();
        while let Some(meta) = listing.try_next().await? {
            if meta.last_modified >= before {
                continue;
            }
            if let Some(id) = meta.location.filename().and_then(|n| FileId::parse(n).ok()) {
                found.push(id);
                if found.len() >= limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Local store only: removes staged parts of uploads that never finished (a process killed
    /// mid-upload) and were last written before `before`. Returns how many were removed.
    pub async fn sweep_staged(&self, before: SystemTime) -> std::io::Result<usize> {
        let Some(dir) = &self.local_dir else {
            return Ok(0);
        };
        let mut entries = tokio::fs::read_dir(dir.join(PREFIX)).await?;
        let mut removed = 0;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name();
            let Some((stem, _)) = name.to_str().and_then(|n| n.split_once('#')) else {
                continue;
            };
            if FileId::parse(stem).is_err() {
                continue;
            }
            let modified = entry.metadata().await?.modified()?;
            if modified < before {
                match tokio::fs::remove_file(entry.path()).await {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }
}

/// Bytes read from a local blob per blocking call: large, so the blocking-pool hand-offs stay few.
const READ_CHUNK: usize = 256 * 1024;
/// Bytes handed to the HTTP layer at a time. actix-http copies each piece into its write buffer
/// and keeps that buffer only while it stays under 128 KiB: larger pieces make it allocate (and
/// fault in) a fresh buffer for every piece, and push the copies out of the CPU's cache.
const SEND_CHUNK: usize = 64 * 1024;

/// The bytes `range` of a local file: read [`READ_CHUNK`] at a time on the blocking pool into one
/// reused buffer, handed out [`SEND_CHUNK`] at a time.
fn file_stream(file: std::fs::File, range: Range<u64>) -> BoxStream<'static, std::io::Result<Bytes>> {
    struct Reader {
        file: Option<std::fs::File>,
        next: u64,
        end: u64,
        buf: BytesMut,
        ready: Bytes,
    }
    let reader =
        Reader { file: Some(file), next: range.start, end: range.end, buf: BytesMut::new(), ready: Bytes::new() };
    futures_util::stream::try_unfold(reader, |mut r| async move {
        if r.ready.is_empty() {
            if r.next >= r.end {
                return Ok(None);
            }
            let want = usize::try_from((r.end - r.next).min(READ_CHUNK as u64)).map_err(std::io::Error::other)?;
            // Every piece of the previous read has been sent and dropped once `ready` is: the
            // buffer then takes its allocation back instead of making a new one.
            r.ready = Bytes::new();
            let (mut buf, file, start) = (std::mem::take(&mut r.buf), r.file.take(), r.next);
            let (file, buf) = tokio::task::spawn_blocking(move || {
                use std::io::{Read, Seek, SeekFrom};
                let mut file = file.ok_or_else(|| std::io::Error::other("blob reader reused after an error"))?;
                buf.clear();
                buf.resize(want, 0);
                file.seek(SeekFrom::Start(start))?;
                file.read_exact(&mut buf)?;
                Ok::<_, std::io::Error>((file, buf))
            })
            .await
            .map_err(std::io::Error::other)??;
            r.buf = buf;
            r.ready = r.buf.split().freeze();
            r.file = Some(file);
            r.next += want as u64;
        }
        let piece = r.ready.split_to(r.ready.len().min(SEND_CHUNK));
        Ok(Some((piece, r)))
    })
    .boxed()
}

/// How often the sweeper runs for a grace period: twice per period, between 1 s and 5 min.
pub fn sweep_interval(grace: Duration) -> Duration {
    (grace / 2).clamp(Duration::from_secs(1), Duration::from_secs(300))
}
