//! Session tokens (§3): claims, EdDSA signing and verification, how a request presents its token,
//! the ACR rule and the CSRF binding. Shared by every service so the checks are the same everywhere.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Detail, ErrorBody, Origin};
use crate::ids::{IdentityId, SessionId};

/// The one audience of every session token.
pub const AUDIENCE: &str = "boxes-api";
/// Clock skew tolerated on `exp`.
pub const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: IdentityId,
    pub acr: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: uuid::Uuid,
    pub sid: SessionId,
    pub csh: String,
    pub cid: String,
}

impl Claims {
    /// The ACR level; verification guarantees it is a digit string.
    pub fn acr_level(&self) -> u32 {
        self.acr.parse().unwrap_or(0)
    }

    /// §3.6: 403 with origin `acr` when the token is too weak.
    pub fn require_acr(&self, required: u32) -> Result<(), ErrorBody> {
        if self.acr_level() >= required {
            Ok(())
        } else {
            Err(ErrorBody::forbidden(Origin::Acr, "token acr is too weak")
                .with("acr", Detail::Forbidden)
                .with("required_acr", required.to_string()))
        }
    }
}

/// `b64u(SHA-256(value))`: the CSRF binding (`csh`) and the stored hash of opaque tokens.
pub fn sha256_b64u(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

/// 32 random bytes from the caller, as b64u: CSRF tokens and refresh tokens.
pub fn b64u_token(bytes: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The raw 32 bytes of an Ed25519 public key in SPKI PEM.
pub fn ed25519_public_raw(pem: &str) -> Option<[u8; 32]> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    let der = STANDARD.decode(body).ok()?;
    // SPKI for Ed25519 is a fixed 12-byte prefix followed by the key.
    if der.len() != 44 || der[..12] != [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00] {
        return None;
    }
    der[12..].try_into().ok()
}

/// A key id derived from the public key, so signer and verifiers agree without configuration.
pub fn kid_for(raw: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(raw))[..16].to_owned()
}

/// One JWK of the JWKS document (§3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

impl Jwk {
    pub fn from_public_pem(pem: &str) -> Option<Self> {
        let raw = ed25519_public_raw(pem)?;
        Some(Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(raw),
            kid: kid_for(&raw),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not an Ed25519 public key in SPKI PEM")]
    BadPublicKey,
    #[error("not an Ed25519 private key in PKCS#8 PEM")]
    BadPrivateKey,
}

/// Why a token was refused; every variant is a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token signature or claims are invalid")]
    Invalid,
    #[error("token expired")]
    Expired,
}

/// Verifies session tokens with public keys only.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<(String, DecodingKey)>,
    validation: Validation,
}

impl Verifier {
    /// Accepts every key of the configured set (rotation, §3.1).
    pub fn from_public_pems<S: AsRef<str>>(pems: &[S], issuer: &str) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for pem in pems {
            let raw = ed25519_public_raw(pem.as_ref()).ok_or(KeyError::BadPublicKey)?;
            let key = DecodingKey::from_ed_pem(pem.as_ref().as_bytes()).map_err(|_| KeyError::BadPublicKey)?;
            keys.push((kid_for(&raw), key));
        }
        if keys.is_empty() {
            return Err(KeyError::BadPublicKey);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Ok(Verifier { keys, validation })
    }

    /// §3.3 step 1. Revocation (step 2) needs Redis and is the service's.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        // decode_header refuses `alg: none` (no such algorithm), and we accept EdDSA only.
        let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let candidates: Vec<&DecodingKey> = match &header.kid {
            Some(kid) => self.keys.iter().filter(|(k, _)| k == kid).map(|(_, key)| key).collect(),
            None => self.keys.iter().map(|(_, key)| key).collect(),
        };
        let mut outcome = Err(TokenError::Invalid);
        for key in candidates {
            match decode::<Claims>(token, key, &self.validation) {
                Ok(data) => {
                    outcome = Ok(data.claims);
                    break;
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind;
                    outcome = Err(match e.kind() {
                        ErrorKind::ExpiredSignature => TokenError::Expired,
                        ErrorKind::Json(_) | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => TokenError::Malformed,
                        _ => TokenError::Invalid,
                    });
                    if outcome == Err(TokenError::Expired) {
                        break;
                    }
                }
            }
        }
        let claims = outcome?;
        if claims.acr.is_empty() || !claims.acr.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TokenError::Malformed);
        }
        Ok(claims)
    }
}

/// Signs session tokens (auth-bridge only).
pub struct Signer {
    key: SigningKey,
    kid: String,
    issuer: String,
}

/// Computes the Ed25519 signature of a message with a key pair the caller parsed once.
pub type Ed25519Sign = Box<dyn Fn(&[u8]) -> [u8; 64] + Send + Sync>;

enum SigningKey {
    /// jsonwebtoken's key: it keeps the PKCS#8 DER and derives the key pair again at every signature.
    Pkcs8(EncodingKey),
    /// A ready key pair: a signature costs one Ed25519 signing and nothing more.
    KeyPair(Ed25519Sign),
}

impl Signer {
    /// `private_pem` is PKCS#8; `public_pem` gives the key id.
    pub fn new(private_pem: &str, public_pem: &str, issuer: &str) -> Result<Self, KeyError> {
        let key = EncodingKey::from_ed_pem(private_pem.as_bytes()).map_err(|_| KeyError::BadPrivateKey)?;
        let raw = ed25519_public_raw(public_pem).ok_or(KeyError::BadPublicKey)?;
        Ok(Signer { key: SigningKey::Pkcs8(key), kid: kid_for(&raw), issuer: issuer.to_owned() })
    }

    /// Signs with a key pair already parsed by the caller's Ed25519 library, so no signature
    /// re-derives it. The pair must match `public_pem`: a probe signature is checked against it
    /// here, so a mismatch is refused at start rather than showing up as unverifiable tokens.
    pub fn from_key_pair(sign: Ed25519Sign, public_pem: &str, issuer: &str) -> Result<Self, KeyError> {
        let raw = ed25519_public_raw(public_pem).ok_or(KeyError::BadPublicKey)?;
        let public = DecodingKey::from_ed_pem(public_pem.as_bytes()).map_err(|_| KeyError::BadPublicKey)?;
        let probe = b"auth-bridge key pair probe";
        let signature = URL_SAFE_NO_PAD.encode(sign(probe));
        if !jsonwebtoken::crypto::verify(&signature, probe, &public, Algorithm::EdDSA).unwrap_or(false) {
            return Err(KeyError::BadPrivateKey);
        }
        Ok(Signer { key: SigningKey::KeyPair(sign), kid: kid_for(&raw), issuer: issuer.to_owned() })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Issues an access token for one session.
    pub fn sign(&self, claims: SessionClaims<'_>) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let iat = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            sub: claims.sub,
            acr: claims.acr.to_owned(),
            iat,
            exp: iat + claims.ttl_secs,
            jti: uuid::Uuid::new_v4(),
            sid: claims.sid,
            csh: claims.csrf_hash.to_owned(),
            cid: claims.client_id.to_owned(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let jwt = match &self.key {
            SigningKey::Pkcs8(key) => encode(&header, &claims, key)?,
            SigningKey::KeyPair(sign) => {
                // The same compact serialisation as jsonwebtoken::encode: b64u(header).b64u(claims).b64u(signature).
                let mut jwt = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
                jwt.push('.');
                URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(&claims)?, &mut jwt);
                let signature = sign(jwt.as_bytes());
                jwt.push('.');
                URL_SAFE_NO_PAD.encode_string(signature, &mut jwt);
                jwt
            }
        };
        Ok((jwt, claims))
    }
}

/// What a new access token says about its session.
pub struct SessionClaims<'a> {
    pub sub: IdentityId,
    pub sid: SessionId,
    pub acr: &'a str,
    pub csrf_hash: &'a str,
    pub client_id: &'a str,
    pub ttl_secs: i64,
}

/// How the token reached us; decides CSRF (§3.4) and the origin of 401s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Query,
    Bearer,
    Cookie,
}

impl Transport {
    pub fn origin(self) -> Origin {
        match self {
            Transport::Query => Origin::Query,
            Transport::Bearer => Origin::Headers,
            Transport::Cookie => Origin::Cookies,
        }
    }

    fn field(self) -> &'static str {
        match self {
            Transport::Query => "access_token",
            Transport::Bearer => "Authorization",
            Transport::Cookie => "accesstoken",
        }
    }
}

/// Everything a request may present (§3.2). `query` is only filled in on the websocket route.
#[derive(Debug, Default, Clone, Copy)]
pub struct Presented<'a> {
    pub query: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub cookie_token: Option<&'a str>,
    pub cookie_type: Option<&'a str>,
}

/// Picks the token by precedence query > `Authorization` > cookies.
pub fn pick_token<'a>(p: &Presented<'a>) -> Result<(&'a str, Transport), ErrorBody> {
    if let Some(q) = p.query.filter(|q| !q.is_empty()) {
        return Ok((q, Transport::Query));
    }
    if let Some(h) = p.authorization {
        let mut parts = h.trim().splitn(2, ' ');
        return match (parts.next(), parts.next().map(str::trim)) {
            (Some(scheme), Some(token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
                Ok((token, Transport::Bearer))
            }
            _ => Err(ErrorBody::unauthorized(Origin::Headers, "Authorization must be `Bearer <token>`")
                .with("Authorization", Detail::Malformed)),
        };
    }
    match (p.cookie_token.filter(|t| !t.is_empty()), p.cookie_type) {
        (None, _) => {
            Err(ErrorBody::unauthorized(Origin::Cookies, "no credentials").with("accesstoken", Detail::Required))
        }
        (Some(_), None) => {
            Err(ErrorBody::unauthorized(Origin::Cookies, "token type must be bearer")
                .with("tokentype", Detail::Required))
        }
        (Some(t), Some("bearer")) => Ok((t, Transport::Cookie)),
        (Some(_), Some(_)) => {
            Err(ErrorBody::unauthorized(Origin::Cookies, "token type must be bearer")
                .with("tokentype", Detail::Invalid))
        }
    }
}

/// The 401 for a token that failed verification.
pub fn token_error(e: TokenError, transport: Transport) -> ErrorBody {
    let detail = match e {
        TokenError::Malformed => Detail::Malformed,
        TokenError::Invalid => Detail::Invalid,
        TokenError::Expired => Detail::Expired,
    };
    ErrorBody::unauthorized(transport.origin(), e.to_string()).with(transport.field(), detail)
}

/// The 401 for a revoked session (§3.3 step 2).
pub fn revoked_error(transport: Transport) -> ErrorBody {
    ErrorBody::unauthorized(transport.origin(), "session revoked").with(transport.field(), Detail::Expired)
}

/// §3.4: cookie-authenticated writes need `X-CSRF-Token`; any sent header is checked.
pub fn check_csrf(
    claims: &Claims,
    transport: Transport,
    is_write: bool,
    header: Option<&str>,
) -> Result<(), ErrorBody> {
    if !is_write {
        return Ok(());
    }
    match header {
        None if transport == Transport::Cookie => {
            Err(ErrorBody::forbidden(Origin::Headers, "X-CSRF-Token is required")
                .with("X-CSRF-Token", Detail::Required))
        }
        None => Ok(()),
        Some(h) if sha256_b64u(h) == claims.csh => Ok(()),
        Some(_) => {
            Err(ErrorBody::forbidden(Origin::Headers, "X-CSRF-Token is invalid").with("X-CSRF-Token", Detail::Invalid))
        }
    }
}

/// §3.5: the identity in the path must be the caller.
pub fn check_path_identity(path_id: IdentityId, claims: &Claims) -> Result<(), ErrorBody> {
    if path_id == claims.sub {
        Ok(())
    } else {
        Err(ErrorBody::forbidden(Origin::Path, "this path belongs to another identity").with("id", Detail::Forbidden))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};

    fn keys() -> (String, String) {
        let sk = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let private = sk.to_pkcs8_pem(LineEnding::LF).map(|p| p.to_string()).unwrap_or_default();
        let public = sk.verifying_key().to_public_key_pem(LineEnding::LF).unwrap_or_default();
        (private, public)
    }

    fn session<'a>(ttl: i64) -> SessionClaims<'a> {
        SessionClaims {
            sub: IdentityId::new_v4(),
            sid: SessionId::new_v4(),
            acr: "2",
            csrf_hash: "h",
            client_id: "c",
            ttl_secs: ttl,
        }
    }

    #[test]
    fn sign_then_verify() {
        let (private, public) = keys();
        let signer = Signer::new(&private, &public, "auth-bridge").ok();
        let verifier = Verifier::from_public_pems(&[public.as_str()], "auth-bridge").ok();
        let (Some(signer), Some(verifier)) = (signer, verifier) else { panic!("keys") };
        let (jwt, claims) = signer.sign(session(60)).unwrap_or_default_pair();
        assert_eq!(verifier.verify(&jwt), Ok(claims));
        assert!(Jwk::from_public_pem(&public).is_some_and(|j| j.kid == signer.kid()));
    }

    trait OrDefault {
        fn unwrap_or_default_pair(self) -> (String, Claims);
    }
    impl OrDefault for Result<(String, Claims), jsonwebtoken::errors::Error> {
        fn unwrap_or_default_pair(self) -> (String, Claims) {
            match self {
                Ok(v) => v,
                Err(e) => panic!("sign: {e}"),
            }
        }
    }

    fn key_pair(private: &str) -> Ed25519Sign {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        use ed25519_dalek::Signer as _;
        let Ok(sk) = ed25519_dalek::SigningKey::from_pkcs8_pem(private) else { panic!("private key") };
        Box::new(move |m| sk.sign(m).to_bytes())
    }

    #[test]
    fn a_parsed_key_pair_signs_the_same_tokens() {
        let (private, public) = keys();
        let Ok(fast) = Signer::from_key_pair(key_pair(&private), &public, "auth-bridge") else { panic!("keys") };
        let Ok(slow) = Signer::new(&private, &public, "auth-bridge") else { panic!("keys") };
        let Ok(v) = Verifier::from_public_pems(&[public.as_str()], "auth-bridge") else { panic!("keys") };
        let (jwt, claims) = fast.sign(session(60)).unwrap_or_default_pair();
        assert_eq!(v.verify(&jwt), Ok(claims.clone()));
        assert_eq!(fast.kid(), slow.kid());
        // Ed25519 is deterministic: both paths give the same bytes for the same header and claims.
        let header = jwt.split('.').next().unwrap_or_default();
        let (other, _) = slow.sign(session(60)).unwrap_or_default_pair();
        assert_eq!(other.split('.').next(), Some(header));
        let message = jwt.rsplit_once('.').map(|(m, _)| m).unwrap_or_default();
        let Ok(key) = EncodingKey::from_ed_pem(private.as_bytes()) else { panic!("private key") };
        let reference = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::EdDSA).ok();
        assert_eq!(jwt.rsplit_once('.').map(|(_, s)| s.to_owned()), reference);
        let (expired, _) = fast.sign(session(-120)).unwrap_or_default_pair();
        assert_eq!(v.verify(&expired), Err(TokenError::Expired));
    }

    #[test]
    fn a_key_pair_that_does_not_match_the_public_key_is_refused() {
        let (private, _) = keys();
        let (_, other_public) = keys();
        let refused = Signer::from_key_pair(key_pair(&private), &other_public, "auth-bridge").err();
        assert_eq!(refused, Some(KeyError::BadPrivateKey));
    }

    #[test]
    fn refuses_expired_foreign_issuer_and_other_keys() {
        let (private, public) = keys();
        let (_, other_public) = keys();
        let Ok(signer) = Signer::new(&private, &public, "auth-bridge") else { panic!("keys") };
        let (expired, _) = signer.sign(session(-120)).unwrap_or_default_pair();
        let Ok(v) = Verifier::from_public_pems(&[public.as_str()], "auth-bridge") else { panic!("keys") };
        assert_eq!(v.verify(&expired), Err(TokenError::Expired));
        let (within_leeway, _) = signer.sign(session(-10)).unwrap_or_default_pair();
        assert!(v.verify(&within_leeway).is_ok());
        let Ok(other) = Verifier::from_public_pems(&[other_public.as_str()], "auth-bridge") else { panic!("keys") };
        let (good, _) = signer.sign(session(60)).unwrap_or_default_pair();
        assert_eq!(other.verify(&good), Err(TokenError::Invalid));
        let Ok(foreign) = Verifier::from_public_pems(&[public.as_str()], "someone-else") else { panic!("keys") };
        assert_eq!(foreign.verify(&good), Err(TokenError::Invalid));
    }

    #[test]
    fn refuses_alg_none_and_hs256() {
        let (_, public) = keys();
        let Ok(v) = Verifier::from_public_pems(&[public.as_str()], "auth-bridge") else { panic!("keys") };
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#);
        assert!(v.verify(&format!("{header}.{body}.")).is_err());
        let hs =
            encode(&Header::new(Algorithm::HS256), &serde_json::json!({"sub":"x"}), &EncodingKey::from_secret(b"k"));
        assert_eq!(hs.ok().map(|t| v.verify(&t)), Some(Err(TokenError::Invalid)));
    }

    #[test]
    fn token_precedence_and_cookie_rules() {
        let p = Presented {
            query: Some("q"),
            authorization: Some("Bearer h"),
            cookie_token: Some("c"),
            cookie_type: Some("bearer"),
        };
        assert_eq!(pick_token(&p).ok(), Some(("q", Transport::Query)));
        let p = Presented { query: None, ..p };
        assert_eq!(pick_token(&p).ok(), Some(("h", Transport::Bearer)));
        let p = Presented { authorization: None, ..p };
        assert_eq!(pick_token(&p).ok(), Some(("c", Transport::Cookie)));
        let missing = pick_token(&Presented { cookie_type: None, ..p }).err().map(|e| e.details);
        assert_eq!(missing.and_then(|d| d.get("tokentype").cloned()).as_deref(), Some("required"));
        let wrong = pick_token(&Presented { cookie_type: Some("mac"), ..p }).err().map(|e| (e.status(), e.details));
        assert_eq!(wrong.map(|(s, d)| (s, d.get("tokentype").cloned())), Some((401, Some("invalid".into()))));
        assert!(pick_token(&Presented::default()).is_err());
        assert!(pick_token(&Presented { authorization: Some("Basic abc"), ..Presented::default() }).is_err());
    }

    #[test]
    fn csrf_rules() {
        let claims = Claims {
            iss: "i".into(),
            aud: AUDIENCE.into(),
            sub: IdentityId::new_v4(),
            acr: "2".into(),
            iat: 0,
            exp: 0,
            jti: uuid::Uuid::new_v4(),
            sid: SessionId::new_v4(),
            csh: sha256_b64u("secret"),
            cid: "c".into(),
        };
        assert!(check_csrf(&claims, Transport::Cookie, false, None).is_ok());
        assert_eq!(check_csrf(&claims, Transport::Cookie, true, None).err().map(|e| e.status()), Some(403));
        assert!(check_csrf(&claims, Transport::Cookie, true, Some("secret")).is_ok());
        assert!(check_csrf(&claims, Transport::Bearer, true, None).is_ok());
        assert!(check_csrf(&claims, Transport::Bearer, true, Some("wrong")).is_err());
        assert!(claims.require_acr(1).is_ok());
        assert_eq!(claims.require_acr(3).err().map(|e| e.details.get("required_acr").cloned()), Some(Some("3".into())));
    }
}
