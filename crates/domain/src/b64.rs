//! The two base64 flavours of §2.3. Values are checked, then kept exactly as received (§1.4 rule 1).

use serde::Serialize;

use crate::error::Detail;

/// Strict: unpadded URL-safe alphabet, and a length a real encoding can have.
pub fn is_b64u(s: &str) -> bool {
    !s.is_empty() && s.len() % 4 != 1 && s.bytes().all(|b| B64U_ALPHABET[usize::from(b)])
}

/// Which bytes the URL-safe alphabet holds: one load per byte, on a message's whole ciphertext.
const B64U_ALPHABET: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    table
};

/// Lenient: standard or URL-safe alphabet, with up to two `=` of padding at the end.
pub fn is_b64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let pad = s.len() - body.len();
    !body.is_empty()
        && pad <= 2
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
}

fn check_len(s: &str, max: usize) -> Result<(), Detail> {
    // A character takes at least one byte, so up to `max` bytes need no counting.
    if s.is_empty() || (s.len() > max && s.chars().count() > max) {
        Err(Detail::Invalid)
    } else {
        Ok(())
    }
}

/// A strict (`b64u`) value, as received.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct B64u(String);

impl B64u {
    /// Length outside `1..=max` is `invalid`; a bad alphabet or padding is `malformed`.
    pub fn parse(s: &str, max: usize) -> Result<Self, Detail> {
        check_len(s, max)?;
        if is_b64u(s) {
            Ok(B64u(s.to_owned()))
        } else {
            Err(Detail::Malformed)
        }
    }

    /// Wraps a value read back from storage, where it was validated on the way in.
    pub fn trusted(s: String) -> Self {
        B64u(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A lenient (`b64`) value, as received.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct B64(String);

impl B64 {
    pub fn parse(s: &str, max: usize) -> Result<Self, Detail> {
        check_len(s, max)?;
        if is_b64(s) {
            Ok(B64(s.to_owned()))
        } else {
            Err(Detail::Malformed)
        }
    }

    pub fn trusted(s: String) -> Self {
        B64(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

// Base64 values are ciphertext, key shares and keys: a log or a panic message shows only their
// length.
impl std::fmt::Debug for B64u {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "B64u(<{} characters>)", self.0.len())
    }
}

impl std::fmt::Debug for B64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "B64(<{} characters>)", self.0.len())
    }
}

/// Size limits of §2.4.
pub mod limits {
    pub const PUBLIC_KEY: usize = 4096;
    pub const OTHER_SHARE_HASH: usize = 512;
    pub const MISAKEY_SHARE: usize = 1024;
    pub const ENCRYPTED_INVITATION_KEY_SHARE: usize = 4096;
    pub const MESSAGE: usize = 32768;
    pub const CRYPTO_ACTION: usize = 16384;
    pub const ACCESS_VALUE: usize = 320;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_flavour() {
        assert!(is_b64u("SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw"));
        assert!(is_b64u("Nz4nJMj5DOd4UGXXOlH8Ww"));
        assert!(is_b64u("ab-_"));
        assert!(!is_b64u("lBHT1vfwFAIBig5Nj+sD+w=="));
        assert!(!is_b64u("abc="));
        assert!(!is_b64u("a/b"));
        assert!(!is_b64u("abcde"), "length 5 is 1 mod 4");
        assert!(!is_b64u(""));
    }

    #[test]
    fn lenient_flavour() {
        assert!(is_b64("lBHT1vfwFAIBig5Nj+sD+w=="));
        assert!(is_b64("cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ="));
        assert!(is_b64("ab-_"));
        assert!(!is_b64("ab==="));
        assert!(!is_b64("=="));
        assert!(!is_b64("a b"));
        assert!(!is_b64("a=b"));
    }

    #[test]
    fn debug_shows_the_length_only() {
        let secret = "c2VjcmV0LXNoYXJl";
        assert_eq!(format!("{:?}", B64u::parse(secret, 64)), "Ok(B64u(<16 characters>))");
        assert_eq!(format!("{:?}", B64::parse(secret, 64)), "Ok(B64(<16 characters>))");
    }

    #[test]
    fn the_alphabet_table_is_the_url_safe_alphabet() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            assert_eq!(B64U_ALPHABET[usize::from(b)], expected, "byte {b}");
        }
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert_eq!(check_len("éé", 2), Ok(()), "four bytes, two characters");
        assert_eq!(check_len("ééé", 2), Err(Detail::Invalid));
        assert_eq!(check_len("aa", 2), Ok(()));
        assert_eq!(check_len("aaa", 2), Err(Detail::Invalid));
    }

    #[test]
    fn lengths_are_invalid_and_alphabets_malformed() {
        assert_eq!(B64u::parse("", 10), Err(Detail::Invalid));
        assert_eq!(B64u::parse("aaaaaaaaaaaa", 10), Err(Detail::Invalid));
        assert_eq!(B64u::parse("aa==", 10), Err(Detail::Malformed));
        assert_eq!(B64::parse("aa==", 10).map(|v| v.into_string()), Ok("aa==".to_owned()));
    }
}
