//! `POST /box-users/{id}/contact` (§7.11, seed): a two-person box and its invitation in one call.

use actix_web::{web, HttpRequest, HttpResponse};
use domain::boxes::ContactRequest;
use domain::crypto_action::CryptoActionType;
use domain::event::{access_add_content, EventType, Restriction};
use domain::input::path_id;
use domain::notification::NewNotification;
use domain::{Detail, ErrorBody, IdentityId, Origin};

use super::boxes::{announce_create, insert_box};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::idempotency::{self, Claim};
use crate::load;
use crate::notify::Outbox;
use crate::rules::hash_conflict;
use crate::state::AppState;
use crate::store;
use crate::store::crypto_actions::NewCryptoAction;
use crate::store::events::NewEventRow;

#[utoipa::path(
    post,
    path = "/box-users/{id}/contact",
    tag = "boxes",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity."), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry answer as the first attempt did (README).")),
    request_body(content = domain::openapi::ContactBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The new box.", body = domain::boxes::BoxView),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`id`, `contacted_identity_id`, `box.title`, `box.public_key`, `key_share.<field>`, `extra`, `Idempotency-Key`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
        (status = 404, description = "`contacted_identity_id` does not exist.", body = domain::ErrorBody),
        (status = 409, description = "`key_share.other_share_hash` is already used, or the contacted identity has no key: `details.<field> = conflict`.", body = domain::ErrorBody),
        (status = 429, description = "Too many contact requests from this identity.", body = domain::ErrorBody),
        (status = 422, description = "The `Idempotency-Key` was used with another request: `details.Idempotency-Key = invalid`.", body = domain::ErrorBody),
    )
)]
pub async fn contact(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let body = web_kit::body::json_body(&req, payload).await?;
    let path_identity: IdentityId = path_id(&path, "id")?;
    let new = ContactRequest::parse(&body, caller.id())?;
    let claim = Claim::from_request(&req, &body)?;
    caller.require_self(path_identity)?;
    let me = caller.id();
    state.charge_invitation(me).await?;

    let mut client = web_kit::metrics::pool_get(&state.db).await?;
    let contacted = store::identities::get(&client, new.contacted_identity_id)
        .await?
        .ok_or_else(|| ErrorBody::not_found(Origin::Body, "contacted_identity_id"))?;
    if contacted.invitation_key().is_none() {
        return Err(ErrorBody::conflict(
            Origin::Body,
            "contacted_identity_id",
            "the contacted identity has no public key",
        )
        .into());
    }
    if !contacted.has_key(&new.invitation_key) {
        return Err(ErrorBody::bad_request(Origin::Body, "extra must be keyed by the contacted identity's public key")
            .with("extra", Detail::Invalid)
            .into());
    }

    let tx = client.transaction().await?;
    if let Some(claim) = &claim {
        if let Some(done) = idempotency::begin(&tx, me, claim).await? {
            return Ok(idempotency::replay(done.status, done.body.unwrap_or_default()));
        }
    }
    if store::keyshares::hash_exists(&tx, new.key_share.other_share_hash.as_str()).await? {
        return Err(hash_conflict("key_share.other_share_hash").into());
    }
    let (row, create) = insert_box(&tx, me, new.title.as_str(), new.public_key.as_str()).await?;
    if store::keyshares::insert(&tx, row.id, me, &new.key_share).await?.is_none() {
        return Err(hash_conflict("key_share.other_share_hash").into());
    }
    let rule = access_add_content(&Restriction::IdentityId(contacted.id), true);
    store::events::insert(
        &tx,
        &NewEventRow {
            box_id: row.id,
            kind: EventType::AccessAdd,
            sender_id: me,
            content: Some(&rule),
            referrer_id: None,
        },
    )
    .await?;
    let action = store::crypto_actions::insert(
        &tx,
        &NewCryptoAction {
            identity_id: contacted.id,
            kind: CryptoActionType::Invitation,
            box_id: row.id,
            sender_id: me,
            encryption_public_key: &new.invitation_key,
            encrypted: new.invitation.as_str(),
        },
    )
    .await?;
    let invite = NewNotification::auto_invite(row.id, &row.title, action.id);
    let notified = store::notifications::insert_all(&tx, state.notifications, &[(contacted.id, invite)]).await?;
    let stored_view = match &claim {
        Some(claim) => {
            let view = load::box_for(&tx, &state.redis, me, &row).await?;
            idempotency::finish(&tx, me, claim, 201, &view, None, None).await?;
            Some(view)
        }
        None => None,
    };
    web_kit::limits::committing(tx.commit()).await?;
    tracing::info!(box_id = %row.id, contacted = %contacted.id, "contact box created");

    let mut outbox = Outbox::new();
    announce_create(&client, &mut outbox, &create).await?;
    outbox.notify(&notified);
    let view = match stored_view {
        Some(view) => view,
        None => load::box_for(&client, &state.redis, me, &row).await?,
    };
    outbox.send(&state.redis, state.history).await;
    Ok(HttpResponse::Created().json(view))
}
