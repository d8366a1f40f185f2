//! Two boxes and two realtime processes of one deployment, with no proxy in front of them:
//! clients post through either boxes process and hold sockets on either realtime process. Every
//! delivery reaches every socket of every member exactly once, whichever processes the post and
//! the socket went through; unread counters and acks hold across processes; and a logout takes
//! effect on every process within one second.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use boxes_client::body::{NewBox, NewEvent};
use boxes_client::{Boxes, Error, Login, Socket};
use domain::event::{Event, EventType};
use domain::realtime::{types, Envelope};
use domain::{BoxId, EventId, IdentityId};
use e2e::system::{Options, System};

const KEY: &str = "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw";
/// How soon a logout must hold everywhere.
const REVOCATION_BOUND: Duration = Duration::from_secs(1);
/// How long a socket is read past its last expected message, for duplicates to show.
const QUIET: Duration = Duration::from_millis(300);

/// One open socket: whose, on which realtime process, and of which session.
struct Held {
    name: &'static str,
    identity: IdentityId,
    realtime: usize,
    socket: Socket,
}

/// What one socket received until it had `want` `event.new` messages and then stayed quiet.
#[derive(Default)]
struct Received {
    events: Vec<Event>,
    others: Vec<Envelope>,
}

async fn receive(socket: &mut Socket, want: usize) -> Received {
    let mut got = Received::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let wait = if got.events.len() >= want { QUIET } else { deadline - now };
        match socket.next_within(wait).await {
            Ok(Some(e)) if e.kind == types::EVENT_NEW => got.events.push(serde_json::from_value(e.object).unwrap()),
            Ok(Some(e)) => got.others.push(e),
            Ok(None) => panic!("a socket closed while receiving"),
            // Nothing within `wait`: quiet after the last expected message, or the deadline.
            Err(_) => break,
        }
    }
    got
}

/// Reads every socket at once; results in the order of `held`.
async fn receive_all(held: &mut [Held], want: impl Fn(&Held) -> usize) -> Vec<Received> {
    let wants: Vec<usize> = held.iter().map(&want).collect();
    futures_util::future::join_all(held.iter_mut().zip(wants).map(|(h, w)| receive(&mut h.socket, w))).await
}

/// Polls `check` every 20 ms until it holds or `bound` has passed since `from`; the time it took.
async fn within<F, Fut>(from: Instant, bound: Duration, check: F) -> Option<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if check().await {
            return Some(from.elapsed());
        }
        if from.elapsed() > bound {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The HTTP status with which a websocket handshake was refused.
fn handshake_status(e: &Error) -> Option<u16> {
    match e {
        Error::Socket(tokio_tungstenite::tungstenite::Error::Http(res)) => Some(res.status().as_u16()),
        _ => None,
    }
}

#[tokio::test]
async fn two_boxes_and_two_realtime_processes_serve_every_client_once() {
    let people =
        ["alice", "bob", "carol", "dave"].map(|r| format!(r#"{{"reference":"{r}","email":"{r}@example.com"}}"#));
    let fixture = e2e::temp_file(&format!("[{}]", people.join(",")));
    let fixture_path = fixture.path().display().to_string();
    let sys = System::start_with(Options { hostapp: &[("REF_USERS_FILE", &fixture_path)], ..Default::default() }).await;
    let (boxes_b, realtime_b) = tokio::join!(sys.start_boxes(), sys.start_realtime());
    let http = reqwest::Client::new();
    let boxes = [Boxes::new(http.clone(), &sys.boxes.url()), Boxes::new(http.clone(), &boxes_b.url())];
    let realtimes = [sys.realtime.url(), realtime_b.url()];

    // bob logs in twice: he logs out of the first session and keeps the second.
    let (alice, bob, bob_kept, carol, dave) = tokio::join!(
        sys.login(&http, "alice"),
        sys.login(&http, "bob"),
        sys.login(&http, "bob"),
        sys.login(&http, "carol"),
        sys.login(&http, "dave"),
    );
    assert_eq!(bob.identity(), bob_kept.identity());
    let users: [(&'static str, &Login); 4] = [("alice", &alice), ("bob", &bob), ("carol", &carol), ("dave", &dave)];
    let as_user = |user: &Login, process: usize| boxes[process % 2].as_user(user.auth());

    // Box "all": alice's, with every user; box "pair": carol's, with bob. Each step goes through
    // the other boxes process than the one before.
    let all = as_user(&alice, 0).create_box(&NewBox::new("All", KEY)).await.unwrap().id;
    for (i, (_, member)) in users.iter().enumerate().skip(1) {
        as_user(&alice, i).add_member(all, member.identity(), member.auth()).await.unwrap();
    }
    let pair = as_user(&carol, 1).create_box(&NewBox::new("Pair", KEY)).await.unwrap().id;
    as_user(&carol, 0).add_member(pair, bob.identity(), bob.auth()).await.unwrap();
    let members: HashMap<BoxId, Vec<IdentityId>> =
        [(all, users.iter().map(|(_, u)| u.identity()).collect()), (pair, vec![carol.identity(), bob.identity()])]
            .into();
    // The joins counted: start every counter from zero.
    for (i, (b, ids)) in members.iter().enumerate() {
        for (j, id) in ids.iter().enumerate() {
            let user = users.iter().find(|(_, u)| u.identity() == *id).unwrap().1;
            as_user(user, i + j).ack(*b, *id).await.unwrap();
        }
    }

    // Every user holds a socket on each realtime process; bob one per session on each.
    let mut held = Vec::new();
    let sessions = users.iter().map(|(n, u)| (*n, *u)).chain([("bob (kept)", &bob_kept)]);
    for (name, user) in sessions {
        for (realtime, url) in realtimes.iter().enumerate() {
            let socket = Socket::connect(url, user.identity(), &user.auth(), None).await.unwrap();
            held.push(Held { name, identity: user.identity(), realtime, socket });
        }
    }

    // 24 messages posted at once, alternately through boxes A and B, two in three into "all",
    // by each member in turn.
    let posts = (0..24usize).map(|i| {
        let b = if i % 3 == 2 { pair } else { all };
        let sender = members[&b][i % members[&b].len()];
        let user = users.iter().find(|(_, u)| u.identity() == sender).unwrap().1;
        let api = as_user(user, i);
        async move {
            let event = api.post_event(b, &NewEvent::text(&format!("bWVzc2FnZS{i:02}"), KEY)).await.unwrap();
            (b, sender, event.id)
        }
    });
    let posted: Vec<(BoxId, IdentityId, EventId)> = futures_util::future::join_all(posts).await;
    let expected = |identity: IdentityId| -> BTreeMap<EventId, usize> {
        posted.iter().filter(|(b, _, _)| members[b].contains(&identity)).map(|(_, _, id)| (*id, 1)).collect()
    };
    let received = receive_all(&mut held, |h| expected(h.identity).len()).await;
    for (h, got) in held.iter().zip(&received) {
        let mut counts = BTreeMap::new();
        for e in &got.events {
            assert_eq!(e.kind, EventType::MsgText);
            *counts.entry(e.id).or_insert(0usize) += 1;
        }
        assert_eq!(
            counts,
            expected(h.identity),
            "{}'s socket on realtime {} did not receive each of its boxes' messages exactly once",
            h.name,
            h.realtime
        );
        assert!(got.others.is_empty(), "{} got unexpected messages: {:?}", h.name, got.others);
    }

    // Unread counters: each member's count of the messages others posted, the same through both
    // boxes processes.
    for (name, user) in users {
        let id = user.identity();
        for (b, ids) in &members {
            if !ids.contains(&id) {
                continue;
            }
            let want = posted.iter().filter(|(pb, sender, _)| pb == b && *sender != id).count() as i64;
            for process in 0..2 {
                let api = &as_user(user, process);
                let counted = within(Instant::now(), Duration::from_secs(2), || async move {
                    api.get_box(*b).await.unwrap().events_count == want
                })
                .await;
                let count = api.get_box(*b).await.unwrap().events_count;
                assert!(counted.is_some(), "{name}'s counter of {b} through boxes {process}: {count}, not {want}");
            }
        }
    }

    // bob acks "all" through boxes B: all four of his sockets, on both realtime processes, are
    // told once, and boxes A reads the counter as zero.
    as_user(&bob, 1).ack(all, bob.identity()).await.unwrap();
    // carol acks "pair" on her socket on realtime B: her sockets on both processes are told.
    let carol_b = held.iter_mut().find(|h| h.name == "carol" && h.realtime == 1).unwrap();
    let ack = serde_json::json!({"type": "ack", "object": {"sender_id": carol.identity(), "box_id": pair}});
    carol_b.socket.send_text(ack.to_string()).await.unwrap();
    let received = receive_all(&mut held, |_| 0).await;
    for (h, got) in held.iter().zip(&received) {
        let want: Vec<BoxId> = match h.name {
            "bob" | "bob (kept)" => vec![all],
            "carol" => vec![pair],
            _ => vec![],
        };
        let acks: Vec<BoxId> = got
            .others
            .iter()
            .map(|e| {
                assert_eq!(e.kind, types::ACK, "{} got {e:?}", h.name);
                assert_eq!(e.object["sender_id"], h.identity.to_string());
                serde_json::from_value(e.object["box_id"].clone()).unwrap()
            })
            .collect();
        assert_eq!(acks, want, "acks on {}'s socket on realtime {}", h.name, h.realtime);
        assert!(got.events.is_empty());
    }
    for process in 0..2 {
        assert_eq!(as_user(&bob, process).get_box(all).await.unwrap().events_count, 0);
        assert_eq!(as_user(&carol, process).get_box(pair).await.unwrap().events_count, 0);
        assert_ne!(as_user(&bob, process).get_box(pair).await.unwrap().events_count, 0);
        assert_ne!(as_user(&carol, process).get_box(all).await.unwrap().events_count, 0);
    }

    // bob logs out of his first session: within a second both boxes processes refuse it and both
    // realtime processes close its sockets.
    sys.bridge_api(&http).logout(&bob.auth()).await.unwrap();
    let out = Instant::now();
    for (process, api) in boxes.iter().enumerate() {
        let api = api.as_user(bob.auth());
        let api = &api;
        let refused = within(out, REVOCATION_BOUND, || async move {
            api.joined_boxes().await.err().and_then(|e| e.status()) == Some(401)
        })
        .await;
        assert!(refused.is_some(), "boxes {process} still accepts the revoked session after {REVOCATION_BOUND:?}");
    }
    let revoked: Vec<&mut Held> = held.iter_mut().filter(|h| h.name == "bob").collect();
    assert_eq!(revoked.len(), 2);
    let closes = futures_util::future::join_all(revoked.into_iter().map(|h| async move {
        let left = REVOCATION_BOUND.saturating_sub(out.elapsed());
        (h.realtime, h.socket.close_code(left).await.ok())
    }))
    .await;
    for (realtime, code) in closes {
        assert_eq!(code, Some(4001), "realtime {realtime} did not close the revoked session's socket in time");
    }
    for url in &realtimes {
        let refused = Socket::connect(url, bob.identity(), &bob.auth(), None).await.err();
        assert_eq!(refused.as_ref().and_then(handshake_status), Some(401), "{url} answered {refused:?}");
    }

    // bob's other session is untouched: both boxes processes serve it and its sockets still
    // receive what alice posts.
    for process in 0..2 {
        assert_eq!(as_user(&bob_kept, process).joined_boxes().await.unwrap().len(), 2);
    }
    let last = as_user(&alice, 1).post_event(all, &NewEvent::text("bGFzdA", KEY)).await.unwrap();
    held.retain(|h| h.name != "bob");
    let received = receive_all(&mut held, |_| 1).await;
    for (h, got) in held.iter().zip(&received) {
        let ids: Vec<EventId> = got.events.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![last.id], "{}'s socket on realtime {}", h.name, h.realtime);
    }
}
