//! The cryptography of the Boxo platform path (README, "Running behind the Boxo platform"):
//! request signatures (docs.boxo.io miniapp/Signaturing) and encrypted user data
//! (host-apps/SecurityMeasures). Bytes in, bytes out, no I/O: auth-bridge verifies and decrypts,
//! the reference host app and the platform stand-in sign and encrypt with the same code.
//!
//! Algorithms come from `ring` (already in the tree through `jsonwebtoken`) and, for AES-CBC
//! which `ring` lacks, RustCrypto's `aes` and `cbc`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{aead, hmac, signature};

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

fn hmac_algorithm(hash: Hash) -> Option<hmac::Algorithm> {
    match hash {
        Hash::Sha1 => Some(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        Hash::Sha256 => Some(hmac::HMAC_SHA256),
        Hash::Sha384 => Some(hmac::HMAC_SHA384),
        Hash::Sha512 => Some(hmac::HMAC_SHA512),
        Hash::Md5 | Hash::Sha224 => None,
    }
}

fn check_hash(hash: Hash, allow_weak: bool) -> Result<(), KeyError> {
    if hash.is_weak() && !allow_weak {
        Err(KeyError::Weak(hash))
    } else {
        Ok(())
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

/// What verifies a request signature; built once from the registry.
#[derive(Clone)]
pub enum Verifier {
    Hmac(hmac::Key),
    Public { algorithm: &'static dyn signature::VerificationAlgorithm, key: Vec<u8> },
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verifier::Hmac(_) => "Verifier::Hmac(..)",
            Verifier::Public { .. } => "Verifier::Public(..)",
        })
    }
}

impl Verifier {
    /// An HMAC secret.
    pub fn hmac(hash: Hash, secret: &[u8], allow_weak: bool) -> Result<Self, KeyError> {
        check_hash(hash, allow_weak)?;
        let alg = hmac_algorithm(hash).ok_or(KeyError::Unsupported(Algorithm::Hmac, hash))?;
        if secret.is_empty() {
            return Err(KeyError::BadKey("HMAC"));
        }
        Ok(Verifier::Hmac(hmac::Key::new(alg, secret)))
    }

    /// An RSA (SPKI or PKCS#1) or EC (SPKI, P-256 or P-384) public key, PEM or DER.
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
                let alg: &'static dyn signature::VerificationAlgorithm = match hash {
                    Hash::Sha1 => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                    Hash::Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Hash::Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Hash::Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Hash::Md5 | Hash::Sha224 => return Err(unsupported),
                };
                Ok(Verifier::Public { algorithm: alg, key: pkcs1 })
            }
            Algorithm::Ecdsa => {
                let (oid, curve, point) = spki_parts(&der).ok_or(KeyError::BadKey("EC"))?;
                if oid != EC_OID {
                    return Err(KeyError::BadKey("EC"));
                }
                let alg: &'static dyn signature::VerificationAlgorithm = match (curve.as_deref(), hash) {
                    (Some(P256_OID), Hash::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
                    (Some(P256_OID), Hash::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
                    (Some(P384_OID), Hash::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
                    (Some(P384_OID), Hash::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
                    (Some(P256_OID | P384_OID), _) => return Err(unsupported),
                    _ => return Err(KeyError::BadKey("EC (P-256 or P-384)")),
                };
                Ok(Verifier::Public { algorithm: alg, key: point })
            }
        }
    }

    /// Whether `sig` signs `message`; HMAC tags are compared in constant time.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            Verifier::Hmac(key) => hmac::verify(key, message, sig).is_ok(),
            Verifier::Public { algorithm, key } => {
                signature::UnparsedPublicKey::new(*algorithm, key).verify(message, sig).is_ok()
            }
        }
    }
}

/// What signs a request: the host app's (or the platform stand-in's) side.
pub enum Signer {
    Hmac(hmac::Key),
    Rsa(signature::RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ecdsa(signature::EcdsaKeyPair),
}

impl Signer {
    pub fn hmac(hash: Hash, secret: &[u8]) -> Result<Self, KeyError> {
        let alg = hmac_algorithm(hash).ok_or(KeyError::Unsupported(Algorithm::Hmac, hash))?;
        Ok(Signer::Hmac(hmac::Key::new(alg, secret)))
    }

    /// An RSA or EC private key, PKCS#8 PEM or DER. ECDSA signs P-256 with SHA-256 and P-384
    /// with SHA-384.
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
                let alg = match hash {
                    Hash::Sha256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    Hash::Sha384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                    _ => return Err(KeyError::Unsupported(algorithm, hash)),
                };
                let pair = signature::EcdsaKeyPair::from_pkcs8(alg, &der, &SystemRandom::new())
                    .map_err(|_| KeyError::BadKey("EC"))?;
                Ok(Signer::Ecdsa(pair))
            }
        }
    }

    pub fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        let rng = SystemRandom::new();
        match self {
            Signer::Hmac(key) => Some(hmac::sign(key, message).as_ref().to_vec()),
            Signer::Rsa(pair, encoding) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(*encoding, &rng, message, &mut sig).ok()?;
                Some(sig)
            }
            Signer::Ecdsa(pair) => pair.sign(&rng, message).ok().map(|s| s.as_ref().to_vec()),
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
        assert!(Verifier::hmac(Hash::Sha1, b"k", true).is_ok());
        assert!(Verifier::hmac(Hash::Md5, b"k", true).is_err());
        assert!(Verifier::hmac(Hash::Sha256, b"", false).is_err());
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
