//! Reading untrusted JSON request bodies field by field.
//!
//! Bodies are parsed as `serde_json::Value` first so that every invalid field can be reported
//! with its dotted path (§4), `null` counts as absent and unknown fields are ignored (§2.1).

use serde_json::{Map, Value};

use crate::b64::{B64u, B64};
use crate::error::{Detail, Details, ErrorBody, Origin};
use crate::ids::MalformedId;

/// Whether `s` holds a control character (C0, DEL or C1: `char::is_control`). No free-text field
/// accepts one: a NUL cannot even be stored in PostgreSQL `text`, and the rest only serve to
/// forge log lines or confuse what a user sees. Every string [`Obj::str`] reads is checked.
pub fn has_control(s: &str) -> bool {
    // Ciphertext is ASCII: its bytes are checked without decoding characters.
    if s.is_ascii() {
        s.bytes().any(|b| b.is_ascii_control())
    } else {
        s.chars().any(char::is_control)
    }
}

/// Collects field errors while a body is read; `finish` turns them into one 400.
#[derive(Debug, Default)]
pub struct Report {
    details: Details,
}

impl Report {
    pub fn new() -> Self {
        Report::default()
    }

    pub fn fail(&mut self, key: impl Into<String>, detail: impl Into<String>) {
        self.details.entry(key.into()).or_insert_with(|| detail.into());
    }

    pub fn is_ok(&self) -> bool {
        self.details.is_empty()
    }

    pub fn details(&self) -> &Details {
        &self.details
    }

    /// `Ok(value)` when no field failed, else a 400 with every failure, origin `body`.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ErrorBody> {
        self.finish_at(Origin::Body, value)
    }

    pub fn finish_at<T>(self, origin: Origin, value: Option<T>) -> Result<T, ErrorBody> {
        match value {
            Some(v) if self.details.is_empty() => Ok(v),
            _ => {
                let mut details = self.details;
                if details.is_empty() {
                    details.insert("body".into(), Detail::Invalid.into());
                }
                Err(ErrorBody::bad_request(origin, "validation failed").with_details(details))
            }
        }
    }
}

/// A JSON object seen at some dotted path (`""` for the body itself).
#[derive(Debug, Clone, Copy)]
pub struct Obj<'a> {
    map: Option<&'a Map<String, Value>>,
    prefix: &'a str,
}

impl<'a> Obj<'a> {
    /// The top-level body: anything but an object is `{"body": "malformed"}`.
    pub fn body(v: &'a Value) -> Result<Self, ErrorBody> {
        match v {
            Value::Object(map) => Ok(Obj { map: Some(map), prefix: "" }),
            _ => Err(ErrorBody::malformed_body()),
        }
    }

    /// An empty object, for optional sub-objects that are absent.
    pub fn empty(prefix: &'a str) -> Self {
        Obj { map: None, prefix }
    }

    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{}", self.prefix, key)
        }
    }

    /// The raw value; `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn keys(&self) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.map.into_iter().flat_map(|m| m.iter()).filter(|(_, v)| !v.is_null())
    }

    pub fn len(&self) -> usize {
        self.keys().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A nested object. Present but not an object is `invalid`; absent gives `None`
    /// (and `required` when asked).
    pub fn object(&self, key: &'a str, prefix: &'a str, required: bool, r: &mut Report) -> Option<Obj<'a>> {
        match self.get(key) {
            None => {
                if required {
                    r.fail(self.path(key), Detail::Required);
                }
                None
            }
            Some(Value::Object(map)) => Some(Obj { map: Some(map), prefix }),
            Some(_) => {
                r.fail(self.path(key), Detail::Invalid);
                None
            }
        }
    }

    pub fn str(&self, key: &str, required: bool, r: &mut Report) -> Option<&'a str> {
        match self.get(key) {
            None => {
                if required {
                    r.fail(self.path(key), Detail::Required);
                }
                None
            }
            Some(Value::String(s)) if !has_control(s) => Some(s.as_str()),
            Some(_) => {
                r.fail(self.path(key), Detail::Invalid);
                None
            }
        }
    }

    pub fn bool(&self, key: &str, required: bool, r: &mut Report) -> Option<bool> {
        match self.get(key) {
            None => {
                if required {
                    r.fail(self.path(key), Detail::Required);
                }
                None
            }
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                r.fail(self.path(key), Detail::Invalid);
                None
            }
        }
    }

    pub fn b64u(&self, key: &str, max: usize, required: bool, r: &mut Report) -> Option<B64u> {
        let s = self.str(key, required, r)?;
        B64u::parse(s, max).map_err(|d| r.fail(self.path(key), d)).ok()
    }

    pub fn b64(&self, key: &str, max: usize, required: bool, r: &mut Report) -> Option<B64> {
        let s = self.str(key, required, r)?;
        B64::parse(s, max).map_err(|d| r.fail(self.path(key), d)).ok()
    }

    /// A uuid-typed id; a bad value is `malformed`.
    pub fn id<T: std::str::FromStr<Err = MalformedId>>(&self, key: &str, required: bool, r: &mut Report) -> Option<T> {
        let s = match self.get(key) {
            None => {
                if required {
                    r.fail(self.path(key), Detail::Required);
                }
                return None;
            }
            Some(Value::String(s)) => s,
            Some(_) => {
                r.fail(self.path(key), Detail::Malformed);
                return None;
            }
        };
        s.parse::<T>().map_err(|_| r.fail(self.path(key), Detail::Malformed)).ok()
    }

    /// Reports `forbidden` when the field is present (§6.2).
    pub fn forbid(&self, key: &str, r: &mut Report) {
        if self.has(key) {
            r.fail(self.path(key), Detail::Forbidden);
        }
    }
}

/// Parses a path segment as an id, answering 400 `{"<name>": "malformed"}` with origin `path`.
pub fn path_id<T: std::str::FromStr<Err = MalformedId>>(raw: &str, name: &str) -> Result<T, ErrorBody> {
    raw.parse::<T>()
        .map_err(|_| ErrorBody::bad_request(Origin::Path, format!("invalid {name}")).with(name, Detail::Malformed))
}

/// Parses a path of two ids, answering 400 with origin `path` and a detail for each malformed
/// one.
pub fn path_ids<A, B>(raw: &(String, String), names: (&str, &str)) -> Result<(A, B), ErrorBody>
where
    A: std::str::FromStr<Err = MalformedId>,
    B: std::str::FromStr<Err = MalformedId>,
{
    match (path_id::<A>(&raw.0, names.0), path_id::<B>(&raw.1, names.1)) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(mut e), Err(other)) => {
            e.details.extend(other.details);
            Err(e)
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// Parses a query parameter as an id, answering 400 with origin `query`.
pub fn query_id<T: std::str::FromStr<Err = MalformedId>>(raw: Option<&str>, name: &str) -> Result<T, ErrorBody> {
    match raw {
        None | Some("") => {
            Err(ErrorBody::bad_request(Origin::Query, format!("{name} is required")).with(name, Detail::Required))
        }
        Some(s) => s.parse::<T>().map_err(|_| {
            ErrorBody::bad_request(Origin::Query, format!("invalid {name}")).with(name, Detail::Malformed)
        }),
    }
}

/// `offset`/`limit` paging (§2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}

impl Page {
    pub fn parse(
        offset: Option<&str>,
        limit: Option<&str>,
        default_limit: i64,
        max_limit: i64,
    ) -> Result<Self, ErrorBody> {
        let mut r = Report::new();
        let offset = match offset {
            None => Some(0),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n >= 0 => Some(n),
                _ => {
                    r.fail("offset", Detail::Invalid);
                    None
                }
            },
        };
        let limit = match limit {
            None => Some(default_limit),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=max_limit).contains(&n) => Some(n),
                _ => {
                    r.fail("limit", Detail::Invalid);
                    None
                }
            },
        };
        let page = offset.zip(limit).map(|(offset, limit)| Page { offset, limit });
        r.finish_at(Origin::Query, page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn two_id_paths_report_every_malformed_id() {
        use crate::{BoxId, IdentityId};
        let good = uuid::Uuid::new_v4().to_string();
        let raw = (good.clone(), good.clone());
        assert!(path_ids::<IdentityId, BoxId>(&raw, ("id", "bid")).is_ok());
        let Err(both) = path_ids::<IdentityId, BoxId>(&("x".into(), "y".into()), ("id", "bid")) else {
            panic!("two malformed ids were accepted")
        };
        assert_eq!(both.origin, Origin::Path);
        assert_eq!(both.details.get("id").map(String::as_str), Some("malformed"));
        assert_eq!(both.details.get("bid").map(String::as_str), Some("malformed"));
        let Err(second) = path_ids::<IdentityId, BoxId>(&(good, "y".into()), ("id", "bid")) else {
            panic!("a malformed bid was accepted")
        };
        assert_eq!(second.details.len(), 1);
        assert_eq!(second.details.get("bid").map(String::as_str), Some("malformed"));
    }

    #[test]
    fn null_is_absent_and_paths_are_dotted() {
        let v = json!({"box": {"title": null, "public_key": "a/b"}, "x": 1});
        let body = Obj::body(&v).unwrap_or(Obj::empty(""));
        let mut r = Report::new();
        let b = body.object("box", "box", true, &mut r).unwrap_or(Obj::empty("box"));
        assert_eq!(b.str("title", true, &mut r), None);
        assert_eq!(b.b64u("public_key", 10, true, &mut r), None);
        assert_eq!(r.details().get("box.title").map(String::as_str), Some("required"));
        assert_eq!(r.details().get("box.public_key").map(String::as_str), Some("malformed"));
    }

    #[test]
    fn strings_with_control_characters_are_invalid() {
        let v = json!({"a": "x\u{0}y", "b": "tab\there", "c": "del\u{7f}", "d": "c1\u{9b}", "e": "plain é ✓"});
        let body = Obj::body(&v).unwrap_or(Obj::empty(""));
        let mut r = Report::new();
        for key in ["a", "b", "c", "d"] {
            assert_eq!(body.str(key, true, &mut r), None, "{key}");
            assert_eq!(r.details().get(key).map(String::as_str), Some("invalid"), "{key}");
        }
        assert_eq!(body.str("e", true, &mut r), Some("plain é ✓"));
    }

    #[test]
    fn control_characters_are_found_in_ascii_and_other_text_alike() {
        for c in (0..0x300u32).filter_map(char::from_u32) {
            assert_eq!(has_control(&format!("ab{c}cd")), c.is_control(), "{c:?}");
            assert_eq!(has_control(&format!("é{c}")), c.is_control(), "{c:?} after a non-ASCII character");
        }
    }

    #[test]
    fn non_objects_are_malformed_bodies() {
        let e = Obj::body(&json!([1])).err().map(|e| e.details);
        assert_eq!(e.and_then(|d| d.get("body").cloned()).as_deref(), Some("malformed"));
    }

    #[test]
    fn paging_bounds() {
        assert_eq!(Page::parse(None, None, 10, 50).ok(), Some(Page { offset: 0, limit: 10 }));
        assert!(Page::parse(Some("-1"), None, 10, 50).is_err());
        assert!(Page::parse(None, Some("0"), 10, 50).is_err());
        assert!(Page::parse(None, Some("51"), 10, 50).is_err());
        assert!(Page::parse(None, Some("x"), 10, 50).is_err());
        assert_eq!(Page::parse(Some("5"), Some("50"), 10, 50).ok(), Some(Page { offset: 5, limit: 50 }));
    }
}
