//! Scopes: strings a key carries. Those under `keyward:` are keyward's own rights over its
//! management API; every other scope belongs to the teams' applications and keyward only checks
//! it at verify time.

use std::fmt;

use compact_str::CompactString;

use thiserror::Error;

/// Namespace of keyward's own scopes. NEVER CHANGE: issued keys carry it.
pub const KEYWARD_NAMESPACE: &str = "keyward:";
pub const MAX_SCOPES: usize = 64;
pub const MAX_SCOPE_LEN: usize = 128;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ScopeError {
    #[error("scope {0:?} is invalid: 1 to 128 characters of letters, digits and : . _ - / *")]
    Invalid(String),
    #[error("scope {0:?} is not one of keyward's scopes (keyward:read, keyward:write, keyward:verify, keyward:admin, keyward:report_leak)")]
    UnknownKeyward(String),
    #[error("at most 64 scopes")]
    TooMany,
    #[error("scope {0:?} is listed twice")]
    Repeated(String),
}

/// keyward's own rights, as carried by `keyward:` scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeywardRight {
    Read,
    Write,
    Verify,
    Admin,
    /// Reporting leaked keys to `POST /api/v1/leaks` (a secret scanner's credential).
    ReportLeak,
}

impl KeywardRight {
    pub const ALL: [KeywardRight; 5] = [
        Self::Read,
        Self::Write,
        Self::Verify,
        Self::Admin,
        Self::ReportLeak,
    ];

    pub fn scope(self) -> &'static str {
        match self {
            Self::Read => "keyward:read",
            Self::Write => "keyward:write",
            Self::Verify => "keyward:verify",
            Self::Admin => "keyward:admin",
            Self::ReportLeak => "keyward:report_leak",
        }
    }
}

/// A validated scope string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(String);

impl Scope {
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        Self::check(s).map(|()| Self(s.to_owned()))
    }

    /// Whether `s` is a scope, without making one (the verify path checks required scopes).
    pub fn check(s: &str) -> Result<(), ScopeError> {
        let valid_chars = s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-' | b'/' | b'*')
        });
        if s.is_empty() || s.len() > MAX_SCOPE_LEN || !valid_chars {
            return Err(ScopeError::Invalid(s.chars().take(MAX_SCOPE_LEN).collect()));
        }
        if s.starts_with(KEYWARD_NAMESPACE) && !KeywardRight::ALL.iter().any(|r| r.scope() == s) {
            return Err(ScopeError::UnknownKeyward(s.to_owned()));
        }
        Ok(())
    }

    /// Checks scopes a caller requires (at verify): each a scope, at most [`MAX_SCOPES`].
    /// Unlike [`Scopes::parse`], nothing is made, sorted or merged.
    pub fn check_required<S: AsRef<str>>(required: &[S]) -> Result<(), ScopeError> {
        if required.len() > MAX_SCOPES {
            return Err(ScopeError::TooMany);
        }
        required.iter().try_for_each(|s| Self::check(s.as_ref()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_keyward(&self) -> bool {
        self.0.starts_with(KEYWARD_NAMESPACE)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key's scopes, as a set: each a valid [`Scope`], sorted, none listed twice, at most
/// [`MAX_SCOPES`]. Only [`Scopes::parse`] makes one, so a key never holds scopes that were not
/// checked (storage hands back what it was given, and is read through `parse` all the same).
/// Serializes as a JSON array of strings.
///
/// One scope is held inline (most keys have one), and a scope of up to 24 bytes holds its text
/// inline too: verify reads a typical key's scope with no pointer to follow into memory.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(transparent)]
pub struct Scopes(smallvec::SmallVec<[CompactString; 1]>);

impl Scopes {
    /// Validates a list of scope strings and sorts it. A scope listed twice is refused rather
    /// than silently merged.
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, ScopeError> {
        if raw.len() > MAX_SCOPES {
            return Err(ScopeError::TooMany);
        }
        let mut scopes = raw
            .iter()
            .map(|s| Scope::parse(s.as_ref()).map(|s| CompactString::from(s.0)))
            .collect::<Result<smallvec::SmallVec<[CompactString; 1]>, _>>()?;
        scopes.sort();
        if let Some(twice) = scopes.windows(2).find(|w| w[0] == w[1]) {
            return Err(ScopeError::Repeated(twice[0].to_string()));
        }
        Ok(Self(scopes))
    }

    /// No scopes at all.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn contains(&self, scope: &str) -> bool {
        // Sorted: a binary search.
        self.0.binary_search_by(|s| s.as_str().cmp(scope)).is_ok()
    }

    pub fn as_slice(&self) -> &[CompactString] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0.into_iter().map(String::from).collect()
    }
}

impl std::ops::Deref for Scopes {
    type Target = [CompactString];

    fn deref(&self) -> &[CompactString] {
        &self.0
    }
}

impl From<Scopes> for Vec<String> {
    fn from(scopes: Scopes) -> Self {
        scopes.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_held_inline_and_on_the_heap_read_and_serialize_alike() {
        // 24 bytes fit inline; the longer one does not.
        let long = "orders:refunds-and-chargebacks:write";
        let scopes = Scopes::parse(&["orders:read", long]).unwrap();
        assert!(scopes.contains("orders:read") && scopes.contains(long));
        assert!(!scopes.contains("orders"));
        assert_eq!(
            serde_json::to_string(&scopes).unwrap(),
            format!(r#"["orders:read","{long}"]"#)
        );
        assert_eq!(
            scopes.into_vec(),
            vec!["orders:read".to_owned(), long.into()]
        );
        // One scope: held in the set itself.
        let one = Scopes::parse(&["orders:read"]).unwrap();
        assert!(one.contains("orders:read") && !one.contains("orders:write"));
        assert_eq!(serde_json::to_string(&one).unwrap(), r#"["orders:read"]"#);
        assert_eq!(&*one[0], "orders:read");
    }

    #[test]
    fn keyward_namespace_is_closed() {
        assert!(Scope::parse("keyward:read").unwrap().is_keyward());
        assert_eq!(
            Scope::parse("keyward:root"),
            Err(ScopeError::UnknownKeyward("keyward:root".into()))
        );
        assert!(!Scope::parse("orders:write").unwrap().is_keyward());
    }

    #[test]
    fn invalid_scopes_are_rejected() {
        assert!(Scope::parse("").is_err());
        assert!(Scope::parse("has space").is_err());
        assert!(Scope::parse(&"a".repeat(129)).is_err());
        assert!(Scopes::parse(&vec!["a"; 65]).is_err());
    }

    #[test]
    fn scopes_are_sorted_and_never_merged() {
        let scopes = Scopes::parse(&["b", "a"]).unwrap();
        assert_eq!(scopes.as_slice(), ["a", "b"]);
        assert!(scopes.contains("a") && scopes.contains("b") && !scopes.contains("c"));
        assert_eq!(
            Scopes::parse(&["b", "a", "b"]),
            Err(ScopeError::Repeated("b".into()))
        );
    }

    proptest::proptest! {
        /// A scope list is taken exactly when it has at most 64 scopes, none twice, each of the
        /// documented characters and length and, under `keyward:`, one of keyward's four; what
        /// is taken comes back sorted.
        #[test]
        fn scope_lists_agree_with_their_grammar(
            raw in proptest::collection::vec("\\PC{0,6}|[a-z:.*/_-]{1,10}|keyward:(read|write|verify|admin|report_leak|root)", 0..70),
        ) {
            let pattern = regex::Regex::new("^[A-Za-z0-9:._/*-]{1,128}$").unwrap();
            let valid = |s: &str| {
                pattern.is_match(s)
                    && (!s.starts_with(KEYWARD_NAMESPACE) || KeywardRight::ALL.iter().any(|r| r.scope() == s))
            };
            let distinct = raw.iter().collect::<std::collections::BTreeSet<_>>().len() == raw.len();
            let expected = raw.len() <= MAX_SCOPES && distinct && raw.iter().all(|s| valid(s));
            let parsed = Scopes::parse(&raw);
            proptest::prop_assert_eq!(parsed.is_ok(), expected, "{:?}", raw);
            if let Ok(scopes) = parsed {
                let mut sorted: Vec<String> = raw.clone();
                sorted.sort();
                sorted.dedup();
                proptest::prop_assert_eq!(scopes.into_vec(), sorted);
            }
        }
    }
}
