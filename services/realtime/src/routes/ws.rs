//! `GET /box-users/{id}/ws` (§9.1): the handshake checks in the contract's order, then the 101
//! upgrade and the hand-over of the connection to its socket task.
//!
//! A request carrying `Upgrade: websocket` never reaches the actix-web app: actix-http hands it,
//! with the connection, to [`upgrade`], which answers refusals itself and, once the 101 is out,
//! keeps only the TCP stream (see [`crate::conn`]). Any other request to the path goes through the
//! app to [`plain`], which runs the same checks and then refuses the missing upgrade.

use std::sync::Arc;
use std::time::Instant;

use actix_codec::{Framed, FramedParts};
use actix_http::body::{self, BodySize};
use actix_http::h1::{self, Message as H1Message};
use actix_http::header;
use actix_http::{ws as handshake, ConnectionType, Method, Request, RequestHead};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use domain::auth::{check_path_identity, revoked_error, token_error, Transport};
use domain::realtime::Position;
use domain::{Detail, ErrorBody, IdentityId, Origin, SessionId};
use futures_util::SinkExt;
use serde::Deserialize;
use tokio::net::TcpStream;
use tracing::Instrument;
use web_kit::revocations::Status;

use crate::conn::Conn;
use crate::error::ApiError;
use crate::registry::Refused;
use crate::socket::Socket;
use crate::startup::AppState;

#[derive(Deserialize)]
struct WsQuery {
    access_token: Option<String>,
    since: Option<String>,
}

/// Who may open the socket, once every check has passed.
struct Authorized {
    identity: IdentityId,
    sid: SessionId,
    expires_at: i64,
    /// `?since=`: the history position the client last saw, to recover from.
    since: Option<Position>,
}

/// The `{id}` of `/box-users/{id}/ws`, or `None` for any other path.
fn ws_path_id(path: &str) -> Option<&str> {
    let id = path.strip_prefix("/box-users/")?.strip_suffix("/ws")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// Steps 1 to 5 of the handshake (§9.1), in order.
async fn authorize(head: &RequestHead, raw_id: &str, state: &AppState) -> Result<Authorized, ApiError> {
    // 1. Authentication (§3.2, §3.3): 401, or 503 while the revoked sessions are not loaded.
    let params = head.uri.query().and_then(|q| web::Query::<WsQuery>::from_query(q).ok()).map(|q| q.into_inner());
    let (query, since) = match params {
        Some(WsQuery { access_token, since }) => (access_token, since),
        None => (None, None),
    };
    let credentials = web_kit::auth::Credentials::read(&head.headers);
    let (token, transport) = credentials.pick(query.as_deref())?;
    let claims = state.verifier.verify(token).map_err(|e| token_error(e, transport))?;
    match state.revocations.check(claims.sid) {
        Status::Live => {}
        Status::Revoked => return Err(revoked_error(transport).into()),
        Status::Unavailable => {
            return Err(ApiError::Client(ErrorBody::unavailable("the revoked sessions are not loaded from Redis")))
        }
    }
    // 2. ACR.
    claims.require_acr(web_kit::auth::REQUIRED_ACR)?;
    // 3. Path syntax, 4. path identity.
    let identity = IdentityId::parse(raw_id)
        .map_err(|_| ErrorBody::bad_request(Origin::Path, "invalid identity id").with("id", Detail::Malformed))?;
    check_path_identity(identity, &claims)?;
    // 5. Origin. A page admitted only by `*` may not ride on cookies (see web_kit::origins).
    if let Some(origin) = head.headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| {
            state.origins.allows(o) && (transport != Transport::Cookie || state.origins.allows_credentials(o))
        });
        if !allowed {
            return Err(ErrorBody::forbidden(Origin::Headers, "origin not allowed")
                .with("Origin", Detail::Forbidden)
                .into());
        }
    }
    // Recovery position (issue 17), checked once the caller is known.
    let since = match since {
        None => None,
        Some(raw) => Some(Position::parse(&raw).ok_or_else(|| {
            ErrorBody::bad_request(Origin::Query, "invalid history position").with("since", Detail::Malformed)
        })?),
    };
    Ok(Authorized { identity, sid: claims.sid, expires_at: claims.exp, since })
}

/// Step 6 refused: the request is not a valid websocket upgrade.
fn bad_upgrade(e: handshake::HandshakeError) -> ApiError {
    ErrorBody::bad_request(Origin::Headers, e.to_string()).with("Upgrade", Detail::Invalid).into()
}

/// The hub would not take the socket: 503 while shutting down, 429 over a socket cap.
fn refused_registration(refused: Refused) -> ApiError {
    match refused {
        Refused::ShuttingDown => ApiError::Client(ErrorBody::unavailable("server is shutting down")),
        Refused::IdentityFull => {
            ErrorBody::too_many_requests(Origin::NotDefined, "too many sockets open for this identity").into()
        }
        Refused::ProcessFull => ErrorBody::too_many_requests(Origin::NotDefined, "too many sockets open").into(),
    }
}

/// The path requested without `Upgrade: websocket`: the checks, then the refusal of step 6.
#[tracing::instrument(name = "ws_handshake", skip_all)]
#[utoipa::path(
    get,
    path = "/box-users/{id}/ws",
    tag = "realtime",
    params(("id" = uuid::Uuid, Path, description = "The caller's identity."), ("access_token" = Option<String>, Query, description = "The access token, for browsers that cannot set a header (§3.2)."), ("since" = Option<String>, Query, description = "The history position last seen, to recover from (§9.4)."), ("Upgrade" = Option<String>, Header, description = "`websocket`.")),
    responses(
        (status = 101, description = "Switching to the websocket protocol of §9."),
        (status = 400, description = "Not a websocket upgrade (`details.Upgrade = invalid`), a malformed id (`details.id`) or history position (`details.since`).", body = domain::ErrorBody),
        (status = 429, description = "Too many sockets for this identity or this process.", body = domain::ErrorBody),
        (status = 503, description = "Shutting down, or the revoked sessions are not loaded.", body = domain::ErrorBody),
    )
)]
pub async fn plain(req: HttpRequest, path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let refusal = match authorize(req.head(), &path, &state).await {
        Err(e) => e,
        Ok(_) => bad_upgrade(
            handshake::verify_handshake(req.head()).err().unwrap_or(handshake::HandshakeError::NoWebsocketUpgrade),
        ),
    };
    refusal.error_response()
}

/// A request carrying `Upgrade: websocket`, with its connection (actix-http's upgrade service).
/// Answers refusals as plain HTTP responses and closes; after a 101 hands the TCP stream to a
/// socket task of its own and returns, so the connection's much larger HTTP state is freed.
pub async fn upgrade(
    state: web::Data<AppState>,
    (req, mut framed): (Request, Framed<TcpStream, h1::Codec>),
) -> Result<(), actix_http::Error> {
    // actix-http's upgrade service runs outside the app and its middleware, so the handshake
    // builds the request span, the "request done" line and `X-Request-Id` itself, with the same
    // functions as web-kit's request logger.
    let ctx = web_kit::telemetry::TraceContext::from_headers(&req.head().headers);
    let span = web_kit::telemetry::request_span(&ctx, req.method().as_str(), req.path());
    let request_id = ctx.request_id_header();
    let started = Instant::now();
    let accepted = async {
        let checked = match ws_path_id(req.path()) {
            None => Err(ApiError::from(ErrorBody::route_not_found())),
            Some(_) if req.method() != Method::GET => Err(ApiError::from(ErrorBody::not_allowed())),
            Some(raw_id) => match authorize(req.head(), raw_id, &state).await {
                Ok(auth) => handshake::verify_handshake(req.head()).map(|()| auth).map_err(bad_upgrade),
                Err(e) => Err(e),
            },
        };
        let registered = checked.and_then(|auth| match state.hub.register(auth.identity, auth.sid) {
            Ok(registration) => Ok((auth, registration)),
            Err(refused) => Err(refused_registration(refused)),
        });
        let mut response = match &registered {
            Ok(_) => handshake::handshake_response(req.head()).finish().map_into_boxed_body(),
            Err(e) => actix_http::Response::from(e.error_response()),
        };
        if let Some(value) = request_id {
            response.headers_mut().insert(header::HeaderName::from_static(web_kit::telemetry::REQUEST_ID), value);
        }
        let status = response.status().as_u16();
        let sent = send_response(&mut framed, response).await;
        web_kit::telemetry::request_done(status, Some(started));
        match (registered, sent) {
            (Ok(accepted), Ok(())) => {
                tracing::info!(identity = %accepted.0.identity, "socket opened");
                Some(accepted)
            }
            (_, Err(e)) => {
                tracing::debug!(error = %e, "handshake answer not sent");
                None
            }
            (Err(_), Ok(())) => None,
        }
    }
    .instrument(span)
    .await;

    let Some((auth, (registration, queue))) = accepted else {
        let _ = framed.close().await;
        return Ok(());
    };
    drop(req);
    // The dispatcher's buffers go here: only bytes the client sent after its request are kept.
    let FramedParts { io, read_buf, write_buf, .. } = framed.into_parts();
    let conn = Conn::new(io, &read_buf, state.socket.max_frame_bytes);
    drop((read_buf, write_buf));
    let socket = Socket {
        identity: auth.identity,
        sid: auth.sid,
        expires_at: auth.expires_at,
        since: auth.since,
        registration,
        queue,
        conn,
        store: Arc::clone(&state.store),
        config: state.socket,
    };
    state.sockets.spawn_local(socket.run());
    Ok(())
}

/// Writes a complete response: the head, then the body if any. A refusal also closes the
/// connection, so the client does not send another request on it.
async fn send_response(
    framed: &mut Framed<TcpStream, h1::Codec>,
    response: actix_http::Response<body::BoxBody>,
) -> std::io::Result<()> {
    let (mut head, body) = response.into_parts();
    if head.status() == actix_http::StatusCode::SWITCHING_PROTOCOLS {
        return framed.send(H1Message::Item((head, BodySize::None))).await;
    }
    head.head_mut().set_connection_type(ConnectionType::Close);
    let bytes = body::to_bytes(body).await.unwrap_or_default();
    framed.feed(H1Message::Item((head, BodySize::Sized(bytes.len() as u64)))).await?;
    framed.feed(H1Message::Chunk(Some(bytes))).await?;
    framed.send(H1Message::Chunk(None)).await
}
