//! `GET /box-users/{id}/ws` (§9.1): the handshake checks in the contract's order, then the 101
//! upgrade and the hand-over of the socket to its task.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::auth::{check_path_identity, pick_token, revoked_error, token_error, Presented};
use domain::{Detail, ErrorBody, IdentityId, Origin};
use serde::Deserialize;

use crate::error::ApiError;
use crate::socket::Socket;
use crate::startup::AppState;

/// ACR every socket needs (§3.6, SEED).
const REQUIRED_ACR: u32 = 1;

#[derive(Deserialize)]
struct WsQuery {
    access_token: Option<String>,
}

/// Which `Origin` values may open a socket.
#[derive(Debug, Clone)]
pub enum OriginPolicy {
    Any,
    List(Vec<String>),
}

impl OriginPolicy {
    pub fn from_settings(origins: &[String]) -> Self {
        let origins: Vec<String> =
            origins.iter().map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect();
        if origins.is_empty() || origins.iter().any(|o| o == "*") {
            OriginPolicy::Any
        } else {
            OriginPolicy::List(origins)
        }
    }

    fn allows(&self, origin: &str) -> bool {
        match self {
            OriginPolicy::Any => true,
            OriginPolicy::List(list) => {
                let origin = origin.trim_end_matches('/');
                list.iter().any(|o| o.eq_ignore_ascii_case(origin))
            }
        }
    }
}

#[tracing::instrument(name = "ws_handshake", skip_all)]
pub async fn ws(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // 1. Authentication (§3.2, §3.3): 401, or 503 when the revocation marker cannot be read.
    let query = web::Query::<WsQuery>::from_query(req.query_string()).ok().and_then(|q| q.into_inner().access_token);
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|h| h.to_str().ok());
    let cookie_token = req.cookie("accesstoken");
    let cookie_type = req.cookie("tokentype");
    let presented = Presented {
        query: query.as_deref(),
        authorization,
        cookie_token: cookie_token.as_ref().map(|c| c.value()),
        cookie_type: cookie_type.as_ref().map(|c| c.value()),
    };
    let (token, transport) = pick_token(&presented)?;
    let claims = state.verifier.verify(token).map_err(|e| token_error(e, transport))?;
    match state.store.is_revoked(claims.sid).await {
        Ok(false) => {}
        Ok(true) => return Err(revoked_error(transport).into()),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "revocation lookup failed");
            return Err(ApiError::unavailable("redis is unreachable"));
        }
    }
    // 2. ACR.
    claims.require_acr(REQUIRED_ACR)?;
    // 3. Path syntax, 4. path identity.
    let id = IdentityId::parse(&path)
        .map_err(|_| ErrorBody::bad_request(Origin::Path, "invalid identity id").with("id", Detail::Malformed))?;
    check_path_identity(id, &claims)?;
    // 5. Origin.
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        if !origin.to_str().is_ok_and(|o| state.origins.allows(o)) {
            return Err(ErrorBody::forbidden(Origin::Headers, "origin not allowed")
                .with("Origin", Detail::Forbidden)
                .into());
        }
    }
    // 6. The upgrade itself.
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        ApiError::from(ErrorBody::bad_request(Origin::Headers, e.to_string()).with("Upgrade", Detail::Invalid))
    })?;
    let Some((registration, queue)) = state.hub.register(id, claims.sid) else {
        return Err(ApiError::unavailable("server is shutting down"));
    };
    tracing::info!(identity = %id, "socket opened");
    let socket = Socket {
        identity: id,
        expires_at: claims.exp,
        registration,
        queue,
        session,
        stream,
        store: Arc::clone(&state.store),
        config: state.socket,
    };
    actix_web::rt::spawn(socket.run());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_policy() {
        assert!(OriginPolicy::from_settings(&["*".into()]).allows("https://evil.example"));
        let list = OriginPolicy::from_settings(&["https://app.example/".into(), " http://localhost:3000".into()]);
        assert!(list.allows("https://app.example"));
        assert!(list.allows("http://localhost:3000"));
        assert!(!list.allows("https://evil.example"));
    }
}
