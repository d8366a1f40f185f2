//! Hostapp user data (§5.8, seed `UserData`) and what an identity is derived from it (§10.2 step 5).

use once_cell::sync::Lazy;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Detail, Details};
use crate::identity::IdentifierKind;

// The patterns are literals checked by the tests below, so compiling them cannot fail.
#[allow(clippy::expect_used)]
static EMAIL: Lazy<Regex> = Lazy::new(|| Regex::new(r"^[^@\s]+@[^@\s]+\.[^@\s]+$").expect("valid regex"));
#[allow(clippy::expect_used)]
static E164: Lazy<Regex> = Lazy::new(|| Regex::new(r"^\+[1-9][0-9]{1,14}$").expect("valid regex"));

/// An E.164 phone number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164Phone(String);

/// Deserializing validates, as [`E164Phone::parse`] does.
impl TryFrom<String> for E164Phone {
    type Error = Detail;

    fn try_from(s: String) -> Result<Self, Detail> {
        E164Phone::parse(&s)
    }
}

impl From<E164Phone> for String {
    fn from(v: E164Phone) -> String {
        v.0
    }
}

impl E164Phone {
    pub fn parse(s: &str) -> Result<Self, Detail> {
        if E164.is_match(s) {
            Ok(E164Phone(s.to_owned()))
        } else {
            Err(Detail::Malformed)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, checked loosely (the hostapp verified it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// Deserializing validates, as [`Email::parse`] does.
impl TryFrom<String> for Email {
    type Error = Detail;

    fn try_from(s: String) -> Result<Self, Detail> {
        Email::parse(&s)
    }
}

impl From<Email> for String {
    fn from(v: Email) -> String {
        v.0
    }
}

impl Email {
    pub const MAX: usize = 254;

    pub fn parse(s: &str) -> Result<Self, Detail> {
        if s.chars().count() > Self::MAX || crate::input::has_control(s) {
            Err(Detail::Invalid)
        } else if EMAIL.is_match(s) {
            Ok(Email(s.to_owned()))
        } else {
            Err(Detail::Malformed)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The domain of an `email_domain` access rule (issue 17): a DNS name, stored lower-cased and
/// compared with the part of a verified email identifier after its `@`. Two labels at least,
/// each 1 to 63 letters, digits or hyphens (not first or last), 253 characters at most, a top
/// label that is not all digits; no `@`, no trailing dot. Internationalised names are written in
/// their ASCII (`xn--`) form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailDomain(String);

/// Deserializing validates, as [`EmailDomain::parse`] does.
impl TryFrom<String> for EmailDomain {
    type Error = Detail;

    fn try_from(s: String) -> Result<Self, Detail> {
        EmailDomain::parse(&s)
    }
}

impl From<EmailDomain> for String {
    fn from(v: EmailDomain) -> String {
        v.0
    }
}

impl EmailDomain {
    pub const MAX: usize = 253;

    /// `invalid` for control characters or an overlong name, `malformed` for anything that is
    /// not a plausible DNS name.
    pub fn parse(s: &str) -> Result<Self, Detail> {
        if crate::input::has_control(s) || s.len() > Self::MAX {
            return Err(Detail::Invalid);
        }
        let name = s.to_ascii_lowercase();
        let labels: Vec<&str> = name.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let top_ok = labels.last().is_some_and(|t| !t.bytes().all(|b| b.is_ascii_digit()));
        if labels.len() >= 2 && labels.iter().all(label_ok) && top_ok {
            Ok(EmailDomain(name))
        } else {
            Err(Detail::Malformed)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validated user data. Field names are the seed's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserData {
    pub reference: String,
    pub email: Option<Email>,
    pub phone: Option<E164Phone>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub custom_attributes: Option<Value>,
}

pub const REFERENCE_MAX: usize = 100;
pub const NAME_MAX: usize = 100;
pub const CUSTOM_ATTRIBUTES_MAX: usize = 4096;

/// Whether a string anywhere in `v`, key or value, holds a control character.
fn holds_control(v: &Value) -> bool {
    match v {
        Value::String(s) => crate::input::has_control(s),
        Value::Array(a) => a.iter().any(holds_control),
        Value::Object(m) => m.iter().any(|(k, v)| crate::input::has_control(k) || holds_control(v)),
        _ => false,
    }
}

impl UserData {
    /// Validates a `user_data` value; failures are keyed `user_data.<field>`.
    pub fn validate(v: Option<&Value>) -> Result<UserData, Details> {
        let mut d = Details::new();
        let Some(Value::Object(m)) = v else {
            d.insert("user_data".into(), if v.is_none() { Detail::Required } else { Detail::Invalid }.into());
            return Err(d);
        };
        let get = |k: &str| m.get(k).filter(|v| !v.is_null());
        let text = |k: &str, max: usize, d: &mut Details| -> Option<String> {
            match get(k) {
                None => None,
                Some(Value::String(s)) if s.is_empty() => None,
                // A control character is refused, not stripped: a name is shown to other users
                // as the hostapp sent it, or not at all.
                Some(Value::String(s)) if s.chars().count() <= max && !crate::input::has_control(s) => Some(s.clone()),
                Some(_) => {
                    d.insert(format!("user_data.{k}"), Detail::Invalid.into());
                    None
                }
            }
        };
        let reference = text("reference", REFERENCE_MAX, &mut d);
        if reference.is_none() && !d.contains_key("user_data.reference") {
            d.insert("user_data.reference".into(), Detail::Required.into());
        }
        let email = text("email", usize::MAX, &mut d)
            .and_then(|s| Email::parse(&s).map_err(|e| d.insert("user_data.email".into(), e.into())).ok());
        let phone = text("phone", usize::MAX, &mut d)
            .and_then(|s| E164Phone::parse(&s).map_err(|e| d.insert("user_data.phone".into(), e.into())).ok());
        if email.is_none()
            && phone.is_none()
            && !d.contains_key("user_data.email")
            && !d.contains_key("user_data.phone")
        {
            d.insert("user_data.email".into(), Detail::Required.into());
        }
        let first_name = text("first_name", NAME_MAX, &mut d);
        let last_name = text("last_name", NAME_MAX, &mut d);
        let custom_attributes = get("custom_attributes").cloned();
        if custom_attributes.as_ref().is_some_and(|c| c.to_string().len() > CUSTOM_ATTRIBUTES_MAX || holds_control(c)) {
            d.insert("user_data.custom_attributes".into(), Detail::Invalid.into());
        }
        match reference {
            Some(reference) if d.is_empty() => {
                Ok(UserData { reference, email, phone, first_name, last_name, custom_attributes })
            }
            _ => Err(d),
        }
    }

    /// Trimmed "first last", cut to 64 characters, or `Anonymous` (§10.2 step 5).
    pub fn display_name(&self) -> String {
        let joined = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let cut: String = joined.chars().take(64).collect();
        let cut = cut.trim().to_owned();
        if cut.is_empty() {
            "Anonymous".to_owned()
        } else {
            cut
        }
    }

    /// The lower-cased email if present, else the phone.
    pub fn identifier(&self) -> (String, IdentifierKind) {
        match (&self.email, &self.phone) {
            (Some(e), _) => (e.as_str().to_lowercase(), IdentifierKind::Email),
            (None, Some(p)) => (p.as_str().to_owned(), IdentifierKind::Phone),
            // validate() refuses user data with neither.
            (None, None) => (String::new(), IdentifierKind::Email),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_compile() {
        assert!(E164.is_match("+33612345678"));
        assert!(EMAIL.is_match("a@b.c"));
    }

    #[test]
    fn fixture_users() {
        let alice = UserData::validate(Some(
            &json!({"reference":"alice","email":"Alice@Example.com","first_name":"Alice","last_name":"Martin","custom_attributes":{"tier":"gold"}}),
        ));
        let alice = alice.ok();
        assert_eq!(alice.as_ref().map(|a| a.display_name()).as_deref(), Some("Alice Martin"));
        assert_eq!(alice.map(|a| a.identifier().0).as_deref(), Some("alice@example.com"));
        let bob = UserData::validate(Some(&json!({"reference":"bob","phone":"+33612345678","first_name":"Bob"}))).ok();
        assert_eq!(bob.map(|b| b.identifier()), Some(("+33612345678".to_owned(), IdentifierKind::Phone)));
        let nora = UserData::validate(Some(&json!({"reference":"nora","first_name":"Nora"}))).err().unwrap_or_default();
        assert_eq!(nora.get("user_data.email").map(String::as_str), Some("required"));
        let bad =
            UserData::validate(Some(&json!({"reference":"badphone","phone":"0612345678"}))).err().unwrap_or_default();
        assert_eq!(bad.get("user_data.phone").map(String::as_str), Some("malformed"));
    }

    #[test]
    fn reference_limits_and_anonymous() {
        let long =
            UserData::validate(Some(&json!({"reference":"r".repeat(101),"email":"a@b.c"}))).err().unwrap_or_default();
        assert_eq!(long.get("user_data.reference").map(String::as_str), Some("invalid"));
        let anon = UserData::validate(Some(&json!({"reference":"x","email":"a@b.c","first_name":"  "}))).ok();
        assert_eq!(anon.map(|a| a.display_name()).as_deref(), Some("Anonymous"));
        assert!(UserData::validate(None).is_err());
        assert!(UserData::validate(Some(&json!("encrypted"))).is_err());
    }

    #[test]
    fn control_characters_make_user_data_invalid() {
        for (field, value) in [("first_name", "Al\u{0}ice"), ("last_name", "M\nartin"), ("reference", "al\u{0}ice")] {
            let mut v = json!({"reference":"alice","email":"alice@example.com"});
            v[field] = json!(value);
            let d = UserData::validate(Some(&v)).err().unwrap_or_default();
            assert_eq!(d.get(&format!("user_data.{field}")).map(String::as_str), Some("invalid"), "{field}");
        }
        let v = json!({"reference":"a","email":"a@b.c","custom_attributes":{"k":["\u{0}"]}});
        let d = UserData::validate(Some(&v)).err().unwrap_or_default();
        assert_eq!(d.get("user_data.custom_attributes").map(String::as_str), Some("invalid"));
        let d = UserData::validate(Some(&json!({"reference":"a","email":"a\u{0}@example.com"}))).err();
        assert_eq!(d.unwrap_or_default().get("user_data.email").map(String::as_str), Some("invalid"));
    }

    #[test]
    fn email_domains() {
        assert_eq!(EmailDomain::parse("Example.COM").map(|d| d.as_str().to_owned()), Ok("example.com".into()));
        for ok in ["a.io", "mail.example.co.uk", "xn--bcher-kva.example", "1-2.example"] {
            assert!(EmailDomain::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "example",
            "@example.com",
            "a@example.com",
            "example.com.",
            ".example.com",
            "-a.com",
            "a-.com",
            "a..com",
            "ex ample.com",
            "exämple.com",
            "10.0.0.1",
            "a_b.com",
        ] {
            assert_eq!(EmailDomain::parse(bad), Err(Detail::Malformed), "{bad}");
        }
        assert_eq!(EmailDomain::parse("exa\u{7}mple.com"), Err(Detail::Invalid));
        assert_eq!(EmailDomain::parse(&format!("{}.com", "a".repeat(250))), Err(Detail::Invalid));
        assert_eq!(EmailDomain::parse(&format!("{}.com", "a".repeat(64))), Err(Detail::Malformed));
    }
}
