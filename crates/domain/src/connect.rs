//! The cryptography of the Boxo platform path (README, "Running behind the Boxo platform"):
//! request signatures (docs.boxo.io miniapp/Signaturing) and encrypted user data
//! (host-apps/SecurityMeasures). Bytes in, bytes out, no I/O: auth-bridge verifies and decrypts,
//! the reference host app and the platform stand-in sign and encrypt with the same code.
//!
//! RSA and AES-GCM come from `ring` (already in the tree through `jsonwebtoken`); HMAC, ECDSA with
//! any of the dashboard's hashes, and AES-CBC, which `ring` lacks, from RustCrypto.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::digest::core_api::BlockSizeUser;
use hmac::digest::Digest;
use hmac::{Mac, SimpleHmac};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::pkcs8::DecodePrivateKey;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{aead, signature};

/// The signature algorithms of Boxo's dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Hmac,
    /// RSASSA-PKCS1-v1_5.
    Rsa2,
    Ecdsa,
}

impl Algorithm {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "HMAC" => Some(Algorithm::Hmac),
            "RSA2" | "RSA" => Some(Algorithm::Rsa2),
            "ECDSA" => Some(Algorithm::Ecdsa),
            _ => None,
        }
    }
}

/// The hash functions of Boxo's dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
            "MD5" => Some(Hash::Md5),
            "SHA1" => Some(Hash::Sha1),
            "SHA224" => Some(Hash::Sha224),
            "SHA256" => Some(Hash::Sha256),
            "SHA384" => Some(Hash::Sha384),
            "SHA512" => Some(Hash::Sha512),
            _ => None,
        }
    }

    /// MD5 and SHA-1 have practical collision attacks.
    pub fn is_weak(self) -> bool {
        matches!(self, Hash::Md5 | Hash::Sha1)
    }
}

/// Why a key or a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{0:?} with {1:?} is not supported")]
    Unsupported(Algorithm, Hash),
    #[error("{0:?} is a weak hash function and weak hashes are not enabled")]
    Weak(Hash),
    #[error("the key is not a usable {0} key")]
    BadKey(&'static str),
}

impl Hash {
    /// The digest of `message`.
    pub fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            Hash::Md5 => md5::Md5::digest(message).to_vec(),
            Hash::Sha1 => sha1::Sha1::digest(message).to_vec(),
            Hash::Sha224 => sha2::Sha224::digest(message).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(message).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(message).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(message).to_vec(),
        }
    }

    fn output_len(self) -> usize {
        match self {
            Hash::Md5 => 16,
            Hash::Sha1 => 20,
            Hash::Sha224 => 28,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

fn check_hash(hash: Hash, allow_weak: bool) -> Result<(), KeyError> {
    if hash.is_weak() && !allow_weak {
        Err(KeyError::Weak(hash))
    } else {
        Ok(())
    }
}

/// A keyed HMAC over `message`; `None` only for an empty key.
fn hmac_state<D: Digest + BlockSizeUser>(key: &[u8], message: &[u8]) -> Option<SimpleHmac<D>> {
    if key.is_empty() {
        return None;
    }
    let mut mac = <SimpleHmac<D> as Mac>::new_from_slice(key).ok()?;
    mac.update(message);
    Some(mac)
}

/// HMAC with one of the dashboard's hashes: the tag, or whether `tag` is right (compared in
/// constant time).
fn hmac_with(hash: Hash, key: &[u8], message: &[u8], tag: Option<&[u8]>) -> Option<Vec<u8>> {
    fn run<D: Digest + BlockSizeUser>(key: &[u8], message: &[u8], tag: Option<&[u8]>) -> Option<Vec<u8>> {
        let mac = hmac_state::<D>(key, message)?;
        match tag {
            None => Some(mac.finalize().into_bytes().to_vec()),
            Some(t) => mac.verify_slice(t).ok().map(|()| Vec::new()),
        }
    }
    match hash {
        Hash::Md5 => run::<md5::Md5>(key, message, tag),
        Hash::Sha1 => run::<sha1::Sha1>(key, message, tag),
        Hash::Sha224 => run::<sha2::Sha224>(key, message, tag),
        Hash::Sha256 => run::<sha2::Sha256>(key, message, tag),
        Hash::Sha384 => run::<sha2::Sha384>(key, message, tag),
        Hash::Sha512 => run::<sha2::Sha512>(key, message, tag),
    }
}

/// Key bytes from PEM (any label) or raw DER.
pub fn pem_or_der(input: &[u8]) -> Option<(Option<String>, Vec<u8>)> {
    let Ok(text) = std::str::from_utf8(input) else { return Some((None, input.to_vec())) };
    if !text.contains("-----BEGIN") {
        return Some((None, input.to_vec()));
    }
    let mut label = None;
    let mut body = String::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(l) = line.strip_prefix("-----BEGIN ") {
            label = Some(l.trim_end_matches('-').to_owned());
            inside = true;
        } else if line.starts_with("-----END") {
            break;
        } else if inside {
            body.push_str(line);
        }
    }
    STANDARD.decode(body).ok().map(|der| (label, der))
}

const RSA_OID: &str = "1.2.840.113549.1.1.1";
const EC_OID: &str = "1.2.840.10045.2.1";
const P256_OID: &str = "1.2.840.10045.3.1.7";
const P384_OID: &str = "1.3.132.0.34";

/// The algorithm OID, the curve OID (EC keys) and the key bits of a SubjectPublicKeyInfo.
fn spki_parts(der: &[u8]) -> Option<(String, Option<String>, Vec<u8>)> {
    let info = spki::SubjectPublicKeyInfoRef::try_from(der).ok()?;
    let curve =
        info.algorithm.parameters.and_then(|p| p.decode_as::<spki::ObjectIdentifier>().ok()).map(|o| o.to_string());
    Some((info.algorithm.oid.to_string(), curve, info.subject_public_key.raw_bytes().to_vec()))
}

/// An ECDSA public key on one of the supported curves.
#[derive(Clone)]
enum EcPublic {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl EcPublic {
    /// The field size in bytes: ECDSA needs a digest of at least half of it.
    fn field_len(&self) -> usize {
        match self {
            EcPublic::P256(_) => 32,
            EcPublic::P384(_) => 48,
        }
    }

    /// ASN.1 DER signatures, as most libraries write them, or fixed-size `r ‖ s` (IEEE P1363,
    /// WebCrypto's form).
    fn verify(&self, digest: &[u8], sig: &[u8]) -> bool {
        match self {
            EcPublic::P256(key) => p256::ecdsa::Signature::from_der(sig)
                .or_else(|_| p256::ecdsa::Signature::from_slice(sig))
                .is_ok_and(|s| key.verify_prehash(digest, &s).is_ok()),
            EcPublic::P384(key) => p384::ecdsa::Signature::from_der(sig)
                .or_else(|_| p384::ecdsa::Signature::from_slice(sig))
                .is_ok_and(|s| key.verify_prehash(digest, &s).is_ok()),
        }
    }
}

/// What verifies a request signature; built once from the registry.
#[derive(Clone)]
pub enum Verifier {
    Hmac { hash: Hash, secret: Vec<u8> },
    Rsa { algorithm: &'static signature::RsaParameters, key: Vec<u8> },
    Ecdsa { hash: Hash, key: EcPublicKey },
}

/// An ECDSA public key (P-256 or P-384).
#[derive(Clone)]
pub struct EcPublicKey(EcPublic);

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verifier::Hmac { .. } => "Verifier::Hmac(..)",
            Verifier::Rsa { .. } => "Verifier::Rsa(..)",
            Verifier::Ecdsa { .. } => "Verifier::Ecdsa(..)",
        })
    }
}

impl Verifier {
    /// An HMAC secret, with any of the dashboard's hashes.
    pub fn hmac(hash: Hash, secret: &[u8], allow_weak: bool) -> Result<Self, KeyError> {
        check_hash(hash, allow_weak)?;
        if secret.is_empty() {
            return Err(KeyError::BadKey("HMAC"));
        }
        Ok(Verifier::Hmac { hash, secret: secret.to_vec() })
    }

    /// An RSA (SPKI or PKCS#1) or EC (SPKI, P-256 or P-384) public key, PEM or DER.
    ///
    /// RSA takes SHA-1 (when weak hashes are enabled), SHA-256, SHA-384 and SHA-512: `ring`
    /// has no PKCS#1 v1.5 verification with MD5 or SHA-224. ECDSA takes every hash at least
    /// half as long as the curve's field (FIPS 186-5), so P-384 refuses MD5 and SHA-1.
    pub fn public(algorithm: Algorithm, hash: Hash, key: &[u8], allow_weak: bool) -> Result<Self, KeyError> {
        check_hash(hash, allow_weak)?;
        let unsupported = KeyError::Unsupported(algorithm, hash);
        let (label, der) = pem_or_der(key).ok_or(KeyError::BadKey("PEM"))?;
        match algorithm {
            Algorithm::Hmac => Err(KeyError::BadKey("public")),
            Algorithm::Rsa2 => {
                let pkcs1 = if label.as_deref() == Some("RSA PUBLIC KEY") {
                    der
                } else {
                    match spki_parts(&der) {
                        Some((oid, _, bits)) if oid == RSA_OID => bits,
                        _ => return Err(KeyError::BadKey("RSA")),
                    }
                };
                let alg = match hash {
                    Hash::Sha1 => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                    Hash::Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Hash::Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Hash::Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Hash::Md5 | Hash::Sha224 => return Err(unsupported),
                };
                Ok(Verifier::Rsa { algorithm: alg, key: pkcs1 })
            }
            Algorithm::Ecdsa => {
                let (oid, curve, point) = spki_parts(&der).ok_or(KeyError::BadKey("EC"))?;
                let bad = KeyError::BadKey("EC (P-256 or P-384)");
                if oid != EC_OID {
                    return Err(bad);
                }
                let key = match curve.as_deref() {
                    Some(P256_OID) => {
                        EcPublic::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| bad)?)
                    }
                    Some(P384_OID) => {
                        EcPublic::P384(p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| bad)?)
                    }
                    _ => return Err(bad),
                };
                if hash.output_len() * 2 < key.field_len() {
                    return Err(unsupported);
                }
                Ok(Verifier::Ecdsa { hash, key: EcPublicKey(key) })
            }
        }
    }

    /// Whether `sig` signs `message`; HMAC tags are compared in constant time.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            Verifier::Hmac { hash, secret } => hmac_with(*hash, secret, message, Some(sig)).is_some(),
            Verifier::Rsa { algorithm, key } => {
                signature::UnparsedPublicKey::new(*algorithm, key).verify(message, sig).is_ok()
            }
            Verifier::Ecdsa { hash, key } => key.0.verify(&hash.digest(message), sig),
        }
    }
}

/// An ECDSA private key (P-256 or P-384).
enum EcPrivate {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

/// What signs a request: the host app's (or the platform stand-in's) side.
pub enum Signer {
    Hmac { hash: Hash, secret: Vec<u8> },
    Rsa(signature::RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ecdsa(Hash, EcSigningKey),
}

/// An ECDSA private key (P-256 or P-384).
pub struct EcSigningKey(EcPrivate);

impl Signer {
    pub fn hmac(hash: Hash, secret: &[u8]) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::BadKey("HMAC"));
        }
        Ok(Signer::Hmac { hash, secret: secret.to_vec() })
    }

    /// An RSA or EC (P-256 or P-384) private key, PKCS#8 PEM or DER. ECDSA signs an ASN.1 DER
    /// signature over the digest of `hash`.
    pub fn private(algorithm: Algorithm, hash: Hash, key: &[u8]) -> Result<Self, KeyError> {
        let (_, der) = pem_or_der(key).ok_or(KeyError::BadKey("PEM"))?;
        match algorithm {
            Algorithm::Hmac => Err(KeyError::BadKey("private")),
            Algorithm::Rsa2 => {
                let encoding: &'static dyn signature::RsaEncoding = match hash {
                    Hash::Sha256 => &signature::RSA_PKCS1_SHA256,
                    Hash::Sha384 => &signature::RSA_PKCS1_SHA384,
                    Hash::Sha512 => &signature::RSA_PKCS1_SHA512,
                    _ => return Err(KeyError::Unsupported(algorithm, hash)),
                };
                let pair = signature::RsaKeyPair::from_pkcs8(&der).map_err(|_| KeyError::BadKey("RSA"))?;
                Ok(Signer::Rsa(pair, encoding))
            }
            Algorithm::Ecdsa => {
                let key = if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(&der) {
                    EcPrivate::P256(k)
                } else if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_der(&der) {
                    EcPrivate::P384(k)
                } else {
                    return Err(KeyError::BadKey("EC (P-256 or P-384)"));
                };
                Ok(Signer::Ecdsa(hash, EcSigningKey(key)))
            }
        }
    }

    pub fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        match self {
            Signer::Hmac { hash, secret } => hmac_with(*hash, secret, message, None),
            Signer::Rsa(pair, encoding) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(*encoding, &SystemRandom::new(), message, &mut sig).ok()?;
                Some(sig)
            }
            Signer::Ecdsa(hash, key) => {
                let digest = hash.digest(message);
                match &key.0 {
                    EcPrivate::P256(k) => {
                        let s: p256::ecdsa::Signature = k.sign_prehash(&digest).ok()?;
                        Some(s.to_der().as_bytes().to_vec())
                    }
                    EcPrivate::P384(k) => {
                        let s: p384::ecdsa::Signature = k.sign_prehash(&digest).ok()?;
                        Some(s.to_der().as_bytes().to_vec())
                    }
                }
            }
        }
    }
}

/// The values a signature payload template may name.
#[derive(Debug, Clone, Default)]
pub struct PayloadFields<'a> {
    pub timestamp: &'a str,
    pub nonce: &'a str,
    pub identity: &'a str,
    pub client_id: &'a str,
    pub merchant_id: &'a str,
    pub request_method: &'a str,
    pub url: &'a str,
    pub payload: &'a [u8],
}

/// The template's placeholders replaced in one pass, so a value that itself contains a
/// placeholder is never expanded again. Unknown `{…}` text is kept as it is.
pub fn render_payload(template: &str, f: &PayloadFields<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len() + f.payload.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.extend_from_slice(&rest.as_bytes()[..start]);
        let after = &rest[start..];
        let Some(end) = after.find('}') else {
            out.extend_from_slice(after.as_bytes());
            return out;
        };
        let value: Option<&[u8]> = match &after[1..end] {
            "timestamp" => Some(f.timestamp.as_bytes()),
            "nonce" => Some(f.nonce.as_bytes()),
            "identity" => Some(f.identity.as_bytes()),
            "client_id" => Some(f.client_id.as_bytes()),
            "merchant_id" => Some(f.merchant_id.as_bytes()),
            "request_method" => Some(f.request_method.as_bytes()),
            "url" => Some(f.url.as_bytes()),
            "payload" => Some(f.payload),
            _ => None,
        };
        match value {
            Some(v) => {
                out.extend_from_slice(v);
                rest = &after[end + 1..];
            }
            None => {
                out.push(b'{');
                rest = &after[1..];
            }
        }
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

/// The signature inside a header value shaped by a signature template such as
/// `"{signature}"` or `"Signature {signature}"`, decoded from base64.
pub fn extract_signature(template: &str, header: &str) -> Option<Vec<u8>> {
    let (prefix, suffix) = template.split_once("{signature}")?;
    let encoded = header.strip_prefix(prefix)?.strip_suffix(suffix)?;
    STANDARD.decode(encoded.trim()).ok()
}

/// A header value for `sig` under a signature template.
pub fn format_signature(template: &str, sig: &[u8]) -> String {
    template.replace("{signature}", &STANDARD.encode(sig))
}

/// The encryption of user data strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherMode {
    /// base64(nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)), no associated data.
    Aes256Gcm,
    /// base64(IV (16 bytes) ‖ ciphertext), PKCS#7 padding.
    Aes256Cbc,
}

impl CipherMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().replace('_', "-").as_str() {
            "AES-256-GCM" => Some(CipherMode::Aes256Gcm),
            "AES-256-CBC" => Some(CipherMode::Aes256Cbc),
            _ => None,
        }
    }
}

/// A 256-bit user-data key and its mode.
#[derive(Clone)]
pub struct UserDataCipher {
    pub mode: CipherMode,
    key: [u8; 32],
}

impl std::fmt::Debug for UserDataCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDataCipher").field("mode", &self.mode).finish_non_exhaustive()
    }
}

type CbcEnc = cbc::Encryptor<aes::Aes256>;
type CbcDec = cbc::Decryptor<aes::Aes256>;

impl UserDataCipher {
    /// A key written as 64 hexadecimal digits or as base64 of 32 bytes.
    pub fn parse_key(mode: CipherMode, text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()).collect::<Option<Vec<u8>>>()
        } else {
            STANDARD.decode(text).ok()
        };
        let key: [u8; 32] =
            bytes.and_then(|b| b.try_into().ok()).ok_or(KeyError::BadKey("AES-256 (32 bytes, hex or base64)"))?;
        Ok(UserDataCipher { mode, key })
    }

    /// The plaintext, or `None` for anything wrong: bad base64, too short, a wrong key, a
    /// tampered string or bad padding all look the same to the caller.
    pub fn decrypt(&self, encoded: &str) -> Option<Vec<u8>> {
        let raw = STANDARD.decode(encoded.trim()).ok()?;
        match self.mode {
            CipherMode::Aes256Gcm => {
                if raw.len() < 12 + 16 {
                    return None;
                }
                let (nonce, sealed) = raw.split_at(12);
                let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
                let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &self.key).ok()?);
                let mut buf = sealed.to_vec();
                let plain = key.open_in_place(nonce, aead::Aad::empty(), &mut buf).ok()?;
                Some(plain.to_vec())
            }
            CipherMode::Aes256Cbc => {
                use cbc::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
                if raw.len() < 32 || raw.len() % 16 != 0 {
                    return None;
                }
                let (iv, ct) = raw.split_at(16);
                CbcDec::new_from_slices(&self.key, iv).ok()?.decrypt_padded_vec_mut::<Pkcs7>(ct).ok()
            }
        }
    }

    /// Encrypts with a fresh random nonce or IV, in the format [`Self::decrypt`] reads.
    pub fn encrypt(&self, plaintext: &[u8]) -> Option<String> {
        let rng = SystemRandom::new();
        match self.mode {
            CipherMode::Aes256Gcm => {
                let mut nonce = [0u8; 12];
                rng.fill(&mut nonce).ok()?;
                let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &self.key).ok()?);
                let mut buf = plaintext.to_vec();
                key.seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::empty(), &mut buf)
                    .ok()?;
                let mut out = nonce.to_vec();
                out.extend_from_slice(&buf);
                Some(STANDARD.encode(out))
            }
            CipherMode::Aes256Cbc => {
                use cbc::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
                let mut iv = [0u8; 16];
                rng.fill(&mut iv).ok()?;
                let ct = CbcEnc::new_from_slices(&self.key, &iv).ok()?.encrypt_padded_vec_mut::<Pkcs7>(plaintext);
                let mut out = iv.to_vec();
                out.extend_from_slice(&ct);
                Some(STANDARD.encode(out))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn templates_render_in_one_pass() {
        let f = PayloadFields {
            timestamp: "17",
            nonce: "{timestamp}",
            request_method: "POST",
            url: "https://m/x",
            payload: b"{\"a\":1}",
            ..Default::default()
        };
        let out = render_payload("{request_method}|{url}|{timestamp}|{nonce}|{other}|{payload}", &f);
        assert_eq!(String::from_utf8(out).unwrap(), "POST|https://m/x|17|{timestamp}|{other}|{\"a\":1}");
        assert_eq!(render_payload("{timestamp", &f), b"{timestamp");
    }

    #[test]
    fn hmac_signs_and_verifies_and_weak_hashes_need_consent() {
        for hash in [Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            let sig = Signer::hmac(hash, b"k").unwrap().sign(b"m").unwrap();
            let v = Verifier::hmac(hash, b"k", false).unwrap();
            assert!(v.verify(b"m", &sig) && !v.verify(b"n", &sig));
            assert!(!Verifier::hmac(hash, b"other", false).unwrap().verify(b"m", &sig));
        }
        assert_eq!(Verifier::hmac(Hash::Sha1, b"k", false).err(), Some(KeyError::Weak(Hash::Sha1)));
        assert_eq!(Verifier::hmac(Hash::Md5, b"k", false).err(), Some(KeyError::Weak(Hash::Md5)));
        for hash in [Hash::Md5, Hash::Sha1, Hash::Sha224] {
            let sig = Signer::hmac(hash, b"k").unwrap().sign(b"m").unwrap();
            let v = Verifier::hmac(hash, b"k", true).unwrap();
            assert!(v.verify(b"m", &sig) && !v.verify(b"n", &sig), "{hash:?}");
        }
        assert!(Verifier::hmac(Hash::Sha256, b"", false).is_err());
    }

    #[test]
    fn hmac_matches_the_rfc_test_vectors() {
        // RFC 2104 (MD5) and RFC 4231 test case 1 (SHA-224, SHA-512).
        let key = [0x0b; 16];
        let md5 = Signer::hmac(Hash::Md5, &key).unwrap().sign(b"Hi There").unwrap();
        assert_eq!(hex(&md5), "9294727a3638bb1c13f48ef8158bfc9d");
        let key = [0x0b; 20];
        let sha224 = Signer::hmac(Hash::Sha224, &key).unwrap().sign(b"Hi There").unwrap();
        assert_eq!(hex(&sha224), "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22");
        let sha512 = Signer::hmac(Hash::Sha512, &key).unwrap().sign(b"Hi There").unwrap();
        assert!(hex(&sha512).starts_with("87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"));
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn ecdsa_verifies_signatures_made_by_ring_in_both_encodings() {
        use ring::signature::KeyPair;
        let rng = SystemRandom::new();
        for (signing, hash) in [
            (&signature::ECDSA_P256_SHA256_ASN1_SIGNING, Hash::Sha256),
            (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, Hash::Sha256),
            (&signature::ECDSA_P384_SHA384_ASN1_SIGNING, Hash::Sha384),
        ] {
            let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
            let pair = signature::EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng).unwrap();
            let point = pair.public_key().as_ref();
            let key = if hash == Hash::Sha256 {
                EcPublic::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap())
            } else {
                EcPublic::P384(p384::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap())
            };
            let v = Verifier::Ecdsa { hash, key: EcPublicKey(key.clone()) };
            let sig = pair.sign(&rng, b"m").unwrap();
            assert!(v.verify(b"m", sig.as_ref()) && !v.verify(b"n", sig.as_ref()));
            // Our own signer, with SHA-512 this time, from the same PKCS#8 key.
            let ours = Signer::private(Algorithm::Ecdsa, Hash::Sha512, pkcs8.as_ref()).unwrap().sign(b"m").unwrap();
            let v512 = Verifier::Ecdsa { hash: Hash::Sha512, key: EcPublicKey(key) };
            assert!(v512.verify(b"m", &ours) && !v512.verify(b"n", &ours));
        }
    }

    #[test]
    fn signature_templates() {
        let h = format_signature("Sig {signature};", b"abc");
        assert_eq!(extract_signature("Sig {signature};", &h).unwrap(), b"abc");
        assert!(extract_signature("Sig {signature};", "Other YWJj;").is_none());
        assert!(extract_signature("{signature}", "!!").is_none());
    }

    #[test]
    fn both_aes_modes_round_trip_and_refuse_tampering_and_wrong_keys() {
        for mode in [CipherMode::Aes256Gcm, CipherMode::Aes256Cbc] {
            let c = UserDataCipher::parse_key(mode, &"11".repeat(32)).unwrap();
            let other = UserDataCipher::parse_key(mode, &STANDARD.encode([2u8; 32])).unwrap();
            let s = c.encrypt(b"{\"reference\":\"alice\"}").unwrap();
            assert_eq!(c.decrypt(&s).unwrap(), b"{\"reference\":\"alice\"}");
            assert_ne!(other.decrypt(&s).as_deref(), Some(&b"{\"reference\":\"alice\"}"[..]));
            let mut raw = STANDARD.decode(&s).unwrap();
            let last = raw.len() - 1;
            raw[last] ^= 1;
            assert_ne!(c.decrypt(&STANDARD.encode(&raw)).as_deref(), Some(&b"{\"reference\":\"alice\"}"[..]));
            assert!(c.decrypt("not base64!").is_none() && c.decrypt("").is_none() && c.decrypt("AAAA").is_none());
        }
        assert!(UserDataCipher::parse_key(CipherMode::Aes256Gcm, "short").is_err());
    }
}
