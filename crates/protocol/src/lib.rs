//! The client-side protocol of `docs/crypto.md`: X25519 + XSalsa20-Poly1305 sealed payloads
//! (`ephemeral public key || nonce || crypto_box`), the XOR 2-of-2 split of a box secret key,
//! `other_share_hash` = b64u(SHA-512(invitation share)), invitation links, and the chunked
//! XSalsa20-Poly1305 format of encrypted files.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use crypto_box::aead::{Aead, OsRng};
use crypto_box::{PublicKey, SalsaBox, SecretKey};
use crypto_secretbox::{KeyInit, XSalsa20Poly1305};
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

/// Plaintext bytes per chunk of an encrypted file (`docs/crypto.md` §9, `xsalsa20poly1305-64k-v1`).
pub const FILE_CHUNK_BYTES: usize = 65536;
/// The nonce prefix that starts an encrypted file.
pub const FILE_PREFIX_BYTES: usize = 16;
const FILE_SEALED_CHUNK: usize = FILE_CHUNK_BYTES + 16;

/// `prefix (16) || chunk index (7 bytes, big-endian) || last (0x01 on the last chunk, else 0x00)`.
pub fn file_chunk_nonce(prefix: &[u8; FILE_PREFIX_BYTES], index: u64, last: bool) -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    nonce[..FILE_PREFIX_BYTES].copy_from_slice(prefix);
    nonce[FILE_PREFIX_BYTES..NONCE_BYTES - 1].copy_from_slice(&index.to_be_bytes()[1..]);
    nonce[NONCE_BYTES - 1] = u8::from(last);
    nonce
}

/// The encrypted blob of a file: the prefix, then each chunk sealed with its nonce.
pub fn encrypt_file(plaintext: &[u8], key: &[u8; KEY_BYTES], prefix: &[u8; FILE_PREFIX_BYTES]) -> Vec<u8> {
    let cipher = XSalsa20Poly1305::new(key.into());
    let chunks: Vec<&[u8]> =
        if plaintext.is_empty() { vec![&[]] } else { plaintext.chunks(FILE_CHUNK_BYTES).collect() };
    let mut out = Vec::with_capacity(FILE_PREFIX_BYTES + plaintext.len() + 16 * chunks.len());
    out.extend_from_slice(prefix);
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.iter().enumerate() {
        let nonce = file_chunk_nonce(prefix, i as u64, i == last);
        // Encryption with a valid key and nonce cannot fail for in-memory buffers.
        out.extend_from_slice(&cipher.encrypt(&nonce.into(), *chunk).unwrap_or_default());
    }
    out
}

/// Opens an encrypted blob; any chunk that fails, or a blob cut short, is an error.
pub fn decrypt_file(blob: &[u8], key: &[u8; KEY_BYTES]) -> Result<Vec<u8>, Error> {
    if blob.len() < FILE_PREFIX_BYTES + 16 {
        return Err(Error::Length);
    }
    let prefix: [u8; FILE_PREFIX_BYTES] = blob[..FILE_PREFIX_BYTES].try_into().map_err(|_| Error::Length)?;
    let cipher = XSalsa20Poly1305::new(key.into());
    let sealed: Vec<&[u8]> = blob[FILE_PREFIX_BYTES..].chunks(FILE_SEALED_CHUNK).collect();
    let last = sealed.len() - 1;
    let mut out = Vec::with_capacity(blob.len());
    for (i, chunk) in sealed.iter().enumerate() {
        let nonce = file_chunk_nonce(&prefix, i as u64, i == last);
        out.extend_from_slice(&cipher.decrypt(&nonce.into(), *chunk).map_err(|_| Error::Open)?);
    }
    Ok(out)
}
