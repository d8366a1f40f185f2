//! In-memory grants: one-time auth codes (60 s) and hostapp access tokens (600 s).
//!
//! Codes and tokens are random 32-byte b64u strings; they are never logged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

pub const CODE_TTL: Duration = Duration::from_secs(60);
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(600);

/// How often issuing a grant also drops the expired ones. Sweeping at every issue made each
/// issue walk every grant of the last ten minutes.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Grant {
    reference: String,
    expires: Instant,
}

/// Grants by value, and when expired ones are next dropped.
#[derive(Debug)]
struct Table {
    grants: HashMap<String, Grant>,
    next_sweep: Instant,
}

impl Default for Table {
    fn default() -> Self {
        Table { grants: HashMap::new(), next_sweep: Instant::now() }
    }
}

/// Codes and tokens in flight, each mapped to the user reference it was issued for. Expired
/// entries are refused when looked up and dropped at most [`SWEEP_INTERVAL`] after expiring.
#[derive(Debug, Default)]
pub struct Grants {
    codes: Mutex<Table>,
    tokens: Mutex<Table>,
}

pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    domain::auth::b64u_token(&bytes)
}

fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn insert(table: &Mutex<Table>, reference: &str, ttl: Duration) -> String {
    let value = random_token();
    let now = Instant::now();
    let mut guard = lock(table);
    if now >= guard.next_sweep {
        guard.grants.retain(|_, g| g.expires > now);
        guard.next_sweep = now + SWEEP_INTERVAL;
    }
    guard.grants.insert(value.clone(), Grant { reference: reference.to_owned(), expires: now + ttl });
    value
}

impl Grants {
    /// A single-use auth code for `reference`.
    pub fn issue_code(&self, reference: &str) -> String {
        insert(&self.codes, reference, CODE_TTL)
    }

    /// Consumes a one-time code; `None` when unknown, used or expired.
    pub fn take_code(&self, code: &str) -> Option<String> {
        let grant = lock(&self.codes).grants.remove(code)?;
        (grant.expires > Instant::now()).then_some(grant.reference)
    }

    /// A hostapp access token for `reference`, plus a refresh token that nothing accepts.
    pub fn issue_token(&self, reference: &str) -> (String, String) {
        (insert(&self.tokens, reference, ACCESS_TOKEN_TTL), random_token())
    }

    /// The reference a known, unexpired access token was issued for.
    pub fn token_reference(&self, token: &str) -> Option<String> {
        let guard = lock(&self.tokens);
        guard.grants.get(token).filter(|g| g.expires > Instant::now()).map(|g| g.reference.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_single_use() {
        let g = Grants::default();
        let code = g.issue_code("alice");
        assert_eq!(g.take_code(&code).as_deref(), Some("alice"));
        assert_eq!(g.take_code(&code), None);
        let (token, refresh) = g.issue_token("bob");
        assert_eq!(g.token_reference(&token).as_deref(), Some("bob"));
        assert_eq!(g.token_reference(&refresh), None);
    }
}
