//! Realtime envelopes (§5.9, §9.4) and the Redis names every service shares (§9.3, §6.4, §3.3).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{BoxId, IdentityId, SessionId};
use crate::time::Timestamp;

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
}

/// Message types (§9.4) and the control message of §9.3.
pub mod types {
    pub const READY: &str = "ready";
    pub const EVENT_NEW: &str = "event.new";
    pub const BOX_DELETE: &str = "box.delete";
    pub const BOX_SETTINGS: &str = "box.settings";
    pub const ACK: &str = "ack";
    pub const NOTIFICATION: &str = "notification";
    pub const SESSION_REVOKED: &str = "session.revoked";
}

/// Notification types carried in `notification` envelopes.
pub mod notifications {
    pub const BOX_AUTO_INVITE: &str = "box.auto_invite";
    pub const MEMBER_KICK: &str = "member.kick";
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub identity_id: IdentityId,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: uuid::Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub details: Value,
    pub created_at: Timestamp,
}

impl Notification {
    pub fn auto_invite(box_id: BoxId, box_title: &str, cryptoaction_id: crate::ids::CryptoActionId) -> Self {
        Notification {
            id: uuid::Uuid::new_v4(),
            kind: notifications::BOX_AUTO_INVITE.to_owned(),
            details: serde_json::json!({"box_id": box_id, "box_title": box_title, "cryptoaction_id": cryptoaction_id}),
            created_at: Timestamp::now(),
        }
    }

    pub fn kicked(box_id: BoxId, box_title: &str) -> Self {
        Notification {
            id: uuid::Uuid::new_v4(),
            kind: notifications::MEMBER_KICK.to_owned(),
            details: serde_json::json!({"box_id": box_id, "box_title": box_title}),
            created_at: Timestamp::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let id = IdentityId::parse("74ee16b5-89be-44f7-bcdd-117f496a90a7").unwrap_or_else(|_| IdentityId::new_v4());
        assert_eq!(user_channel(id), "user_74ee16b5-89be-44f7-bcdd-117f496a90a7:ws");
        assert_eq!(channel_identity(&user_channel(id)), Some(id));
        assert_eq!(channel_identity("other"), None);
    }

    #[test]
    fn envelope_shape() {
        let e = Envelope::new(types::ACK, Ack { sender_id: IdentityId::new_v4(), box_id: BoxId::new_v4() });
        let v: Value = serde_json::from_str(&e.to_json()).unwrap_or_default();
        assert_eq!(v["type"], "ack");
        assert!(v["object"]["sender_id"].is_string());
    }
}
