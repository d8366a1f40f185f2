//! The shared Redis code against a Redis Cluster of the test's own (three masters,
//! `scripts/redis-cluster`, private ports): writes of one request to keys of several slots, the
//! history script with its shard publish, rate limits of several budgets, and the revocation set
//! fed over the `{auth}` shard channel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use domain::realtime::{revocation_notice, user_channel, KeyScheme};
use domain::{BoxId, IdentityId, SessionId};
use test_support::PrivateCluster;
use web_kit::history::{HistoryLimits, ReplayLimits};
use web_kit::ratelimit::{enforce, Check, LimitError, Quota};
use web_kit::redis::{connect, exec, query, Redis, Target};
use web_kit::revocations::Status;

const KEYS: KeyScheme = KeyScheme::Cluster;

async fn cluster_conn(cluster: &PrivateCluster) -> (Target, Redis) {
    let nodes = cluster.nodes();
    let nodes: Vec<&str> = nodes.split(',').collect();
    let target = Target::new("redis://unused", &nodes).unwrap();
    let conn = connect(&target).await.unwrap();
    assert_eq!(conn.keys(), KEYS);
    (target, conn)
}

/// Identities until their channels cover every master.
async fn identities_on_every_master(cluster: &PrivateCluster) -> Vec<IdentityId> {
    let mut ports = HashSet::new();
    let mut out = Vec::new();
    while ports.len() < 3 {
        let id = IdentityId::new_v4();
        if ports.insert(cluster.port_of(&user_channel(id)).await) {
            out.push(id);
        }
    }
    out
}

#[tokio::test]
async fn one_request_writes_counters_and_publishes_on_every_master() {
    let cluster = PrivateCluster::start();
    let (_, conn) = cluster_conn(&cluster).await;
    let ids = identities_on_every_master(&cluster).await;
    let b = BoxId::new_v4();

    // What a post does: resets, increments and history publishes for several identities.
    let mut pipe = redis::pipe();
    pipe.del(KEYS.counter(ids[0], b)).ignore();
    for id in &ids {
        pipe.incr(KEYS.counter(*id, b), 1).ignore();
        pipe.incr(KEYS.counter(*id, b), 1).ignore();
        let publish =
            web_kit::history::publish_cmd(KEYS, *id, r#"{"type":"ack","object":{}}"#, HistoryLimits::default());
        pipe.add_command(publish).ignore();
    }
    // Sent whole, the cluster refuses it; split by slot it goes through.
    assert!(query::<()>(&conn, &pipe).await.is_err());
    exec(&conn, &pipe).await.unwrap();

    // All of one identity's counters are read in one MGET (one slot).
    let b2 = BoxId::new_v4();
    let mut mget = redis::cmd("MGET");
    mget.arg(KEYS.counter(ids[1], b)).arg(KEYS.counter(ids[1], b2));
    let counts: Vec<Option<i64>> = query(&conn, &mget).await.unwrap();
    assert_eq!(counts, vec![Some(2), None]);
    for id in &ids {
        let recovery =
            web_kit::history::recovery(&conn, *id, None, ReplayLimits { max_entries: 10, max_bytes: 10_000 }, 600_000)
                .await
                .unwrap();
        let mut node = cluster.node(cluster.port_of(&user_channel(*id)).await).await;
        let len: i64 = redis::cmd("XLEN").arg(KEYS.history(*id)).query_async(&mut node).await.unwrap();
        assert_eq!(len, 1, "the history of {id} is on its channel's master");
        assert!(recovery.head.ms > 0);
    }
}

#[tokio::test]
async fn the_history_script_publishes_on_the_shard_channel() {
    let cluster = PrivateCluster::start();
    let (_, conn) = cluster_conn(&cluster).await;
    let id = IdentityId::new_v4();
    let port = cluster.port_of(&user_channel(id)).await;
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/?protocol=resp3")).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let mut sub = client.get_multiplexed_async_connection_with_config(&config).await.unwrap();
    let _: () = redis::cmd("SSUBSCRIBE").arg(user_channel(id)).query_async(&mut sub).await.unwrap();

    let envelope = r#"{"type":"event.new","object":{"n":1}}"#;
    let position: String =
        query(&conn, &web_kit::history::publish_cmd(KEYS, id, envelope, HistoryLimits::default())).await.unwrap();
    let message = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let push = rx.recv().await.unwrap();
            if push.kind == redis::PushKind::SMessage {
                return push;
            }
        }
    })
    .await
    .unwrap();
    let payload: String = redis::from_redis_value(&message.data[1]).unwrap();
    assert!(payload.ends_with(&format!(r#","position":"{position}"}}"#)), "{payload}");
}

#[tokio::test]
async fn rate_limits_of_one_request_are_charged_together() {
    let cluster = PrivateCluster::start();
    let (_, conn) = cluster_conn(&cluster).await;
    let wide = Quota::new(100, Duration::from_secs(60));
    let narrow = Quota::new(2, Duration::from_secs(60));
    let (w, n) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
    let both = || [Check::new("test_wide", &w, wide), Check::new("test_narrow", &n, narrow)];
    for _ in 0..2 {
        enforce(&conn, &both()).await.unwrap();
    }
    for _ in 0..3 {
        let err = enforce(&conn, &both()).await;
        assert!(matches!(err, Err(LimitError::Limited(ref l)) if l.limit == "test_narrow"), "{err:?}");
    }
    for _ in 0..98 {
        enforce(&conn, &[Check::new("test_wide", &w, wide)]).await.unwrap();
    }
    assert!(enforce(&conn, &[Check::new("test_wide", &w, wide)]).await.is_err());
}

#[tokio::test]
async fn the_revocation_set_follows_the_auth_shard() {
    let cluster = PrivateCluster::start();
    let (target, conn) = cluster_conn(&cluster).await;
    let set = web_kit::revocations::start(target);
    // Fails closed until auth-bridge's loaded marker is there.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(set.check(SessionId::new_v4()), Status::Unavailable);

    let (old, new) = (SessionId::new_v4(), SessionId::new_v4());
    let until = 4_000_000_000_i64;
    let mut pipe = redis::pipe();
    pipe.cmd("ZADD").arg(KEYS.revoked_sids()).arg(until).arg(old.to_string()).ignore();
    pipe.cmd("SET").arg(KEYS.revocations_loaded()).arg("tests").ignore();
    exec(&conn, &pipe).await.unwrap();
    set.wait_ready(Duration::from_secs(5)).await;
    assert_eq!(set.check(old), Status::Revoked, "loaded from the sorted set");
    assert_eq!(set.check(new), Status::Live);

    let mut notice = redis::cmd(KEYS.publish());
    notice.arg(KEYS.revocations_channel()).arg(revocation_notice(&[(new, until)]));
    let receivers: i64 = query(&conn, &notice).await.unwrap();
    assert_eq!(receivers, 1, "one subscriber on the shard channel");
    for _ in 0..50 {
        if set.check(new) == Status::Revoked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(set.check(new), Status::Revoked, "heard on the shard channel");

    // The {auth} master goes away: the set fails closed, then reloads once it is back.
    let auth = cluster.port_of(KEYS.revocations_channel()).await;
    cluster.kill(auth);
    let mut closed = false;
    for _ in 0..100 {
        if set.check(old) == Status::Unavailable {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "the set fails closed when its master is lost");
    cluster.revive(auth).await;
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg(KEYS.revocations_loaded()).arg("tests").ignore();
    let mut done = false;
    for _ in 0..100 {
        if exec(&conn, &pipe).await.is_ok() {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done, "the cluster answers again");
    set.wait_ready(Duration::from_secs(10)).await;
    assert_eq!(set.check(old), Status::Revoked, "entries are kept across a lost subscription");
}
