//! Pure domain types shared by every service, test and tool of the encrypted boxes backend.
//!
//! Nothing here talks to a network, a database or a web framework: the crate holds the shapes of
//! the JSON contract (`SPEC.md` §5), the validators that turn untrusted input into typed values,
//! the error body of §4, the Redis naming of §9.3 and the session token claims of §3.
//! Services add their own framework glue (for example an actix `ResponseError`) on top.

pub mod auth;
pub mod b64;
pub mod boxes;
pub mod connect;
pub mod crypto_action;
pub mod error;
pub mod event;
pub mod files;
pub mod identity;
pub mod ids;
pub mod input;
pub mod keyshare;
pub mod notification;
pub mod realtime;
pub mod time;
pub mod userdata;

pub use error::{Detail, Details, ErrorBody, ErrorCode, Origin};
pub use ids::{BoxId, CryptoActionId, EventId, FileId, IdentityId, NotificationId, SavedFileId, SessionId};
pub use time::Timestamp;
