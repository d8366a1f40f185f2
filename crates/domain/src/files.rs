//! Encrypted files (issue 18): the limits of an upload's text parts, the body of a saved file, and
//! the usage figures (quota, a box's used space) as answered.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::b64::{limits, B64u};
use crate::error::{Detail, ErrorBody};
use crate::ids::{BoxId, FileId, IdentityId, SavedFileId};
use crate::input::{has_control, Obj, Report};
use crate::time::Timestamp;

/// Largest `msg_encrypted_content` and `encrypted_metadata`, in characters.
pub const ENCRYPTED_MAX: usize = limits::MESSAGE;

/// Largest `msg_public_key`, in characters.
pub const PUBLIC_KEY_MAX: usize = limits::PUBLIC_KEY;

/// Largest `key_fingerprint`, in characters.
pub const KEY_FINGERPRINT_MAX: usize = 128;

/// Parts an upload may have at most.
pub const MAX_PARTS: usize = 8;

/// A saved file as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SavedFile {
    pub id: SavedFileId,
    pub identity_id: IdentityId,
    pub encrypted_file_id: FileId,
    pub encrypted_metadata: String,
    pub key_fingerprint: String,
    pub created_at: Timestamp,
}

/// `GET /identities/{id}/storage-quota`: bytes allowed and bytes used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StorageQuotaView {
    pub identity_id: IdentityId,
    pub quota: u64,
    pub used: u64,
}

/// `GET /boxes/{id}/used-space`: the bytes of the box's live files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsedSpaceView {
    pub box_id: BoxId,
    pub used: u64,
}

/// `POST /identities/{id}/saved-files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSavedFile {
    pub encrypted_file_id: FileId,
    pub encrypted_metadata: B64u,
    pub key_fingerprint: String,
}

impl NewSavedFile {
    pub fn parse(body: &Value) -> Result<Self, ErrorBody> {
        let obj = Obj::body(body)?;
        let mut r = Report::new();
        let file = obj.id::<FileId>("encrypted_file_id", true, &mut r);
        let metadata = obj.b64u("encrypted_metadata", ENCRYPTED_MAX, true, &mut r);
        let fingerprint = obj.str("key_fingerprint", true, &mut r).and_then(|s| {
            if s.is_empty() || s.chars().count() > KEY_FINGERPRINT_MAX || has_control(s) {
                r.fail("key_fingerprint", Detail::Invalid);
                None
            } else {
                Some(s.to_owned())
            }
        });
        let parsed =
            file.zip(metadata).zip(fingerprint).map(|((encrypted_file_id, encrypted_metadata), key_fingerprint)| {
                NewSavedFile { encrypted_file_id, encrypted_metadata, key_fingerprint }
            });
        r.finish(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_saved_file_needs_its_three_fields() {
        let id = FileId::new_v4();
        let ok = NewSavedFile::parse(
            &json!({"encrypted_file_id": id.to_string(), "encrypted_metadata": "AAAA", "key_fingerprint": "fp"}),
        );
        assert_eq!(ok.map(|s| s.encrypted_file_id).ok(), Some(id));
        let err = NewSavedFile::parse(&json!({"encrypted_metadata": "A+A", "key_fingerprint": ""})).err();
        let details = err.map(|e| e.details).unwrap_or_default();
        assert_eq!(details.get("encrypted_file_id").map(String::as_str), Some("required"));
        assert_eq!(details.get("encrypted_metadata").map(String::as_str), Some("malformed"));
        assert_eq!(details.get("key_fingerprint").map(String::as_str), Some("invalid"));
    }
}
