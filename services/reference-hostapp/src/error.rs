//! The service's error type for its own helper endpoints: the shared one of `web_kit::failure`.
//!
//! The Boxo Connect endpoints answer in the hostapp format (`{"error_code"}`) instead and do not
//! use this type.

pub type ApiError = web_kit::failure::ApiError;
