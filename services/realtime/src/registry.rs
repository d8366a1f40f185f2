//! The registry of open sockets: which sockets each identity holds here, and the delivery into
//! their queues.
//!
//! The registry maps an identity to the sockets open for it; each socket is a small bounded queue
//! sender plus its session id. The first socket of an identity wakes the subscriber
//! (`crate::subscriber`) so it sends `SUBSCRIBE user_{id}:ws`, the last one to leave so it sends
//! `UNSUBSCRIBE`.
//!
//! Delivery is a `try_send` of a shared payload (a reference-counted `ByteString`) into each
//! socket's queue under a short lock: it never waits for a socket. A socket whose queue is full is
//! removed from the registry; its task sees its queue closed and closes with 1013. When the pub/sub
//! connection is lost every socket is told to close with 1011 and the registry is emptied; on a
//! Redis Cluster, only the sockets of the identities that connection served.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytestring::ByteString;
use domain::{IdentityId, SessionId};
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
    /// A hub and the receiving end of its reconcile requests, for [`crate::subscriber::run_subscriber`].
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
    pub(crate) fn wants(&self, identity: IdentityId) -> bool {
        self.registry().identities.contains_key(&identity)
    }

    pub(crate) fn wanted(&self) -> Vec<IdentityId> {
        self.registry().identities.keys().copied().collect()
    }

    /// The subscription of `identity` is live: tell its waiting sockets.
    pub(crate) fn activate(&self, identity: IdentityId) {
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
    pub(crate) fn deliver(&self, identity: IdentityId, payload: &Arc<ByteString>) -> usize {
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
    pub(crate) fn revoke(&self, identity: IdentityId, sid: SessionId) {
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

    /// The subscriber's connection is up.
    pub(crate) fn connected(&self) {
        self.inner.connected.store(true, Ordering::Release);
    }

    /// The subscription is gone: every socket closes with 1011.
    pub(crate) fn lost(&self) {
        self.inner.connected.store(false, Ordering::Release);
        let closed = self.close_all(close::SUBSCRIPTION_LOST);
        tracing::warn!(sockets = closed, "redis subscription lost, sockets closed");
    }

    /// Whether every connection of the subscriber is up (on a cluster, one per master).
    pub(crate) fn set_connected(&self, connected: bool) {
        self.inner.connected.store(connected, Ordering::Release);
    }

    /// The subscriptions of `identities` are gone (on a cluster, their master's connection was
    /// lost or their slot moved): their sockets close with 1011 and leave the registry.
    pub(crate) fn lose(&self, identities: &[IdentityId]) -> usize {
        let closed = {
            let mut reg = self.registry();
            let mut closed = 0;
            for identity in identities {
                if let Some(entry) = reg.identities.remove(identity) {
                    for slot in &entry.slots {
                        let _ = slot.tx.try_send(Outbound::Close(close::SUBSCRIPTION_LOST));
                    }
                    closed += entry.slots.len();
                }
            }
            reg.sockets -= closed;
            closed
        };
        if closed > 0 {
            tracing::warn!(sockets = closed, identities = identities.len(), "redis subscriptions lost, sockets closed");
        }
        closed
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

    pub(crate) fn set_subscriber_addr(&self, addr: Option<SocketAddr>) {
        *self.inner.subscriber_addr.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = addr;
    }
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
    fn a_lost_shard_closes_only_its_identities() {
        let (hub, _wake) = Hub::new(limits(4));
        let (a, b) = (IdentityId::new_v4(), IdentityId::new_v4());
        let (_ga, mut ra) = hub.register(a, SessionId::new_v4()).unwrap_or_else(|_| panic!("a"));
        let (_gb, mut rb) = hub.register(b, SessionId::new_v4()).unwrap_or_else(|_| panic!("b"));
        assert_eq!(hub.lose(&[a]), 1);
        assert!(matches!(ra.try_recv(), Ok(Outbound::Close(close::SUBSCRIPTION_LOST))));
        assert!(rb.try_recv().is_err());
        assert_eq!(hub.stats().sockets, 1);
        assert!(hub.wants(b) && !hub.wants(a));
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
