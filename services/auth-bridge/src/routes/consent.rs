//! `GET /api/v1/accounts/consent/get_consent/` (§10.6, seed path and parameters): the hostapp's
//! server asks whether a user already consented to share data with our miniapp.
//!
//! Checks in the §3.7 order: hostapp credentials (401), query parameters (400), then whether the
//! credentials belong to the hostapp named in the query (403).

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use domain::error::{Detail, ErrorBody, Origin};
use domain::input::{has_control, Report};
use domain::Timestamp;
use serde::Serialize;
use web_kit::ratelimit::Check;

use crate::error::ApiError;
use crate::startup::AppState;
use crate::store;

#[derive(Serialize)]
struct Consent {
    client_id: String,
    app_id: String,
    user_reference: String,
    consent: bool,
    consented_at: Option<Timestamp>,
}

#[tracing::instrument(skip_all)]
#[utoipa::path(
    get,
    path = "/api/v1/accounts/consent/get_consent/",
    tag = "boxo",
    params(("Authorization" = String, Header, description = "`<token_prefix> base64(client_id:secret)` of the host app."), ("X-Hostapp-Client-ID" = String, Header, description = "The host app's client id."), ("client_id" = String, Query, min_length = 1, max_length = 100), ("app_id" = String, Query, min_length = 1, max_length = 100), ("user_reference" = String, Query, min_length = 1, max_length = 100)),
    responses(
        (status = 200, description = "Whether the user consented, and when.", body = Object),
        (status = 400, description = "`details` keys: `client_id`, `app_id`, `user_reference`, `query`.", body = domain::ErrorBody),
        (status = 401, description = "Host app credentials are `required` or `invalid`.", body = domain::ErrorBody),
        (status = 403, description = "`client_id` is another host app: `details.client_id = forbidden`.", body = domain::ErrorBody),
        (status = 429, description = "Too many consent lookups from this host app.", body = domain::ErrorBody),
    )
)]
pub async fn get_consent(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = super::hostapp::caller(&req, &state)?;
    let per_hostapp = Check::new("consent_per_hostapp", &caller.client_id, state.settings.rates.consent_per_hostapp);
    web_kit::ratelimit::enforce(&state.redis, &[per_hostapp]).await?;

    // The seed's three parameters.
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string()).map_err(|_| {
        ErrorBody::bad_request(Origin::Query, "malformed query string").with("query", Detail::Malformed)
    })?;
    let mut r = Report::new();
    let mut param = |name: &str| match query.get(name).map(String::as_str) {
        None | Some("") => {
            r.fail(name, Detail::Required);
            None
        }
        Some(v) if v.chars().count() > 100 || has_control(v) => {
            r.fail(name, Detail::Invalid);
            None
        }
        Some(v) => Some(v.to_owned()),
    };
    let (client_id, app_id, user_reference) = (param("client_id"), param("app_id"), param("user_reference"));
    let (client_id, app_id, user_reference) = r.finish_at(
        Origin::Query,
        match (client_id, app_id, user_reference) {
            (Some(c), Some(a), Some(u)) => Some((c, a, u)),
            _ => None,
        },
    )?;

    // Authorisation: a hostapp asks only about its own users.
    if client_id != caller.client_id {
        return Err(ErrorBody::forbidden(Origin::Query, "these credentials belong to another hostapp")
            .with("client_id", Detail::Forbidden)
            .into());
    }

    let client = web_kit::metrics::pool_get(&state.pool).await?;
    let at = store::consented_at(&client, &client_id, &app_id, &user_reference).await?;
    tracing::info!(%client_id, %app_id, consent = at.is_some(), "consent looked up");
    Ok(HttpResponse::Ok().json(Consent {
        client_id,
        app_id,
        user_reference,
        consent: at.is_some(),
        consented_at: at.map(Timestamp::from),
    }))
}
