//! The system against a Redis Cluster of its own (three masters, `scripts/redis-cluster`, on
//! private ports): the four binaries with `REDIS_CLUSTER_NODES`, users whose channels land on
//! different masters. Messages reach their sockets over sharded pub/sub, the unread counters of
//! one post are written to several slots, a logout is heard by every service, and a master that
//! is lost closes with 1011 the sockets it served, and only those.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use boxes_client::body::{Contact, KeyShare, NewBox, NewEvent, PublicKeys};
use boxes_client::{Boxes, Login, Socket};
use domain::event::EventType;
use domain::realtime::{types, user_channel, KeyScheme};
use domain::{BoxId, IdentityId};
use e2e::system::{Options, System};
use test_support::PrivateCluster;

fn key(seed: &str) -> String {
    use base64::Engine;
    let digest: Vec<u8> =
        (0..32u8).map(|i| i.wrapping_mul(29).wrapping_add(seed.as_bytes()[i as usize % seed.len()])).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Host-app users `user0`…`user39`, so that some land on every master.
const USERS: usize = 40;

async fn start(cluster: &PrivateCluster) -> (System, e2e::TempFile) {
    let nodes = cluster.nodes();
    let users: Vec<serde_json::Value> = (0..USERS)
        .map(|i| serde_json::json!({"reference": format!("user{i}"), "email": format!("user{i}@example.com")}))
        .collect();
    let users = e2e::temp_file(&serde_json::Value::from(users).to_string());
    let users_path = users.path().display().to_string();
    let sys = System::start_with(Options {
        redis_cluster_nodes: Some(&nodes),
        realtime: &[("REDIS_RECONNECT_MAX_MS", "200"), ("REDIS_HEALTH_INTERVAL_MS", "250")],
        hostapp: &[("REF_USERS_FILE", &users_path)],
        ..Options::default()
    })
    .await;
    (sys, users)
}

/// A logged-in user with published keys, and the port of the master serving its channel.
struct User {
    login: Login,
    api: Boxes,
    pubkey: String,
    port: u16,
}

impl User {
    fn id(&self) -> IdentityId {
        self.login.identity()
    }
}

/// Logs users in until `wanted` of them have their channels on distinct masters (two or three).
async fn users_on_distinct_masters(sys: &System, cluster: &PrivateCluster, wanted: usize) -> Vec<User> {
    let http = reqwest::Client::new();
    let mut picked: Vec<User> = Vec::new();
    for i in 0..USERS {
        let login = sys.login(&http, &format!("user{i}")).await;
        let port = cluster.port_of(&user_channel(login.identity())).await;
        if picked.iter().any(|u| u.port == port) {
            continue;
        }
        let api = sys.boxes_api(&http).as_user(login.auth());
        let pubkey = key(&format!("pub-{i}"));
        let keys = PublicKeys { non_identified_pubkey: Some(pubkey.clone()), ..Default::default() };
        api.set_public_keys(login.identity(), &keys).await.unwrap();
        picked.push(User { login, api, pubkey, port });
        if picked.len() == wanted {
            return picked;
        }
    }
    panic!("no {wanted} users on distinct masters");
}

async fn socket(sys: &System, user: &User) -> Socket {
    let ws = Socket::connect(&sys.realtime.url(), user.id(), &user.login.auth(), None).await.unwrap();
    assert_eq!(ws.ready.identity_id, user.id());
    ws
}

/// `from` contacts `to`, `to` joins: a box of the two.
async fn box_of(from: &User, to: &User, to_ws: &mut Socket, title: &str) -> BoxId {
    let contact = Contact {
        contacted_identity_id: to.id(),
        new_box: NewBox::new(title, &key(title)),
        key_share: KeyShare {
            misakey_share: "lBHT1vfwFAIBig5Nj+sD+w==".into(),
            other_share_hash: key(&format!("{title}-share")),
            encrypted_invitation_key_share: Some("cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ=".into()),
        },
        extra: [(to.pubkey.clone(), "ZW5jcnlwdGVkIGludml0YXRpb24=".to_owned())].into(),
    };
    let bx = from.api.contact(from.id(), &contact).await.unwrap();
    to_ws.next_of(types::NOTIFICATION).await.unwrap();
    to.api.post_event(bx.id, &NewEvent::MemberJoin).await.unwrap();
    bx.id
}

async fn unread(user: &User, box_id: BoxId) -> i64 {
    let boxes = user.api.joined_boxes().await.unwrap();
    boxes.iter().find(|b| b.id == box_id).map(|b| b.events_count).unwrap()
}

#[tokio::test]
async fn delivery_counters_and_logout_across_masters() {
    let cluster = PrivateCluster::start();
    let (sys, _users) = start(&cluster).await;
    let users = users_on_distinct_masters(&sys, &cluster, 3).await;
    let [alice, bob, carol] = <[User; 3]>::try_from(users).ok().unwrap();
    assert_eq!(HashSet::from([alice.port, bob.port, carol.port]).len(), 3);

    let mut alice_ws = socket(&sys, &alice).await;
    let mut bob_ws = socket(&sys, &bob).await;
    let mut carol_ws = socket(&sys, &carol).await;

    // Each identity is subscribed on the master of its channel's slot, and there only.
    for user in [&alice, &bob, &carol] {
        for port in cluster.ports {
            let mut node = cluster.node(port).await;
            let counts: (String, i64) = redis::cmd("PUBSUB")
                .arg("SHARDNUMSUB")
                .arg(user_channel(user.id()))
                .query_async(&mut node)
                .await
                .unwrap();
            assert_eq!(counts.1, i64::from(port == user.port), "subscriptions of {} on {port}", user.id());
        }
    }

    let ab = box_of(&alice, &bob, &mut bob_ws, "alice-bob").await;
    let ac = box_of(&alice, &carol, &mut carol_ws, "alice-carol").await;
    let (bob_before, carol_before) = (unread(&bob, ab).await, unread(&carol, ac).await);

    // Each post publishes to the sender's and the recipient's channels and counts for the
    // recipient: keys of two slots, on two masters, in one request.
    for i in 0..3 {
        let e = alice.api.post_event(ab, &NewEvent::text(&key(&format!("ab-{i}")), &key("alice-bob"))).await.unwrap();
        assert_eq!(bob_ws.event_with_id(e.id).await.unwrap().kind, EventType::MsgText);
        assert_eq!(alice_ws.event_with_id(e.id).await.unwrap().box_id, ab);
    }
    for i in 0..2 {
        let e = alice.api.post_event(ac, &NewEvent::text(&key(&format!("ac-{i}")), &key("alice-carol"))).await.unwrap();
        assert_eq!(carol_ws.event_with_id(e.id).await.unwrap().box_id, ac);
    }
    assert_eq!(unread(&bob, ab).await, bob_before + 3);
    assert_eq!(unread(&carol, ac).await, carol_before + 2);
    // The counter lives on the recipient's master, beside its channel and history.
    let counter_key = KeyScheme::Cluster.counter(bob.id(), ab);
    let mut bob_node = cluster.node(bob.port).await;
    let stored: i64 = redis::cmd("GET").arg(&counter_key).query_async(&mut bob_node).await.unwrap();
    assert_eq!(stored, bob_before + 3);
    let history_len: i64 =
        redis::cmd("XLEN").arg(KeyScheme::Cluster.history(bob.id())).query_async(&mut bob_node).await.unwrap();
    assert!(history_len >= 3, "history of bob: {history_len}");

    // A websocket ack resets the counter (realtime) and is echoed to bob's sockets.
    let ack = serde_json::json!({"type": "ack", "object": {"sender_id": bob.id(), "box_id": ab}});
    bob_ws.send_text(ack.to_string()).await.unwrap();
    let echo = bob_ws.next_of(types::ACK).await.unwrap();
    assert_eq!(echo.object["box_id"], ab.to_string());
    assert_eq!(unread(&bob, ab).await, 0);

    // bob reconnects from the position of his first socket: the history on his master covers it
    // (the replay comes before `ready`), and `ready` is the newest entry there, the ack's echo.
    let since = bob_ws.ready.position.to_string();
    let mut again = Socket::connect(&sys.realtime.url(), bob.id(), &bob.login.auth(), Some(&since)).await.unwrap();
    assert_eq!(again.ready.recovered, Some(true));
    let newest: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
        .arg(KeyScheme::Cluster.history(bob.id()))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut bob_node)
        .await
        .unwrap();
    assert_eq!(again.ready.position.to_string(), newest[0].0);
    assert!(newest[0].1.iter().any(|(k, v)| k == "e" && v.contains(r#""type":"ack""#)));

    // bob logs out: realtime closes his sockets (4001, on his channel's master), boxes and
    // realtime refuse his token (the revocation notice on {auth}'s master), carol is unaffected.
    sys.bridge_api(&reqwest::Client::new()).logout(&bob.login.auth()).await.unwrap();
    assert_eq!(bob_ws.close_code(Duration::from_secs(5)).await.unwrap(), 4001);
    assert_eq!(again.close_code(Duration::from_secs(5)).await.unwrap(), 4001);
    assert_eq!(bob.api.joined_boxes().await.unwrap_err().status(), Some(401));
    assert!(Socket::connect(&sys.realtime.url(), bob.id(), &bob.login.auth(), None).await.is_err());
    let e = alice.api.post_event(ac, &NewEvent::text(&key("after"), &key("alice-carol"))).await.unwrap();
    assert_eq!(carol_ws.event_with_id(e.id).await.unwrap().box_id, ac);
    // The revocation keys share the {auth} slot.
    let auth_port = cluster.port_of("{auth}").await;
    let mut auth_node = cluster.node(auth_port).await;
    let revoked: i64 =
        redis::cmd("ZCARD").arg(KeyScheme::Cluster.revoked_sids()).query_async(&mut auth_node).await.unwrap();
    assert_eq!(revoked, 1);
}

#[tokio::test]
async fn a_lost_master_closes_only_the_sockets_it_served() {
    let cluster = PrivateCluster::start();
    let (sys, _users) = start(&cluster).await;
    // Two users away from the master of {auth}, so the revocation set stays loaded throughout.
    let auth_port = cluster.port_of("{auth}").await;
    let users = users_on_distinct_masters(&sys, &cluster, 3).await;
    let mut users: Vec<User> = users.into_iter().filter(|u| u.port != auth_port).collect();
    users.truncate(2);
    let [x, y] = <[User; 2]>::try_from(users).ok().unwrap();
    let mut x_ws = socket(&sys, &x).await;
    let mut y_ws = socket(&sys, &y).await;
    let xy = box_of(&x, &y, &mut y_ws, "x-y").await;

    cluster.kill(x.port);
    assert_eq!(x_ws.close_code(Duration::from_secs(5)).await.unwrap(), 1011);
    // y's master is still there: its socket stays open.
    assert!(!matches!(y_ws.next_within(Duration::from_secs(1)).await, Ok(None)), "y's socket was closed");

    cluster.revive(x.port).await;
    // x reconnects once realtime has its master's connection again.
    let mut x_ws = None;
    for _ in 0..100 {
        if let Ok(ws) = Socket::connect(&sys.realtime.url(), x.id(), &x.login.auth(), None).await {
            x_ws = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut x_ws = x_ws.expect("x reconnects");
    // Publishing is best effort: boxes' cluster connection may still be finding the revived
    // node, so a first message can be lost (and logged); a later one arrives.
    for attempt in 0.. {
        let e = y.api.post_event(xy, &NewEvent::text(&key(&format!("back-{attempt}")), &key("x-y"))).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(2), x_ws.event_with_id(e.id)).await {
            Ok(got) => {
                assert_eq!(got.unwrap().box_id, xy);
                break;
            }
            Err(_) if attempt < 5 => continue,
            Err(_) => panic!("nothing reached x after its master came back"),
        }
    }
}
