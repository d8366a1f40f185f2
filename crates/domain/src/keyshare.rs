//! Key shares (§5.6): the server's half of a 2-of-2 split of a box secret key.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::b64::{limits, B64u, B64};
use crate::error::ErrorBody;
use crate::ids::BoxId;
use crate::input::{Obj, Report};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyShare {
    pub misakey_share: String,
    pub other_share_hash: String,
    pub encrypted_invitation_key_share: Option<String>,
    pub box_id: BoxId,
}

// A share never reaches a log or a panic message.
impl std::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyShare").field("box_id", &self.box_id).finish_non_exhaustive()
    }
}

/// A validated key share as it arrives in a box creation, a contact or a `state.key_share`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKeyShare {
    pub misakey_share: B64,
    pub other_share_hash: B64u,
    pub encrypted_invitation_key_share: Option<B64>,
}

impl NewKeyShare {
    /// Reads the three fields of `o`; `share` is accepted as an alias of `misakey_share` (§5.6).
    pub fn read(o: &Obj<'_>, eiks_required: bool, r: &mut Report) -> Option<Self> {
        let key = if !o.has("misakey_share") && o.has("share") { "share" } else { "misakey_share" };
        let misakey_share = o.b64(key, limits::MISAKEY_SHARE, true, r);
        let other_share_hash = o.b64u("other_share_hash", limits::OTHER_SHARE_HASH, true, r);
        let eiks = o.b64("encrypted_invitation_key_share", limits::ENCRYPTED_INVITATION_KEY_SHARE, eiks_required, r);
        Some(NewKeyShare {
            misakey_share: misakey_share?,
            other_share_hash: other_share_hash?,
            encrypted_invitation_key_share: eiks,
        })
    }
}

/// Body of `POST /box-key-shares` (§7.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyShareCreate {
    pub share: NewKeyShare,
    pub box_id: BoxId,
}

impl KeyShareCreate {
    pub fn parse(body: &Value) -> Result<Self, ErrorBody> {
        let o = Obj::body(body)?;
        let mut r = Report::new();
        let share = NewKeyShare::read(&o, false, &mut r);
        let box_id = o.id::<BoxId>("box_id", true, &mut r);
        r.finish(share.zip(box_id).map(|(share, box_id)| KeyShareCreate { share, box_id }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_values_are_accepted_and_alias_works() {
        let v = json!({"share":"lBHT1vfwFAIBig5Nj+sD+w==","other_share_hash":"Nz4nJMj5DOd4UGXXOlH8Ww",
                       "box_id":"74ee16b5-89be-44f7-bcdd-117f496a90a7"});
        let k = KeyShareCreate::parse(&v).ok();
        assert_eq!(k.map(|k| k.share.misakey_share.into_string()).as_deref(), Some("lBHT1vfwFAIBig5Nj+sD+w=="));
    }

    #[test]
    fn padded_hash_is_malformed() {
        let v = json!({"misakey_share":"aaaa","other_share_hash":"Nz4nJMj5DOd4UGXXOlH8Ww==","box_id":"74ee16b5-89be-44f7-bcdd-117f496a90a7"});
        let d = KeyShareCreate::parse(&v).err().map(|e| e.details).unwrap_or_default();
        assert_eq!(d.get("other_share_hash").map(String::as_str), Some("malformed"));
    }
}
