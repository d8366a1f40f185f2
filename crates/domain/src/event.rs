//! Box events (§5.5, §6): the type catalogue, the typed contents and the rules for posting them.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::b64::{limits, B64u, B64};
use crate::boxes::{read_invitation, read_invitations, AccessMode};
use crate::error::{Detail, ErrorBody};
use crate::identity::IdentityView;
use crate::ids::{BoxId, EventId, IdentityId};
use crate::input::{Obj, Report};
use crate::keyshare::NewKeyShare;
use crate::time::Timestamp;
use crate::userdata::{E164Phone, Email, EmailDomain};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "create")]
    Create,
    #[serde(rename = "msg.text")]
    MsgText,
    #[serde(rename = "msg.file")]
    MsgFile,
    #[serde(rename = "msg.edit")]
    MsgEdit,
    #[serde(rename = "msg.delete")]
    MsgDelete,
    #[serde(rename = "member.join")]
    MemberJoin,
    #[serde(rename = "member.leave")]
    MemberLeave,
    #[serde(rename = "member.kick")]
    MemberKick,
    #[serde(rename = "state.access_mode")]
    StateAccessMode,
    #[serde(rename = "state.key_share")]
    StateKeyShare,
    #[serde(rename = "access.add")]
    AccessAdd,
    #[serde(rename = "access.rm")]
    AccessRm,
}

impl EventType {
    pub const ALL: [EventType; 12] = [
        EventType::Create,
        EventType::MsgText,
        EventType::MsgFile,
        EventType::MsgEdit,
        EventType::MsgDelete,
        EventType::MemberJoin,
        EventType::MemberLeave,
        EventType::MemberKick,
        EventType::StateAccessMode,
        EventType::StateKeyShare,
        EventType::AccessAdd,
        EventType::AccessRm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Create => "create",
            EventType::MsgText => "msg.text",
            EventType::MsgFile => "msg.file",
            EventType::MsgEdit => "msg.edit",
            EventType::MsgDelete => "msg.delete",
            EventType::MemberJoin => "member.join",
            EventType::MemberLeave => "member.leave",
            EventType::MemberKick => "member.kick",
            EventType::StateAccessMode => "state.access_mode",
            EventType::StateKeyShare => "state.key_share",
            EventType::AccessAdd => "access.add",
            EventType::AccessRm => "access.rm",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Appears in lists, `last_event` and counts (§6.2 "Visible").
    pub fn is_visible(self) -> bool {
        !matches!(self, EventType::MsgEdit | EventType::MsgDelete | EventType::AccessAdd | EventType::AccessRm)
    }

    /// The types whose `content` gets folded edits and deletions (§6.5).
    pub fn is_message(self) -> bool {
        matches!(self, EventType::MsgText | EventType::MsgFile)
    }

    /// Visible types, as their type strings, for SQL filters.
    pub fn visible_strs() -> Vec<&'static str> {
        Self::ALL.into_iter().filter(|t| t.is_visible()).map(|t| t.as_str()).collect()
    }
}

/// An event as returned to one viewer (§5.5). `C` is how the content is held: a JSON value, or
/// for a service that passes stored JSON through, whatever serialises as that JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(bound = "")]
pub struct Event<C = Value> {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub box_id: BoxId,
    /// The event's place in its box (§13.1), 1 for `create`: the cursor of
    /// `GET /boxes/{id}/events?after=` (issue 17).
    #[serde(default)]
    pub seq: i64,
    pub server_event_created_at: Timestamp,
    pub sender: IdentityView,
    /// Depends on `type` (§5.5).
    #[schema(value_type = Option<Object>)]
    pub content: Option<C>,
    pub referrer_id: Option<EventId>,
}

impl<C> Event<C> {
    /// The same event with its content held another way.
    pub fn map_content<D>(self, f: impl FnOnce(C) -> D) -> Event<D> {
        Event {
            id: self.id,
            kind: self.kind,
            box_id: self.box_id,
            seq: self.seq,
            server_event_created_at: self.server_event_created_at,
            sender: self.sender,
            content: self.content.map(f),
            referrer_id: self.referrer_id,
        }
    }
}

/// The restriction of an access rule (§6.1): `identity_id`, `identifier` and (issue 17)
/// `email_domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restriction {
    IdentityId(IdentityId),
    /// An email address (lower-cased, as identities hold them) or an E.164 phone number, matched
    /// against the identifier of the identity that wants in.
    Identifier(String),
    /// Every identity whose email identifier is at this domain.
    EmailDomain(EmailDomain),
}

impl Restriction {
    pub fn restriction_type(&self) -> &'static str {
        match self {
            Restriction::IdentityId(_) => "identity_id",
            Restriction::Identifier(_) => "identifier",
            Restriction::EmailDomain(_) => "email_domain",
        }
    }

    pub fn value(&self) -> String {
        match self {
            Restriction::IdentityId(id) => id.to_string(),
            Restriction::Identifier(v) => v.clone(),
            Restriction::EmailDomain(d) => d.as_str().to_owned(),
        }
    }

    /// The value of an `identifier` rule: an E.164 phone number as given, or an email address
    /// lower-cased; `None` for anything else.
    pub fn identifier(value: &str) -> Option<Restriction> {
        if E164Phone::parse(value).is_ok() {
            Some(Restriction::Identifier(value.to_owned()))
        } else if Email::parse(value).is_ok() {
            Some(Restriction::Identifier(value.to_lowercase()))
        } else {
            None
        }
    }
}

/// A client-posted event, validated against the catalogue of §6.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewEvent {
    MsgText {
        encrypted: B64u,
        public_key: B64u,
    },
    MsgFile {
        encrypted: B64u,
        public_key: B64u,
        encrypted_file_id: uuid::Uuid,
    },
    MsgEdit {
        referrer_id: EventId,
        new_encrypted: B64u,
        new_public_key: B64u,
    },
    MsgDelete {
        referrer_id: EventId,
    },
    MemberJoin,
    MemberLeave,
    StateAccessMode {
        value: AccessMode,
    },
    StateKeyShare {
        share: NewKeyShare,
    },
    /// With `auto_invite`, the invitations from `extra`: `(public key, ciphertext)`, exactly one
    /// for an `identity_id` rule, 0 to [`crate::boxes::INVITATIONS_MAX`] for an `identifier` rule (one per
    /// identity that has the identifier, as `GET /identities/pubkey` lists their keys).
    AccessAdd {
        restriction: Restriction,
        auto_invite: Option<Vec<(String, B64)>>,
    },
    AccessRm {
        referrer_id: EventId,
    },
}

impl NewEvent {
    pub fn kind(&self) -> EventType {
        match self {
            NewEvent::MsgText { .. } => EventType::MsgText,
            NewEvent::MsgFile { .. } => EventType::MsgFile,
            NewEvent::MsgEdit { .. } => EventType::MsgEdit,
            NewEvent::MsgDelete { .. } => EventType::MsgDelete,
            NewEvent::MemberJoin => EventType::MemberJoin,
            NewEvent::MemberLeave => EventType::MemberLeave,
            NewEvent::StateAccessMode { .. } => EventType::StateAccessMode,
            NewEvent::StateKeyShare { .. } => EventType::StateKeyShare,
            NewEvent::AccessAdd { .. } => EventType::AccessAdd,
            NewEvent::AccessRm { .. } => EventType::AccessRm,
        }
    }

    /// The `content` to store, rebuilt from the typed value so that no client key survives (§6.2).
    pub fn stored_content(&self) -> Option<Value> {
        match self {
            NewEvent::MsgText { encrypted, public_key } => {
                Some(json!({"encrypted": encrypted, "public_key": public_key}))
            }
            NewEvent::MsgFile { encrypted, public_key, encrypted_file_id } => Some(
                json!({"encrypted": encrypted, "public_key": public_key, "encrypted_file_id": encrypted_file_id.to_string()}),
            ),
            NewEvent::MsgEdit { new_encrypted, new_public_key, .. } => {
                Some(json!({"new_encrypted": new_encrypted, "new_public_key": new_public_key}))
            }
            NewEvent::StateAccessMode { value } => Some(json!({"value": value})),
            NewEvent::AccessAdd { restriction, auto_invite } => {
                Some(access_add_content(restriction, auto_invite.is_some()))
            }
            NewEvent::MsgDelete { .. }
            | NewEvent::MemberJoin
            | NewEvent::MemberLeave
            | NewEvent::StateKeyShare { .. } => None,
            NewEvent::AccessRm { .. } => None,
        }
    }

    pub fn referrer_id(&self) -> Option<EventId> {
        match self {
            NewEvent::MsgEdit { referrer_id, .. }
            | NewEvent::MsgDelete { referrer_id }
            | NewEvent::AccessRm { referrer_id } => Some(*referrer_id),
            _ => None,
        }
    }

    /// Validates `{type, content, referrer_id, extra}` (§6.2). Membership and the rest of §6.3 are the service's.
    pub fn parse(body: &Value) -> Result<Self, ErrorBody> {
        let o = Obj::body(body)?;
        let mut r = Report::new();
        let Some(type_str) = o.str("type", true, &mut r) else {
            return r.finish(None);
        };
        let kind = match EventType::parse(type_str) {
            Some(EventType::Create | EventType::MemberKick) | None => {
                r.fail("type", Detail::Invalid);
                return r.finish(None);
            }
            Some(t) => t,
        };
        let content = || o.object("content", "content", true, &mut Report::new()).unwrap_or(Obj::empty("content"));
        let value = match kind {
            EventType::MsgText | EventType::MsgFile => {
                o.forbid("referrer_id", &mut r);
                o.forbid("extra", &mut r);
                let c = o.object("content", "content", true, &mut r).unwrap_or(Obj::empty("content"));
                let encrypted = c.b64u("encrypted", limits::MESSAGE, true, &mut r);
                let public_key = c.b64u("public_key", limits::PUBLIC_KEY, true, &mut r);
                if kind == EventType::MsgFile {
                    let file = c.id::<EventId>("encrypted_file_id", true, &mut r);
                    encrypted.zip(public_key).zip(file).map(|((encrypted, public_key), f)| NewEvent::MsgFile {
                        encrypted,
                        public_key,
                        encrypted_file_id: f.into_uuid(),
                    })
                } else {
                    encrypted.zip(public_key).map(|(encrypted, public_key)| NewEvent::MsgText { encrypted, public_key })
                }
            }
            EventType::MsgEdit => {
                o.forbid("extra", &mut r);
                let referrer_id = o.id::<EventId>("referrer_id", true, &mut r);
                let c = o.object("content", "content", true, &mut r).unwrap_or(content());
                let new_encrypted = c.b64u("new_encrypted", limits::MESSAGE, true, &mut r);
                let new_public_key = c.b64u("new_public_key", limits::PUBLIC_KEY, true, &mut r);
                match (referrer_id, new_encrypted, new_public_key) {
                    (Some(referrer_id), Some(new_encrypted), Some(new_public_key)) => {
                        Some(NewEvent::MsgEdit { referrer_id, new_encrypted, new_public_key })
                    }
                    _ => None,
                }
            }
            EventType::MsgDelete | EventType::AccessRm => {
                o.forbid("content", &mut r);
                o.forbid("extra", &mut r);
                let referrer_id = o.id::<EventId>("referrer_id", true, &mut r);
                referrer_id.map(|referrer_id| {
                    if kind == EventType::MsgDelete {
                        NewEvent::MsgDelete { referrer_id }
                    } else {
                        NewEvent::AccessRm { referrer_id }
                    }
                })
            }
            EventType::MemberJoin | EventType::MemberLeave => {
                o.forbid("content", &mut r);
                o.forbid("referrer_id", &mut r);
                o.forbid("extra", &mut r);
                Some(if kind == EventType::MemberJoin { NewEvent::MemberJoin } else { NewEvent::MemberLeave })
            }
            EventType::StateAccessMode => {
                o.forbid("referrer_id", &mut r);
                o.forbid("extra", &mut r);
                let c = o.object("content", "content", true, &mut r).unwrap_or(Obj::empty("content"));
                c.str("value", true, &mut r).and_then(|v| match AccessMode::parse(v) {
                    Some(value) => Some(NewEvent::StateAccessMode { value }),
                    None => {
                        r.fail("content.value", Detail::Invalid);
                        None
                    }
                })
            }
            EventType::StateKeyShare => {
                o.forbid("content", &mut r);
                o.forbid("referrer_id", &mut r);
                let extra = o.object("extra", "extra", true, &mut r);
                extra.and_then(|e| NewKeyShare::read(&e, true, &mut r)).map(|share| NewEvent::StateKeyShare { share })
            }
            EventType::AccessAdd => {
                o.forbid("referrer_id", &mut r);
                let c = o.object("content", "content", true, &mut r).unwrap_or(Obj::empty("content"));
                let restriction_type = c.str("restriction_type", true, &mut r);
                let value = c.str("value", true, &mut r);
                if value.is_some_and(|v| v.is_empty() || v.chars().count() > limits::ACCESS_VALUE) {
                    r.fail("content.value", Detail::Invalid);
                }
                let auto_invite = c.bool("auto_invite", false, &mut r).unwrap_or(false);
                let restriction = match restriction_type {
                    Some("identity_id") => value.and_then(|v| match IdentityId::parse(v) {
                        Ok(id) => Some(Restriction::IdentityId(id)),
                        Err(_) => {
                            r.fail("content.value", Detail::Malformed);
                            None
                        }
                    }),
                    Some("identifier") => value.and_then(|v| {
                        Restriction::identifier(v).or_else(|| {
                            r.fail("content.value", Detail::Malformed);
                            None
                        })
                    }),
                    Some("email_domain") => value.and_then(|v| match EmailDomain::parse(v) {
                        Ok(d) => Some(Restriction::EmailDomain(d)),
                        Err(detail) => {
                            r.fail("content.value", detail);
                            None
                        }
                    }),
                    Some(_) => {
                        r.fail("content.restriction_type", Detail::NotSupported);
                        None
                    }
                    None => None,
                };
                // A domain names nobody in particular, so there is no key to invite with.
                if auto_invite && restriction_type == Some("email_domain") {
                    r.fail("content.auto_invite", Detail::NotSupported);
                }
                let invitation = match (auto_invite, o.has("extra")) {
                    (false, true) => {
                        r.fail("content.auto_invite", Detail::Invalid);
                        None
                    }
                    (false, false) => None,
                    (true, false) => {
                        r.fail("extra", Detail::Required);
                        None
                    }
                    (true, true) => {
                        let e = o.object("extra", "extra", true, &mut r);
                        let read = match restriction_type {
                            Some("identifier") => e.and_then(|e| read_invitations(&e, "extra", &mut r)),
                            _ => e.and_then(|e| read_invitation(&e, "extra", &mut r)).map(|one| vec![one]),
                        };
                        match read {
                            Some(inv) => Some(inv),
                            None => {
                                r.fail("extra", Detail::Invalid);
                                None
                            }
                        }
                    }
                };
                restriction.map(|restriction| NewEvent::AccessAdd { restriction, auto_invite: invitation })
            }
            EventType::Create | EventType::MemberKick => None,
        };
        r.finish(value)
    }
}

/// Most changes one `POST /boxes/{id}/batch-events` takes.
pub const BATCH_MAX: usize = 100;

/// The body of `POST /boxes/{id}/batch-events` (issue 17, REF shape):
/// `{"batch_type": "accesses", "events": [<access.add or access.rm>, …]}`, 1 to [`BATCH_MAX`]
/// changes, each read as on `POST /boxes/{id}/events`. Every invalid change is reported, its
/// fields under `events.<i>.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessBatch {
    pub changes: Vec<NewEvent>,
}

impl AccessBatch {
    pub fn parse(body: &Value) -> Result<Self, ErrorBody> {
        let o = Obj::body(body)?;
        let mut r = Report::new();
        if let Some(kind) = o.str("batch_type", true, &mut r) {
            if kind != "accesses" {
                r.fail("batch_type", Detail::Invalid);
            }
        }
        let events = match o.get("events") {
            None => {
                r.fail("events", Detail::Required);
                None
            }
            Some(Value::Array(a)) if !a.is_empty() && a.len() <= BATCH_MAX => Some(a),
            Some(_) => {
                r.fail("events", Detail::Invalid);
                None
            }
        };
        let mut changes = Vec::new();
        for (i, event) in events.into_iter().flatten().enumerate() {
            if !event.is_object() {
                r.fail(format!("events.{i}"), Detail::Malformed);
                continue;
            }
            let kind = event.get("type").and_then(Value::as_str).and_then(EventType::parse);
            if kind.is_some_and(|k| !matches!(k, EventType::AccessAdd | EventType::AccessRm)) {
                r.fail(format!("events.{i}.type"), Detail::Invalid);
                continue;
            }
            match NewEvent::parse(event) {
                Ok(change) => changes.push(change),
                Err(e) => {
                    for (key, detail) in e.details {
                        r.fail(format!("events.{i}.{key}"), detail);
                    }
                }
            }
        }
        r.finish(Some(AccessBatch { changes }))
    }
}

/// Stored content of an `access.add`.
pub fn access_add_content(restriction: &Restriction, auto_invite: bool) -> Value {
    json!({"restriction_type": restriction.restriction_type(), "value": restriction.value(), "auto_invite": auto_invite})
}

/// The identity an `access.add` content invited (`identity_id` rule with `auto_invite`), if any.
pub fn auto_invited(content: &Value) -> Option<IdentityId> {
    if content["restriction_type"] != "identity_id" || content["auto_invite"] != true {
        return None;
    }
    content["value"].as_str().and_then(|v| IdentityId::parse(v).ok())
}

/// Stored content of a `create` event.
pub fn create_content(public_key: &str, title: &str) -> Value {
    json!({"public_key": public_key, "title": title})
}

/// The latest edit of a message, as needed for folding.
#[derive(Debug, Clone, PartialEq)]
pub struct EditState {
    pub new_encrypted: Value,
    pub new_public_key: Value,
    pub at: Timestamp,
}

/// Folds a message's latest edit or its deletion into its stored content (§6.5).
pub fn fold_message(
    content: Option<Value>,
    edit: Option<EditState>,
    deleted: Option<(Timestamp, IdentityView)>,
) -> Value {
    if let Some((at, by)) = deleted {
        return json!({"deleted": {"at_time": at, "by_identity": by}});
    }
    let mut c = match content {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    match edit {
        Some(e) => {
            c.insert("encrypted".into(), e.new_encrypted);
            c.insert("public_key".into(), e.new_public_key);
            c.insert("last_edited_at".into(), json!(e.at));
        }
        None => {
            c.insert("last_edited_at".into(), Value::Null);
        }
    }
    Value::Object(c)
}

/// Content shown for a `member.kick`: the stored `{kicker_id}` becomes `{kicker: IdentityView}` (§6.2).
pub fn kick_content(kicker: &IdentityView) -> Value {
    json!({"kicker": kicker})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<NewEvent, crate::error::Details> {
        NewEvent::parse(&v).map_err(|e| e.details)
    }

    fn detail(v: Value, key: &str) -> Option<String> {
        parse(v).err().and_then(|d| d.get(key).cloned())
    }

    #[test]
    fn type_strings_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).ok(), Some(Value::String(t.as_str().into())));
        }
        assert_eq!(EventType::parse("msg.txt"), None);
    }

    #[test]
    fn server_only_and_unknown_types_are_invalid() {
        for t in ["create", "member.kick", "msg.txt", "nope"] {
            assert_eq!(detail(json!({"type": t}), "type").as_deref(), Some("invalid"), "{t}");
        }
    }

    #[test]
    fn text_messages() {
        let ok = parse(
            json!({"type":"msg.text","content":{"encrypted":"UrxdLg-Z5cyeRMz8_zk2aK","public_key":"SXva","x":1}}),
        );
        assert_eq!(
            ok.ok().and_then(|e| e.stored_content()),
            Some(json!({"encrypted":"UrxdLg-Z5cyeRMz8_zk2aK","public_key":"SXva"}))
        );
        assert_eq!(
            detail(json!({"type":"msg.text","content":{"encrypted":"a+b=","public_key":"SXva"}}), "content.encrypted")
                .as_deref(),
            Some("malformed")
        );
        assert_eq!(detail(json!({"type":"msg.text","content":{"encrypted":"abcd","public_key":"SXva"},"referrer_id":"74ee16b5-89be-44f7-bcdd-117f496a90a7"}), "referrer_id").as_deref(), Some("forbidden"));
        assert_eq!(detail(json!({"type":"msg.text"}), "content").as_deref(), Some("required"));
        let big = "a".repeat(limits::MESSAGE + 1);
        assert_eq!(
            detail(json!({"type":"msg.text","content":{"encrypted":big,"public_key":"SXva"}}), "content.encrypted")
                .as_deref(),
            Some("invalid")
        );
    }

    #[test]
    fn edits_deletes_joins() {
        assert_eq!(
            detail(
                json!({"type":"msg.edit","content":{"new_encrypted":"abcd","new_public_key":"abcd"}}),
                "referrer_id"
            )
            .as_deref(),
            Some("required")
        );
        assert_eq!(detail(json!({"type":"msg.delete","referrer_id":"x"}), "referrer_id").as_deref(), Some("malformed"));
        assert_eq!(detail(json!({"type":"member.join","content":{}}), "content").as_deref(), Some("forbidden"));
        assert_eq!(parse(json!({"type":"member.leave","content":null})).ok(), Some(NewEvent::MemberLeave));
    }

    #[test]
    fn access_rules() {
        let id = "0f10d6a5-0626-4492-8e4c-2c37b258f921";
        assert_eq!(
            detail(
                json!({"type":"access.add","content":{"restriction_type":"invitation_link","value":"x.com"}}),
                "content.restriction_type"
            )
            .as_deref(),
            Some("not_supported")
        );
        assert_eq!(detail(json!({"type":"access.add","content":{"restriction_type":"identity_id","value":id},"extra":{"k":"abcd"}}), "content.auto_invite").as_deref(), Some("invalid"));
        assert_eq!(
            detail(
                json!({"type":"access.add","content":{"restriction_type":"identity_id","value":id,"auto_invite":true}}),
                "extra"
            )
            .as_deref(),
            Some("required")
        );
        assert_eq!(detail(json!({"type":"access.add","content":{"restriction_type":"identity_id","value":id,"auto_invite":true},"extra":{"a":"abcd","b":"abcd"}}), "extra").as_deref(), Some("invalid"));
        let ok = parse(
            json!({"type":"access.add","content":{"restriction_type":"identity_id","value":id,"auto_invite":true},"extra":{"key":"abcd=="}}),
        );
        assert!(matches!(ok, Ok(NewEvent::AccessAdd { auto_invite: Some(_), .. })));
    }

    #[test]
    fn identifier_rules_take_an_email_or_a_phone() {
        let rule =
            |value: &str| parse(json!({"type":"access.add","content":{"restriction_type":"identifier","value":value}}));
        let restriction = |value: &str| match rule(value) {
            Ok(NewEvent::AccessAdd { restriction, auto_invite: None }) => Some(restriction),
            _ => None,
        };
        assert_eq!(restriction("Bob@Example.com"), Some(Restriction::Identifier("bob@example.com".into())));
        assert_eq!(restriction("+33612345678"), Some(Restriction::Identifier("+33612345678".into())));
        for bad in ["bob", "0612345678", "+0612345678", "bob@example"] {
            assert_eq!(
                rule(bad).err().and_then(|d| d.get("content.value").cloned()).as_deref(),
                Some("malformed"),
                "{bad}"
            );
        }
        let invite = |extra: Value| {
            parse(
                json!({"type":"access.add","content":{"restriction_type":"identifier","value":"bob@example.com","auto_invite":true},"extra":extra}),
            )
        };
        let invited = |extra: Value| match invite(extra) {
            Ok(NewEvent::AccessAdd { auto_invite: Some(inv), .. }) => Some(inv.len()),
            _ => None,
        };
        assert_eq!(invited(json!({"key1":"abcd","key2":"abcd"})), Some(2));
        assert_eq!(invited(json!({})), Some(0), "nobody to invite yet");
        assert_eq!(invite(json!({"key":7})).err().and_then(|d| d.get("extra").cloned()).as_deref(), Some("invalid"));
        let many: serde_json::Map<String, Value> =
            (0..=crate::boxes::INVITATIONS_MAX).map(|i| (format!("k{i}"), json!("abcd"))).collect();
        assert_eq!(invite(Value::Object(many)).err().and_then(|d| d.get("extra").cloned()).as_deref(), Some("invalid"));
        let stored =
            parse(json!({"type":"access.add","content":{"restriction_type":"identifier","value":"Bob@Example.com"}}))
                .ok()
                .and_then(|e| e.stored_content());
        assert_eq!(
            stored,
            Some(json!({"restriction_type":"identifier","value":"bob@example.com","auto_invite":false}))
        );
    }

    #[test]
    fn access_batches() {
        let id = "0f10d6a5-0626-4492-8e4c-2c37b258f921";
        let add = json!({"type":"access.add","content":{"restriction_type":"identity_id","value":id}});
        let rm = json!({"type":"access.rm","referrer_id":id});
        let ok = AccessBatch::parse(&json!({"batch_type":"accesses","events":[rm, add]}));
        assert!(matches!(
            ok.as_ref().map(|b| b.changes.as_slice()),
            Ok([NewEvent::AccessRm { .. }, NewEvent::AccessAdd { .. }])
        ));
        let details = |v: Value| AccessBatch::parse(&v).err().map(|e| e.details).unwrap_or_default();
        let d = details(json!({"batch_type":"messages","events":[]}));
        assert_eq!(
            (d.get("batch_type").map(String::as_str), d.get("events").map(String::as_str)),
            (Some("invalid"), Some("invalid"))
        );
        assert_eq!(details(json!({"batch_type":"accesses"})).get("events").map(String::as_str), Some("required"));
        let d = details(json!({"batch_type":"accesses","events":[
            {"type":"access.rm","referrer_id":id},
            {"type":"msg.text","content":{"encrypted":"abcd","public_key":"abcd"}},
            {"type":"access.add","content":{"restriction_type":"identity_id","value":"nope"}},
            "access.rm"
        ]}));
        assert_eq!(d.get("events.1.type").map(String::as_str), Some("invalid"));
        assert_eq!(d.get("events.2.content.value").map(String::as_str), Some("malformed"));
        assert_eq!(d.get("events.3").map(String::as_str), Some("malformed"));
        assert_eq!(d.len(), 3, "{d:?}");
        let many: Vec<Value> = (0..=BATCH_MAX).map(|_| json!({"type":"access.rm","referrer_id":id})).collect();
        assert_eq!(
            details(json!({"batch_type":"accesses","events":many})).get("events").map(String::as_str),
            Some("invalid")
        );
    }

    #[test]
    fn email_domain_rules() {
        let rule = |value: &str| {
            parse(json!({"type":"access.add","content":{"restriction_type":"email_domain","value":value}}))
        };
        let stored = rule("Example.COM").ok().and_then(|e| e.stored_content());
        assert_eq!(stored, Some(json!({"restriction_type":"email_domain","value":"example.com","auto_invite":false})));
        for bad in ["@example.com", "bob@example.com", "example", "exa mple.com"] {
            assert_eq!(
                rule(bad).err().and_then(|d| d.get("content.value").cloned()).as_deref(),
                Some("malformed"),
                "{bad}"
            );
        }
        let invite = json!({"type":"access.add","content":{"restriction_type":"email_domain","value":"example.com","auto_invite":true},"extra":{"key":"abcd"}});
        assert_eq!(detail(invite, "content.auto_invite").as_deref(), Some("not_supported"));
    }

    #[test]
    fn key_share_rotation_reads_extra() {
        let ok = parse(
            json!({"type":"state.key_share","extra":{"misakey_share":"abcd","other_share_hash":"abcd","encrypted_invitation_key_share":"abcd"}}),
        );
        assert!(matches!(ok, Ok(NewEvent::StateKeyShare { .. })));
        assert_eq!(
            detail(json!({"type":"state.key_share","extra":{"misakey_share":"abcd"}}), "extra.other_share_hash")
                .as_deref(),
            Some("required")
        );
        assert_eq!(
            detail(json!({"type":"state.access_mode","content":{"value":"open"}}), "content.value").as_deref(),
            Some("invalid")
        );
    }

    #[test]
    fn folding() {
        let view = IdentityView {
            id: IdentityId::new_v4(),
            display_name: "A".into(),
            avatar_url: None,
            identifier_value: String::new(),
            identifier_kind: String::new(),
        };
        let c = Some(json!({"encrypted":"a","public_key":"b"}));
        assert_eq!(fold_message(c.clone(), None, None)["last_edited_at"], Value::Null);
        let at = Timestamp::now();
        let e = EditState { new_encrypted: json!("x"), new_public_key: json!("y"), at };
        let f = fold_message(c.clone(), Some(e), None);
        assert_eq!(f["encrypted"], "x");
        assert_eq!(f["last_edited_at"], json!(at));
        let d = fold_message(c, None, Some((at, view)));
        assert!(d.get("encrypted").is_none());
        assert_eq!(d["deleted"]["by_identity"]["display_name"], "A");
    }

    #[test]
    fn only_auto_invite_identity_rules_name_an_invited_identity() {
        let who = IdentityId::new_v4();
        let rule = |auto| access_add_content(&Restriction::IdentityId(who), auto);
        assert_eq!(auto_invited(&rule(true)), Some(who));
        assert_eq!(auto_invited(&rule(false)), None);
        let by_identifier = access_add_content(&Restriction::Identifier("a@b.c".into()), true);
        assert_eq!(auto_invited(&by_identifier), None);
        assert_eq!(auto_invited(&json!({"restriction_type": "identity_id", "value": "x", "auto_invite": true})), None);
    }
}
