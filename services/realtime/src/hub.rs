//! The per-process Redis subscriber and the registry of open sockets.
//!
//! The registry maps an identity to the sockets open for it; each socket is a small bounded queue
//! sender plus its session id. The first socket of an identity asks the subscriber task for
//! `SUBSCRIBE user_{id}:ws`, the last one to leave for `UNSUBSCRIBE`. The subscriber task owns the
//! one pub/sub connection of the process and reconciles what Redis is subscribed to with what the
//! registry wants, one command in flight per identity (so a subscribe and an unsubscribe of the
//! same identity never cross), many identities at once.
//!
//! Delivery is a `try_send` of a shared payload (a reference-counted `ByteString`) into each
//! socket's queue under a short lock: it never waits for a socket. A socket whose queue is full is
//! removed from the registry; its task sees its queue closed and closes with 1013. When the pub/sub
//! connection is lost every socket is told to close with 1011 and the registry is emptied; the task
//! reconnects with backoff and subscribes again whatever new sockets have registered meanwhile.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytestring::ByteString;
use domain::realtime::{channel_identity, split_trace, types, user_channel, SessionRevoked};
use domain::{IdentityId, SessionId};
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use redis::aio::{PubSub, PubSubSink};
use redis::ConnectionAddr;
use tokio::sync::mpsc;

/// Close codes the hub asks sockets to close with.
pub mod close {
    /// Redis subscription lost (§9.2).
    pub const SUBSCRIPTION_LOST: u16 = 1011;
    /// Token expired or session revoked (§9.2).
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Outbound queue overflow (§9.2).
    pub const SLOW_CONSUMER: u16 = 1013;
}

/// What the hub puts in a socket's queue.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// The identity's subscription is live: send `ready`.
    Ready,
    /// A payload to forward verbatim, shared by every socket it goes to. Behind one pointer so
    /// the queue's slots stay small.
    Text(Arc<ByteString>),
    /// Close the socket with this code.
    Close(u16),
}

struct Slot {
    key: u64,
    sid: SessionId,
    tx: mpsc::Sender<Outbound>,
}

#[derive(Default)]
struct Entry {
    /// The SUBSCRIBE for this identity is confirmed on the current connection.
    active: bool,
    slots: Vec<Slot>,
}

#[derive(Default)]
struct Registry {
    identities: HashMap<IdentityId, Entry>,
    sockets: usize,
}

struct Inner {
    registry: Mutex<Registry>,
    wake: mpsc::UnboundedSender<IdentityId>,
    next_key: AtomicU64,
    connected: AtomicBool,
    closing: AtomicBool,
    subscriber_addr: Mutex<Option<SocketAddr>>,
    limits: HubLimits,
}

/// Sizes the hub enforces.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Outbound messages queued per socket.
    pub queue_capacity: usize,
    /// Sockets one identity may hold on this process.
    pub max_per_identity: usize,
    /// Sockets this process holds at most.
    pub max_total: usize,
}

/// Why [`Hub::register`] refused a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    ShuttingDown,
    /// The identity already has `max_per_identity` sockets here.
    IdentityFull,
    /// The process already holds `max_total` sockets.
    ProcessFull,
}

/// Handle on the registry; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// Keeps a socket registered; dropping it deregisters the socket.
pub struct Registration {
    hub: Hub,
    identity: IdentityId,
    key: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.deregister(self.identity, self.key);
    }
}

/// Counts, for health output and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubStats {
    pub identities: usize,
    pub sockets: usize,
    pub connected: bool,
}

impl Hub {
    /// A hub and the receiving end of its reconcile requests, for [`run_subscriber`].
    pub fn new(limits: HubLimits) -> (Hub, mpsc::UnboundedReceiver<IdentityId>) {
        let (wake, wake_rx) = mpsc::unbounded_channel();
        let inner = Inner {
            registry: Mutex::new(Registry::default()),
            wake,
            next_key: AtomicU64::new(1),
            connected: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            subscriber_addr: Mutex::new(None),
            limits: HubLimits { queue_capacity: limits.queue_capacity.max(1), ..limits },
        };
        (Hub { inner: Arc::new(inner) }, wake_rx)
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the map half-updated in a way that matters
        // more than losing every socket, so a poisoned lock is used as is.
        self.inner.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a socket of `identity`. Its queue receives `Ready` once the subscription is live.
    /// Refused when the server is shutting down or a socket cap is reached.
    pub fn register(
        &self,
        identity: IdentityId,
        sid: SessionId,
    ) -> Result<(Registration, mpsc::Receiver<Outbound>), Refused> {
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(Refused::ShuttingDown);
        }
        let limits = self.inner.limits;
        // One slot more than the limit: payloads stop at the limit, so a final `Close` always fits.
        let (tx, rx) = mpsc::channel(limits.queue_capacity + 1);
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        let is_new = {
            let mut reg = self.registry();
            if reg.sockets >= limits.max_total {
                return Err(Refused::ProcessFull);
            }
            let held = reg.identities.get(&identity).map_or(0, |e| e.slots.len());
            if held >= limits.max_per_identity {
                return Err(Refused::IdentityFull);
            }
            let is_new = held == 0;
            let entry = reg.identities.entry(identity).or_default();
            if entry.active {
                // The queue is new and has room for at least one message.
                let _ = tx.try_send(Outbound::Ready);
            }
            entry.slots.push(Slot { key, sid, tx });
            reg.sockets += 1;
            is_new
        };
        if is_new {
            let _ = self.inner.wake.send(identity);
        }
        Ok((Registration { hub: self.clone(), identity, key }, rx))
    }

    fn deregister(&self, identity: IdentityId, key: u64) {
        self.retain_slots(identity, |s| s.key != key);
    }

    /// Keeps the sockets of `identity` for which `keep` is true, recounts, and when none is left
    /// drops the identity and wakes the subscriber so it unsubscribes. Answers how many went.
    fn retain_slots(&self, identity: IdentityId, keep: impl FnMut(&Slot) -> bool) -> usize {
        let (removed, emptied) = {
            let mut reg = self.registry();
            let Some(entry) = reg.identities.get_mut(&identity) else { return 0 };
            let before = entry.slots.len();
            entry.slots.retain(keep);
            let removed = before - entry.slots.len();
            let emptied = entry.slots.is_empty();
            if emptied {
                reg.identities.remove(&identity);
            }
            reg.sockets -= removed;
            (removed, emptied)
        };
        if emptied {
            let _ = self.inner.wake.send(identity);
        }
        removed
    }

    /// Whether the registry wants `identity` subscribed.
    fn wants(&self, identity: IdentityId) -> bool {
        self.registry().identities.contains_key(&identity)
    }

    fn wanted(&self) -> Vec<IdentityId> {
        self.registry().identities.keys().copied().collect()
    }

    /// The subscription of `identity` is live: tell its waiting sockets.
    fn activate(&self, identity: IdentityId) {
        let mut reg = self.registry();
        if let Some(entry) = reg.identities.get_mut(&identity) {
            if !entry.active {
                entry.active = true;
                for slot in &entry.slots {
                    let _ = slot.tx.try_send(Outbound::Ready);
                }
            }
        }
    }

    /// Fans a payload out to every socket of `identity`. Never waits: a full queue drops the socket.
    /// Answers how many sockets it was queued for.
    fn deliver(&self, identity: IdentityId, payload: &Arc<ByteString>) -> usize {
        // A message on the channel proves the subscription is live.
        self.activate(identity);
        let mut queued = 0;
        self.retain_slots(identity, |slot| {
            if slot.tx.is_closed() {
                return false;
            }
            if slot.tx.capacity() <= 1 {
                tracing::warn!(identity = %identity, "slow consumer: outbound queue full, closing socket");
                return false;
            }
            let sent = slot.tx.try_send(Outbound::Text(Arc::clone(payload))).is_ok();
            queued += usize::from(sent);
            sent
        });
        if queued > 0 && web_kit::metrics::enabled() {
            web_kit::metrics::FAMILIES.realtime_deliveries.inc_by(queued as u64);
        }
        queued
    }

    /// §9.3: closes the sockets of `identity` whose token belongs to session `sid`, with 4001.
    fn revoke(&self, identity: IdentityId, sid: SessionId) {
        let removed = self.retain_slots(identity, |slot| {
            if slot.sid == sid {
                let _ = slot.tx.try_send(Outbound::Close(close::TOKEN_EXPIRED));
                false
            } else {
                true
            }
        });
        if removed > 0 {
            tracing::info!(identity = %identity, sockets = removed, "session revoked, sockets closed");
        }
    }

    /// Tells every socket to close with `code` and empties the registry.
    fn close_all(&self, code: u16) -> usize {
        let mut reg = self.registry();
        for entry in reg.identities.values() {
            for slot in &entry.slots {
                let _ = slot.tx.try_send(Outbound::Close(code));
            }
        }
        reg.identities.clear();
        std::mem::take(&mut reg.sockets)
    }

    /// The subscription is gone: every socket closes with 1011.
    fn lost(&self) {
        self.inner.connected.store(false, Ordering::Release);
        let closed = self.close_all(close::SUBSCRIPTION_LOST);
        tracing::warn!(sockets = closed, "redis subscription lost, sockets closed");
    }

    /// Graceful shutdown: refuse new sockets and close the open ones with 1001.
    pub fn shutdown(&self) -> usize {
        self.inner.closing.store(true, Ordering::Release);
        self.close_all(close::GOING_AWAY)
    }

    pub fn stats(&self) -> HubStats {
        let reg = self.registry();
        HubStats {
            identities: reg.identities.len(),
            sockets: reg.sockets,
            connected: self.inner.connected.load(Ordering::Acquire),
        }
    }

    /// Whether the subscriber is connected to Redis.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// Local address of the subscriber's current Redis connection (TCP only), as Redis sees the
    /// client in `CLIENT LIST`; operators and tests use it to find the connection.
    pub fn subscriber_addr(&self) -> Option<SocketAddr> {
        *self.inner.subscriber_addr.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_subscriber_addr(&self, addr: Option<SocketAddr>) {
        *self.inner.subscriber_addr.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = addr;
    }
}

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
                hub.inner.connected.store(true, Ordering::Release);
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
                dispatch(hub, &msg);
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
fn dispatch(hub: &Hub, msg: &redis::Msg) {
    let Some(identity) = channel_identity(msg.get_channel_name()) else { return };
    let Ok(text) = std::str::from_utf8(msg.get_payload_bytes()) else {
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

    fn ready(rx: &mut mpsc::Receiver<Outbound>) -> bool {
        matches!(rx.try_recv(), Ok(Outbound::Ready))
    }

    fn limits(queue_capacity: usize) -> HubLimits {
        HubLimits { queue_capacity, max_per_identity: 16, max_total: 1000 }
    }

    #[test]
    fn revocation_is_recognised_only_as_the_envelope_type() {
        let sid = SessionId::new_v4();
        let msg = format!(r#"{{"type":"session.revoked","object":{{"sid":"{sid}"}}}}"#);
        assert_eq!(as_revocation(&msg).flatten().map(|r| r.sid), Some(sid));
        assert!(as_revocation(r#"{"type":"event.new","object":{"title":"session.revoked"}}"#).is_none());
        assert!(matches!(as_revocation(r#"{"type":"session.revoked","object":{}}"#), Some(None)));
    }

    #[tokio::test]
    async fn registry_fans_out_revokes_and_drops_slow_sockets() {
        let (hub, mut wake) = Hub::new(limits(2));
        let id = IdentityId::new_v4();
        let (s1, s2) = (SessionId::new_v4(), SessionId::new_v4());
        let (g1, mut rx1) = hub.register(id, s1).unwrap_or_else(|_| panic!("open"));
        let (g2, mut rx2) = hub.register(id, s2).unwrap_or_else(|_| panic!("open"));
        assert_eq!(wake.try_recv().ok(), Some(id));
        assert!(wake.try_recv().is_err(), "one subscribe request per identity");
        hub.activate(id);
        assert!(ready(&mut rx1) && ready(&mut rx2));

        let payload = Arc::new(ByteString::from_static("{}"));
        hub.deliver(id, &payload);
        assert!(matches!(rx1.try_recv(), Ok(Outbound::Text(_))));
        // rx2 never reads: two more messages overflow its queue of 2.
        hub.deliver(id, &payload);
        hub.deliver(id, &payload);
        assert_eq!(hub.stats().sockets, 1);
        assert!(rx2.is_closed());

        hub.revoke(id, s1);
        assert!(matches!(rx1.try_recv(), Ok(Outbound::Text(_))));
        assert!(matches!(rx1.try_recv(), Ok(Outbound::Text(_))));
        assert!(matches!(rx1.try_recv(), Ok(Outbound::Close(close::TOKEN_EXPIRED))));
        assert_eq!(hub.stats(), HubStats { identities: 0, sockets: 0, connected: false });
        assert_eq!(wake.try_recv().ok(), Some(id), "last socket gone: unsubscribe");
        drop((g1, g2));
        assert_eq!(hub.stats().sockets, 0);
    }

    #[test]
    fn sockets_are_capped_per_identity_and_per_process() {
        let (hub, _wake) = Hub::new(HubLimits { queue_capacity: 4, max_per_identity: 2, max_total: 3 });
        let (a, b) = (IdentityId::new_v4(), IdentityId::new_v4());
        let a1 = hub.register(a, SessionId::new_v4()).unwrap_or_else(|_| panic!("a1"));
        let a2 = hub.register(a, SessionId::new_v4()).unwrap_or_else(|_| panic!("a2"));
        assert_eq!(hub.register(a, SessionId::new_v4()).err(), Some(Refused::IdentityFull));
        let b1 = hub.register(b, SessionId::new_v4()).unwrap_or_else(|_| panic!("b1"));
        assert_eq!(hub.register(IdentityId::new_v4(), SessionId::new_v4()).err(), Some(Refused::ProcessFull));
        // A socket that goes frees its place.
        drop(a1);
        let a3 = hub.register(a, SessionId::new_v4()).unwrap_or_else(|_| panic!("a3"));
        assert_eq!(hub.stats().sockets, 3);
        hub.shutdown();
        assert_eq!(hub.register(b, SessionId::new_v4()).err(), Some(Refused::ShuttingDown));
        drop((a2, a3, b1));
    }
}
