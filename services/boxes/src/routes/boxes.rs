//! Boxes themselves (§7.2–§7.6): creation, the joined list, one box, its public view, deletion.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use domain::b64::{limits, B64u};
use domain::boxes::{parse_delete_confirmation, BoxCreate, PublicBox};
use domain::event::{create_content, EventType};
use domain::input::{path_id, Page};
use domain::notification::NewNotification;
use domain::realtime::{types, BoxDelete, Envelope};
use domain::{BoxId, Detail, ErrorBody, IdentityId, Origin};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::idempotency::{self, Claim};
use crate::load::{self, EventContext};
use crate::notify::Outbox;
use crate::rules::hash_conflict;
use crate::state::AppState;
use crate::store::boxes::BoxRow;
use crate::store::events::{EventRow, NewEventRow};
use crate::store::{self, GenericClient};

/// Default and maximum page size of `GET /boxes/joined` (§2.5).
const JOINED_DEFAULT: i64 = 10;
const JOINED_MAX: i64 = 50;

/// The query string as a map (last value wins); an unparsable one is 400, origin `query`.
pub(super) fn query(req: &HttpRequest) -> ApiResult<HashMap<String, String>> {
    web::Query::<HashMap<String, String>>::from_query(req.query_string()).map(web::Query::into_inner).map_err(|_| {
        ErrorBody::bad_request(Origin::Query, "malformed query string").with("query", Detail::Malformed).into()
    })
}

/// `offset`/`limit` from the query string.
pub(super) fn page(req: &HttpRequest, default_limit: i64, max_limit: i64) -> ApiResult<Page> {
    let q = query(req)?;
    Ok(Page::parse(q.get("offset").map(String::as_str), q.get("limit").map(String::as_str), default_limit, max_limit)?)
}

/// 204 with `X-Total-Count` (§2.5).
pub(super) fn total_count(n: i64) -> HttpResponse {
    HttpResponse::NoContent().insert_header(("X-Total-Count", n.to_string())).finish()
}

/// Inserts a box, its `create` event and its creator's membership; the caller's transaction.
pub(super) async fn insert_box<C: GenericClient>(
    c: &C,
    creator: IdentityId,
    title: &str,
    public_key: &str,
) -> ApiResult<(BoxRow, EventRow)> {
    let row = store::boxes::insert(c, BoxId::new_v4(), creator, title, public_key).await?;
    let content = create_content(public_key, title);
    let create = store::events::insert(
        c,
        &NewEventRow {
            box_id: row.id,
            kind: EventType::Create,
            sender_id: creator,
            content: Some(&content),
            referrer_id: None,
        },
    )
    .await?;
    Ok((row, create))
}

/// Queues `event.new` of a `create` event to its creator (§6.4).
pub(super) async fn announce_create<C: GenericClient>(c: &C, outbox: &mut Outbox, create: &EventRow) -> ApiResult<()> {
    let ctx = EventContext::load(c, std::slice::from_ref(create), false).await?;
    load::announce(outbox, |t| ctx.render(create, t), create.sender_id, &[create.sender_id]);
    Ok(())
}

/// `POST /boxes` (§7.2).
#[utoipa::path(
    post,
    path = "/boxes",
    tag = "boxes",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry answer as the first attempt did (README).")),
    request_body(content = domain::openapi::BoxCreateBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The box, as its creator sees it.", body = domain::boxes::BoxView),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`title`, `public_key`, `key_share`, `key_share.<field>`, `Idempotency-Key`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
        (status = 409, description = "`key_share.other_share_hash` is already used.", body = domain::ErrorBody),
        (status = 422, description = "The `Idempotency-Key` was used with another request: `details.Idempotency-Key = invalid`.", body = domain::ErrorBody),
    )
)]
pub async fn create(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let body = web_kit::body::json_body(&req, payload).await?;
    let new = BoxCreate::parse(&body)?;
    let claim = Claim::from_request(&req, &body)?;

    let mut client = web_kit::metrics::pool_get(&state.db).await?;
    let tx = client.transaction().await?;
    if let Some(claim) = &claim {
        if let Some(done) = idempotency::begin(&tx, caller.id(), claim).await? {
            return Ok(idempotency::replay(done.status, done.body.unwrap_or_default()));
        }
    }
    if let Some(ks) = &new.key_share {
        if store::keyshares::hash_exists(&tx, ks.other_share_hash.as_str()).await? {
            return Err(hash_conflict("key_share.other_share_hash").into());
        }
    }
    let (row, create) = insert_box(&tx, caller.id(), new.title.as_str(), new.public_key.as_str()).await?;
    if let Some(ks) = &new.key_share {
        if store::keyshares::insert(&tx, row.id, caller.id(), ks).await?.is_none() {
            return Err(hash_conflict("key_share.other_share_hash").into());
        }
    }
    // With a key the answer is built and stored before the commit, in the same transaction.
    let stored_view = match &claim {
        Some(claim) => {
            let view = load::box_for(&tx, &state.redis, caller.id(), &row).await?;
            idempotency::finish(&tx, caller.id(), claim, 201, &view, None, None).await?;
            Some(view)
        }
        None => None,
    };
    web_kit::limits::committing(tx.commit()).await?;
    tracing::info!(box_id = %row.id, "box created");

    let mut outbox = Outbox::new();
    announce_create(&client, &mut outbox, &create).await?;
    let view = match stored_view {
        Some(view) => view,
        None => load::box_for(&client, &state.redis, caller.id(), &row).await?,
    };
    outbox.send(&state.redis, state.history).await;
    Ok(HttpResponse::Created().json(view))
}

/// `changed_since` (issue 17): an RFC 3339 time; 400 `{"changed_since": "malformed"}` otherwise.
fn changed_since(req: &HttpRequest) -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
    match query(req)?.get("changed_since") {
        None => Ok(None),
        Some(raw) => {
            chrono::DateTime::parse_from_rfc3339(raw).map(|t| Some(t.with_timezone(&chrono::Utc))).map_err(|_| {
                ErrorBody::bad_request(Origin::Query, "invalid changed_since")
                    .with("changed_since", Detail::Malformed)
                    .into()
            })
        }
    }
}

/// `GET /boxes/joined` (§7.3); with `?changed_since=`, only the boxes changed after that time.
#[utoipa::path(
    get,
    path = "/boxes/joined",
    tag = "boxes",
    params(("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)."), ("limit" = Option<i64>, Query, minimum = 1, maximum = 50, description = "Page size (default 10, at most 50)."), ("changed_since" = Option<String>, Query, format = DateTime, description = "Only the boxes changed after this RFC 3339 time.")),
    responses(
        (status = 200, description = "The caller's boxes, most recently active first.", body = [domain::boxes::BoxView]),
        (status = 400, description = "`details` keys: `offset`, `limit`, `changed_since`, `query`.", body = domain::ErrorBody),
    )
)]
pub async fn joined(caller: Caller, req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let page = page(&req, JOINED_DEFAULT, JOINED_MAX)?;
    let since = changed_since(&req)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    let rows = store::boxes::joined_by(&client, caller.id(), page, since).await?;
    let views = load::boxes_for(&client, &state.redis, caller.id(), &rows).await?;
    Ok(HttpResponse::Ok().json(views))
}

/// `HEAD /boxes/joined` (§7.3), with the same `changed_since` filter.
#[utoipa::path(
    head,
    path = "/boxes/joined",
    tag = "boxes",
    params(("changed_since" = Option<String>, Query, format = DateTime, description = "Only the boxes changed after this RFC 3339 time.")),
    responses(
        (status = 204, description = "The count, in `X-Total-Count`.", headers(("X-Total-Count" = i64, description = "How many there are."))),
        (status = 400, description = "`details` keys: `changed_since`, `query`.", body = domain::ErrorBody),
    )
)]
pub async fn joined_count(caller: Caller, req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let since = changed_since(&req)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    Ok(total_count(store::boxes::count_joined(&client, caller.id(), since).await?))
}

/// `GET /boxes/{id}` (§7.4): members see the box; others learn only whether they could join.
#[utoipa::path(
    get,
    path = "/boxes/{id}",
    tag = "boxes",
    params(("id" = uuid::Uuid, Path, description = "The box.")),
    responses(
        (status = 200, description = "The box.", body = domain::boxes::BoxView),
        (status = 400, description = "A malformed id: `details.id = malformed`.", body = domain::ErrorBody),
    )
)]
pub async fn get(caller: Caller, state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let box_id: BoxId = path_id(&path, "id")?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    let Some(row) = store::boxes::get(&client, box_id).await? else {
        return Err(ErrorBody::box_rule("no_access").into());
    };
    if !store::boxes::is_member(&client, box_id, caller.id()).await? {
        let reason =
            if store::access::can_join(&client, &row, caller.id()).await? { "not_member" } else { "no_access" };
        return Err(ErrorBody::box_rule(reason).into());
    }
    let view = load::box_for(&client, &state.redis, caller.id(), &row).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /boxes/{id}/public?other_share_hash=` (§7.5), without authentication.
#[utoipa::path(
    get,
    path = "/boxes/{id}/public",
    tag = "boxes",
    params(("id" = uuid::Uuid, Path, description = "The box."), ("other_share_hash" = String, Query, min_length = 1, max_length = 512, pattern = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$", description = "The hash of the invitation link's key share.")),
    responses(
        (status = 200, description = "The title and creator of the box.", body = domain::boxes::PublicBox),
        (status = 400, description = "`details` keys: `id`, `other_share_hash`, `query`.", body = domain::ErrorBody),
        (status = 403, description = "The key share belongs to another box: `details.other_share_hash = invalid`.", body = domain::ErrorBody),
        (status = 404, description = "No such key share or box: `details.other_share_hash = not_found`.", body = domain::ErrorBody),
        (status = 503, description = "PostgreSQL is not available.", body = domain::ErrorBody),
    )
)]
pub async fn public(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let box_id: BoxId = path_id(&path, "id")?;
    let q = query(&req)?;
    let hash = match q.get("other_share_hash").map(String::as_str) {
        None | Some("") => {
            return Err(ErrorBody::bad_request(Origin::Query, "other_share_hash is required")
                .with("other_share_hash", Detail::Required)
                .into())
        }
        Some(h) => B64u::parse(h, limits::OTHER_SHARE_HASH).map_err(|d| {
            ErrorBody::bad_request(Origin::Query, "invalid other_share_hash").with("other_share_hash", d)
        })?,
    };
    let client = web_kit::metrics::pool_get(&state.db).await?;
    let Some(share) = store::keyshares::get(&client, hash.as_str()).await? else {
        return Err(ErrorBody::not_found(Origin::Query, "other_share_hash").into());
    };
    if share.box_id != box_id {
        return Err(ErrorBody::forbidden(Origin::Query, "the key share belongs to another box")
            .with("other_share_hash", Detail::Invalid)
            .into());
    }
    let Some(row) = store::boxes::get(&client, box_id).await? else {
        return Err(ErrorBody::not_found(Origin::Query, "other_share_hash").into());
    };
    let creator = store::identities::get(&client, row.creator_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("creator of box {} is missing", row.id))?;
    Ok(HttpResponse::Ok().json(PublicBox { title: row.title, creator: creator.view(false) }))
}

/// `DELETE /boxes/{id}` (§7.6): admin only, one transaction, then `box.delete` to the members.
#[utoipa::path(
    delete,
    path = "/boxes/{id}",
    tag = "boxes",
    params(("id" = uuid::Uuid, Path, description = "The box.")),
    request_body(content = domain::openapi::DeleteConfirmation, content_type = "application/json"),
    responses(
        (status = 204, description = "Deleted; the members are told."),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`id`, `user_confirmation`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
    )
)]
pub async fn delete(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let box_id: BoxId = path_id(&path, "id")?;
    let body = web_kit::body::json_body(&req, payload).await?;
    parse_delete_confirmation(&body)?;

    let mut client = web_kit::metrics::pool_get(&state.db).await?;
    let tx = client.transaction().await?;
    let row = match store::boxes::lock(&tx, box_id).await? {
        Some(row) if row.is_admin(caller.id()) => row,
        _ => return Err(ErrorBody::box_rule("not_admin").into()),
    };
    let members = store::boxes::member_ids(&tx, box_id).await?;
    // Told of the deletion: the other members and the identities invited but not joined yet.
    let told: Vec<(IdentityId, NewNotification)> = members
        .iter()
        .copied()
        .filter(|m| *m != caller.id())
        .chain(store::access::pending_invitees(&tx, box_id).await?)
        .map(|to| (to, NewNotification::box_deleted(box_id, &row.title)))
        .collect();
    let notified = store::notifications::insert_all(&tx, state.notifications, &told).await?;
    let released = store::files::release_box(&tx, box_id).await?;
    store::boxes::delete(&tx, box_id).await?;
    web_kit::limits::committing(tx.commit()).await?;
    state.files.blobs.delete_all(&released).await;
    tracing::info!(box_id = %box_id, members = members.len(), "box deleted");

    let mut outbox = Outbox::new();
    let notice =
        Envelope::new(types::BOX_DELETE, BoxDelete { id: box_id, sender_id: caller.id(), public_key: row.public_key });
    for m in &members {
        outbox.reset(*m, box_id);
    }
    outbox.publish_all(members.iter().copied(), &notice);
    outbox.notify(&notified);
    outbox.send(&state.redis, state.history).await;
    Ok(HttpResponse::NoContent().finish())
}
