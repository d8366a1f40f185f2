//! Crypto actions (§5.7): ciphertext addressed to one identity, processed then deleted by its client.

use serde::{Deserialize, Serialize};

use crate::ids::{BoxId, CryptoActionId};
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CryptoActionType {
    Invitation,
    SetBoxKeyShare,
}

impl CryptoActionType {
    pub fn as_str(self) -> &'static str {
        match self {
            CryptoActionType::Invitation => "invitation",
            CryptoActionType::SetBoxKeyShare => "set_box_key_share",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "invitation" => Some(CryptoActionType::Invitation),
            "set_box_key_share" => Some(CryptoActionType::SetBoxKeyShare),
            _ => None,
        }
    }
}

/// The client view; the sender id stays on the server (§5.7).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CryptoAction {
    pub id: CryptoActionId,
    #[serde(rename = "type")]
    pub kind: CryptoActionType,
    pub box_id: Option<BoxId>,
    pub encryption_public_key: String,
    pub encrypted: String,
    pub created_at: Timestamp,
}

// Its ciphertext never reaches a log or a panic message.
impl std::fmt::Debug for CryptoAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptoAction")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("box_id", &self.box_id)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// The list endpoint returns at most this many actions, oldest first (§8).
pub const LIST_CAP: i64 = 500;
