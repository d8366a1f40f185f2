//! Recovery on reconnect (issue 17): `ready` carries the history position, `?since=` replays
//! what was missed, in order, once, before live envelopes, on any process; `recovered:false` when
//! the history no longer covers the position.

use std::sync::Arc;
use std::time::Duration;

use domain::realtime::Ready;
use domain::IdentityId;
use serde_json::{json, Value};
use test_support::TestKeys;
use web_kit::history::HistoryLimits;

use crate::helpers::*;

fn envelope(n: usize) -> String {
    json!({"type": "event.new", "object": {"n": n}}).to_string()
}

fn number(text: &str) -> usize {
    let v: Value = serde_json::from_str(text).unwrap();
    v["object"]["n"].as_u64().unwrap_or_else(|| panic!("not a numbered envelope: {text}")) as usize
}

/// A socket reconnected with `?since=`: what was replayed before `ready` (as sent), `ready`, and
/// the stream for what follows.
struct Reconnected {
    replayed: Vec<String>,
    ready: Ready,
    ws: Ws,
}

impl TestApp {
    /// Reconnects from `since` through the typed client.
    async fn open_since(&self, s: &test_support::Session, since: &str) -> Reconnected {
        let mut socket = self.socket(s, Some(since)).await;
        assert_eq!(socket.ready.identity_id, s.identity, "{:?}", socket.ready);
        let (replayed, ready) = (socket.take_replayed(), socket.ready.clone());
        Reconnected { replayed, ready, ws: socket.into_inner() }
    }
}

impl Reconnected {
    /// `recovered` and the position of `ready`.
    fn ready_at(&self) -> (Option<bool>, String) {
        (self.ready.recovered, self.ready.position.to_string())
    }
}

/// Publishes `count` numbered envelopes from `first` into the history; their positions.
async fn publish_numbered(identity: IdentityId, first: usize, count: usize, limits: HistoryLimits) -> Vec<String> {
    let mut positions = Vec::new();
    for n in first..first + count {
        positions.push(publish_recorded(identity, &envelope(n), limits).await);
    }
    positions
}

/// Expects exactly `positions` (envelopes `first..`) replayed, then `ready` with
/// `recovered:true` at the last of them.
fn expect_recovered(r: &Reconnected, first: usize, positions: &[String]) {
    let expected: Vec<String> =
        positions.iter().enumerate().map(|(i, position)| positioned(&envelope(first + i), position)).collect();
    assert_eq!(r.replayed, expected);
    assert_eq!(r.ready_at(), (Some(true), positions.last().unwrap().clone()), "{:?}", r.ready);
}

#[tokio::test]
async fn a_client_offline_during_100_publishes_recovers_exactly_them_in_order() {
    let app = spawn_app().await;
    let s = app.session();
    let mut ws = app.open(&s).await;
    let limits = HistoryLimits::default();
    // Seen live before going offline: not replayed.
    let seen = publish_recorded(s.identity, &envelope(0), limits).await;
    assert_eq!(next_text(&mut ws, WAIT).await, Some(positioned(&envelope(0), &seen)));
    drop(ws);

    let missed = publish_numbered(s.identity, 1, 100, limits).await;
    let mut r = app.open_since(&s, &seen).await;
    expect_recovered(&r, 1, &missed);

    // Then live ones, and nothing twice.
    let live = publish_recorded(s.identity, &envelope(101), limits).await;
    assert_eq!(next_text(&mut r.ws, WAIT).await, Some(positioned(&envelope(101), &live)));
    expect_silence(&mut r.ws, Duration::from_millis(300)).await;

    // Reconnecting from the newest position replays nothing.
    let again = app.open_since(&s, &live).await;
    assert!(again.replayed.is_empty(), "{:?}", again.replayed);
    assert_eq!(again.ready_at(), (Some(true), live));
}

#[tokio::test]
async fn recovery_works_across_two_processes() {
    let keys = Arc::new(TestKeys::generate());
    let one = spawn_app_with(Arc::clone(&keys), |_| {}).await;
    let two = spawn_app_with(Arc::clone(&keys), |_| {}).await;
    let s = one.session();
    let mut on_one = one.open(&s).await;
    let limits = HistoryLimits::default();
    let seen = publish_recorded(s.identity, &envelope(0), limits).await;
    assert!(next_text(&mut on_one, WAIT).await.is_some());
    drop(on_one);

    let missed = publish_numbered(s.identity, 1, 100, limits).await;
    let mut on_two = two.open_since(&s, &seen).await;
    expect_recovered(&on_two, 1, &missed);
    // The ack echo realtime publishes is recorded too: another process replays it.
    let box_id = domain::BoxId::new_v4();
    let ack = json!({"type": "ack", "object": {"sender_id": s.identity, "box_id": box_id}});
    send_text(&mut on_two.ws, &ack.to_string()).await;
    let echo = next_text(&mut on_two.ws, WAIT).await.expect("ack echo");
    let position = domain::realtime::position_of(&echo).expect("echo position").to_string();
    let back_on_one = one.open_since(&s, missed.last().unwrap()).await;
    assert_eq!(back_on_one.replayed, [echo]);
    assert_eq!(back_on_one.ready_at(), (Some(true), position));
}

#[tokio::test]
async fn a_reconnection_racing_live_publishes_gets_each_envelope_once_in_order() {
    let app = spawn_app().await;
    let s = app.session();
    let mut first = app.open(&s).await;
    let identity = s.identity;
    let total = 400;
    let publisher = tokio::spawn(async move {
        for n in 0..total {
            publish_recorded(identity, &envelope(n), HistoryLimits::default()).await;
            if n % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let mut got = Vec::new();
    let mut last = String::new();
    while got.len() < 60 {
        let text = next_text(&mut first, WAIT).await.expect("live envelope");
        last = domain::realtime::position_of(&text).unwrap().to_string();
        got.push(number(&text));
    }
    drop(first);
    // The replay before `ready`, then live envelopes.
    let mut second = app.open_since(&s, &last).await;
    assert_eq!(second.ready.recovered, Some(true));
    got.extend(second.replayed.iter().map(|text| number(text)));
    while got.last() != Some(&(total - 1)) {
        let text = next_text(&mut second.ws, WAIT).await.expect("live envelope");
        got.push(number(&text));
    }
    publisher.await.unwrap();
    assert_eq!(got, (0..total).collect::<Vec<_>>());
    expect_silence(&mut second.ws, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_position_the_history_no_longer_covers_is_not_recovered() {
    let keys = Arc::new(TestKeys::generate());
    let app = spawn_app_with(Arc::clone(&keys), |s| s.replay_max = 50).await;
    let s = app.session();
    let ws = app.open(&s).await;
    drop(ws);
    let small = HistoryLimits { max_len: 10, max_age_ms: 600_000 };
    let first = publish_recorded(s.identity, &envelope(0), small).await;
    // Trimmed by length: Redis trims whole nodes of 100 entries, so publish a few of them.
    let positions = publish_numbered(s.identity, 1, 350, small).await;
    let mut r = app.open_since(&s, &first).await;
    assert!(r.replayed.is_empty(), "{:?}", r.replayed);
    assert_eq!(r.ready_at(), (Some(false), positions.last().unwrap().clone()), "{:?}", r.ready);
    // Live delivery goes on after a failed recovery.
    let live = publish_recorded(s.identity, &envelope(999), small).await;
    assert_eq!(next_text(&mut r.ws, WAIT).await, Some(positioned(&envelope(999), &live)));

    // Still in the history but more than the replay limit (50) after it.
    let from = positions[positions.len() - 60].clone();
    let r = app.open_since(&s, &from).await;
    assert!(r.replayed.is_empty(), "{:?}", r.replayed);
    assert_eq!(r.ready.recovered, Some(false));
    let from = positions[positions.len() - 30].clone();
    let r = app.open_since(&s, &from).await;
    assert_eq!(r.replayed.len(), 30);
    assert_eq!(r.replayed.last(), Some(&positioned(&envelope(999), &live)));
    assert_eq!(r.ready.recovered, Some(true));

    // The history lost (Redis restarted empty, or expired): a new one does not cover old positions.
    let mut conn = test_support::redis_conn().await;
    let _: () = redis::cmd("DEL").arg(format!("user_{}:history", s.identity)).query_async(&mut conn).await.unwrap();
    let r = app.open_since(&s, &live).await;
    assert!(r.replayed.is_empty(), "{:?}", r.replayed);
    assert_eq!(r.ready.recovered, Some(false));
    let fresh = r.ready.position.to_string();
    // A position from the future (another history) is not recovered either.
    let r = app.open_since(&s, "99999999999999-0").await;
    assert!(r.replayed.is_empty(), "{:?}", r.replayed);
    assert_eq!(r.ready.recovered, Some(false));
    // The new history's head is a real place: publishing after it is recovered.
    let after = publish_recorded(s.identity, &envelope(1000), small).await;
    let r = app.open_since(&s, &fresh).await;
    assert_eq!(r.replayed, [positioned(&envelope(1000), &after)]);
    assert_eq!(r.ready.recovered, Some(true));
}

#[tokio::test]
async fn a_malformed_since_is_refused_with_a_query_error() {
    let app = spawn_app().await;
    let s = app.session();
    for bad in ["abc", "1", "1-2-3", "-1-0", "123456789012345678901-0"] {
        let url = format!("{}?access_token={}&since={bad}", app.ws_url(s.identity), s.token);
        let (status, body) = refused(app.upgrade_request(&url).send().await.unwrap()).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["origin"], "query");
        assert_eq!(body["details"], json!({"since": "malformed"}));
    }
}
