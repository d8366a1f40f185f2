//! The client-side protocol of `docs/crypto.md`: X25519 + XSalsa20-Poly1305 sealed payloads
//! (`ephemeral public key || nonce || crypto_box`), the XOR 2-of-2 split of a box secret key,
//! `other_share_hash` = b64u(SHA-512(invitation share)), and invitation links.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use crypto_box::aead::{Aead, OsRng};
use crypto_box::{PublicKey, SalsaBox, SecretKey};
use sha2::{Digest, Sha512};

pub const KEY_BYTES: usize = 32;
pub const NONCE_BYTES: usize = 24;
/// Bytes a sealed payload adds to its plaintext: ephemeral key, nonce, Poly1305 tag.
pub const SEAL_OVERHEAD: usize = KEY_BYTES + NONCE_BYTES + 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("not base64")]
    Base64,
    #[error("wrong length")]
    Length,
    #[error("ciphertext does not open with this key")]
    Open,
    #[error("malformed payload")]
    Payload,
}

/// Unpadded URL-safe base64, what clients send.
pub fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Either alphabet, padding optional.
pub fn from_b64(text: &str) -> Result<Vec<u8>, Error> {
    let s = text.trim_end_matches('=');
    let standard: String = s
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    STANDARD_NO_PAD.decode(standard).map_err(|_| Error::Base64)
}

fn key(bytes: &[u8]) -> Result<[u8; KEY_BYTES], Error> {
    bytes.try_into().map_err(|_| Error::Length)
}

/// The X25519 public key of a secret key.
pub fn public_key(secret: &[u8; KEY_BYTES]) -> [u8; KEY_BYTES] {
    *SecretKey::from(*secret).public_key().as_bytes()
}

/// `ephemeral_public_key (32) || nonce (24) || crypto_box(plaintext)`; `fixed` = (ephemeral
/// secret, nonce) only for test vectors.
pub fn seal(
    plaintext: &[u8],
    recipient: &[u8; KEY_BYTES],
    fixed: Option<(&[u8; KEY_BYTES], &[u8; NONCE_BYTES])>,
) -> Vec<u8> {
    let (eph, nonce) = match fixed {
        Some((sk, n)) => (SecretKey::from(*sk), *n),
        None => {
            let mut n = [0u8; NONCE_BYTES];
            rand_fill(&mut n);
            (SecretKey::generate(&mut OsRng), n)
        }
    };
    let boxed = SalsaBox::new(&PublicKey::from(*recipient), &eph);
    // Encryption with a valid key and nonce cannot fail for in-memory buffers.
    let ct = boxed.encrypt(&nonce.into(), plaintext).unwrap_or_default();
    let mut out = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
    out.extend_from_slice(eph.public_key().as_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn rand_fill(buf: &mut [u8]) {
    use crypto_box::aead::rand_core::RngCore;
    OsRng.fill_bytes(buf);
}

/// Opens a sealed payload with the recipient's secret key.
pub fn open(sealed: &[u8], secret: &[u8; KEY_BYTES]) -> Result<Vec<u8>, Error> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(Error::Length);
    }
    let epk = key(&sealed[..KEY_BYTES])?;
    let nonce: [u8; NONCE_BYTES] = sealed[KEY_BYTES..KEY_BYTES + NONCE_BYTES].try_into().map_err(|_| Error::Length)?;
    SalsaBox::new(&PublicKey::from(epk), &SecretKey::from(*secret))
        .decrypt(&nonce.into(), &sealed[KEY_BYTES + NONCE_BYTES..])
        .map_err(|_| Error::Open)
}

/// `invitation_share = secret XOR misakey_share`; XOR again rebuilds the secret.
pub fn xor_shares(a: &[u8; KEY_BYTES], b: &[u8; KEY_BYTES]) -> [u8; KEY_BYTES] {
    let mut out = [0u8; KEY_BYTES];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

/// `other_share_hash`.
pub fn share_hash(invitation_share: &[u8]) -> String {
    b64u(&Sha512::digest(invitation_share))
}

/// The plaintext of an `invitation` crypto action.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Invitation {
    pub box_public_key: String,
    pub invitation_share: String,
}

/// Opens an `invitation` crypto action with the identity secret key.
pub fn open_invitation(encrypted: &str, identity_secret: &[u8; KEY_BYTES]) -> Result<(String, [u8; KEY_BYTES]), Error> {
    let plain = open(&from_b64(encrypted)?, identity_secret)?;
    let inv: Invitation = serde_json::from_slice(&plain).map_err(|_| Error::Payload)?;
    let share = key(&from_b64(&inv.invitation_share)?)?;
    Ok((inv.box_public_key, share))
}

/// `<base>#box=<id>&share=<b64u share>`.
pub fn invitation_link(base_url: &str, box_id: &str, invitation_share: &[u8]) -> String {
    let base = base_url.split('#').next().unwrap_or(base_url);
    format!("{base}#box={}&share={}", box_id.to_lowercase(), b64u(invitation_share))
}

/// The box id and the invitation share of a link (or of its fragment alone).
pub fn parse_invitation_link(link: &str) -> Result<(String, [u8; KEY_BYTES]), Error> {
    let fragment = link.split_once('#').map_or(link, |(_, f)| f);
    let (mut id, mut share) = (None, None);
    for pair in fragment.split('&') {
        match pair.split_once('=') {
            Some(("box", v)) => id = Some(v.to_lowercase()),
            Some(("share", v)) if v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
                share = Some(key(&from_b64(v)?)?)
            }
            _ => {}
        }
    }
    match (id, share) {
        (Some(id), Some(share)) if id.len() == 36 => Ok((id, share)),
        _ => Err(Error::Payload),
    }
}
