//! What the subscribers need of a Redis Cluster beyond the cluster connection of
//! [`crate::redis`]: the slot of a key or shard channel, which master serves it (`CLUSTER SLOTS`),
//! and a connection to one master that receives its shard messages (`SSUBSCRIBE`, RESP3 push).
//!
//! The cluster connection of redis-rs can subscribe to shard channels too, but it resubscribes
//! behind the caller's back after a node is lost, so the messages published in between would be
//! missed without anyone knowing. A subscriber here holds one connection per master instead and
//! learns of every loss: the connection's end, an `sunsubscribe` it did not ask for (the slot
//! moved to another node), or a `MOVED` answer.

use std::collections::BTreeMap;

use anyhow::Context;
use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, ConnectionInfo, PushInfo, Value};
use tokio::sync::mpsc;

use crate::redis::{CALL_TIMEOUT, CONNECT_TIMEOUT};

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The slot of a key or shard channel: CRC16 of its hash tag (the text between the first `{`
/// and the next `}`, when not empty) or else of the whole name, modulo 16384.
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|b| *b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % SLOTS
}

/// `host:port` of a node, which names it here.
pub fn node_name(info: &ConnectionInfo) -> String {
    match &info.addr {
        ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        other => other.to_string(),
    }
}

/// Which master serves each slot.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// First slot of each range, to the range's last slot and its master.
    ranges: BTreeMap<u16, (u16, ConnectionInfo)>,
}

impl Topology {
    /// Asks the nodes of `seeds` in turn, then `known`, for `CLUSTER SLOTS`; the first answer wins.
    pub async fn fetch(seeds: &[ConnectionInfo], known: &[ConnectionInfo]) -> anyhow::Result<Topology> {
        let mut last = None;
        for node in seeds.iter().chain(known) {
            match Topology::ask(node).await {
                Ok(topology) => return Ok(topology),
                Err(e) => last = Some(e.context(format!("asking {} for CLUSTER SLOTS", node_name(node)))),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no Redis Cluster node to ask")))
    }

    async fn ask(node: &ConnectionInfo) -> anyhow::Result<Topology> {
        let client = redis::Client::open(node.clone())?;
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .context("connecting timed out")??;
        let reply: Value =
            tokio::time::timeout(CALL_TIMEOUT, redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut conn))
                .await
                .context("no answer in time")??;
        Topology::parse(node, reply)
    }

    /// `CLUSTER SLOTS`: `[[first, last, [host, port, id, …], replicas…], …]`. An empty host means
    /// the node asked; the credentials are those of the seed.
    fn parse(asked: &ConnectionInfo, reply: Value) -> anyhow::Result<Topology> {
        let rows: Vec<Value> = redis::from_owned_redis_value(reply).context("CLUSTER SLOTS reply")?;
        let mut ranges = BTreeMap::new();
        for row in rows {
            let row: Vec<Value> = redis::from_owned_redis_value(row).context("CLUSTER SLOTS row")?;
            let [first, last, master, ..] = row.as_slice() else { anyhow::bail!("short CLUSTER SLOTS row") };
            let (first, last): (u16, u16) = (redis::from_redis_value(first)?, redis::from_redis_value(last)?);
            let master: Vec<Value> = redis::from_redis_value(master)?;
            let [host, port, ..] = master.as_slice() else { anyhow::bail!("short CLUSTER SLOTS node") };
            let (host, port): (String, u16) = (redis::from_redis_value(host)?, redis::from_redis_value(port)?);
            let host = match (&asked.addr, host.as_str()) {
                (ConnectionAddr::Tcp(seed, _), "" | "?") => seed.clone(),
                _ => host,
            };
            let info = ConnectionInfo { addr: ConnectionAddr::Tcp(host, port), redis: asked.redis.clone() };
            ranges.insert(first, (last, info));
        }
        anyhow::ensure!(!ranges.is_empty(), "the cluster serves no slot");
        Ok(Topology { ranges })
    }

    /// The master serving `slot`; `None` while no node serves it.
    pub fn master_of(&self, slot: u16) -> Option<&ConnectionInfo> {
        let (_, (last, info)) = self.ranges.range(..=slot).next_back()?;
        (slot <= *last).then_some(info)
    }

    /// Every master, once.
    pub fn masters(&self) -> Vec<ConnectionInfo> {
        let mut seen = std::collections::HashSet::new();
        self.ranges.values().filter(|(_, info)| seen.insert(node_name(info))).map(|(_, info)| info.clone()).collect()
    }
}

/// A connection to one node in RESP3 whose push messages (shard messages, `ssubscribe` and
/// `sunsubscribe` notices, and a `Disconnection` when it ends) go to `pushes`, each with `tag`.
pub async fn push_connection(
    node: &ConnectionInfo,
    tag: u64,
    pushes: mpsc::UnboundedSender<(u64, PushInfo)>,
) -> anyhow::Result<MultiplexedConnection> {
    let mut info = node.clone();
    info.redis.protocol = redis::ProtocolVersion::RESP3;
    let client = redis::Client::open(info)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_push_sender(move |push: PushInfo| pushes.send((tag, push)));
    let conn = tokio::time::timeout(2 * CONNECT_TIMEOUT, client.get_multiplexed_async_connection_with_config(&config))
        .await
        .context("connecting timed out")?
        .with_context(|| format!("connecting to {}", node_name(node)))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_hash_tag() {
        // Values given by `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}".as_slice()));
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(slot(b"{auth}:revoked_sids"), slot(b"{auth}:revocations"));
    }

    #[test]
    fn masters_are_found_by_slot() {
        let node = |port| ConnectionInfo {
            addr: ConnectionAddr::Tcp("127.0.0.1".into(), port),
            redis: redis::RedisConnectionInfo::default(),
        };
        let mut ranges = BTreeMap::new();
        ranges.insert(0, (5460, node(7101)));
        ranges.insert(5461, (10922, node(7102)));
        ranges.insert(12000, (16383, node(7103)));
        let t = Topology { ranges };
        assert_eq!(t.master_of(0).map(node_name).as_deref(), Some("127.0.0.1:7101"));
        assert_eq!(t.master_of(10922).map(node_name).as_deref(), Some("127.0.0.1:7102"));
        assert!(t.master_of(11000).is_none());
        assert_eq!(t.master_of(16383).map(node_name).as_deref(), Some("127.0.0.1:7103"));
        assert_eq!(t.masters().len(), 3);
    }
}
