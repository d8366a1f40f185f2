//! Boxes (§5.3, §5.4, §7): their views and the bodies that create, contact, delete and configure them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::b64::{limits, B64u, B64};
use crate::error::{Detail, ErrorBody};
use crate::event::Event;
use crate::identity::IdentityView;
use crate::ids::{BoxId, IdentityId};
use crate::input::{Obj, Report};
use crate::keyshare::NewKeyShare;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessMode {
    #[default]
    Limited,
    Public,
}

impl AccessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::Limited => "limited",
            AccessMode::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "limited" => Some(AccessMode::Limited),
            "public" => Some(AccessMode::Public),
            _ => None,
        }
    }
}

/// A box title: 1–50 Unicode scalar values (§2.4), no control characters. Titles are plaintext
/// metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Title(String);

/// Deserializing validates, as [`Title::parse`] does.
impl TryFrom<String> for Title {
    type Error = Detail;

    fn try_from(s: String) -> Result<Self, Detail> {
        Title::parse(&s)
    }
}

impl From<Title> for String {
    fn from(v: Title) -> String {
        v.0
    }
}

impl Title {
    pub const MAX: usize = 50;

    pub fn parse(s: &str) -> Result<Self, Detail> {
        let n = s.chars().count();
        if n == 0 || n > Self::MAX || crate::input::has_control(s) {
            Err(Detail::Invalid)
        } else {
            Ok(Title(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Per-identity box settings (§5.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoxSetting {
    pub identity_id: IdentityId,
    pub box_id: BoxId,
    pub muted: bool,
}

/// The Box object of §5.3, as seen by one caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoxView {
    pub id: BoxId,
    pub server_created_at: Timestamp,
    pub public_key: String,
    pub title: String,
    pub access_mode: AccessMode,
    pub creator: IdentityView,
    pub events_count: i64,
    pub settings: BoxSetting,
    pub last_event: Option<Event>,
}

/// What an anonymous holder of an invitation link may see (§7.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicBox {
    pub title: String,
    pub creator: IdentityView,
}

/// Body of `POST /boxes` (§7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxCreate {
    pub title: Title,
    pub public_key: B64u,
    pub key_share: Option<NewKeyShare>,
}

fn read_title(o: &Obj<'_>, r: &mut Report) -> Option<Title> {
    let s = o.str("title", true, r)?;
    Title::parse(s).map_err(|d| r.fail(o.path("title"), d)).ok()
}

impl BoxCreate {
    pub fn parse(body: &Value) -> Result<Self, ErrorBody> {
        let o = Obj::body(body)?;
        let mut r = Report::new();
        let title = read_title(&o, &mut r);
        let public_key = o.b64u("public_key", limits::PUBLIC_KEY, true, &mut r);
        let key_share =
            o.object("key_share", "key_share", false, &mut r).map(|ks| NewKeyShare::read(&ks, true, &mut r));
        let value = match (title, public_key, key_share) {
            (Some(title), Some(public_key), None) => Some(BoxCreate { title, public_key, key_share: None }),
            (Some(title), Some(public_key), Some(Some(ks))) => {
                Some(BoxCreate { title, public_key, key_share: Some(ks) })
            }
            _ => None,
        };
        r.finish(value)
    }
}

/// Body of `POST /box-users/{id}/contact` (§7.11, seed field names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRequest {
    pub contacted_identity_id: IdentityId,
    pub title: Title,
    pub public_key: B64u,
    pub key_share: NewKeyShare,
    /// The one `extra` entry: the contacted identity's public key, and the invitation ciphertext.
    pub invitation_key: String,
    pub invitation: B64,
}

/// Reads a one-entry `{<public key>: <b64 ciphertext>}` map, reporting problems under `field`.
pub fn read_invitation(o: &Obj<'_>, field: &str, r: &mut Report) -> Option<(String, B64)> {
    if o.len() != 1 {
        r.fail(field, Detail::Invalid);
        return None;
    }
    read_invitations(o, field, r)?.pop()
}

/// Most entries of an `{<public key>: <b64 ciphertext>}` map for several identities.
pub const INVITATIONS_MAX: usize = 50;

/// Reads a `{<public key>: <b64 ciphertext>}` map of 0 to [`INVITATIONS_MAX`] entries, one per
/// invited key, reporting any problem as `field` `invalid`.
pub fn read_invitations(o: &Obj<'_>, field: &str, r: &mut Report) -> Option<Vec<(String, B64)>> {
    let mut out = Vec::new();
    for (key, value) in o.keys() {
        let ciphertext = match value {
            Value::String(c) if !key.is_empty() && key.chars().count() <= limits::PUBLIC_KEY => {
                B64::parse(c, limits::CRYPTO_ACTION).ok()
            }
            _ => None,
        };
        match ciphertext {
            Some(c) if out.len() < INVITATIONS_MAX => out.push((key.clone(), c)),
            _ => {
                r.fail(field, Detail::Invalid);
                return None;
            }
        }
    }
    Some(out)
}

impl ContactRequest {
    pub fn parse(body: &Value, caller: IdentityId) -> Result<Self, ErrorBody> {
        let o = Obj::body(body)?;
        let mut r = Report::new();
        let contacted = o.id::<IdentityId>("contacted_identity_id", true, &mut r);
        if contacted == Some(caller) {
            r.fail("contacted_identity_id", Detail::Invalid);
        }
        let bx = o.object("box", "box", true, &mut r).unwrap_or(Obj::empty("box"));
        let title = read_title(&bx, &mut r);
        let public_key = bx.b64u("public_key", limits::PUBLIC_KEY, true, &mut r);
        let ks = o.object("key_share", "key_share", true, &mut r).unwrap_or(Obj::empty("key_share"));
        let key_share = NewKeyShare::read(&ks, true, &mut r);
        let extra = match (o.has("extra"), o.has("invitation_data")) {
            (true, true) => {
                r.fail("extra", Detail::Invalid);
                None
            }
            (false, false) => {
                r.fail("extra", Detail::Required);
                None
            }
            (has_extra, _) => {
                let name = if has_extra { "extra" } else { "invitation_data" };
                o.object(name, name, true, &mut r).and_then(|e| read_invitation(&e, "extra", &mut r))
            }
        };
        let value = match (contacted, title, public_key, key_share, extra) {
            (
                Some(contacted_identity_id),
                Some(title),
                Some(public_key),
                Some(key_share),
                Some((invitation_key, invitation)),
            ) => {
                Some(ContactRequest { contacted_identity_id, title, public_key, key_share, invitation_key, invitation })
            }
            _ => None,
        };
        r.finish(value)
    }
}

/// `{"user_confirmation": "delete" | "supprimer"}` (§7.6).
pub fn parse_delete_confirmation(body: &Value) -> Result<(), ErrorBody> {
    let o = Obj::body(body)?;
    let mut r = Report::new();
    match o.str("user_confirmation", true, &mut r) {
        Some("delete") | Some("supprimer") => {}
        Some(_) => r.fail("user_confirmation", Detail::Invalid),
        None => {}
    }
    r.finish(Some(()))
}

/// Body of the REST ack: `{"identity_id"}` (§7.10).
pub fn parse_ack(body: &Value) -> Result<IdentityId, ErrorBody> {
    let o = Obj::body(body)?;
    let mut r = Report::new();
    let id = o.id::<IdentityId>("identity_id", true, &mut r);
    r.finish(id)
}

/// Body of the settings PUT: `{"muted": bool}` (§7.13).
pub fn parse_settings(body: &Value) -> Result<bool, ErrorBody> {
    let o = Obj::body(body)?;
    let mut r = Report::new();
    let muted = o.bool("muted", true, &mut r);
    r.finish(muted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seed_contact(contacted: &str) -> Value {
        json!({
            "contacted_identity_id": contacted,
            "box": {"title": "User1 - User2", "public_key": "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw"},
            "key_share": {"misakey_share": "lBHT1vfwFAIBig5Nj+sD+w==", "other_share_hash": "Nz4nJMj5DOd4UGXXOlH8Ww",
                          "encrypted_invitation_key_share": "cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ="},
            "extra": {"FYofPprIPU6qaHDtCNCETYtmmQQqdKvtJqYBF2pPXzc": "ZW5jcnlwdGVk"}
        })
    }

    #[test]
    fn the_seed_contact_body_parses() {
        let c = ContactRequest::parse(&seed_contact("0f10d6a5-0626-4492-8e4c-2c37b258f921"), IdentityId::new_v4());
        let c = c.ok();
        assert_eq!(c.as_ref().map(|c| c.invitation_key.as_str()), Some("FYofPprIPU6qaHDtCNCETYtmmQQqdKvtJqYBF2pPXzc"));
        assert_eq!(c.map(|c| c.key_share.misakey_share.into_string()).as_deref(), Some("lBHT1vfwFAIBig5Nj+sD+w=="));
    }

    #[test]
    fn contact_errors_use_dotted_paths() {
        let mut v = seed_contact("nope");
        v["box"]["title"] = json!("x".repeat(51));
        v["key_share"]["other_share_hash"] = json!("Nz4n+Mj5");
        v["extra"] = json!({"a": "b", "c": "d"});
        let d = ContactRequest::parse(&v, IdentityId::new_v4()).err().map(|e| e.details).unwrap_or_default();
        assert_eq!(d.get("contacted_identity_id").map(String::as_str), Some("malformed"));
        assert_eq!(d.get("box.title").map(String::as_str), Some("invalid"));
        assert_eq!(d.get("key_share.other_share_hash").map(String::as_str), Some("malformed"));
        assert_eq!(d.get("extra").map(String::as_str), Some("invalid"));
    }

    #[test]
    fn invitation_data_alias_and_both_names() {
        let mut v = seed_contact("0f10d6a5-0626-4492-8e4c-2c37b258f921");
        let extra = v["extra"].clone();
        v["invitation_data"] = extra;
        assert!(ContactRequest::parse(&v, IdentityId::new_v4()).is_err());
        if let Some(m) = v.as_object_mut() {
            m.remove("extra");
        }
        assert!(ContactRequest::parse(&v, IdentityId::new_v4()).is_ok());
    }

    #[test]
    fn title_limits_count_scalar_values() {
        assert!(Title::parse(&"é".repeat(50)).is_ok());
        assert!(Title::parse(&"é".repeat(51)).is_err());
        assert!(Title::parse("").is_err());
    }

    #[test]
    fn box_create_requires_all_key_share_fields() {
        let d = BoxCreate::parse(&json!({"title":"t","public_key":"abcd","key_share":{"misakey_share":"abcd"}}))
            .err()
            .map(|e| e.details)
            .unwrap_or_default();
        assert_eq!(d.get("key_share.other_share_hash").map(String::as_str), Some("required"));
        assert_eq!(d.get("key_share.encrypted_invitation_key_share").map(String::as_str), Some("required"));
    }

    #[test]
    fn validated_types_deserialize_only_through_their_validation() {
        use crate::identity::DisplayName;
        use crate::userdata::{E164Phone, Email};
        assert!(serde_json::from_value::<Title>(json!("a\u{0}b")).is_err());
        assert!(serde_json::from_value::<Title>(json!("")).is_err());
        assert!(serde_json::from_value::<Title>(json!("x".repeat(51))).is_err());
        assert_eq!(serde_json::from_value::<Title>(json!("ok")).ok(), Title::parse("ok").ok());
        assert!(serde_json::from_value::<DisplayName>(json!("Al\u{1b}[31mice")).is_err());
        assert!(serde_json::from_value::<Email>(json!("a\u{0}@example.com")).is_err());
        assert!(serde_json::from_value::<Email>(json!("not-an-email")).is_err());
        assert!(serde_json::from_value::<E164Phone>(json!("0612345678")).is_err());
        assert_eq!(serde_json::to_value(Title::parse("ok").ok()).ok(), Some(json!("ok")));
    }
}
