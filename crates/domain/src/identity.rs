//! Identities: the public part of a hostapp user as boxes knows it (§5.1, §5.2, §8, §12).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::b64::{limits, B64u};
use crate::error::{Detail, ErrorBody};
use crate::ids::IdentityId;
use crate::input::{Obj, Report};
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKind {
    Email,
    Phone,
}

impl IdentifierKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::Email => "email",
            IdentifierKind::Phone => "phone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(IdentifierKind::Email),
            "phone" => Some(IdentifierKind::Phone),
            _ => None,
        }
    }
}

/// 1–64 characters, not all blank, no control characters, as the internal upsert requires (§12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

/// Deserializing validates, as [`DisplayName::parse`] does.
impl TryFrom<String> for DisplayName {
    type Error = Detail;

    fn try_from(s: String) -> Result<Self, Detail> {
        DisplayName::parse(&s)
    }
}

impl From<DisplayName> for String {
    fn from(v: DisplayName) -> String {
        v.0
    }
}

impl DisplayName {
    pub const MAX: usize = 64;

    pub fn parse(s: &str) -> Result<Self, Detail> {
        let n = s.chars().count();
        if n == 0 || n > Self::MAX || s.trim().is_empty() || crate::input::has_control(s) {
            Err(Detail::Invalid)
        } else {
            Ok(DisplayName(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who sent, created, kicked or belongs (§5.1). Identifier fields are empty unless transparent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IdentityView {
    pub id: IdentityId,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub identifier_value: String,
    pub identifier_kind: String,
}

/// The self view (§5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Identity {
    pub id: IdentityId,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub identifier_value: String,
    pub identifier_kind: String,
    pub pubkey: Option<String>,
    pub non_identified_pubkey: Option<String>,
    pub created_at: Timestamp,
}

/// The public view (§5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Profile {
    pub id: IdentityId,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub identifier_value: String,
    pub identifier_kind: String,
    pub non_identified_pubkey: Option<String>,
    pub contactable: bool,
}

/// An identity as stored; every view is derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    pub id: IdentityId,
    pub display_name: String,
    pub identifier_value: String,
    pub identifier_kind: String,
    pub pubkey: Option<String>,
    pub non_identified_pubkey: Option<String>,
    pub created_at: Timestamp,
}

impl IdentityRecord {
    /// `transparent` is true only for the box admin (§5.1).
    pub fn view(&self, transparent: bool) -> IdentityView {
        IdentityView {
            id: self.id,
            display_name: self.display_name.clone(),
            avatar_url: None,
            identifier_value: if transparent { self.identifier_value.clone() } else { String::new() },
            identifier_kind: if transparent { self.identifier_kind.clone() } else { String::new() },
        }
    }

    pub fn self_view(&self) -> Identity {
        Identity {
            id: self.id,
            display_name: self.display_name.clone(),
            avatar_url: None,
            identifier_value: self.identifier_value.clone(),
            identifier_kind: self.identifier_kind.clone(),
            pubkey: self.pubkey.clone(),
            non_identified_pubkey: self.non_identified_pubkey.clone(),
            created_at: self.created_at,
        }
    }

    pub fn profile(&self, caller_is_self: bool) -> Profile {
        let v = self.view(caller_is_self);
        Profile {
            id: v.id,
            display_name: v.display_name,
            avatar_url: None,
            identifier_value: v.identifier_value,
            identifier_kind: v.identifier_kind,
            non_identified_pubkey: self.non_identified_pubkey.clone(),
            contactable: self.invitation_key().is_some(),
        }
    }

    /// The key invitations are encrypted for: `non_identified_pubkey`, failing that `pubkey` (§5.2).
    pub fn invitation_key(&self) -> Option<&str> {
        self.non_identified_pubkey.as_deref().or(self.pubkey.as_deref())
    }

    /// Whether `key` is one of this identity's keys, as auto-invite and contact require.
    pub fn has_key(&self, key: &str) -> bool {
        self.non_identified_pubkey.as_deref() == Some(key) || self.pubkey.as_deref() == Some(key)
    }
}

/// Body of `PUT /internal/identities/{id}` (§12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityUpsert {
    pub display_name: DisplayName,
    pub identifier_value: String,
    pub identifier_kind: IdentifierKind,
    /// The host app vouches for the identifier (registry `verifies_identifiers`): only then can
    /// it satisfy `identifier` access rules. Absent means `false`.
    #[serde(default)]
    pub identifier_verified: bool,
}

impl IdentityUpsert {
    pub fn parse(body: &Value) -> Result<Self, ErrorBody> {
        let o = Obj::body(body)?;
        let mut r = Report::new();
        let display_name = o
            .str("display_name", true, &mut r)
            .and_then(|s| DisplayName::parse(s).map_err(|d| r.fail("display_name", d)).ok());
        let identifier_value = o.str("identifier_value", true, &mut r).map(str::to_owned);
        if identifier_value.as_ref().is_some_and(|v| v.is_empty() || v.chars().count() > 320) {
            r.fail("identifier_value", Detail::Invalid);
        }
        let identifier_kind = o.str("identifier_kind", true, &mut r).and_then(|s| {
            IdentifierKind::parse(s).ok_or(()).map_err(|_| r.fail("identifier_kind", Detail::Invalid)).ok()
        });
        let identifier_verified = o.bool("identifier_verified", false, &mut r).unwrap_or(false);
        let value = match (display_name, identifier_value, identifier_kind) {
            (Some(display_name), Some(identifier_value), Some(identifier_kind)) => {
                Some(IdentityUpsert { display_name, identifier_value, identifier_kind, identifier_verified })
            }
            _ => None,
        };
        r.finish(value)
    }
}

/// Body of `PUT /identities/{id}/public-keys` (§8): at least one key, each b64u.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeysUpdate {
    pub pubkey: Option<B64u>,
    pub non_identified_pubkey: Option<B64u>,
}

impl PublicKeysUpdate {
    pub fn parse(body: &Value) -> Result<Self, ErrorBody> {
        let o = Obj::body(body)?;
        let mut r = Report::new();
        let pubkey = o.b64u("pubkey", limits::PUBLIC_KEY, false, &mut r);
        let non_identified_pubkey = o.b64u("non_identified_pubkey", limits::PUBLIC_KEY, false, &mut r);
        if !o.has("pubkey") && !o.has("non_identified_pubkey") {
            r.fail("non_identified_pubkey", Detail::Required);
        }
        r.finish(Some(PublicKeysUpdate { pubkey, non_identified_pubkey }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alice() -> IdentityRecord {
        IdentityRecord {
            id: IdentityId::new_v4(),
            display_name: "Alice Martin".into(),
            identifier_value: "alice@example.com".into(),
            identifier_kind: "email".into(),
            pubkey: None,
            non_identified_pubkey: Some("FYofPprIPU6qaHDtCNCETYtmmQQqdKvtJqYBF2pPXzc".into()),
            created_at: Timestamp::now(),
        }
    }

    #[test]
    fn views_hide_identifiers_unless_transparent() {
        let a = alice();
        assert_eq!(a.view(false).identifier_value, "");
        assert_eq!(a.view(true).identifier_kind, "email");
        let json = serde_json::to_value(a.view(false)).unwrap_or_default();
        assert_eq!(json["avatar_url"], Value::Null);
        assert!(a.profile(false).contactable);
        assert_eq!(a.profile(false).identifier_value, "");
    }

    #[test]
    fn upsert_validation() {
        assert!(IdentityUpsert::parse(
            &json!({"display_name":"A","identifier_value":"a@b.c","identifier_kind":"email"})
        )
        .is_ok());
        let e = IdentityUpsert::parse(&json!({"display_name":"","identifier_kind":"fax"}))
            .err()
            .map(|e| e.details)
            .unwrap_or_default();
        assert_eq!(e.get("display_name").map(String::as_str), Some("invalid"));
        assert_eq!(e.get("identifier_value").map(String::as_str), Some("required"));
        assert_eq!(e.get("identifier_kind").map(String::as_str), Some("invalid"));
    }

    #[test]
    fn public_keys_need_one_key() {
        let e = PublicKeysUpdate::parse(&json!({})).err().map(|e| e.details).unwrap_or_default();
        assert_eq!(e.get("non_identified_pubkey").map(String::as_str), Some("required"));
        assert!(PublicKeysUpdate::parse(&json!({"pubkey":"abcd"})).is_ok());
        assert!(PublicKeysUpdate::parse(&json!({"pubkey":"ab+d"})).is_err());
    }
}
