//! Stored notifications (issue 17, beside §6.4 and §9.4): what happened to an identity rather
//! than in a box it can still read. Each one is stored for its identity and pushed as the object
//! of a `notification` envelope; the listing adds whether it was acknowledged.
//!
//! `details` hold ids and the box title (plaintext metadata, §1.4), never ciphertext.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ErrorBody;
use crate::ids::{BoxId, CryptoActionId, NotificationId};
use crate::input::{Obj, Report};
use crate::time::Timestamp;

/// The kinds of notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum NotificationType {
    /// Invited to a box: `access.add` with `auto_invite`, or a contact box (§7.11).
    #[serde(rename = "box.auto_invite")]
    AutoInvite,
    /// Removed from a box because no access rule lets it in any more (§6.3 `access.rm`).
    #[serde(rename = "member.kick")]
    Kicked,
    /// A box it was a member of, or invited to, was deleted (§7.6).
    #[serde(rename = "box.delete")]
    BoxDeleted,
    /// The rule of its invitation was removed before it joined, and nothing else lets it join.
    #[serde(rename = "box.access_lost")]
    AccessLost,
}

impl NotificationType {
    pub const ALL: [NotificationType; 4] = [
        NotificationType::AutoInvite,
        NotificationType::Kicked,
        NotificationType::BoxDeleted,
        NotificationType::AccessLost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::AutoInvite => "box.auto_invite",
            NotificationType::Kicked => "member.kick",
            NotificationType::BoxDeleted => "box.delete",
            NotificationType::AccessLost => "box.access_lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A notification about to be stored: its kind and details; the store gives it an id and a time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub kind: NotificationType,
    pub details: Value,
}

impl NewNotification {
    /// `{box_id, box_title, cryptoaction_id}` (§9.4).
    pub fn auto_invite(box_id: BoxId, box_title: &str, cryptoaction_id: CryptoActionId) -> Self {
        NewNotification {
            kind: NotificationType::AutoInvite,
            details: json!({"box_id": box_id, "box_title": box_title, "cryptoaction_id": cryptoaction_id}),
        }
    }

    /// `{box_id, box_title}` (§9.4).
    pub fn kicked(box_id: BoxId, box_title: &str) -> Self {
        Self::about_box(NotificationType::Kicked, box_id, box_title)
    }

    /// `{box_id, box_title}`.
    pub fn box_deleted(box_id: BoxId, box_title: &str) -> Self {
        Self::about_box(NotificationType::BoxDeleted, box_id, box_title)
    }

    /// `{box_id, box_title}`.
    pub fn access_lost(box_id: BoxId, box_title: &str) -> Self {
        Self::about_box(NotificationType::AccessLost, box_id, box_title)
    }

    fn about_box(kind: NotificationType, box_id: BoxId, box_title: &str) -> Self {
        NewNotification { kind, details: json!({"box_id": box_id, "box_title": box_title}) }
    }
}

/// A stored notification: the object of a `notification` envelope (§9.4), whose `id` is the one
/// to acknowledge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notification {
    pub id: NotificationId,
    #[serde(rename = "type")]
    pub kind: NotificationType,
    #[schema(value_type = Object)]
    pub details: Value,
    pub created_at: Timestamp,
}

/// One item of `GET /identities/{id}/notifications`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListedNotification {
    #[serde(flatten)]
    pub notification: Notification,
    pub acknowledged: bool,
}

/// `PUT /identities/{id}/notifications/acknowledgement` body: `{"until_id": uuid}` acknowledges
/// that notification and every older one of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acknowledgement {
    pub until_id: NotificationId,
}

impl Acknowledgement {
    pub fn parse(body: &Value) -> Result<Self, ErrorBody> {
        let obj = Obj::body(body)?;
        let mut r = Report::new();
        let until_id = obj.id::<NotificationId>("until_id", true, &mut r);
        r.finish(until_id.map(|until_id| Acknowledgement { until_id }))
    }
}

/// Default and maximum page size of the listing (§2.5 conventions).
pub const LIST_DEFAULT: i64 = 20;
pub const LIST_MAX: i64 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_through_their_names() {
        for t in NotificationType::ALL {
            assert_eq!(NotificationType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).ok(), Some(Value::String(t.as_str().to_owned())));
        }
        assert_eq!(NotificationType::parse("box.kick"), None);
    }

    #[test]
    fn listed_notifications_flatten_the_envelope_object() {
        let n = ListedNotification {
            notification: Notification {
                id: NotificationId::new_v4(),
                kind: NotificationType::Kicked,
                details: NewNotification::kicked(BoxId::new_v4(), "T").details,
                created_at: Timestamp::now(),
            },
            acknowledged: false,
        };
        let v = serde_json::to_value(&n).unwrap_or_default();
        let mut keys: Vec<&str> = v.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        keys.sort_unstable();
        assert_eq!(keys, ["acknowledged", "created_at", "details", "id", "type"]);
        assert_eq!(v["type"], "member.kick");
        assert_eq!(v["details"]["box_title"], "T");
    }

    #[test]
    fn acknowledgements_need_one_well_formed_id() {
        let id = NotificationId::new_v4();
        let ok = Acknowledgement::parse(&json!({"until_id": id.to_string(), "other": 1}));
        assert_eq!(ok.ok(), Some(Acknowledgement { until_id: id }));
        let detail = |v: Value| Acknowledgement::parse(&v).err().and_then(|e| e.details.get("until_id").cloned());
        assert_eq!(detail(json!({})).as_deref(), Some("required"));
        assert_eq!(detail(json!({"until_id": null})).as_deref(), Some("required"));
        assert_eq!(detail(json!({"until_id": "x\u{0}"})).as_deref(), Some("malformed"));
        assert_eq!(detail(json!({"until_id": 7})).as_deref(), Some("malformed"));
        let body = Acknowledgement::parse(&json!([])).err().and_then(|e| e.details.get("body").cloned());
        assert_eq!(body.as_deref(), Some("malformed"));
    }
}
