//! The per-process Redis subscriber: the one pub/sub connection of the process, owned by one task.
//!
//! The task reconciles what Redis is subscribed to with what the registry (`crate::registry`)
//! wants, one command in flight per identity (so a subscribe and an unsubscribe of the same
//! identity never cross), many identities at once, and hands every message to the registry. When
//! the connection is lost the registry closes every socket with 1011; the task reconnects with
//! backoff and subscribes again whatever new sockets have registered meanwhile.

use std::borrow::Cow;
use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use domain::realtime::{channel_identity, split_trace, types, user_channel, SessionRevoked};
use domain::IdentityId;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use redis::aio::{PubSub, PubSubSink};
use redis::ConnectionAddr;
use tokio::sync::mpsc;

use crate::registry::Hub;

/// Timings of the subscriber task.
#[derive(Debug, Clone, Copy)]
pub struct SubscriberConfig {
    pub reconnect_max: Duration,
    pub health_interval: Duration,
}

/// Runs forever: connect, subscribe what the registry wants, dispatch messages; on loss, close the
/// sockets with 1011 and reconnect with exponential backoff.
pub async fn run_subscriber(
    hub: Hub,
    client: redis::Client,
    mut wake: mpsc::UnboundedReceiver<IdentityId>,
    config: SubscriberConfig,
) {
    let initial = Duration::from_millis(50).min(config.reconnect_max);
    let mut backoff = initial;
    loop {
        match connect(&client).await {
            Ok((pubsub, addr)) => {
                backoff = initial;
                hub.set_subscriber_addr(addr);
                hub.connected();
                tracing::info!(local_addr = ?addr, "redis subscriber connected");
                serve_connection(&hub, pubsub, &mut wake, config).await;
                hub.set_subscriber_addr(None);
                hub.lost();
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "redis subscriber cannot connect");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.reconnect_max);
    }
}

/// Opens the pub/sub connection. Plain TCP is dialled here so the local address is known.
async fn connect(client: &redis::Client) -> anyhow::Result<(PubSub, Option<SocketAddr>)> {
    use anyhow::Context;
    let info = client.get_connection_info();
    match &info.addr {
        ConnectionAddr::Tcp(host, port) => {
            let tcp =
                tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect((host.as_str(), *port)))
                    .await
                    .context("connecting to Redis timed out")?
                    .context("connecting to Redis")?;
            tcp.set_nodelay(true).context("setting TCP_NODELAY")?;
            let addr = tcp.local_addr().ok();
            let pubsub = tokio::time::timeout(Duration::from_secs(5), PubSub::new(&info.redis, tcp))
                .await
                .context("redis handshake timed out")?
                .context("redis handshake")?;
            Ok((pubsub, addr))
        }
        _ => Ok((client.get_async_pubsub().await.context("connecting to Redis")?, None)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Subscribe,
    Unsubscribe,
    HealthPing,
}

type OpFuture = Pin<Box<dyn Future<Output = (Option<IdentityId>, Op, anyhow::Result<()>)> + Send>>;

const OP_TIMEOUT: Duration = Duration::from_secs(10);

struct Reconciler {
    sink: PubSubSink,
    subscribed: HashSet<IdentityId>,
    in_flight: HashSet<IdentityId>,
    ops: FuturesUnordered<OpFuture>,
}

impl Reconciler {
    /// Issues the command that brings Redis in line with the registry for `identity`, unless one
    /// is already in flight (it is re-checked when that one completes).
    fn reconcile(&mut self, hub: &Hub, identity: IdentityId) {
        if self.in_flight.contains(&identity) {
            return;
        }
        let wanted = hub.wants(identity);
        let have = self.subscribed.contains(&identity);
        let op = match (wanted, have) {
            (true, false) => Op::Subscribe,
            (false, true) => Op::Unsubscribe,
            (true, true) => {
                // Sockets that came back while the subscription was still held.
                hub.activate(identity);
                return;
            }
            (false, false) => return,
        };
        self.in_flight.insert(identity);
        let mut sink = self.sink.clone();
        self.ops.push(Box::pin(async move {
            let channel = user_channel(identity);
            let result = match op {
                Op::Subscribe => tokio::time::timeout(OP_TIMEOUT, sink.subscribe(&channel)).await,
                _ => tokio::time::timeout(OP_TIMEOUT, sink.unsubscribe(&channel)).await,
            };
            let result = match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(anyhow::Error::new(e)),
                Err(_) => Err(anyhow::anyhow!("redis did not confirm in time")),
            };
            (Some(identity), op, result)
        }));
    }

    fn health_ping(&mut self, timeout: Duration) {
        let mut sink = self.sink.clone();
        self.ops.push(Box::pin(async move {
            let result = match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(anyhow::Error::new(e)),
                Err(_) => Err(anyhow::anyhow!("redis did not answer the health ping in time")),
            };
            (None, Op::HealthPing, result)
        }));
    }
}

/// Serves one pub/sub connection until it fails.
async fn serve_connection(
    hub: &Hub,
    pubsub: PubSub,
    wake: &mut mpsc::UnboundedReceiver<IdentityId>,
    config: SubscriberConfig,
) {
    let (sink, mut stream) = pubsub.split();
    let mut rec =
        Reconciler { sink, subscribed: HashSet::new(), in_flight: HashSet::new(), ops: FuturesUnordered::new() };
    // Requests queued while disconnected are covered by a full pass over the registry.
    while wake.try_recv().is_ok() {}
    for identity in hub.wanted() {
        rec.reconcile(hub, identity);
    }
    let mut health =
        tokio::time::interval_at(tokio::time::Instant::now() + config.health_interval, config.health_interval);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    tracing::warn!("redis pub/sub connection closed");
                    return;
                };
                dispatch(hub, msg.get_channel_name(), msg.get_payload_bytes());
            }
            Some(identity) = wake.recv() => rec.reconcile(hub, identity),
            Some((identity, op, result)) = rec.ops.next(), if !rec.ops.is_empty() => {
                if let Err(e) = result {
                    tracing::warn!(error = format!("{e:#}"), op = ?op, "redis pub/sub command failed");
                    return;
                }
                let Some(identity) = identity else { continue };
                rec.in_flight.remove(&identity);
                match op {
                    Op::Subscribe => {
                        rec.subscribed.insert(identity);
                        hub.activate(identity);
                    }
                    Op::Unsubscribe => {
                        rec.subscribed.remove(&identity);
                    }
                    Op::HealthPing => {}
                }
                rec.reconcile(hub, identity);
            }
            _ = health.tick() => rec.health_ping(config.health_interval.max(Duration::from_secs(1))),
        }
    }
}

/// Routes one pub/sub message: `session.revoked` is consumed, anything else forwarded verbatim
/// but for the publisher's trace context, which is logged with the delivery and taken out.
pub(crate) fn dispatch(hub: &Hub, channel: &str, payload: &[u8]) {
    let Some(identity) = channel_identity(channel) else { return };
    let Ok(text) = std::str::from_utf8(payload) else {
        tracing::warn!(identity = %identity, "dropping a payload that is not UTF-8");
        return;
    };
    let (text, trace) = split_trace(text);
    if let Some(revoked) = as_revocation(&text) {
        match revoked {
            Some(r) => hub.revoke(identity, r.sid),
            None => tracing::warn!(identity = %identity, "malformed session.revoked ignored"),
        }
        return;
    }
    let payload = match text {
        Cow::Borrowed(t) => ByteString::from(t),
        Cow::Owned(t) => ByteString::from(t),
    };
    // Debug level: one line per delivered publish cost realtime about a sixth of its deliveries
    // per core at info (scenario 4b); `RUST_LOG=info,realtime=debug` shows them.
    let logged = tracing::enabled!(tracing::Level::DEBUG);
    let exported = web_kit::telemetry::otlp::enabled();
    let tp = trace.filter(|_| logged || exported).and_then(web_kit::telemetry::parse_traceparent);
    // The delivery's span, a child of the publisher's, when spans are exported.
    let span = tp.as_ref().filter(|_| exported).map(|tp| web_kit::telemetry::otlp::message_span(tp, "deliver"));
    let _entered = span.as_ref().map(tracing::Span::enter);
    let sockets = hub.deliver(identity, &Arc::new(payload));
    if let Some(tp) = tp.filter(|_| logged) {
        tracing::debug!(identity = %identity, trace_id = %tp.trace_id, parent_id = %tp.parent_id, sockets, "delivered");
    }
}

/// `Some(..)` when the payload is a `session.revoked` envelope (`Some(None)` if its object is bad).
fn as_revocation(payload: &str) -> Option<Option<SessionRevoked>> {
    if !payload.contains(types::SESSION_REVOKED) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        object: serde_json::Value,
    }
    let peek: Peek = serde_json::from_str(payload).ok()?;
    if peek.kind != types::SESSION_REVOKED {
        return None;
    }
    Some(serde_json::from_value(peek.object).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::SessionId;

    #[test]
    fn revocation_is_recognised_only_as_the_envelope_type() {
        let sid = SessionId::new_v4();
        let msg = format!(r#"{{"type":"session.revoked","object":{{"sid":"{sid}"}}}}"#);
        assert_eq!(as_revocation(&msg).flatten().map(|r| r.sid), Some(sid));
        assert!(as_revocation(r#"{"type":"event.new","object":{"title":"session.revoked"}}"#).is_none());
        assert!(matches!(as_revocation(r#"{"type":"session.revoked","object":{}}"#), Some(None)));
    }
}
