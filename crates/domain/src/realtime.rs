//! Realtime envelopes (§5.9, §9.4) and the Redis names every service shares (§9.3, §6.4, §3.3).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{BoxId, IdentityId, SessionId};

/// `{"type": ..., "object": ...}`, the text of a websocket frame and of a Redis payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "type")]
    pub kind: String,
    pub object: Value,
}

impl Envelope {
    pub fn new(kind: &str, object: impl Serialize) -> Self {
        Envelope { kind: kind.to_owned(), object: serde_json::to_value(object).unwrap_or(Value::Null) }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The text of an envelope of `kind` around `object`, written straight from `object`: no
    /// JSON value of it is built first, which for an event means no copy of its ciphertext.
    pub fn text(kind: &str, object: &impl Serialize) -> String {
        #[derive(Serialize)]
        struct Text<'a, T> {
            #[serde(rename = "type")]
            kind: &'a str,
            object: &'a T,
        }
        serde_json::to_string(&Text { kind, object }).unwrap_or_default()
    }
}

/// Message types (§9.4) and the control message of §9.3.
pub mod types {
    pub const READY: &str = "ready";
    pub const EVENT_NEW: &str = "event.new";
    pub const BOX_DELETE: &str = "box.delete";
    pub const BOX_SETTINGS: &str = "box.settings";
    pub const ACK: &str = "ack";
    /// Its object is a [`crate::notification::Notification`].
    pub const NOTIFICATION: &str = "notification";
    pub const SESSION_REVOKED: &str = "session.revoked";
}

/// `user_{identity_id}:ws`.
pub fn user_channel(id: IdentityId) -> String {
    format!("user_{id}:ws")
}

/// The identity a channel name belongs to, if it is a user channel.
pub fn channel_identity(channel: &str) -> Option<IdentityId> {
    channel.strip_prefix("user_")?.strip_suffix(":ws").and_then(|s| IdentityId::parse(s).ok())
}

/// Unread counter of one identity in one box.
pub fn counter_key(identity: IdentityId, box_id: BoxId) -> String {
    format!("box_events_count:{identity}:{box_id}")
}

/// Revocation marker of a session, read by every token check.
pub fn revoked_sid_key(sid: SessionId) -> String {
    format!("auth:revoked_sid:{sid}")
}

/// Set by auth-bridge once every revocation marker still needed is in Redis. While it is absent
/// (a Redis that restarted empty) no verifier can tell a revoked session from a live one, so
/// every token check answers 503.
pub const REVOCATIONS_LOADED_KEY: &str = "auth:revocations_loaded";

/// Channel on which auth-bridge publishes every revoked session ([`revocation_notice`]); each
/// boxes and realtime process keeps the revoked sessions in memory from it.
pub const REVOCATIONS_CHANNEL: &str = "auth:revocations";

/// Sorted set of the revoked sessions whose tokens may still be valid: member the session id,
/// score the Unix time (seconds) after which no access token of the session is accepted. Written
/// with each marker; a verifier reads it in full after each (re)subscription to
/// [`REVOCATIONS_CHANNEL`].
pub const REVOKED_SIDS_KEY: &str = "auth:revoked_sids";

/// The payload published on [`REVOCATIONS_CHANNEL`]: one line `{sid} {until}` per session, `until`
/// being its score in [`REVOKED_SIDS_KEY`].
pub fn revocation_notice(revoked: &[(SessionId, i64)]) -> String {
    let lines: Vec<String> = revoked.iter().map(|(sid, until)| format!("{sid} {until}")).collect();
    lines.join("\n")
}

/// The sessions of a [`revocation_notice`]; malformed lines are skipped.
pub fn parse_revocation_notice(payload: &str) -> Vec<(SessionId, i64)> {
    payload
        .lines()
        .filter_map(|line| {
            let (sid, until) = line.trim().split_once(' ')?;
            Some((SessionId::parse(sid).ok()?, until.trim().parse().ok()?))
        })
        .collect()
}

/// How the shared Redis names are spelt: as above on a single Redis, or with hash tags on a Redis
/// Cluster, where the keys one script or one read touches must share a slot.
///
/// On a cluster every key of one identity carries the tag of its channel, `{user_{id}:ws}`, so its
/// history, its counters and its channel live in one slot: the publish script appends to the
/// history and `SPUBLISH`es on the channel on one node, and the counters of one identity are read
/// with one `MGET`. The revocation names carry the tag `{auth}`: the set, each marker, the loaded
/// marker and the revocation channel live on one node, whose restart auth-bridge detects by its
/// `run_id` as it does on a single Redis. The channel names of [`user_channel`] are the same in
/// both schemes; on a cluster they are shard channels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyScheme {
    #[default]
    Single,
    Cluster,
}

impl KeyScheme {
    /// History of an identity ([`history_key`] on a single Redis).
    pub fn history(self, id: IdentityId) -> String {
        match self {
            KeyScheme::Single => history_key(id),
            KeyScheme::Cluster => format!("{{{}}}:history", user_channel(id)),
        }
    }

    /// Unread counter of one identity in one box ([`counter_key`] on a single Redis).
    pub fn counter(self, identity: IdentityId, box_id: BoxId) -> String {
        match self {
            KeyScheme::Single => counter_key(identity, box_id),
            KeyScheme::Cluster => format!("box_events_count:{{{}}}:{box_id}", user_channel(identity)),
        }
    }

    /// Revocation marker of a session ([`revoked_sid_key`] on a single Redis).
    pub fn revoked_sid(self, sid: SessionId) -> String {
        match self {
            KeyScheme::Single => revoked_sid_key(sid),
            KeyScheme::Cluster => format!("{{auth}}:revoked_sid:{sid}"),
        }
    }

    /// [`REVOKED_SIDS_KEY`].
    pub fn revoked_sids(self) -> &'static str {
        match self {
            KeyScheme::Single => REVOKED_SIDS_KEY,
            KeyScheme::Cluster => "{auth}:revoked_sids",
        }
    }

    /// [`REVOCATIONS_LOADED_KEY`].
    pub fn revocations_loaded(self) -> &'static str {
        match self {
            KeyScheme::Single => REVOCATIONS_LOADED_KEY,
            KeyScheme::Cluster => "{auth}:revocations_loaded",
        }
    }

    /// Marks a reload of the revocations in progress (auth-bridge); in the slot of the others.
    pub fn revocations_loading(self) -> &'static str {
        match self {
            KeyScheme::Single => "auth:revocations_loading",
            KeyScheme::Cluster => "{auth}:revocations_loading",
        }
    }

    /// [`REVOCATIONS_CHANNEL`]; a shard channel on a cluster.
    pub fn revocations_channel(self) -> &'static str {
        match self {
            KeyScheme::Single => REVOCATIONS_CHANNEL,
            KeyScheme::Cluster => "{auth}:revocations",
        }
    }

    /// The publish command: `PUBLISH`, or `SPUBLISH` to a shard channel on a cluster, so a
    /// message travels to the nodes of its slot only instead of to every node.
    pub fn publish(self) -> &'static str {
        match self {
            KeyScheme::Single => "PUBLISH",
            KeyScheme::Cluster => "SPUBLISH",
        }
    }

    /// `SUBSCRIBE` or `SSUBSCRIBE`.
    pub fn subscribe(self) -> &'static str {
        match self {
            KeyScheme::Single => "SUBSCRIBE",
            KeyScheme::Cluster => "SSUBSCRIBE",
        }
    }

    /// `UNSUBSCRIBE` or `SUNSUBSCRIBE`.
    pub fn unsubscribe(self) -> &'static str {
        match self {
            KeyScheme::Single => "UNSUBSCRIBE",
            KeyScheme::Cluster => "SUNSUBSCRIBE",
        }
    }
}

/// `ready` (§9.1): the identity, the history position everything delivered after it follows, and
/// whether a `?since=` reconnection was recovered (`null` when none was asked for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub identity_id: IdentityId,
    pub position: Position,
    pub recovered: Option<bool>,
}

/// Redis stream of the envelopes published for one identity, for recovery on reconnect.
pub fn history_key(id: IdentityId) -> String {
    format!("user_{id}:history")
}

/// A place in an identity's history: the Redis stream entry id `<ms>-<seq>`. Ordered like the
/// history; written canonically (no leading zeros), so two spellings of one place compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub ms: u64,
    pub seq: u64,
}

impl Position {
    /// `<ms>-<seq>`, both decimal, at most 20 digits each.
    pub fn parse(s: &str) -> Option<Position> {
        let (ms, seq) = s.split_once('-')?;
        let digits = |p: &str| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(Position { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Position::parse(&s).ok_or_else(|| serde::de::Error::custom("malformed position"))
    }
}

const POSITION_FIELD: &str = ",\"position\":\"";

/// The envelope text with its history position added as a last top-level field, as the
/// publishing script writes it; text that is not a JSON object is left as is.
pub fn with_position(envelope: &str, position: &str) -> String {
    match envelope.strip_suffix('}') {
        Some(head) => format!("{head}{POSITION_FIELD}{position}\"}}"),
        None => envelope.to_owned(),
    }
}

/// The position [`with_position`] added to an envelope text, if any.
pub fn position_of(envelope: &str) -> Option<Position> {
    let head = envelope.strip_suffix("\"}")?;
    let at = head.rfind(POSITION_FIELD)?;
    Position::parse(&head[at + POSITION_FIELD.len()..])
}

const TRACE_FIELD: &str = ",\"trace\":\"";

/// Splits a published text into what clients get and the trace context the publisher added
/// (`"trace":"<traceparent>"`, the last field or just before the position, see `with_position`).
/// A text without one, or whose `trace` is not exactly in that place and shape, is left whole.
pub fn split_trace(published: &str) -> (std::borrow::Cow<'_, str>, Option<&str>) {
    let whole = (std::borrow::Cow::Borrowed(published), None);
    let Some(at) = published.rfind(TRACE_FIELD) else { return whole };
    let rest = &published[at + TRACE_FIELD.len()..];
    let Some(end) = rest.find('"') else { return whole };
    let (trace, after) = (&rest[..end], &rest[end + 1..]);
    let trace_like = trace.len() == 55 && trace.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit());
    let tail_ok = after == "}"
        || after
            .strip_prefix(POSITION_FIELD)
            .and_then(|p| p.strip_suffix("\"}"))
            .is_some_and(|p| Position::parse(p).is_some());
    if !trace_like || !tail_ok {
        return whole;
    }
    (std::borrow::Cow::Owned(format!("{}{after}", &published[..at])), Some(trace))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxDelete {
    pub id: BoxId,
    pub sender_id: IdentityId,
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub sender_id: IdentityId,
    pub box_id: BoxId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRevoked {
    pub sid: SessionId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_written_from_its_object_reads_as_the_envelope() {
        #[derive(Serialize)]
        struct Object<'a> {
            box_id: &'a str,
            content: Option<Value>,
        }
        let object = Object { box_id: "b", content: Some(serde_json::json!({"encrypted": "YWJj\"\n"})) };
        let text = Envelope::text(types::EVENT_NEW, &object);
        let read: Envelope = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(read, Envelope::new(types::EVENT_NEW, &object));
    }

    #[test]
    fn names() {
        let id = IdentityId::parse("74ee16b5-89be-44f7-bcdd-117f496a90a7").unwrap_or_else(|_| IdentityId::new_v4());
        assert_eq!(user_channel(id), "user_74ee16b5-89be-44f7-bcdd-117f496a90a7:ws");
        assert_eq!(channel_identity(&user_channel(id)), Some(id));
        assert_eq!(channel_identity("other"), None);
    }

    #[test]
    fn cluster_names_tag_the_keys_read_or_written_together() {
        let id = IdentityId::parse("74ee16b5-89be-44f7-bcdd-117f496a90a7").unwrap_or_else(|_| IdentityId::new_v4());
        let b = BoxId::new_v4();
        let c = KeyScheme::Cluster;
        assert_eq!(c.history(id), "{user_74ee16b5-89be-44f7-bcdd-117f496a90a7:ws}:history");
        assert_eq!(c.counter(id, b), format!("box_events_count:{{user_74ee16b5-89be-44f7-bcdd-117f496a90a7:ws}}:{b}"));
        assert_eq!(KeyScheme::Single.history(id), history_key(id));
        assert_eq!(KeyScheme::Single.counter(id, b), counter_key(id, b));
        let sid = SessionId::new_v4();
        assert_eq!(KeyScheme::Single.revoked_sid(sid), revoked_sid_key(sid));
        for key in [c.revoked_sid(sid).as_str(), c.revoked_sids(), c.revocations_loaded(), c.revocations_channel()] {
            assert!(key.starts_with("{auth}:"), "{key}");
        }
    }

    #[test]
    fn revocation_notices_round_trip_and_skip_bad_lines() {
        let (a, b) = (SessionId::new_v4(), SessionId::new_v4());
        let notice = revocation_notice(&[(a, 1_700_000_000), (b, 1_700_000_060)]);
        assert_eq!(parse_revocation_notice(&notice), vec![(a, 1_700_000_000), (b, 1_700_000_060)]);
        let noisy = format!("garbage\n{a} soon\n{b} 42\n");
        assert_eq!(parse_revocation_notice(&noisy), vec![(b, 42)]);
    }

    #[test]
    fn positions_parse_order_and_ride_on_envelopes() {
        let p = Position::parse("1700000000000-3").unwrap_or(Position { ms: 0, seq: 0 });
        assert_eq!(p.to_string(), "1700000000000-3");
        assert_eq!(Position::parse("0017-01").map(|p| p.to_string()).as_deref(), Some("17-1"));
        assert!(Position::parse("17-2") > Position::parse("17-1"));
        assert!(Position::parse("18-0") > Position::parse("17-9"));
        for bad in
            ["", "1", "-1", "1-", "a-1", "1-1-1", "1 -1", "+1-1", "123456789012345678901-0", "18446744073709551616-0"]
        {
            assert_eq!(Position::parse(bad), None, "{bad}");
        }
        let e = with_position(r#"{"type":"ack","object":{"a":"}"}}"#, "5-2");
        assert_eq!(e, r#"{"type":"ack","object":{"a":"}"},"position":"5-2"}"#);
        assert!(serde_json::from_str::<Value>(&e).is_ok());
        assert_eq!(position_of(&e), Position::parse("5-2"));
        assert_eq!(position_of(r#"{"type":"ack","object":{}}"#), None);
        assert_eq!(with_position("not json", "5-2"), "not json");
    }

    #[test]
    fn traces_are_split_off_published_texts() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let plain = r#"{"type":"ack","object":{"trace":"x"},"position":"5-2"}"#;
        let traced = format!(r#"{{"type":"ack","object":{{"trace":"x"}},"trace":"{tp}","position":"5-2"}}"#);
        let (text, trace) = split_trace(&traced);
        assert_eq!((text.as_ref(), trace), (plain, Some(tp)));
        let last = format!(r#"{{"type":"ack","object":{{}},"trace":"{tp}"}}"#);
        let (text, trace) = split_trace(&last);
        assert_eq!((text.as_ref(), trace), (r#"{"type":"ack","object":{}}"#, Some(tp)));
        for untouched in [
            plain.to_owned(),
            format!(r#"{{"type":"ack","object":{{"a":1,"trace":"{tp}"}}}}"#),
            format!(r#"{{"type":"ack","object":{{}},"trace":"{tp}","position":"x"}}"#),
            r#"{"type":"ack","object":{},"trace":"short","position":"5-2"}"#.to_owned(),
        ] {
            assert_eq!(split_trace(&untouched), (std::borrow::Cow::Borrowed(untouched.as_str()), None), "{untouched}");
        }
    }

    #[test]
    fn envelope_shape() {
        let e = Envelope::new(types::ACK, Ack { sender_id: IdentityId::new_v4(), box_id: BoxId::new_v4() });
        let v: Value = serde_json::from_str(&e.to_json()).unwrap_or_default();
        assert_eq!(v["type"], "ack");
        assert!(v["object"]["sender_id"].is_string());
    }
}
