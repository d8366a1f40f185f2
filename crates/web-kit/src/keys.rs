//! Loading the session-token keys (§3.1): every service verifies with the public keys of
//! `JWT_PUBLIC_KEY_FILE` (several during a rotation); only auth-bridge also signs.

use std::path::Path;

use anyhow::Context;
use domain::auth::Verifier;

/// Reads each PEM file, naming the one that cannot be read.
pub fn read_pems<P: AsRef<Path>>(files: &[P]) -> anyhow::Result<Vec<String>> {
    files
        .iter()
        .map(|f| {
            let f = f.as_ref();
            std::fs::read_to_string(f).with_context(|| format!("reading JWT_PUBLIC_KEY_FILE {}", f.display()))
        })
        .collect()
}

/// The verifier of tokens issued by `issuer` and signed with any key of `files`.
pub fn verifier<P: AsRef<Path>>(files: &[P], issuer: &str) -> anyhow::Result<Verifier> {
    if files.is_empty() {
        anyhow::bail!("JWT_PUBLIC_KEY_FILE names no key");
    }
    Verifier::from_public_pems(&read_pems(files)?, issuer).context("loading the JWT public keys")
}
