//! Typed UUID identifiers (§2.2): any version and letter case in, lowercase v4 out.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The input is not a 36-character hyphenated UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed uuid")]
pub struct MalformedId;

/// Parses the 36-character hyphenated form only; braces, `urn:` and the simple form are refused.
pub fn parse_uuid(s: &str) -> Result<Uuid, MalformedId> {
    let bytes = s.as_bytes();
    if bytes.len() != 36 || [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
        return Err(MalformedId);
    }
    Uuid::try_parse(s).map_err(|_| MalformedId)
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new_v4() -> Self {
                $name(Uuid::new_v4())
            }

            pub fn parse(s: &str) -> Result<Self, MalformedId> {
                parse_uuid(s).map($name)
            }

            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            pub fn into_uuid(self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                $name(u)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = MalformedId;
            fn from_str(s: &str) -> Result<Self, MalformedId> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.as_hyphenated(), f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.as_hyphenated())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// An identity: one user of one hostapp, the `sub` of every session token.
    IdentityId
);
id_type!(
    /// A box (shared encrypted space).
    BoxId
);
id_type!(
    /// An event of a box.
    EventId
);
id_type!(
    /// A crypto action addressed to one identity.
    CryptoActionId
);
id_type!(
    /// A stored notification of one identity (issue 17).
    NotificationId
);
id_type!(
    /// An encrypted file (issue 18): its blob's name in the object store.
    FileId
);
id_type!(
    /// An identity's saved reference to an encrypted file (issue 18).
    SavedFileId
);
id_type!(
    /// A login session (`sid`), shared by every token refreshed from it.
    SessionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_any_case_and_version_and_writes_lowercase() {
        let id = BoxId::parse("74EE16B5-89BE-14F7-BCDD-117F496A90A7").unwrap_or_else(|_| BoxId::new_v4());
        assert_eq!(id.to_string(), "74ee16b5-89be-14f7-bcdd-117f496a90a7");
    }

    #[test]
    fn refuses_other_forms() {
        for s in [
            "",
            "74ee16b589be44f7bcdd117f496a90a7",
            "{74ee16b5-89be-44f7-bcdd-117f496a90a7}",
            "urn:uuid:74ee16b5-89be-44f7-bcdd-117f496a90a7",
            "74ee16b5-89be-44f7-bcdd-117f496a90ag",
            "not-a-uuid",
        ] {
            assert!(IdentityId::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn new_ids_are_v4() {
        assert_eq!(EventId::new_v4().as_uuid().get_version_num(), 4);
    }
}
