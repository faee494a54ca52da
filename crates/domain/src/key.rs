//! The API key format: `<prefix>_<secret><checksum>`.
//!
//! - `prefix`: `[a-z0-9]{1,16}`, `kw` unless the tenant chose its own;
//! - `secret`: 32 bytes from the OS CSPRNG, written as 43 base62 characters;
//! - `checksum`: CRC32 of `<prefix>_<secret>`, written as 6 base62 characters, so a typo or a
//!   truncated copy is rejected without touching storage (the GitHub token scheme).
//!
//! Only the SHA-256 [`KeyDigest`] of the whole key string is ever stored. A [`PlainKey`] never
//! prints itself through `Debug`.

use std::fmt;

use sha2::{Digest, Sha256};
use thiserror::Error;

/// The base62 alphabet. NEVER CHANGE: every issued key's checksum is written in it.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Length of the secret part in base62 characters (32 bytes). NEVER CHANGE.
pub const SECRET_LEN: usize = 43;
/// Length of the checksum part in base62 characters (62^6 > 2^32). NEVER CHANGE.
pub const CHECKSUM_LEN: usize = 6;
/// The prefix keys get when their tenant chose none.
pub const DEFAULT_PREFIX: &str = "kw";
/// Characters of the secret shown after the prefix in a key's display `start`.
pub const START_CHARS: usize = 4;
pub const MAX_PREFIX_LEN: usize = 16;
/// The longest string that can be a key; anything longer is rejected before parsing.
pub const MAX_KEY_LEN: usize = MAX_PREFIX_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;

#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
pub enum KeyFormatError {
    #[error("the key is not of the form <prefix>_<secret><checksum>")]
    Malformed,
    #[error("the key's checksum does not match; it was mistyped or truncated")]
    BadChecksum,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("a key prefix is 1 to 16 characters of a-z and 0-9")]
pub struct InvalidPrefix;

/// A validated key prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    pub fn parse(s: &str) -> Result<Self, InvalidPrefix> {
        if is_valid_prefix(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidPrefix)
        }
    }

    pub fn default_prefix() -> Self {
        Self(DEFAULT_PREFIX.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_valid_prefix(s: &str) -> bool {
    (1..=MAX_PREFIX_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A plaintext key. Shown to its owner once; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainKey(String);

impl PlainKey {
    /// Makes a new key with `prefix` from the OS CSPRNG.
    pub fn generate(prefix: &KeyPrefix) -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self::from_secret_bytes(prefix, bytes))
    }

    /// Builds the key string for given secret bytes; exposed for deterministic tests.
    pub fn from_secret_bytes(prefix: &KeyPrefix, bytes: [u8; 32]) -> Self {
        let mut key = String::with_capacity(MAX_KEY_LEN);
        key.push_str(prefix.as_str());
        key.push('_');
        key.push_str(&base62_fixed(&bytes, SECRET_LEN));
        let checksum = crc32fast::hash(key.as_bytes());
        key.push_str(&base62_fixed(&checksum.to_be_bytes(), CHECKSUM_LEN));
        Self(key)
    }

    /// The plaintext; call only to hand it to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }

    /// The display start: prefix, underscore and the first characters of the secret.
    pub fn start(&self) -> String {
        let underscore = self.0.find('_').unwrap_or(0);
        self.0[..underscore + 1 + START_CHARS].to_owned()
    }
}

impl fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainKey(<redacted>)")
    }
}

/// A key string that has passed the shape and checksum checks.
#[derive(Debug, Clone, Copy)]
pub struct ParsedKey<'a> {
    full: &'a str,
    prefix_len: usize,
}

impl<'a> ParsedKey<'a> {
    /// Checks shape and checksum. Allocation-free; never panics on any input.
    pub fn parse(s: &'a str) -> Result<Self, KeyFormatError> {
        if s.len() > MAX_KEY_LEN {
            return Err(KeyFormatError::Malformed);
        }
        let (prefix, body) = s.split_once('_').ok_or(KeyFormatError::Malformed)?;
        if !is_valid_prefix(prefix) || body.len() != SECRET_LEN + CHECKSUM_LEN {
            return Err(KeyFormatError::Malformed);
        }
        if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeyFormatError::Malformed);
        }
        let signed_len = prefix.len() + 1 + SECRET_LEN;
        let expected = crc32fast::hash(&s.as_bytes()[..signed_len]);
        let mut given: u64 = 0;
        for &b in &s.as_bytes()[signed_len..] {
            given = given * 62 + u64::from(base62_value(b));
        }
        if given != u64::from(expected) {
            return Err(KeyFormatError::BadChecksum);
        }
        Ok(Self {
            full: s,
            prefix_len: prefix.len(),
        })
    }

    pub fn prefix(&self) -> &'a str {
        &self.full[..self.prefix_len]
    }

    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(self.full)
    }
}

/// SHA-256 of the whole key string: the only form in which keyward stores a key.
/// SHA-256 (not a slow password hash) is right here: the key carries 256 bits of entropy.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        Self::of_bytes(key.as_bytes())
    }

    /// SHA-256 of any bytes.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// base64url without padding: Estuary's `tokenHash`.
    pub fn to_base64url(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Lower-case hex: the form-encoded surface's `hash`.
    pub fn to_hex(&self) -> String {
        use std::fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    pub fn from_base64url(s: &str) -> Option<Self> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        Self::from_slice(&bytes)
    }

    /// Constant-time comparison, for places that compare a presented digest with a stored one.
    pub fn ct_eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyDigest({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

fn base62_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'A'..=b'Z' => b - b'A' + 10,
        b'a'..=b'z' => b - b'a' + 36,
        _ => 0,
    }
}

/// Big-endian bytes as exactly `width` base62 digits (left-padded with `0`).
fn base62_fixed(bytes: &[u8], width: usize) -> String {
    let mut num = bytes.to_vec();
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        let mut rem: u32 = 0;
        for byte in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            rem = acc % 62;
        }
        *slot = BASE62[rem as usize];
    }
    debug_assert!(num.iter().all(|&b| b == 0), "width too small for the value");
    digits.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn prefix() -> KeyPrefix {
        KeyPrefix::default_prefix()
    }

    #[test]
    fn generated_keys_parse_and_have_the_documented_shape() {
        let key = PlainKey::generate(&prefix()).unwrap();
        let s = key.expose();
        assert!(s.starts_with("kw_"));
        assert_eq!(s.len(), 3 + SECRET_LEN + CHECKSUM_LEN);
        let parsed = ParsedKey::parse(s).unwrap();
        assert_eq!(parsed.prefix(), "kw");
        assert_eq!(parsed.digest(), key.digest());
        assert_eq!(key.start(), &s[..7]);
    }

    #[test]
    fn two_generated_keys_differ() {
        let a = PlainKey::generate(&prefix()).unwrap();
        let b = PlainKey::generate(&prefix()).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn base62_is_fixed_width_and_exact() {
        assert_eq!(base62_fixed(&[0, 0, 0, 61], 6), "00000z");
        assert_eq!(base62_fixed(&[0, 0, 0, 62], 6), "000010");
        assert_eq!(base62_fixed(&[0xff; 4], 6), "4gfFC3");
        assert_eq!(base62_fixed(&[0xff; 32], SECRET_LEN).len(), SECRET_LEN);
    }

    #[test]
    fn debug_never_prints_the_plaintext() {
        let key = PlainKey::generate(&prefix()).unwrap();
        assert!(!format!("{key:?}").contains(&key.expose()[3..]));
    }

    #[test]
    fn rejects_bad_shapes() {
        for bad in [
            "",
            "kw",
            "kw_",
            "_abc",
            "KW_abc",
            "kw-abc",
            "kw_short",
            "averyveryverylongprefix_x",
        ] {
            assert_eq!(
                ParsedKey::parse(bad).unwrap_err(),
                KeyFormatError::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn token_hash_round_trips() {
        let d = KeyDigest::of("kw_x");
        assert_eq!(KeyDigest::from_base64url(&d.to_base64url()), Some(d));
        assert_eq!(d.to_base64url().len(), 43);
        assert!(KeyDigest::from_base64url("not base64!").is_none());
    }

    proptest! {
        #[test]
        fn round_trip(bytes in any::<[u8; 32]>(), p in "[a-z0-9]{1,16}") {
            let prefix = KeyPrefix::parse(&p).unwrap();
            let key = PlainKey::from_secret_bytes(&prefix, bytes);
            let parsed = ParsedKey::parse(key.expose()).unwrap();
            prop_assert_eq!(parsed.prefix(), p.as_str());
            prop_assert_eq!(parsed.digest(), key.digest());
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,80}") {
            let _ = ParsedKey::parse(&s);
        }

        #[test]
        fn any_one_character_change_is_rejected(
            bytes in any::<[u8; 32]>(),
            pos in 0usize..(2 + 1 + SECRET_LEN + CHECKSUM_LEN),
            replacement in proptest::sample::select(BASE62.to_vec()),
        ) {
            let key = PlainKey::from_secret_bytes(&prefix(), bytes);
            let mut mutated = key.expose().as_bytes().to_vec();
            prop_assume!(mutated[pos] != replacement && mutated[pos] != b'_');
            mutated[pos] = replacement;
            let mutated = String::from_utf8(mutated).unwrap();
            prop_assert!(ParsedKey::parse(&mutated).is_err());
        }
    }
}
