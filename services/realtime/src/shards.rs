//! The subscriber on a Redis Cluster: sharded pub/sub, one connection per master.
//!
//! boxes `SPUBLISH`es each envelope to `user_{id}:ws`, which only the master serving the
//! channel's slot (and its replicas) carry, so the fan-out a cluster can carry grows with its
//! shards. This task holds one RESP3 connection per master (`web_kit::cluster`) and sends
//! `SSUBSCRIBE user_{id}:ws` on the connection of the identity's master. It keeps the guarantees
//! of the one-connection subscriber (`crate::subscriber`) per connection: one command in flight
//! per identity, sockets made ready only once their subscription is confirmed, and, when a
//! connection is lost (its end, a failed command or PING, an `sunsubscribe` the task did not ask
//! for, which is how a node says a slot moved away), the sockets of the identities it served
//! closed with 1011, so their clients reconnect and recover what they missed from the history.
//! The task then asks the cluster for its slots again and reconnects, with a backoff, in the
//! background: the other connections keep delivering meanwhile.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use domain::realtime::{channel_identity, user_channel, KeyScheme};
use domain::IdentityId;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{ConnectionInfo, PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use web_kit::cluster::{node_name, push_connection, slot, Topology};

use crate::registry::Hub;
use crate::subscriber::{dispatch, SubscriberConfig};

const OP_TIMEOUT: Duration = Duration::from_secs(10);
const KEYS: KeyScheme = KeyScheme::Cluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Subscribe,
    Unsubscribe,
    HealthPing,
}

/// A finished command: the connection's tag, the identity, the command, its result.
type Done = (u64, Option<IdentityId>, Op, redis::RedisResult<()>);
type OpFuture = Pin<Box<dyn Future<Output = Done> + Send>>;

/// A new view of the cluster and connections to the masters that had none.
type Repaired = (anyhow::Result<Topology>, Vec<(ConnectionInfo, u64, anyhow::Result<MultiplexedConnection>)>);

struct Shard {
    tag: u64,
    conn: MultiplexedConnection,
}

struct Subscriber {
    hub: Hub,
    seeds: Vec<ConnectionInfo>,
    topology: Topology,
    /// Live connections by node name.
    shards: HashMap<String, Shard>,
    /// Node name of each tag still live.
    tags: HashMap<u64, String>,
    next_tag: u64,
    pushes: mpsc::UnboundedSender<(u64, PushInfo)>,
    /// Identity → tag of the connection its subscription is confirmed on.
    subscribed: HashMap<IdentityId, u64>,
    /// Identity → tag of the connection its command is in flight on.
    in_flight: HashMap<IdentityId, u64>,
    /// `sunsubscribe` notices the task's own `SUNSUBSCRIBE`s will bring.
    expected: HashMap<IdentityId, u32>,
    ops: FuturesUnordered<OpFuture>,
}

/// Runs forever: connect to every master, subscribe what the registry wants on the master of
/// each identity, dispatch shard messages; a lost connection closes its identities' sockets
/// with 1011 and is repaired in the background.
pub async fn run(
    hub: Hub,
    seeds: Vec<ConnectionInfo>,
    mut wake: mpsc::UnboundedReceiver<IdentityId>,
    config: SubscriberConfig,
) {
    let (pushes, mut push_rx) = mpsc::unbounded_channel();
    let mut sub = Subscriber {
        hub,
        seeds,
        topology: Topology::default(),
        shards: HashMap::new(),
        tags: HashMap::new(),
        next_tag: 1,
        pushes,
        subscribed: HashMap::new(),
        in_flight: HashMap::new(),
        expected: HashMap::new(),
        ops: FuturesUnordered::new(),
    };
    let initial = Duration::from_millis(50).min(config.reconnect_max);
    let mut backoff = initial;
    let mut repairing: Option<Pin<Box<dyn Future<Output = Repaired> + Send>>> = Some(Box::pin(sub.repair()));
    let mut next_repair: Option<tokio::time::Instant> = None;
    let mut health =
        tokio::time::interval_at(tokio::time::Instant::now() + config.health_interval, config.health_interval);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some((tag, push)) = push_rx.recv() => {
                if !sub.on_push(tag, push) && next_repair.is_none() && repairing.is_none() {
                    next_repair = Some(tokio::time::Instant::now() + backoff);
                }
            }
            Some(identity) = wake.recv() => sub.reconcile(identity),
            Some(done) = sub.ops.next(), if !sub.ops.is_empty() => {
                if !sub.on_done(done) && next_repair.is_none() && repairing.is_none() {
                    next_repair = Some(tokio::time::Instant::now() + backoff);
                }
            }
            Some(repaired) = async {
                match repairing.as_mut() {
                    Some(repair) => Some(repair.await),
                    None => None,
                }
            }, if repairing.is_some() => {
                repairing = None;
                if sub.on_repaired(repaired) {
                    backoff = initial;
                } else {
                    next_repair = Some(tokio::time::Instant::now() + backoff);
                    backoff = (backoff * 2).min(config.reconnect_max);
                }
            }
            _ = tokio::time::sleep_until(next_repair.unwrap_or_else(tokio::time::Instant::now)), if next_repair.is_some() && repairing.is_none() => {
                next_repair = None;
                repairing = Some(Box::pin(sub.repair()));
            }
            _ = health.tick() => sub.health_ping(config.health_interval.max(Duration::from_secs(1))),
        }
    }
}

impl Subscriber {
    /// Asks the cluster for its slots and connects to each master without a connection.
    fn repair(&mut self) -> impl Future<Output = Repaired> + Send + 'static {
        let seeds = self.seeds.clone();
        let known = self.topology.masters();
        let connected: HashSet<String> = self.shards.keys().cloned().collect();
        let pushes = self.pushes.clone();
        let first_tag = self.next_tag;
        // Tags are handed out up front so pushes of a new connection can never carry an old tag.
        self.next_tag += 1024;
        async move {
            let topology = match Topology::fetch(&seeds, &known).await {
                Ok(t) => t,
                Err(e) => return (Err(e), Vec::new()),
            };
            let missing: Vec<ConnectionInfo> =
                topology.masters().into_iter().filter(|m| !connected.contains(&node_name(m))).collect();
            let attempts = missing.into_iter().enumerate().map(|(i, node)| {
                let pushes = pushes.clone();
                let tag = first_tag + i as u64;
                async move {
                    let conn = push_connection(&node, tag, pushes).await;
                    (node, tag, conn)
                }
            });
            let conns = futures_util::future::join_all(attempts).await;
            (Ok(topology), conns)
        }
    }

    /// Takes in a repair's outcome; true when every master is connected.
    fn on_repaired(&mut self, (topology, conns): Repaired) -> bool {
        let topology = match topology {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "redis cluster slots unknown");
                self.hub.set_connected(false);
                return false;
            }
        };
        let masters: HashSet<String> = topology.masters().iter().map(node_name).collect();
        // A node that is no longer a master serves no shard channel any more.
        let demoted: Vec<String> = self.shards.keys().filter(|n| !masters.contains(*n)).cloned().collect();
        for name in demoted {
            self.fail(&name, "no longer a master");
        }
        self.topology = topology;
        for (node, tag, conn) in conns {
            let name = node_name(&node);
            match conn {
                Ok(conn) => {
                    tracing::info!(node = %name, "redis cluster subscriber connected");
                    self.tags.insert(tag, name.clone());
                    self.shards.insert(name, Shard { tag, conn });
                }
                Err(e) => {
                    tracing::warn!(node = %name, error = format!("{e:#}"), "redis cluster subscriber cannot connect")
                }
            }
        }
        let complete = masters.iter().all(|m| self.shards.contains_key(m));
        self.hub.set_connected(complete);
        // Whatever waits for a connection that is now there.
        for identity in self.hub.wanted() {
            self.reconcile(identity);
        }
        complete
    }

    /// The live connection serving `identity`'s channel.
    fn shard_of(&self, identity: IdentityId) -> Option<&Shard> {
        let master = self.topology.master_of(slot(user_channel(identity).as_bytes()))?;
        self.shards.get(&node_name(master))
    }

    /// Issues the command that brings the cluster in line with the registry for `identity`,
    /// unless one is in flight (it is re-checked when that one completes).
    fn reconcile(&mut self, identity: IdentityId) {
        if self.in_flight.contains_key(&identity) {
            return;
        }
        let wanted = self.hub.wants(identity);
        let op = match (wanted, self.subscribed.get(&identity).copied()) {
            (true, None) => Op::Subscribe,
            (false, Some(_)) => Op::Unsubscribe,
            (true, Some(_)) => {
                self.hub.activate(identity);
                return;
            }
            (false, None) => return,
        };
        let (tag, mut conn) = match op {
            // Waits for its master's connection otherwise; a repair reconciles it.
            Op::Subscribe => match self.shard_of(identity) {
                Some(shard) => (shard.tag, shard.conn.clone()),
                None => return,
            },
            _ => {
                let tag = self.subscribed.get(&identity).copied().unwrap_or_default();
                let Some(shard) = self.tags.get(&tag).and_then(|n| self.shards.get(n)) else {
                    self.subscribed.remove(&identity);
                    return;
                };
                *self.expected.entry(identity).or_default() += 1;
                (tag, shard.conn.clone())
            }
        };
        self.in_flight.insert(identity, tag);
        self.ops.push(Box::pin(async move {
            let name = if op == Op::Subscribe { KEYS.subscribe() } else { KEYS.unsubscribe() };
            let mut cmd = redis::cmd(name);
            cmd.arg(user_channel(identity));
            let result = match tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<()>(&mut conn)).await {
                Ok(result) => result,
                Err(_) => Err(timed_out()),
            };
            (tag, Some(identity), op, result)
        }));
    }

    fn health_ping(&mut self, timeout: Duration) {
        for shard in self.shards.values() {
            let (tag, mut conn) = (shard.tag, shard.conn.clone());
            self.ops.push(Box::pin(async move {
                let result =
                    match tokio::time::timeout(timeout, redis::cmd("PING").query_async::<Value>(&mut conn)).await {
                        Ok(result) => result.map(|_| ()),
                        Err(_) => Err(timed_out()),
                    };
                (tag, None, Op::HealthPing, result)
            }));
        }
    }

    /// Takes in a finished command; false when a repair is needed.
    fn on_done(&mut self, (tag, identity, op, result): Done) -> bool {
        if let Some(identity) = identity {
            if self.in_flight.get(&identity) == Some(&tag) {
                self.in_flight.remove(&identity);
            }
        }
        let Some(name) = self.tags.get(&tag).cloned() else {
            // A connection already given up: its identities were closed then.
            if let Some(identity) = identity {
                self.reconcile(identity);
            }
            return true;
        };
        match result {
            Ok(()) => {
                let Some(identity) = identity else { return true };
                match op {
                    Op::Subscribe => {
                        self.subscribed.insert(identity, tag);
                        self.hub.activate(identity);
                    }
                    Op::Unsubscribe => {
                        self.subscribed.remove(&identity);
                    }
                    Op::HealthPing => {}
                }
                self.reconcile(identity);
                true
            }
            Err(e) if is_redirect(&e) => {
                // The slot has moved: no socket of the identity is ready yet, so none is closed;
                // it is subscribed again once the slots are read anew.
                tracing::info!(node = %name, error = %e, "redis cluster slot moved");
                if let Some(identity) = identity {
                    self.expected.remove(&identity);
                }
                false
            }
            Err(e) => {
                tracing::warn!(node = %name, error = %e, op = ?op, "redis cluster pub/sub command failed");
                self.fail(&name, "a command failed");
                false
            }
        }
    }

    /// Takes in a push message; false when a repair is needed.
    fn on_push(&mut self, tag: u64, push: PushInfo) -> bool {
        let Some(name) = self.tags.get(&tag).cloned() else { return true };
        match push.kind {
            PushKind::SMessage => {
                if let [Value::BulkString(channel), Value::BulkString(payload), ..] = push.data.as_slice() {
                    if let Ok(channel) = std::str::from_utf8(channel) {
                        dispatch(&self.hub, channel, payload);
                    }
                }
                true
            }
            PushKind::SUnsubscribe => {
                let identity = match push.data.first() {
                    Some(Value::BulkString(channel)) => std::str::from_utf8(channel).ok().and_then(channel_identity),
                    _ => None,
                };
                let asked = identity.and_then(|i| self.expected.get_mut(&i)).filter(|n| **n > 0);
                match asked {
                    Some(n) => {
                        *n -= 1;
                        true
                    }
                    None => {
                        // The node dropped a subscription by itself: its slot moved elsewhere. The
                        // connection's other replies may now be out of step; give it up.
                        self.fail(&name, "a slot moved away");
                        false
                    }
                }
            }
            PushKind::Disconnection => {
                self.fail(&name, "connection lost");
                false
            }
            _ => true,
        }
    }

    /// Gives up the connection to `name`: the sockets of every identity subscribed or being
    /// subscribed there close with 1011.
    fn fail(&mut self, name: &str, why: &str) {
        let Some(shard) = self.shards.remove(name) else { return };
        self.tags.remove(&shard.tag);
        let tag = shard.tag;
        let mut lost: Vec<IdentityId> = Vec::new();
        self.subscribed.retain(|identity, t| {
            let gone = *t == tag;
            if gone {
                lost.push(*identity);
            }
            !gone
        });
        self.in_flight.retain(|identity, t| {
            let gone = *t == tag;
            if gone {
                lost.push(*identity);
            }
            !gone
        });
        for identity in &lost {
            self.expected.remove(identity);
        }
        self.hub.set_connected(false);
        let closed = self.hub.lose(&lost);
        tracing::warn!(node = %name, reason = why, sockets = closed, "redis cluster subscriber connection given up");
    }
}

fn is_redirect(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Moved | redis::ErrorKind::Ask | redis::ErrorKind::TryAgain | redis::ErrorKind::ClusterDown
    )
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "redis did not answer in time"))
}
