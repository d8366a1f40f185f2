//! Request bodies, serialised in the shapes `domain` parses (`BoxCreate`, `ContactRequest`,
//! `NewEvent`, `PublicKeysUpdate`, `KeyShareCreate`) and auth-bridge reads (`LoginBody`,
//! `AuthorizeBody`): `domain`'s own request types only parse, so the client writes them here once.

use std::collections::BTreeMap;
use std::fmt;

use domain::boxes::AccessMode;
use domain::{BoxId, EventId, FileId, IdentityId};
use serde::Serialize;

/// `POST /boxes` (§7.2), and the `box` of a contact.
#[derive(Debug, Clone, Serialize)]
pub struct NewBox {
    pub title: String,
    pub public_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_share: Option<KeyShare>,
}

impl NewBox {
    pub fn new(title: &str, public_key: &str) -> NewBox {
        NewBox { title: title.to_owned(), public_key: public_key.to_owned(), key_share: None }
    }
}

/// A key share as it is sent (§5.6).
#[derive(Clone, Serialize)]
pub struct KeyShare {
    pub misakey_share: String,
    pub other_share_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted_invitation_key_share: Option<String>,
}

// Shares must never reach a log or a panic message.
impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyShare(..)")
    }
}

/// `POST /box-key-shares` (§7.12): one more share of a box the caller belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct KeyShareCreate {
    #[serde(flatten)]
    pub share: KeyShare,
    pub box_id: BoxId,
}

/// `POST /box-users/{id}/contact` (§7.11).
#[derive(Debug, Clone, Serialize)]
pub struct Contact {
    pub contacted_identity_id: IdentityId,
    #[serde(rename = "box")]
    pub new_box: NewBox,
    pub key_share: KeyShare,
    /// The contacted identity's public key to the invitation ciphertext.
    pub extra: BTreeMap<String, String>,
}

/// `PUT /identities/{id}/public-keys` (§8).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublicKeys {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pubkey: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_identified_pubkey: Option<String>,
}

/// `POST /boxes/{id}/events` (§6.3), one variant per type a client may post.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum NewEvent {
    #[serde(rename = "msg.text")]
    MsgText { content: Message },
    #[serde(rename = "msg.edit")]
    MsgEdit { referrer_id: EventId, content: Edit },
    #[serde(rename = "msg.delete")]
    MsgDelete { referrer_id: EventId },
    #[serde(rename = "member.join")]
    MemberJoin,
    #[serde(rename = "member.leave")]
    MemberLeave,
    #[serde(rename = "state.access_mode")]
    StateAccessMode { content: AccessModeValue },
    #[serde(rename = "state.key_share")]
    StateKeyShare { extra: KeyShare },
    #[serde(rename = "access.add")]
    AccessAdd {
        content: Access,
        #[serde(skip_serializing_if = "Option::is_none")]
        extra: Option<BTreeMap<String, String>>,
    },
    #[serde(rename = "access.rm")]
    AccessRm { referrer_id: EventId },
}

impl NewEvent {
    pub fn text(encrypted: &str, public_key: &str) -> NewEvent {
        NewEvent::MsgText { content: Message { encrypted: encrypted.to_owned(), public_key: public_key.to_owned() } }
    }

    pub fn edit(referrer_id: EventId, new_encrypted: &str, new_public_key: &str) -> NewEvent {
        NewEvent::MsgEdit {
            referrer_id,
            content: Edit { new_encrypted: new_encrypted.to_owned(), new_public_key: new_public_key.to_owned() },
        }
    }

    /// `access.add` of an identity, without an invitation.
    pub fn allow(identity: IdentityId) -> NewEvent {
        NewEvent::AccessAdd {
            content: Access { restriction_type: "identity_id".into(), value: identity.to_string(), auto_invite: None },
            extra: None,
        }
    }
}

#[derive(Clone, Serialize)]
pub struct Message {
    pub encrypted: String,
    pub public_key: String,
}

#[derive(Clone, Serialize)]
pub struct Edit {
    pub new_encrypted: String,
    pub new_public_key: String,
}

// Ciphertext never reaches a log or a panic message.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message").finish_non_exhaustive()
    }
}

impl fmt::Debug for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Edit").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AccessModeValue {
    pub value: AccessMode,
}

/// An access rule (§6.1): `restriction_type` is `identity_id`, `identifier` or `email_domain`.
#[derive(Debug, Clone, Serialize)]
pub struct Access {
    pub restriction_type: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_invite: Option<bool>,
}

/// `PUT /box-users/{id}/boxes/{bid}/settings` (§7.13).
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub muted: bool,
}

/// `POST /boxes/{id}/batch-events`: access changes only (`access.add`, `access.rm`).
#[derive(Debug, Serialize)]
pub(crate) struct AccessBatch<'a> {
    pub batch_type: &'static str,
    pub events: &'a [NewEvent],
}

/// The message of an encrypted file: the text parts of `POST /boxes/{id}/encrypted-files`.
#[derive(Clone)]
pub struct FileMessage {
    /// `msg_encrypted_content`.
    pub encrypted: String,
    /// `msg_public_key`.
    pub public_key: Option<String>,
}

impl fmt::Debug for FileMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileMessage").finish_non_exhaustive()
    }
}

impl FileMessage {
    pub fn new(encrypted: &str, public_key: &str) -> FileMessage {
        FileMessage { encrypted: encrypted.to_owned(), public_key: Some(public_key.to_owned()) }
    }
}

/// `POST /identities/{id}/saved-files`.
#[derive(Clone, Serialize)]
pub struct SaveFile {
    pub encrypted_file_id: FileId,
    pub encrypted_metadata: String,
    pub key_fingerprint: String,
}

impl fmt::Debug for SaveFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaveFile").field("encrypted_file_id", &self.encrypted_file_id).finish_non_exhaustive()
    }
}

/// `POST /auth/login` (§10.2).
#[derive(Clone, Serialize)]
pub struct LoginBody {
    pub auth_code: String,
    pub app_id: String,
    pub client_id: String,
}

// The auth code is a credential: it never reaches a log or a panic message.
impl fmt::Debug for LoginBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginBody")
            .field("app_id", &self.app_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// `POST /api/v1/authorize/` (§10.8): a login as the Boxo host SDK sends it, which may name the
/// user the host page believes is signed in.
#[derive(Debug, Clone, Serialize)]
pub struct AuthorizeBody {
    #[serde(flatten)]
    pub login: LoginBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_reference: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each body is one `domain` accepts.
    #[test]
    fn bodies_parse_as_the_services_parse_them() {
        let key = "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw";
        let id = EventId::new_v4();
        let share = share_of(key);
        let events = [
            NewEvent::text("aGVsbG8", key),
            NewEvent::edit(id, "aGVsbG8", key),
            NewEvent::MsgDelete { referrer_id: id },
            NewEvent::MemberJoin,
            NewEvent::MemberLeave,
            NewEvent::StateAccessMode { content: AccessModeValue { value: AccessMode::Public } },
            NewEvent::StateKeyShare { extra: share.clone() },
            NewEvent::allow(IdentityId::new_v4()),
            NewEvent::AccessRm { referrer_id: id },
        ];
        for e in &events {
            let v = serde_json::to_value(e).unwrap_or_default();
            assert!(domain::event::NewEvent::parse(&v).is_ok(), "{v}");
        }
        let b = serde_json::to_value(NewBox { key_share: Some(share.clone()), ..NewBox::new("T", key) });
        assert!(domain::boxes::BoxCreate::parse(&b.unwrap_or_default()).is_ok());
        let caller = IdentityId::new_v4();
        let contact = Contact {
            contacted_identity_id: IdentityId::new_v4(),
            new_box: NewBox::new("A - B", key),
            key_share: share,
            extra: [(key.to_owned(), "aGVsbG8=".to_owned())].into(),
        };
        let c = serde_json::to_value(contact).unwrap_or_default();
        assert!(domain::boxes::ContactRequest::parse(&c, caller).is_ok(), "{c}");
        let save = SaveFile {
            encrypted_file_id: FileId::new_v4(),
            encrypted_metadata: "bWV0YWRhdGE".into(),
            key_fingerprint: "fp".into(),
        };
        let s = serde_json::to_value(save).unwrap_or_default();
        assert!(domain::files::NewSavedFile::parse(&s).is_ok(), "{s}");
        let changes = [NewEvent::allow(IdentityId::new_v4()), NewEvent::AccessRm { referrer_id: id }];
        let b = serde_json::to_value(AccessBatch { batch_type: "accesses", events: &changes }).unwrap_or_default();
        assert!(domain::event::AccessBatch::parse(&b).is_ok(), "{b}");
        let k = serde_json::to_value(PublicKeys { non_identified_pubkey: Some(key.into()), ..Default::default() });
        assert!(domain::identity::PublicKeysUpdate::parse(&k.unwrap_or_default()).is_ok());
        let share = KeyShare { encrypted_invitation_key_share: None, ..share_of(key) };
        let ks = serde_json::to_value(KeyShareCreate { share, box_id: BoxId::new_v4() }).unwrap_or_default();
        assert!(domain::keyshare::KeyShareCreate::parse(&ks).is_ok(), "{ks}");
    }

    fn share_of(hash: &str) -> KeyShare {
        KeyShare {
            misakey_share: "bmV3LXNoYXJl".into(),
            other_share_hash: hash.into(),
            encrypted_invitation_key_share: Some("bmV3LWludml0YXRpb24".into()),
        }
    }

    /// Neither a share nor an auth code shows in a Debug form.
    #[test]
    fn secrets_stay_out_of_debug() {
        let share = KeyShareCreate { share: share_of("aGFzaA"), box_id: BoxId::new_v4() };
        let login = LoginBody { auth_code: "c2VjcmV0LWNvZGU".into(), app_id: "app".into(), client_id: "host".into() };
        let printed = format!("{share:?} {:?}", AuthorizeBody { login, user_reference: None });
        for secret in ["bmV3LXNoYXJl", "aGFzaA", "bmV3LWludml0YXRpb24", "c2VjcmV0LWNvZGU"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }
}
