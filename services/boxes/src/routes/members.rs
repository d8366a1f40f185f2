//! Who is in a box and who may join it (§7.9).

use actix_web::{web, HttpResponse};
use domain::identity::IdentityView;
use domain::input::path_id;
use domain::{BoxId, ErrorBody};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::load;
use crate::rules;
use crate::state::AppState;
use crate::store;

/// `GET /boxes/{id}/members`: the admin first, then by join order; transparent for the admin.
#[utoipa::path(
    get,
    path = "/boxes/{id}/members",
    tag = "boxes",
    params(("id" = uuid::Uuid, Path, description = "The box.")),
    responses(
        (status = 200, description = "The members, the admin first.", body = [domain::identity::IdentityView]),
        (status = 400, description = "A malformed id: `details.id = malformed`.", body = domain::ErrorBody),
    )
)]
pub async fn members(caller: Caller, state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let box_id: BoxId = path_id(&path, "id")?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    let bx = rules::member_box(&client, box_id, caller.id()).await?;
    let ids = store::boxes::member_ids(&client, box_id).await?;
    let records = store::identities::get_many(&client, &ids).await?;
    let transparent = bx.is_admin(caller.id());
    let views: Vec<IdentityView> =
        ids.iter().filter_map(|id| records.iter().find(|r| r.id == *id)).map(|r| r.view(transparent)).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// `GET /boxes/{id}/accesses`: the active `access.add` events, oldest first, admin only.
#[utoipa::path(
    get,
    path = "/boxes/{id}/accesses",
    tag = "boxes",
    params(("id" = uuid::Uuid, Path, description = "The box.")),
    responses(
        (status = 200, description = "The active `access.add` events, oldest first.", body = [domain::event::Event]),
        (status = 400, description = "A malformed id: `details.id = malformed`.", body = domain::ErrorBody),
    )
)]
pub async fn accesses(caller: Caller, state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let box_id: BoxId = path_id(&path, "id")?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    match store::boxes::get(&client, box_id).await? {
        Some(b) if b.is_admin(caller.id()) => {}
        _ => return Err(ErrorBody::box_rule("not_admin").into()),
    }
    let rows = store::events::active_accesses(&client, box_id).await?;
    let events = load::events_for(&client, &rows, true).await?;
    Ok(HttpResponse::Ok().json(events))
}
