//! Keys of other services, brought in so that they keep working: the shapes keyward accepts
//! for them at verify, and the rows an import reads.
//!
//! A [`KeyShape`] is what an import taught keyward: keys that start with its prefix (and, for
//! Estuary, look like Estuary's tokens) are looked up by their SHA-256 digest, or by their
//! HMAC-SHA256 (RFC 2104) under the import's secret. A string of no known shape never reaches
//! storage, and neither does one that looks like keyward's own keys (`ParsedKey` decides
//! those, checksum and all). keyward never needs, and never keeps, an imported key's plaintext.
//!
//! Formats:
//! - `estuary`: Estuary's tokens, `EST` + a UUID + `ARY`, given as `token` (plaintext) or as
//!   `tokenHash` (base64url of their SHA-256, as Estuary's `GET /user/api-keys` shows them);
//! - `stratum`: `sk_live_…` keys, given as `key` (plaintext) or `key_hash` (SHA-256 in hex, or
//!   HMAC-SHA256 in hex when the import is given the secret they were hashed with);
//! - `sha256`: any key starting with a prefix the import names, given as `sha256` (its SHA-256
//!   digest in hex, base64 or base64url).

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use thiserror::Error;
use time::OffsetDateTime;

use crate::key::KeyDigest;

/// The longest imported key keyward looks up, in bytes.
pub const MAX_FOREIGN_KEY_LEN: usize = 256;
/// The longest prefix a `sha256` import may name.
pub const MAX_SHAPE_PREFIX_LEN: usize = 32;
/// The prefix of Stratum's live keys.
pub const STRATUM_PREFIX: &str = "sk_live_";
/// The shortest HMAC secret an import accepts, in bytes.
pub const MIN_HMAC_SECRET_LEN: usize = 16;

/// Where imported keys come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportFormat {
    Estuary,
    Stratum,
    Sha256,
}

impl ImportFormat {
    pub const ALL: [ImportFormat; 3] = [Self::Estuary, Self::Stratum, Self::Sha256];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Estuary => "estuary",
            Self::Stratum => "stratum",
            Self::Sha256 => "sha256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// How an imported key's stored digest is made from its plaintext.
#[derive(Clone, PartialEq, Eq)]
pub enum ShapeHash {
    Sha256,
    /// HMAC-SHA256 under this secret (which keyward keeps: verify needs it).
    HmacSha256(Vec<u8>),
}

impl std::fmt::Debug for ShapeHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sha256 => f.write_str("Sha256"),
            Self::HmacSha256(_) => f.write_str("HmacSha256(<secret>)"),
        }
    }
}

/// A shape of imported keys that verify accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyShape {
    pub format: ImportFormat,
    /// What the keys start with (`EST`, `sk_live_`, or the `sha256` import's prefix).
    pub prefix: String,
    pub hash: ShapeHash,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("a prefix is 1 to 32 characters of A-Z, a-z, 0-9, _ and -")]
    Prefix,
    #[error("the HMAC secret must be at least 16 bytes")]
    ShortSecret,
    #[error("only stratum keys are imported as HMAC-SHA256")]
    HmacNotForThisFormat,
}

impl KeyShape {
    /// The shape of one import: Estuary's and Stratum's prefixes are fixed; a `sha256` import
    /// names its own. `hmac_secret` only for Stratum's.
    pub fn of(
        format: ImportFormat,
        prefix: Option<&str>,
        hmac_secret: Option<Vec<u8>>,
        created_at: OffsetDateTime,
    ) -> Result<Self, ShapeError> {
        let prefix = match format {
            ImportFormat::Estuary => "EST".to_owned(),
            ImportFormat::Stratum => STRATUM_PREFIX.to_owned(),
            ImportFormat::Sha256 => {
                let p = prefix.ok_or(ShapeError::Prefix)?;
                let ok = (1..=MAX_SHAPE_PREFIX_LEN).contains(&p.len())
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !ok {
                    return Err(ShapeError::Prefix);
                }
                p.to_owned()
            }
        };
        let hash = match hmac_secret {
            None => ShapeHash::Sha256,
            Some(_) if format != ImportFormat::Stratum => {
                return Err(ShapeError::HmacNotForThisFormat)
            }
            Some(s) if s.len() < MIN_HMAC_SECRET_LEN => return Err(ShapeError::ShortSecret),
            Some(s) => ShapeHash::HmacSha256(s),
        };
        Ok(Self {
            format,
            prefix,
            hash,
            created_at,
        })
    }

    /// Whether `token` is a key of this shape.
    pub fn matches(&self, token: &str) -> bool {
        if token.len() > MAX_FOREIGN_KEY_LEN || !token.starts_with(&self.prefix) {
            return false;
        }
        let rest = &token[self.prefix.len()..];
        match self.format {
            ImportFormat::Estuary => is_estuary_token(token),
            ImportFormat::Stratum | ImportFormat::Sha256 => {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_graphic())
            }
        }
    }

    /// Whether a key of keyward's own with prefix `key_prefix` (`<key_prefix>_` and 49 letters
    /// and digits, see [`crate::key`]) could start with this shape's prefix: then a mistyped one
    /// would be looked up as an imported key. Either prefix may be the longer one (`k` claims
    /// `kw_…`; `kw_ab` claims some of them).
    pub fn claims_keys_of(&self, key_prefix: &str) -> bool {
        let own = format!("{key_prefix}_");
        if own.starts_with(&self.prefix) {
            return true;
        }
        self.prefix.strip_prefix(&own).is_some_and(|rest| {
            rest.len() <= crate::key::SECRET_LEN + crate::key::CHECKSUM_LEN
                && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
    }

    /// The digest a key of this shape is stored under.
    pub fn digest(&self, token: &str) -> KeyDigest {
        match &self.hash {
            ShapeHash::Sha256 => KeyDigest::of(token),
            ShapeHash::HmacSha256(secret) => {
                // HMAC takes a key of any length (RFC 2104 section 3): this never fails.
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
                    .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
                mac.update(token.as_bytes());
                KeyDigest(mac.finalize().into_bytes().into())
            }
        }
    }

    /// What imported keys of this shape show as their `prefix` (without a trailing `_`).
    pub fn display_prefix(&self) -> &str {
        self.prefix.trim_end_matches('_')
    }
}

/// Whether `token` has the shape of Estuary's tokens: `EST` + a hyphenated UUID + `ARY`.
pub fn is_estuary_token(token: &str) -> bool {
    token
        .strip_prefix("EST")
        .and_then(|rest| rest.strip_suffix("ARY"))
        .is_some_and(|id| id.len() == 36 && uuid::Uuid::try_parse(id).is_ok())
}

/// The digests a presented string may be stored under, one per shape it matches.
pub fn foreign_digests<'a>(
    shapes: &'a [KeyShape],
    token: &'a str,
) -> impl Iterator<Item = KeyDigest> + 'a {
    shapes
        .iter()
        .filter(move |s| s.matches(token))
        .map(move |s| s.digest(token))
}

/// One line of an import file (JSON lines): the credential in the field its format names, and
/// what to know of the key. Unknown fields are refused, so that a misspelt one is not lost.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRow {
    /// estuary: the plaintext token.
    pub token: Option<String>,
    /// estuary: base64url of the token's SHA-256.
    #[serde(rename = "tokenHash")]
    pub token_hash: Option<String>,
    /// stratum: the plaintext key.
    pub key: Option<String>,
    /// stratum: the key's SHA-256 (or HMAC-SHA256) in hex.
    pub key_hash: Option<String>,
    /// sha256: the key's SHA-256 in hex, base64 or base64url.
    pub sha256: Option<String>,
    pub owner_email: Option<String>,
    /// The tenant's slug.
    pub tenant: Option<String>,
    #[serde(alias = "label")]
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", alias = "expiry")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Estuary's listing says whether a token is a login session; sessions are not keys.
    #[serde(rename = "isSession")]
    pub is_session: Option<bool>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RowError {
    #[error("{0}")]
    Credential(&'static str),
    #[error("the key does not have the {0} shape")]
    Shape(&'static str),
}

impl ImportRow {
    /// The digest this row's key is stored under, in `shape`: from its plaintext, or its hash
    /// as given. Exactly one credential field of the format, and no other, must be present.
    pub fn digest(&self, shape: &KeyShape) -> Result<KeyDigest, RowError> {
        let (plain, hashed, others) = match shape.format {
            ImportFormat::Estuary => (
                &self.token,
                &self.token_hash,
                [&self.key, &self.key_hash, &self.sha256],
            ),
            ImportFormat::Stratum => (
                &self.key,
                &self.key_hash,
                [&self.token, &self.token_hash, &self.sha256],
            ),
            ImportFormat::Sha256 => (
                &None,
                &self.sha256,
                [&self.token, &self.token_hash, &self.key],
            ),
        };
        if others.iter().any(|f| f.is_some()) {
            return Err(RowError::Credential(match shape.format {
                ImportFormat::Estuary => "an estuary row gives `token` or `tokenHash` only",
                ImportFormat::Stratum => "a stratum row gives `key` or `key_hash` only",
                ImportFormat::Sha256 => "a sha256 row gives `sha256` only",
            }));
        }
        match (plain, hashed) {
            (Some(_), Some(_)) => Err(RowError::Credential("give the key or its hash, not both")),
            (None, None) => Err(RowError::Credential(match shape.format {
                ImportFormat::Estuary => "`token` or `tokenHash` is required",
                ImportFormat::Stratum => "`key` or `key_hash` is required",
                ImportFormat::Sha256 => "`sha256` is required",
            })),
            (Some(plain), None) => {
                if shape.matches(plain) {
                    Ok(shape.digest(plain))
                } else {
                    Err(RowError::Shape(shape.format.as_str()))
                }
            }
            (None, Some(hash)) => {
                parse_hash(shape.format, hash).ok_or(RowError::Credential(match shape.format {
                    ImportFormat::Estuary => "`tokenHash` is not base64url of 32 bytes",
                    ImportFormat::Stratum => "`key_hash` is not 64 hex digits",
                    ImportFormat::Sha256 => "`sha256` is not 32 bytes in hex, base64 or base64url",
                }))
            }
        }
    }
}

fn parse_hash(format: ImportFormat, hash: &str) -> Option<KeyDigest> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    let hex = || hex::decode(hash).ok();
    let bytes = match format {
        ImportFormat::Estuary => URL_SAFE_NO_PAD.decode(hash).ok(),
        ImportFormat::Stratum => hex(),
        ImportFormat::Sha256 if hash.len() == 64 => hex(),
        ImportFormat::Sha256 => [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(hash).ok()),
    }?;
    KeyDigest::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const AT: OffsetDateTime = datetime!(2026-11-01 00:00 UTC);
    const TOKEN: &str = "EST6f1d2c1e-8a4b-4f0e-9c3d-2b1a0f9e8d7cARY";

    #[test]
    fn a_shape_claims_keywards_keys_when_either_prefix_starts_the_other() {
        let sha = |p: &str| shape(ImportFormat::Sha256, Some(p), None);
        for (prefix, key_prefix) in [
            ("k", "kw"),
            ("kw", "kw"),
            ("kw_", "kw"),
            ("kw_Ab1", "kw"),
            ("a", "acme"),
        ] {
            assert!(
                sha(prefix).claims_keys_of(key_prefix),
                "{prefix} {key_prefix}"
            );
        }
        for (prefix, key_prefix) in [("kwx", "kw"), ("kx", "kw"), ("kw_a-b", "kw"), ("b", "acme")] {
            assert!(
                !sha(prefix).claims_keys_of(key_prefix),
                "{prefix} {key_prefix}"
            );
        }
        // Stratum's `sk_live_` cannot start a keyward key (`live_` is not all letters and digits),
        // nor can Estuary's upper-case `EST`.
        assert!(!shape(ImportFormat::Stratum, None, None).claims_keys_of("sk"));
        assert!(!shape(ImportFormat::Estuary, None, None).claims_keys_of("est"));
    }

    fn shape(format: ImportFormat, prefix: Option<&str>, secret: Option<&[u8]>) -> KeyShape {
        KeyShape::of(format, prefix, secret.map(<[u8]>::to_vec), AT).unwrap()
    }

    #[test]
    fn estuary_tokens_match_by_their_whole_shape() {
        let s = shape(ImportFormat::Estuary, None, None);
        assert!(s.matches(TOKEN));
        for not in [
            "EST6f1d2c1e-8a4b-4f0e-9c3d-2b1a0f9e8d7c",
            "EST6f1d2c1e-8a4b-4f0e-9c3d-2b1a0f9e8d7cARYX",
            "ESTnot-a-uuid-at-all-but-36-chars-long-ARY",
            "est6f1d2c1e-8a4b-4f0e-9c3d-2b1a0f9e8d7cary",
            "",
        ] {
            assert!(!s.matches(not), "{not}");
        }
    }

    #[test]
    fn a_hash_and_its_plaintext_give_one_digest() {
        use base64::Engine;
        let s = shape(ImportFormat::Estuary, None, None);
        let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(KeyDigest::of(TOKEN).as_bytes());
        let by_token = ImportRow {
            token: Some(TOKEN.into()),
            ..ImportRow::default()
        };
        let by_hash = ImportRow {
            token_hash: Some(hash),
            ..ImportRow::default()
        };
        assert_eq!(by_token.digest(&s), by_hash.digest(&s));
        assert_eq!(by_token.digest(&s), Ok(KeyDigest::of(TOKEN)));

        let sha = shape(ImportFormat::Sha256, Some("ghx_"), None);
        let key = "ghx_abcdef";
        let digest = KeyDigest::of(key);
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest.as_bytes());
        for given in [digest.to_hex(), digest.to_base64url(), b64] {
            let row = ImportRow {
                sha256: Some(given.clone()),
                ..ImportRow::default()
            };
            assert_eq!(row.digest(&sha), Ok(digest), "{given}");
        }
        assert_eq!(foreign_digests(&[sha], key).collect::<Vec<_>>(), [digest]);
    }

    #[test]
    fn hmac_keys_are_stored_under_their_mac() {
        let secret = b"a secret of sixteen+ bytes";
        let s = shape(ImportFormat::Stratum, None, Some(secret));
        let key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
        mac.update(key.as_bytes());
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(s.digest(key).to_hex(), expected);
        let row = ImportRow {
            key_hash: Some(expected),
            ..ImportRow::default()
        };
        assert_eq!(row.digest(&s), Ok(s.digest(key)));
        assert!(format!("{s:?}").contains("<secret>"), "{s:?}");
        assert!(!format!("{s:?}").contains("sixteen"), "{s:?}");
    }

    #[test]
    fn bad_rows_and_shapes_say_why() {
        let s = shape(ImportFormat::Stratum, None, None);
        let both = ImportRow {
            key: Some("sk_live_x".into()),
            key_hash: Some("00".repeat(32)),
            ..ImportRow::default()
        };
        assert!(matches!(both.digest(&s), Err(RowError::Credential(_))));
        let wrong_field = ImportRow {
            token: Some(TOKEN.into()),
            ..ImportRow::default()
        };
        assert!(matches!(
            wrong_field.digest(&s),
            Err(RowError::Credential(_))
        ));
        let not_stratum = ImportRow {
            key: Some("pk_live_x".into()),
            ..ImportRow::default()
        };
        assert_eq!(not_stratum.digest(&s), Err(RowError::Shape("stratum")));
        let short = ImportRow {
            key_hash: Some("abcd".into()),
            ..ImportRow::default()
        };
        assert!(matches!(short.digest(&s), Err(RowError::Credential(_))));
        assert_eq!(
            KeyShape::of(ImportFormat::Sha256, Some("has space"), None, AT),
            Err(ShapeError::Prefix)
        );
        assert_eq!(
            KeyShape::of(ImportFormat::Sha256, None, None, AT),
            Err(ShapeError::Prefix)
        );
        assert_eq!(
            KeyShape::of(ImportFormat::Stratum, None, Some(vec![1; 8]), AT),
            Err(ShapeError::ShortSecret)
        );
        assert_eq!(
            KeyShape::of(ImportFormat::Estuary, None, Some(vec![1; 32]), AT),
            Err(ShapeError::HmacNotForThisFormat)
        );
    }
}
