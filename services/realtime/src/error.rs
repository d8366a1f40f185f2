//! The service's error type: the shared one of `web_kit::failure`. The handshake refusals of §9.1
//! and the health checks are client answers with their §4 body (a 503 among them when Redis is
//! not ready); anything unexpected is a bare 500.

pub type ApiError = web_kit::failure::ApiError;
