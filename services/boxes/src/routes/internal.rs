//! The internal API of §12: auth-bridge creates or refreshes the public part of an identity at
//! each login. Reachable only on the internal network; authenticated by a shared secret.

use actix_web::{web, HttpRequest, HttpResponse};
use domain::auth::sha256_b64u;
use domain::identity::IdentityUpsert;
use domain::input::path_id;
use domain::{Detail, ErrorBody, IdentityId, Origin};
use secrecy::ExposeSecret;

use crate::error::ApiResult;
use crate::state::AppState;
use crate::store;

const HEADER: &str = "X-Internal-Token";

/// Compares two secrets in time independent of where they differ: both sides are hashed to
/// fixed-length digests first, so neither the content nor the length of the secret leaks.
fn same_secret(presented: &str, expected: &str) -> bool {
    let a = sha256_b64u(presented);
    let b = sha256_b64u(expected);
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_token(req: &HttpRequest, state: &AppState) -> Result<(), ErrorBody> {
    let presented = req.headers().get(HEADER).map(|v| v.to_str().ok());
    match presented {
        None | Some(Some("")) => {
            Err(ErrorBody::unauthorized(Origin::Headers, "internal token is required").with(HEADER, Detail::Required))
        }
        Some(Some(token)) if same_secret(token, state.internal_token.expose_secret()) => Ok(()),
        Some(_) => {
            Err(ErrorBody::unauthorized(Origin::Headers, "internal token is invalid").with(HEADER, Detail::Invalid))
        }
    }
}

/// `PUT /internal/identities/{id}`: creates the identity or updates its name and identifier.
#[tracing::instrument(skip_all, fields(identity = %id))]
#[utoipa::path(
    put,
    path = "/internal/identities/{id}",
    tag = "internal",
    params(("id" = uuid::Uuid, Path, description = "The identity."), ("X-Internal-Token" = String, Header, description = "The shared internal token.")),
    request_body(content = domain::openapi::IdentityUpsertBody, content_type = "application/json"),
    responses(
        (status = 204, description = "Created or updated."),
        (status = 400, description = "Invalid input: the body is not JSON (`details.body = malformed`), `Content-Type` is not JSON (`details.Content-Type = invalid`), or `details` names each invalid field (`id`, `display_name`, `identifier_value`, `identifier_kind`, `identifier_verified`).", body = domain::ErrorBody),
        (status = 408, description = "The body did not arrive in time: `details.body = timed_out`.", body = domain::ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::ErrorBody),
        (status = 401, description = "The internal token is `required` or `invalid`: `details.X-Internal-Token`.", body = domain::ErrorBody),
        (status = 503, description = "PostgreSQL is not available.", body = domain::ErrorBody),
    )
)]
pub async fn upsert_identity(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    check_token(&req, &state)?;
    let id: IdentityId = path_id(&id, "id")?;
    let upsert = IdentityUpsert::parse(&web_kit::body::json_body(&req, payload).await?)?;
    let client = web_kit::metrics::pool_get(&state.db).await?;
    store::identities::upsert(&client, id, &upsert).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_by_value() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cret", "s3cre"));
        assert!(!same_secret("", "s3cret"));
    }
}
