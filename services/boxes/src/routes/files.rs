//! Encrypted files (issue 18, README "Encrypted files"): the upload that posts a `msg.file`, the
//! download with ranges, saved files, and the usage figures.
//!
//! An upload is checked (authentication, membership, quota) before its body is read, then
//! streamed part by part into the blob store under a `pending` row; one transaction inserts the
//! `msg.file` event and marks the row live. Whatever fails before that commit, the blob and row
//! go at once ([`PendingBlob`]), and the sweeper catches what a dead process left.

use std::time::Duration;

use actix_multipart::{Field, Multipart, MultipartError};
use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use domain::b64::B64u;
use domain::event::EventType;
use domain::files::{NewSavedFile, StorageQuotaView, UsedSpaceView, ENCRYPTED_MAX, MAX_PARTS, PUBLIC_KEY_MAX};
use domain::input::path_id;
use domain::{BoxId, Detail, ErrorBody, ErrorCode, FileId, IdentityId, Origin, SavedFileId};
use futures_util::{StreamExt, TryStreamExt};
use object_store::WriteMultipart;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::events;
use crate::auth::Caller;
use crate::blobs::{Blobs, PARTS_IN_FLIGHT};
use crate::error::{ApiError, ApiResult};
use crate::rules;
use crate::state::AppState;
use crate::store;

/// Room for the text parts and the multipart framing in a declared `Content-Length`.
const FRAMING_ALLOWANCE: u64 = 1024 * 1024;

/// Saved files listed at most.
const SAVED_LIST_MAX: i64 = 1000;

fn quota_exceeded() -> ErrorBody {
    ErrorBody::forbidden(Origin::Body, "the storage quota would be exceeded").with("encrypted_file", "quota_exceeded")
}

fn storage_unavailable(e: object_store::Error) -> ApiError {
    ApiError::Unavailable(anyhow::Error::new(e).context("blob store"))
}

fn file_not_found() -> ErrorBody {
    ErrorBody::not_found(Origin::Path, "id")
}

fn part_error(name: &str, detail: impl Into<String>, desc: &str) -> ErrorBody {
    ErrorBody::bad_request(Origin::Body, desc).with(name, detail)
}

/// A multipart framing error: a body that is not multipart is `{"Content-Type": "invalid"}`, a
/// broken one `{"body": "malformed"}`.
fn multipart_error(e: MultipartError) -> ApiError {
    match e {
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible
        | MultipartError::BoundaryMissing => {
            ErrorBody::bad_request(Origin::Headers, "Content-Type must be multipart/form-data")
                .with("Content-Type", Detail::Invalid)
                .into()
        }
        _ => ErrorBody::bad_request(Origin::Body, "malformed multipart body").with("body", Detail::Malformed).into(),
    }
}

/// Waits for the next piece of the body, at most `idle`: an upload may take long, but it must
/// keep moving (408 otherwise).
async fn idle<T>(idle: Duration, next: impl std::future::Future<Output = T>) -> ApiResult<T> {
    tokio::time::timeout(idle, next).await.map_err(|_| ErrorBody::body_timeout().into())
}

/// The blob and row of an upload that has not committed: removed when dropped armed, which
/// covers errors and a client that goes away (the handler is dropped then).
struct PendingBlob {
    id: FileId,
    blobs: Blobs,
    db: deadpool_postgres::Pool,
    writer: Option<WriteMultipart>,
    armed: bool,
}

impl PendingBlob {
    /// Removes the blob and row now, before the answer goes out.
    async fn discard(mut self) {
        self.armed = false;
        discard(self.id, self.blobs.clone(), self.db.clone(), self.writer.take()).await;
    }
}

impl Drop for PendingBlob {
    fn drop(&mut self) {
        if self.armed {
            tokio::spawn(discard(self.id, self.blobs.clone(), self.db.clone(), self.writer.take()));
        }
    }
}

async fn discard(id: FileId, blobs: Blobs, db: deadpool_postgres::Pool, writer: Option<WriteMultipart>) {
    if let Some(w) = writer {
        if let Err(e) = w.abort().await {
            tracing::warn!(file_id = %id, error = %e, "aborting an upload failed");
        }
    }
    // The row first: a commit that went through after all left it live, and its blob stays.
    let live = match db.get().await {
        Ok(c) => store::files::delete_pending(&c, id).await.map_err(anyhow::Error::from),
        Err(e) => Err(anyhow::Error::from(e)),
    };
    match live {
        Ok(false) => blobs.delete_all(&[id]).await,
        Ok(true) => {}
        Err(e) => {
            tracing::warn!(file_id = %id, error = format!("{e:#}"), "removing a failed upload failed; the sweeper will")
        }
    }
}

/// What the body of an upload carried; the blob is written.
struct Received {
    encrypted: B64u,
    public_key: Option<B64u>,
    size: u64,
    sha256: String,
    file: FileId,
}

/// Where an upload stands while its body is read.
struct Upload<'a> {
    state: &'a AppState,
    me: IdentityId,
    box_id: BoxId,
    /// Bytes counted against the uploader's quota before this upload.
    used: u64,
    idle: Duration,
}

/// `POST /boxes/{id}/encrypted-files` (multipart: `msg_encrypted_content`, optionally
/// `msg_public_key`, then `encrypted_file`): 201 with the `msg.file` event.
#[utoipa::path(
    post,
    path = "/boxes/{id}/encrypted-files",
    tag = "files",
    params(("id" = uuid::Uuid, Path, description = "The box.")),
    request_body(content = domain::openapi::EncryptedFileUpload, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The `msg.file` event; its content carries `encrypted`, `public_key` (when sent), `encrypted_file_id` and `size`.", body = domain::event::Event),
        (status = 400, description = "`details` keys: `id`, `Content-Type` (not multipart), `body` (malformed, or too many parts), `msg_encrypted_content`, `msg_public_key`, `encrypted_file` (missing, or not last), or an unknown part's name.", body = domain::ErrorBody),
        (status = 408, description = "The body stopped arriving: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The file is larger than `FILES_MAX_BYTES`: `details.encrypted_file = invalid`.", body = domain::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(box_id = %path))]
pub async fn upload(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let box_id: BoxId = path_id(&path, "id")?;
    let me = caller.id();
    // Membership, the box and the quota before a byte of the body is read (README).
    let used = {
        let client = web_kit::metrics::pool_get(&state.db).await?;
        rules::require_member(&client, box_id, me).await?;
        u64::try_from(store::files::used_by(&client, me).await?).unwrap_or(0)
    };
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared {
        if n > state.files.max_bytes.saturating_add(FRAMING_ALLOWANCE) {
            return Err(ErrorBody::too_large().with("encrypted_file", Detail::Invalid).into());
        }
        if used.saturating_add(n.saturating_sub(FRAMING_ALLOWANCE)) > state.files.quota_bytes {
            return Err(quota_exceeded().into());
        }
    }
    let limits = req.app_data::<web_kit::limits::Limits>().cloned().unwrap_or_default();
    let Some(_permit) = limits.body_read_permit() else {
        return Err(ErrorBody::unavailable("too many request bodies are being received").into());
    };
    let upload = Upload { state: &state, me, box_id, used, idle: limits.body_read_timeout };
    let mut pending = None;
    let received = web_kit::limits::paused(receive(&upload, &req, payload, &mut pending)).await;
    let outcome = match received {
        Ok(received) => publish(&state, me, box_id, received).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(event) => {
            if let Some(mut blob) = pending {
                blob.armed = false;
            }
            Ok(HttpResponse::Created().json(event))
        }
        Err(e) => {
            if let Some(blob) = pending {
                blob.discard().await;
            }
            Err(e)
        }
    }
}

/// The transaction of an upload whose blob is written: the `msg.file` event, the row live.
async fn publish(
    state: &AppState,
    me: IdentityId,
    box_id: BoxId,
    received: Received,
) -> ApiResult<domain::event::Event> {
    let Received { encrypted, public_key, size, sha256, file } = received;
    let mut client = web_kit::metrics::pool_get(&state.db).await?;
    let tx = client.transaction().await?;
    let Some(bx) = store::boxes::lock(&tx, box_id).await? else {
        return Err(rules::not_member().into());
    };
    store::files::lock_uploader(&tx, me).await?;
    let used_now = u64::try_from(store::files::used_by(&tx, me).await?).unwrap_or(0);
    if used_now.saturating_add(size) > state.files.quota_bytes {
        return Err(quota_exceeded().into());
    }
    let mut content = json!({"encrypted": encrypted, "encrypted_file_id": file, "size": size});
    if let (Some(key), Value::Object(map)) = (public_key, &mut content) {
        map.insert("public_key".into(), json!(key));
    }
    let effects = rules::message(&tx, &bx, me, EventType::MsgFile, Some(&content)).await?;
    let size_db = i64::try_from(size).map_err(anyhow::Error::from)?;
    if !store::files::mark_live(&tx, file, effects.posted.id, size_db, &sha256).await? {
        return Err(anyhow::anyhow!("the pending row of an upload was removed before its event").into());
    }
    web_kit::limits::committing(tx.commit()).await?;
    tracing::info!(box_id = %box_id, file_id = %file, size, "encrypted file uploaded");
    events::announce_message(state, &client, &bx, me, effects).await
}

/// Reads the parts in order, streaming `encrypted_file` into the blob store.
/// The blob, once there is one, is in `pending`, for the caller to keep or discard.
async fn receive(
    up: &Upload<'_>,
    req: &HttpRequest,
    payload: web::Payload,
    pending: &mut Option<PendingBlob>,
) -> ApiResult<Received> {
    let mut parts = Multipart::new(req.headers(), payload);
    let mut encrypted: Option<B64u> = None;
    let mut public_key: Option<B64u> = None;
    let mut stored: Option<(u64, String)> = None;
    let mut count = 0usize;
    while let Some(field) = idle(up.idle, parts.next()).await? {
        let mut field = field.map_err(multipart_error)?;
        count += 1;
        if count > MAX_PARTS {
            return Err(part_error("body", Detail::Invalid, "too many parts").into());
        }
        if stored.is_some() {
            return Err(part_error("encrypted_file", Detail::Invalid, "encrypted_file must be the last part").into());
        }
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "msg_encrypted_content" | "msg_public_key" => {
                let (slot, max) = if name == "msg_encrypted_content" {
                    (&mut encrypted, ENCRYPTED_MAX)
                } else {
                    (&mut public_key, PUBLIC_KEY_MAX)
                };
                if slot.is_some() {
                    return Err(part_error(&name, Detail::Conflict, "a part was sent twice").into());
                }
                let text = read_text(&mut field, &name, max, up.idle).await?;
                *slot = Some(B64u::parse(&text, max).map_err(|d| part_error(&name, d, "invalid part"))?);
            }
            "encrypted_file" => {
                if encrypted.is_none() {
                    return Err(part_error(
                        "msg_encrypted_content",
                        Detail::Required,
                        "msg_encrypted_content must come first",
                    )
                    .into());
                }
                stored = Some(store_file(up, &mut field, pending).await?);
            }
            _ => {
                let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
                return Err(part_error(&shown, "unknown", "unknown part").into());
            }
        }
    }
    let Some(encrypted) = encrypted else {
        return Err(part_error("msg_encrypted_content", Detail::Required, "msg_encrypted_content is required").into());
    };
    let (Some((size, sha256)), Some(blob)) = (stored, pending.as_ref()) else {
        return Err(part_error("encrypted_file", Detail::Required, "encrypted_file is required").into());
    };
    Ok(Received { encrypted, public_key, size, sha256, file: blob.id })
}

/// A text part, at most `max` bytes.
async fn read_text(field: &mut Field, name: &str, max: usize, idle_for: Duration) -> ApiResult<String> {
    let mut text = Vec::new();
    while let Some(chunk) = idle(idle_for, field.next()).await? {
        let chunk = chunk.map_err(multipart_error)?;
        if text.len() + chunk.len() > max {
            return Err(part_error(name, Detail::Invalid, "part too long").into());
        }
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text).map_err(|_| part_error(name, Detail::Malformed, "part is not text").into())
}

/// Streams `encrypted_file` into a new blob under a pending row: size, quota and digest are
/// checked on every chunk; the blob is removed on any failure.
async fn store_file(up: &Upload<'_>, field: &mut Field, pending: &mut Option<PendingBlob>) -> ApiResult<(u64, String)> {
    let state = up.state;
    let id = FileId::new_v4();
    {
        let client = web_kit::metrics::pool_get(&state.db).await?;
        store::files::insert_pending(&client, id, up.box_id, up.me).await?;
    }
    let blob = pending.insert(PendingBlob {
        id,
        blobs: state.files.blobs.clone(),
        db: state.db.clone(),
        writer: None,
        armed: true,
    });
    let writer = blob.writer.insert(state.files.blobs.writer(id).await.map_err(storage_unavailable)?);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = idle(up.idle, field.next()).await? {
        let chunk = chunk.map_err(multipart_error)?;
        size += chunk.len() as u64;
        if size > state.files.max_bytes {
            return Err(ErrorBody::too_large().with("encrypted_file", Detail::Invalid).into());
        }
        if up.used.saturating_add(size) > state.files.quota_bytes {
            return Err(quota_exceeded().into());
        }
        hasher.update(&chunk);
        writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(storage_unavailable)?;
        writer.put(chunk);
    }
    if let Some(writer) = blob.writer.take() {
        writer.finish().await.map_err(storage_unavailable)?;
    }
    state
        .files
        .blobs
        .sync(id)
        .await
        .map_err(|e| ApiError::Unavailable(anyhow::Error::new(e).context("syncing a blob")))?;
    let sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((size, sha256))
}

/// `GET /encrypted-files/{id}`: the blob, to members of its box and to identities that saved it;
/// `ETag`, `If-None-Match`, one `Range` and `If-Range`.
#[utoipa::path(
    get,
    path = "/encrypted-files/{id}",
    tag = "files",
    params(
        ("id" = uuid::Uuid, Path, description = "The file (`encrypted_file_id`)."),
        ("Range" = Option<String>, Header, description = "One byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`); several ranges answer the whole file."),
        ("If-Range" = Option<String>, Header, description = "The range applies only while the file's `ETag` is this one."),
        ("If-None-Match" = Option<String>, Header, description = "304 when the `ETag` matches."),
    ),
    responses(
        (status = 200, description = "The ciphertext, with `ETag`, `Content-Length` and `Accept-Ranges: bytes`.", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The requested range, with `Content-Range`.", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 304, description = "Not modified (`If-None-Match`)."),
        (status = 400, description = "A malformed id: `details.id = malformed`.", body = domain::ErrorBody),
        (status = 404, description = "Unknown, not yet committed or deleted: `details.id = not_found`.", body = domain::ErrorBody),
        (status = 416, description = "The range is outside the file: `details.Range = invalid`, `Content-Range: bytes */<size>`.", body = domain::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(file_id = %path))]
pub async fn download(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id: FileId = path_id(&path, "id")?;
    let file = {
        let client = web_kit::metrics::pool_get(&state.db).await?;
        store::files::readable(&client, id, caller.id(), false).await?.ok_or_else(file_not_found)?
    };
    if !file.allowed {
        return Err(rules::not_member().into());
    }
    let size = u64::try_from(file.size).unwrap_or(0);
    let etag = format!("\"{}\"", file.sha256);
    if let Some(inm) = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        if etag_matches(inm, &etag) {
            return Ok(HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish());
        }
    }
    let range = match requested_range(&req, &etag, size) {
        Ok(range) => range,
        Err(()) => {
            let body = ErrorBody::new(ErrorCode::RangeNotSatisfiable, Origin::Headers, "the range is outside the file")
                .with("Range", Detail::Invalid);
            return Ok(HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .insert_header((header::ACCEPT_RANGES, "bytes"))
                .json(body));
        }
    };
    let stream = match state.files.blobs.read(id, range.map(|(start, end)| start..end + 1)).await {
        Ok(stream) => stream,
        Err(object_store::Error::NotFound { .. }) => return Err(file_not_found().into()),
        Err(e) => return Err(storage_unavailable(e)),
    };
    let stream = stream.map_err(|e| {
        tracing::warn!(error = %e, "reading a blob failed mid-download");
        e
    });
    let mut res = match &range {
        Some((start, end)) => {
            let mut res = HttpResponse::PartialContent();
            res.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
            res
        }
        None => HttpResponse::Ok(),
    };
    let len = range.map_or(size, |(start, end)| end - start + 1);
    Ok(res
        .content_type("application/octet-stream")
        .insert_header((header::ETAG, etag))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache")))
        .body(SizedStream::new(len, stream)))
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, as RFC 9110 asks for it).
fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// The one range to answer, inclusive: `None` for the whole file (no `Range`, an `If-Range` that
/// does not match, several ranges, or a header that does not parse, which RFC 9110 says to
/// ignore); `Err` when the range is outside the file (416).
fn requested_range(req: &HttpRequest, etag: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(raw) = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    if let Some(if_range) = req.headers().get(header::IF_RANGE) {
        // Only a strong validator equal to ours keeps the range; a date never does.
        if if_range.to_str().ok().map(str::trim) != Some(etag) {
            return Ok(None);
        }
    }
    let parsed = match http_range_header::parse_range_header(raw) {
        Ok(parsed) => parsed,
        Err(_) => return Ok(None),
    };
    match parsed.validate(size) {
        Ok(ranges) if ranges.len() == 1 => Ok(ranges.into_iter().next().map(|r| (*r.start(), *r.end()))),
        Ok(_) => Ok(None),
        Err(_) => Err(()),
    }
}

/// `POST /identities/{id}/saved-files`: 201 with the saved file; the caller must be able to read
/// the file now; 409 when it saved it already.
#[utoipa::path(
    post,
    path = "/identities/{id}/saved-files",
    tag = "files",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity.")),
    request_body(content = domain::openapi::SavedFileBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The saved file.", body = domain::files::SavedFile),
        (status = 400, description = "`details` keys: `id`, `body`, `Content-Type`, `encrypted_file_id`, `encrypted_metadata`, `key_fingerprint`.", body = domain::ErrorBody),
        (status = 404, description = "No such file: `details.encrypted_file_id = not_found`.", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 409, description = "Saved already: `details.encrypted_file_id = conflict`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(identity = %id))]
pub async fn save(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let body = web_kit::body::json_body(&req, payload).await?;
    let id: IdentityId = path_id(&id, "id")?;
    let new = NewSavedFile::parse(&body)?;
    caller.require_self(id)?;
    let mut client = web_kit::metrics::pool_get(&state.db).await?;
    let tx = client.transaction().await?;
    let file = store::files::readable(&tx, new.encrypted_file_id, id, true)
        .await?
        .ok_or_else(|| ErrorBody::not_found(Origin::Body, "encrypted_file_id"))?;
    if !file.allowed {
        return Err(rules::not_member().into());
    }
    let Some(saved) = store::files::insert_saved(
        &tx,
        id,
        new.encrypted_file_id,
        new.encrypted_metadata.as_str(),
        &new.key_fingerprint,
    )
    .await?
    else {
        return Err(ErrorBody::conflict(Origin::Body, "encrypted_file_id", "this file is saved already").into());
    };
    web_kit::limits::committing(tx.commit()).await?;
    Ok(HttpResponse::Created().json(saved))
}

/// `GET /identities/{id}/saved-files`: newest first.
#[utoipa::path(
    get,
    path = "/identities/{id}/saved-files",
    tag = "files",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity.")),
    responses(
        (status = 200, description = "The caller's saved files, newest first (at most 1,000).", body = [domain::files::SavedFile]),
        (status = 400, description = "A malformed id: `details.id = malformed`.", body = domain::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(identity = %id))]
pub async fn saved(caller: Caller, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = caller.own_path(&id)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    Ok(HttpResponse::Ok().json(store::files::saved_by(&client, id, SAVED_LIST_MAX).await?))
}

/// `DELETE /identities/{id}/saved-files/{saved_file_id}`: 204; the file goes with its last
/// reference once it has left its box.
#[utoipa::path(
    delete,
    path = "/identities/{id}/saved-files/{saved_file_id}",
    tag = "files",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity."), ("saved_file_id" = uuid::Uuid, Path, description = "The saved file.")),
    responses(
        (status = 204, description = "Deleted; the file goes with its last reference."),
        (status = 400, description = "`details` keys: `id`, `saved_file_id`.", body = domain::ErrorBody),
        (status = 404, description = "`details.saved_file_id = not_found`.", body = domain::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn unsave(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let id: IdentityId = path_id(&path.0, "id")?;
    let saved_id: SavedFileId = path_id(&path.1, "saved_file_id")?;
    caller.require_self(id)?;
    let mut client = web_kit::metrics::pool_get(&state.db).await?;
    let tx = client.transaction().await?;
    let Some(released) = store::files::delete_saved(&tx, id, saved_id).await? else {
        return Err(ErrorBody::not_found(Origin::Path, "saved_file_id").into());
    };
    web_kit::limits::committing(tx.commit()).await?;
    if let Some(file) = released {
        state.files.blobs.delete_all(&[file]).await;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /identities/{id}/storage-quota`.
#[utoipa::path(
    get,
    path = "/identities/{id}/storage-quota",
    tag = "files",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity.")),
    responses(
        (status = 200, description = "Bytes allowed and used.", body = domain::files::StorageQuotaView),
        (status = 400, description = "A malformed id: `details.id = malformed`.", body = domain::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(identity = %id))]
pub async fn quota(caller: Caller, state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = caller.own_path(&id)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    let used = u64::try_from(store::files::used_by(&client, id).await?).unwrap_or(0);
    Ok(HttpResponse::Ok().json(StorageQuotaView { identity_id: id, quota: state.files.quota_bytes, used }))
}

/// `GET /boxes/{id}/used-space`: members only.
#[utoipa::path(
    get,
    path = "/boxes/{id}/used-space",
    tag = "files",
    params(("id" = uuid::Uuid, Path, description = "The box.")),
    responses(
        (status = 200, description = "The bytes of the box's live files.", body = domain::files::UsedSpaceView),
        (status = 400, description = "A malformed id: `details.id = malformed`.", body = domain::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(box_id = %path))]
pub async fn used_space(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let box_id: BoxId = path_id(&path, "id")?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    rules::require_member(&client, box_id, caller.id()).await?;
    let used = u64::try_from(store::files::used_in_box(&client, box_id).await?).unwrap_or(0);
    Ok(HttpResponse::Ok().json(UsedSpaceView { box_id, used }))
}
