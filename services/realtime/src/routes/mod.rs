//! HTTP surface: the websocket handshake of §9.1 and the health endpoints of §13.3.

pub mod health;
pub mod ws;
