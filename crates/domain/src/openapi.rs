//! The request bodies of the HTTP API as OpenAPI schemas (issue 19). Bodies are read by the
//! hand-written parsers of this crate (`BoxCreate::parse`, `NewEvent::parse`, …), which report
//! every field's problem at once; these types only describe what those parsers accept, with the
//! same limits. The test at the end checks each documented limit against the parser's constant.
//!
//! Patterns: `b64u` is the strict alphabet of §2.3, `b64` the lenient one with padding; a title or
//! display name has no control character.

use serde::Serialize;
use utoipa::ToSchema;

/// The strict base64 of §2.3 (unpadded, URL-safe; no length of 1 modulo 4, which no encoding has).
pub const B64U_PATTERN: &str = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$";
/// The lenient base64 of §2.3 (either alphabet, up to two `=`).
pub const B64_PATTERN: &str = "^[A-Za-z0-9+/_-]+={0,2}$";
/// No control character (C0, DEL, C1), as `input::has_control`.
pub const NO_CONTROL_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$";

/// A key share as given with a new box or contact (§5.6); `share` is accepted for `misakey_share`.
#[derive(Serialize, ToSchema)]
pub struct NewKeyShareBody {
    #[schema(min_length = 1, max_length = 1024, pattern = "^[A-Za-z0-9+/_-]+={0,2}$")]
    pub misakey_share: String,
    #[schema(min_length = 1, max_length = 512, pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$")]
    pub other_share_hash: String,
    #[schema(min_length = 1, max_length = 4096, pattern = "^[A-Za-z0-9+/_-]+={0,2}$")]
    pub encrypted_invitation_key_share: String,
}

/// `POST /boxes` (§7.2). 400 `details` keys: `title`, `public_key`, `key_share`,
/// `key_share.<field>`; 409 `key_share.other_share_hash`.
#[derive(Serialize, ToSchema)]
pub struct BoxCreateBody {
    #[schema(min_length = 1, max_length = 50, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")]
    pub title: String,
    #[schema(min_length = 1, max_length = 4096, pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$")]
    pub public_key: String,
    #[schema(nullable = false)]
    pub key_share: Option<NewKeyShareBody>,
}

/// The box of a contact request.
#[derive(Serialize, ToSchema)]
pub struct ContactBox {
    #[schema(min_length = 1, max_length = 50, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")]
    pub title: String,
    #[schema(min_length = 1, max_length = 4096, pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$")]
    pub public_key: String,
}

/// `POST /box-users/{id}/contact` (§7.11). `extra` (or its alias `invitation_data`) holds one
/// entry: the contacted identity's public key to the invitation ciphertext (`b64`, at most
/// 16384). 400 `details` keys: `contacted_identity_id`, `box.title`, `box.public_key`,
/// `key_share.<field>`, `extra`; 404 `contacted_identity_id`; 409 `key_share.other_share_hash`.
#[derive(Serialize, ToSchema)]
pub struct ContactBody {
    #[schema(format = Uuid)]
    pub contacted_identity_id: String,
    #[serde(rename = "box")]
    pub r#box: ContactBox,
    pub key_share: NewKeyShareBody,
    #[schema(schema_with = one_invitation)]
    pub extra: serde_json::Value,
}

/// `{<public key>: <b64 ciphertext>}` with one entry, as `boxes::read_invitation` reads it.
fn one_invitation() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let ciphertext = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(crate::b64::limits::CRYPTO_ACTION))
        .pattern(Some(B64_PATTERN));
    let key = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(crate::b64::limits::PUBLIC_KEY));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(ciphertext))
        .property_names(Some(key))
        .min_properties(Some(1))
        .max_properties(Some(1))
        .build()
}

/// `DELETE /boxes/{id}` (§7.6). 400 `details` key: `user_confirmation`.
#[derive(Serialize, ToSchema)]
pub struct DeleteConfirmation {
    #[schema(pattern = "^(delete|supprimer)$")]
    pub user_confirmation: String,
}

/// `PUT /boxes/{id}/new-events-count/ack` (§7.10): the caller's identity. 400/403 `identity_id`.
#[derive(Serialize, ToSchema)]
pub struct AckBody {
    #[schema(format = Uuid)]
    pub identity_id: String,
}

/// `PUT /box-users/{id}/boxes/{bid}/settings` (§7.13). 400 `details` key: `muted`.
#[derive(Serialize, ToSchema)]
pub struct SettingsBody {
    pub muted: bool,
}

/// `POST /box-key-shares` (§7.12). 400 `details` keys: `misakey_share`, `other_share_hash`,
/// `encrypted_invitation_key_share`, `box_id`; 409 `other_share_hash`.
#[derive(Serialize, ToSchema)]
pub struct KeyShareCreateBody {
    #[schema(min_length = 1, max_length = 1024, pattern = "^[A-Za-z0-9+/_-]+={0,2}$")]
    pub misakey_share: String,
    #[schema(min_length = 1, max_length = 512, pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$")]
    pub other_share_hash: String,
    #[schema(min_length = 1, max_length = 4096, pattern = "^[A-Za-z0-9+/_-]+={0,2}$", nullable = false)]
    pub encrypted_invitation_key_share: Option<String>,
    #[schema(format = Uuid)]
    pub box_id: String,
}

/// `PUT /identities/{id}/public-keys` (§8): at least one of the two. 400 `details` keys:
/// `pubkey`, `non_identified_pubkey`.
#[derive(Serialize, ToSchema)]
pub struct PublicKeysBody {
    #[schema(
        min_length = 1,
        max_length = 4096,
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$",
        nullable = false
    )]
    pub pubkey: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 4096,
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$",
        nullable = false
    )]
    pub non_identified_pubkey: Option<String>,
}

/// `PUT /identities/{id}/notifications/acknowledgement`. 400/404 `details` key: `until_id`.
#[derive(Serialize, ToSchema)]
pub struct NotificationAckBody {
    #[schema(format = Uuid)]
    pub until_id: String,
}

/// How an identity is identified.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKindBody {
    Email,
    Phone,
}

/// `PUT /internal/identities/{id}` (§12). 400 `details` keys: `display_name`,
/// `identifier_value`, `identifier_kind`, `identifier_verified`.
#[derive(Serialize, ToSchema)]
pub struct IdentityUpsertBody {
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*\\S[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub display_name: String,
    #[schema(min_length = 1, max_length = 320)]
    pub identifier_value: String,
    pub identifier_kind: IdentifierKindBody,
    #[schema(nullable = false)]
    pub identifier_verified: Option<bool>,
}

/// The content of a `msg.text` post.
#[derive(Serialize, ToSchema)]
pub struct MessageContent {
    #[schema(min_length = 1, max_length = 32768, pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$")]
    pub encrypted: String,
    #[schema(min_length = 1, max_length = 4096, pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$")]
    pub public_key: String,
}

/// The content of a `msg.file` post.
#[derive(Serialize, ToSchema)]
pub struct FileContent {
    #[schema(min_length = 1, max_length = 32768, pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$")]
    pub encrypted: String,
    #[schema(min_length = 1, max_length = 4096, pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$")]
    pub public_key: String,
    #[schema(format = Uuid)]
    pub encrypted_file_id: String,
}

/// The content of a `msg.edit` post.
#[derive(Serialize, ToSchema)]
pub struct EditContent {
    #[schema(min_length = 1, max_length = 32768, pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$")]
    pub new_encrypted: String,
    #[schema(min_length = 1, max_length = 4096, pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$")]
    pub new_public_key: String,
}

/// The content of a `state.access_mode` post.
#[derive(Serialize, ToSchema)]
pub struct AccessModeContent {
    pub value: crate::boxes::AccessMode,
}

/// Who an access rule admits.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestrictionType {
    IdentityId,
    Identifier,
    EmailDomain,
}

/// The content of an `access.add` post: `value` is an identity id, an email or E.164 identifier,
/// or a DNS name, as `restriction_type` says.
#[derive(Serialize, ToSchema)]
pub struct AccessAddContent {
    pub restriction_type: RestrictionType,
    #[schema(min_length = 1, max_length = 320)]
    pub value: String,
    #[schema(nullable = false)]
    pub auto_invite: Option<bool>,
}

/// `POST /boxes/{id}/events` (§6.2, §7.7), by `type` (`create` and `member.kick` are the
/// server's). 400 `details` keys: `type`, `content`, `content.<field>`, `referrer_id`, `extra`,
/// `extra.<field>`; 404 `referrer_id`; 409 `type`; 410 `referrer_id`; 403 `details.reason`.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type")]
pub enum NewEventBody {
    #[serde(rename = "msg.text")]
    MsgText { content: MessageContent },
    #[serde(rename = "msg.file")]
    MsgFile { content: FileContent },
    #[serde(rename = "msg.edit")]
    MsgEdit {
        #[schema(format = Uuid)]
        referrer_id: String,
        content: EditContent,
    },
    #[serde(rename = "msg.delete")]
    MsgDelete {
        #[schema(format = Uuid)]
        referrer_id: String,
    },
    #[serde(rename = "member.join")]
    MemberJoin {},
    #[serde(rename = "member.leave")]
    MemberLeave {},
    #[serde(rename = "state.access_mode")]
    StateAccessMode { content: AccessModeContent },
    #[serde(rename = "state.key_share")]
    StateKeyShare { extra: NewKeyShareBody },
    #[serde(rename = "access.add")]
    AccessAdd {
        content: AccessAddContent,
        /// With `auto_invite`: `{<public key>: <b64 invitation>}`, one entry (several for an
        /// `identifier` rule).
        #[schema(value_type = Option<Object>, nullable = false)]
        extra: Option<serde_json::Value>,
    },
    #[serde(rename = "access.rm")]
    AccessRm {
        #[schema(format = Uuid)]
        referrer_id: String,
    },
}

/// One change of a batch.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type")]
pub enum AccessChange {
    #[serde(rename = "access.add")]
    AccessAdd {
        content: AccessAddContent,
        #[schema(value_type = Option<Object>, nullable = false)]
        extra: Option<serde_json::Value>,
    },
    #[serde(rename = "access.rm")]
    AccessRm {
        #[schema(format = Uuid)]
        referrer_id: String,
    },
}

/// The only `batch_type`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchType {
    Accesses,
}

/// `POST /boxes/{id}/batch-events` (issue 17): 1 to 100 `access.add` / `access.rm` changes.
/// 400 `details` keys: `batch_type`, `events`, `events.<i>`, `events.<i>.<field>`.
#[derive(Serialize, ToSchema)]
pub struct AccessBatchBody {
    pub batch_type: BatchType,
    #[schema(min_items = 1, max_items = 100)]
    pub events: Vec<AccessChange>,
}

/// `POST /boxes/{id}/encrypted-files` (issue 18), `multipart/form-data`: the text parts first,
/// `encrypted_file` last; at most 8 parts. 400 `details` keys: `Content-Type`, `body`,
/// `msg_encrypted_content`, `msg_public_key`, `encrypted_file`, or the name of an unknown part;
/// 403 `encrypted_file = quota_exceeded` or `reason`; 413 `encrypted_file` past `FILES_MAX_BYTES`.
#[derive(Serialize, ToSchema)]
pub struct EncryptedFileUpload {
    #[schema(min_length = 1, max_length = 32768, pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$")]
    pub msg_encrypted_content: String,
    #[schema(
        min_length = 1,
        max_length = 4096,
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$",
        nullable = false
    )]
    pub msg_public_key: Option<String>,
    /// The ciphertext of the file.
    #[schema(value_type = String, format = Binary)]
    pub encrypted_file: Vec<u8>,
}

/// `POST /identities/{id}/saved-files` (issue 18). 400 `details` keys: `encrypted_file_id`,
/// `encrypted_metadata`, `key_fingerprint`; 404 `encrypted_file_id`; 409 `encrypted_file_id`.
#[derive(Serialize, ToSchema)]
pub struct SavedFileBody {
    #[schema(format = Uuid)]
    pub encrypted_file_id: String,
    #[schema(min_length = 1, max_length = 32768, pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$")]
    pub encrypted_metadata: String,
    #[schema(min_length = 1, max_length = 128, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")]
    pub key_fingerprint: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use utoipa::PartialSchema;

    fn schema<T: PartialSchema>() -> Value {
        serde_json::to_value(T::schema()).unwrap_or_default()
    }

    fn limit(v: &Value, field: &str, key: &str) -> Option<u64> {
        v["properties"][field][key].as_u64()
    }

    #[test]
    fn documented_limits_are_the_parsers() {
        use crate::b64::limits;
        let as_u64 = |n: usize| Some(n as u64);
        let ks = schema::<NewKeyShareBody>();
        assert_eq!(limit(&ks, "misakey_share", "maxLength"), as_u64(limits::MISAKEY_SHARE));
        assert_eq!(limit(&ks, "other_share_hash", "maxLength"), as_u64(limits::OTHER_SHARE_HASH));
        assert_eq!(
            limit(&ks, "encrypted_invitation_key_share", "maxLength"),
            as_u64(limits::ENCRYPTED_INVITATION_KEY_SHARE)
        );
        let create = schema::<BoxCreateBody>();
        assert_eq!(limit(&create, "title", "maxLength"), as_u64(crate::boxes::Title::MAX));
        assert_eq!(limit(&create, "public_key", "maxLength"), as_u64(limits::PUBLIC_KEY));
        let contact = schema::<ContactBox>();
        assert_eq!(limit(&contact, "title", "maxLength"), as_u64(crate::boxes::Title::MAX));
        assert_eq!(limit(&contact, "public_key", "maxLength"), as_u64(limits::PUBLIC_KEY));
        let kc = schema::<KeyShareCreateBody>();
        assert_eq!(limit(&kc, "misakey_share", "maxLength"), as_u64(limits::MISAKEY_SHARE));
        assert_eq!(limit(&kc, "other_share_hash", "maxLength"), as_u64(limits::OTHER_SHARE_HASH));
        assert_eq!(
            limit(&kc, "encrypted_invitation_key_share", "maxLength"),
            as_u64(limits::ENCRYPTED_INVITATION_KEY_SHARE)
        );
        let keys = schema::<PublicKeysBody>();
        assert_eq!(limit(&keys, "pubkey", "maxLength"), as_u64(limits::PUBLIC_KEY));
        assert_eq!(limit(&keys, "non_identified_pubkey", "maxLength"), as_u64(limits::PUBLIC_KEY));
        let upsert = schema::<IdentityUpsertBody>();
        assert_eq!(limit(&upsert, "display_name", "maxLength"), as_u64(crate::identity::DisplayName::MAX));
        assert_eq!(limit(&upsert, "identifier_value", "maxLength"), as_u64(limits::ACCESS_VALUE));
        let batch = schema::<AccessBatchBody>();
        assert_eq!(limit(&batch, "events", "maxItems"), as_u64(crate::event::BATCH_MAX));
        let upload = schema::<EncryptedFileUpload>();
        assert_eq!(limit(&upload, "msg_encrypted_content", "maxLength"), as_u64(crate::files::ENCRYPTED_MAX));
        assert_eq!(limit(&upload, "msg_public_key", "maxLength"), as_u64(crate::files::PUBLIC_KEY_MAX));
        let saved = schema::<SavedFileBody>();
        assert_eq!(limit(&saved, "encrypted_metadata", "maxLength"), as_u64(crate::files::ENCRYPTED_MAX));
        assert_eq!(limit(&saved, "key_fingerprint", "maxLength"), as_u64(crate::files::KEY_FINGERPRINT_MAX));
        assert_eq!(saved["properties"]["key_fingerprint"]["pattern"], NO_CONTROL_PATTERN);
        let text = schema::<MessageContent>();
        assert_eq!(limit(&text, "encrypted", "maxLength"), as_u64(limits::MESSAGE));
        assert_eq!(limit(&text, "public_key", "maxLength"), as_u64(limits::PUBLIC_KEY));
        let edit = schema::<EditContent>();
        assert_eq!(limit(&edit, "new_encrypted", "maxLength"), as_u64(limits::MESSAGE));
        let add = schema::<AccessAddContent>();
        assert_eq!(limit(&add, "value", "maxLength"), as_u64(limits::ACCESS_VALUE));
    }

    #[test]
    fn documented_patterns_are_the_parsers() {
        let create = schema::<BoxCreateBody>();
        assert_eq!(create["properties"]["public_key"]["pattern"], B64U_PATTERN);
        assert_eq!(create["properties"]["title"]["pattern"], NO_CONTROL_PATTERN);
        let ks = schema::<NewKeyShareBody>();
        assert_eq!(ks["properties"]["misakey_share"]["pattern"], B64_PATTERN);
        let re = |p: &str| regex::Regex::new(p).ok();
        let (b64u, b64) = (re(B64U_PATTERN), re(B64_PATTERN));
        let samples = [
            "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw",
            "ab-_",
            "abcde",
            "a",
            "ab",
            "abc",
            "a/b",
            "abc=",
            "ab===",
            "==",
            "a b",
            "a=b",
            "lBHT1vfwFAIBig5Nj+sD+w==",
        ];
        for s in samples {
            // The patterns admit exactly what the parser does (which also bounds the length).
            assert_eq!(b64u.as_ref().is_some_and(|r| r.is_match(s)), crate::b64::is_b64u(s), "{s}");
            assert_eq!(b64.as_ref().is_some_and(|r| r.is_match(s)), crate::b64::is_b64(s), "{s}");
        }
        let types: Vec<String> = schema::<NewEventBody>()["oneOf"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v["properties"]["type"]["enum"][0].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let parsed: Vec<String> = crate::event::EventType::ALL
            .iter()
            .filter(|t| !matches!(t, crate::event::EventType::Create | crate::event::EventType::MemberKick))
            .map(|t| t.as_str().to_owned())
            .collect();
        assert_eq!(types, parsed);
    }
}
