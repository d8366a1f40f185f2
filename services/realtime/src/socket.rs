//! One task per open socket (§9.2). It selects over the client's frames, its outbound queue (fed
//! by the hub), the ping interval, the idle deadline and the token's expiry, and closes the socket
//! with the code the contract gives for each way a connection ends.
//!
//! The task holds only what it needs: the identity, the hub registration (whose drop removes the
//! socket from the registry), the queue receiver and the connection.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_http::ws::Frame;
use actix_ws::{CloseCode, CloseReason, Message};
use bytestring::ByteString;
use domain::realtime::{position_of, types, Ack, Envelope, Position, Ready};
use domain::{IdentityId, SessionId};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::conn::{Conn, RecvError};
use crate::registry::{close, Outbound, Registration};
use crate::store::Store;

/// Timings and limits shared by every socket.
#[derive(Debug, Clone, Copy)]
pub struct SocketConfig {
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub max_frame_bytes: usize,
}

/// Close code for an idle socket.
const IDLE: u16 = 1001;
/// How long the client has, after our close frame, to answer it and close its side; shutdown
/// waits for this at most once every socket's close frame is written.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Close code for a frame or message above the size limit (§2.4).
const TOO_BIG: u16 = 1009;
/// Close code for a violation of RFC 6455 (reserved bits, unmasked frames, bad fragmentation...).
const PROTOCOL_ERROR: u16 = 1002;
/// Close code for a text frame that is not UTF-8.
const NOT_UTF8: u16 = 1007;

/// Everything one socket task owns.
pub struct Socket {
    pub identity: IdentityId,
    /// The token's session: its revocation marker is read again once the subscription is live.
    pub sid: SessionId,
    /// Token `exp`, seconds since the epoch: the socket closes with 4001 then.
    pub expires_at: i64,
    /// `?since=`: replay the history after this position before `ready`.
    pub since: Option<Position>,
    pub registration: Registration,
    pub queue: mpsc::Receiver<Outbound>,
    pub conn: Conn,
    pub store: Arc<Store>,
    pub config: SocketConfig,
}

/// How the loop ended.
enum End {
    /// Send a close frame with this code.
    Close(u16, &'static str),
    /// The client sent a close frame: answer it.
    Echo,
    /// The connection is gone or unwritable.
    Gone,
}

fn reason(code: u16) -> &'static str {
    match code {
        close::SUBSCRIPTION_LOST => "subscription lost",
        close::TOKEN_EXPIRED => "token expired",
        close::GOING_AWAY => "server shutting down",
        close::SLOW_CONSUMER => "slow consumer",
        _ => "",
    }
}

/// The `reason` label of `realtime_socket_closes_total`: one per way a socket ends.
fn close_label(end: &End) -> &'static str {
    match end {
        End::Echo => "client_closed",
        End::Gone => "connection_lost",
        End::Close(_, description) => match *description {
            "token expired" => "token_expired",
            "session revoked" => "session_revoked",
            "revocation state unknown" => "revocation_unknown",
            "history unavailable" => "history_unavailable",
            "subscription lost" => "subscription_lost",
            "server shutting down" => "shutdown",
            "slow consumer" => "slow_consumer",
            "text frame is not UTF-8" => "not_utf8",
            "message too big" => "too_big",
            "protocol error" => "protocol_error",
            "idle timeout" => "idle",
            _ => "other",
        },
    }
}

fn record_close(end: &End) {
    if web_kit::metrics::enabled() {
        web_kit::metrics::FAMILIES.realtime_socket_closes.with_label_values(&[close_label(end)]).inc();
    }
}

fn record_recovery(recovered: bool) {
    if web_kit::metrics::enabled() {
        let outcome = if recovered { "hit" } else { "miss" };
        web_kit::metrics::FAMILIES.realtime_recoveries.with_label_values(&[outcome]).inc();
    }
}

/// Time left until `exp` on the wall clock, as a monotonic deadline.
fn deadline_for(exp: i64) -> Instant {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let left = (exp as f64 - now).max(0.0);
    Instant::now() + Duration::from_secs_f64(left.min(10.0 * 365.0 * 86_400.0))
}

/// When the hub dropped this socket's queue, the code to close with: the `Close` it left in the
/// queue, else 1013 (removed for overflowing its queue).
fn code_after_drop(queue: &mut mpsc::Receiver<Outbound>) -> u16 {
    while let Ok(item) = queue.try_recv() {
        if let Outbound::Close(code) = item {
            return code;
        }
    }
    close::SLOW_CONSUMER
}

impl Socket {
    pub async fn run(self) {
        let Socket { identity, sid, expires_at, since, registration, mut queue, mut conn, store, config } = self;
        // The position `ready` announced: live envelopes at or before it were already replayed or
        // precede what the client asked for.
        let mut floor: Option<Position> = None;
        let expiry = sleep_until(deadline_for(expires_at));
        tokio::pin!(expiry);
        let idle = sleep_until(Instant::now() + config.idle_timeout);
        tokio::pin!(idle);
        let mut ping = tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let end = loop {
            tokio::select! {
                biased;
                _ = &mut expiry => break End::Close(close::TOKEN_EXPIRED, "token expired"),
                item = queue.recv() => {
                    let text = match item {
                        Some(Outbound::Text(text)) if queue.is_closed() => {
                            drop(text);
                            let code = code_after_drop(&mut queue);
                            break End::Close(code, reason(code));
                        }
                        Some(Outbound::Text(text)) => {
                            if let (Some(floor), Some(position)) = (floor, position_of(&text)) {
                                if position <= floor {
                                    continue;
                                }
                            }
                            ByteString::clone(&text)
                        }
                        Some(Outbound::Ready) => {
                            // A logout between the handshake's check and the subscription published
                            // its `session.revoked` before this socket could hear it; its marker
                            // is still there. Boxed like the ack's round trips.
                            match Box::pin(store.is_revoked(sid)).await {
                                Ok(false) => {}
                                Ok(true) => break End::Close(close::TOKEN_EXPIRED, "session revoked"),
                                Err(e) => {
                                    tracing::warn!(identity = %identity, error = format!("{e:#}"), "revocation lookup failed");
                                    break End::Close(close::SUBSCRIPTION_LOST, "revocation state unknown");
                                }
                            }
                            if floor.is_some() {
                                continue;
                            }
                            // Read after the subscription is live: anything published later is
                            // queued behind this and filtered by `floor`.
                            let recovery = match Box::pin(store.recovery(identity, since)).await {
                                Ok(r) => r,
                                Err(e) => {
                                    tracing::warn!(identity = %identity, error = format!("{e:#}"), "history read failed");
                                    break End::Close(close::SUBSCRIPTION_LOST, "history unavailable");
                                }
                            };
                            floor = Some(recovery.head);
                            let (recovered, replay) = match recovery.replay {
                                Some((recovered, replay)) => {
                                    record_recovery(recovered);
                                    (Some(recovered), replay)
                                }
                                None => (None, Vec::new()),
                            };
                            if !replay.is_empty() {
                                tracing::info!(identity = %identity, replayed = replay.len(), "history replayed");
                            }
                            let mut gone = false;
                            for text in replay {
                                if !matches!(tokio::time::timeout(config.write_timeout, conn.send(Message::Text(text.into()))).await, Ok(Ok(()))) {
                                    gone = true;
                                    break;
                                }
                            }
                            if gone {
                                break End::Gone;
                            }
                            let ready = Ready { identity_id: identity, position: recovery.head, recovered };
                            Envelope::new(types::READY, ready).to_json().into()
                        }
                        Some(Outbound::Close(code)) => break End::Close(code, reason(code)),
                        None => break End::Close(close::SLOW_CONSUMER, reason(close::SLOW_CONSUMER)),
                    };
                    match tokio::time::timeout(config.write_timeout, conn.send(Message::Text(text))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break End::Gone,
                        Err(_) => {
                            tracing::info!(identity = %identity, "write timed out, dropping socket");
                            break End::Gone;
                        }
                    }
                }
                frame = conn.recv() => {
                    idle.as_mut().reset(Instant::now() + config.idle_timeout);
                    match frame {
                        Some(Ok(Frame::Text(bytes))) => {
                            let Ok(text) = std::str::from_utf8(&bytes) else {
                                break End::Close(NOT_UTF8, "text frame is not UTF-8");
                            };
                            // Boxed: the Redis round trips are large futures an idle socket should not carry.
                            Box::pin(on_client_text(identity, text, &store)).await
                        }
                        Some(Ok(Frame::Ping(bytes))) => {
                            if !matches!(tokio::time::timeout(config.write_timeout, conn.send(Message::Pong(bytes))).await, Ok(Ok(()))) {
                                break End::Gone;
                            }
                        }
                        Some(Ok(Frame::Close(_))) => break End::Echo,
                        // `recv` hands over whole messages, never a `Continuation`.
                        Some(Ok(Frame::Binary(_) | Frame::Pong(_) | Frame::Continuation(_))) => {}
                        Some(Err(RecvError::TooBig)) => break End::Close(TOO_BIG, "message too big"),
                        Some(Err(RecvError::Io(_))) | None => break End::Gone,
                        Some(Err(RecvError::Protocol(e))) => {
                            tracing::debug!(identity = %identity, error = %e, "websocket protocol error");
                            break End::Close(PROTOCOL_ERROR, "protocol error");
                        }
                    }
                }
                _ = ping.tick() => {
                    if !matches!(tokio::time::timeout(config.write_timeout, conn.send(Message::Ping(Default::default()))).await, Ok(Ok(()))) {
                        break End::Gone;
                    }
                }
                _ = &mut idle => break End::Close(IDLE, "idle timeout"),
            }
        };

        drop(registration);
        record_close(&end);
        let reason = match end {
            End::Close(code, description) => {
                Some(CloseReason { code: CloseCode::from(code), description: Some(description.to_owned()) })
            }
            End::Echo => None,
            End::Gone => return,
        };
        let answered = reason.is_none();
        if !matches!(tokio::time::timeout(config.write_timeout, conn.send(Message::Close(reason))).await, Ok(Ok(()))) {
            return;
        }
        // Closing handshake, bounded: the client's close frame (unless it sent one first), our
        // FIN, then its FIN. What it sends meanwhile is read and dropped, so the connection ends
        // with FINs rather than a reset that could destroy the close frame in flight.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            if !answered {
                while let Some(Ok(frame)) = conn.recv().await {
                    if matches!(frame, Frame::Close(_)) {
                        break;
                    }
                }
            }
            conn.shutdown().await;
            conn.discard_until_eof().await;
        })
        .await;
    }
}

/// §9.5: a client `ack` resets the counter and is echoed to every socket of the identity.
/// Anything else, or an ack for another identity, is ignored and logged.
async fn on_client_text(identity: IdentityId, text: &str, store: &Store) {
    let ack = serde_json::from_str::<Envelope>(text)
        .ok()
        .filter(|e| e.kind == types::ACK)
        .and_then(|e| serde_json::from_value::<Ack>(e.object).ok());
    let Some(ack) = ack else {
        tracing::info!(identity = %identity, len = text.len(), "ignored client frame: not an ack");
        return;
    };
    if ack.sender_id != identity {
        tracing::info!(identity = %identity, sender_id = %ack.sender_id, "ignored ack for another identity");
        return;
    }
    let echo = Envelope::new(types::ACK, &ack).to_json();
    if let Err(e) = store.ack(identity, ack.box_id, &echo).await {
        tracing::warn!(identity = %identity, box_id = %ack.box_id, error = format!("{e:#}"), "ack failed");
    }
}
