//! Keyset pagination position: the (created_at, id) of the last item a page returned,
//! written as an opaque string `<unix millis>.<uuid>`.

use std::fmt;
use std::str::FromStr;

use keyward_domain::clock::to_millis;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: OffsetDateTime,
    pub id: Uuid,
}

/// The cursors this server writes, for the OpenAPI document: milliseconds since the epoch (at
/// most 14 digits) and the row's id in lower-case hex.
pub const CURSOR_PATTERN: &str = r"^[0-9]{1,14}\.[0-9a-f]{32}$";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the cursor is not one this server returned")]
pub struct InvalidCursor;

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", to_millis(self.created_at), self.id.simple())
    }
}

impl FromStr for Cursor {
    type Err = InvalidCursor;

    /// Exactly what `Display` writes ([`CURSOR_PATTERN`]): nothing else names a position.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, id) = s.split_once('.').ok_or(InvalidCursor)?;
        let digits = |t: &str, most: usize, ok: fn(u8) -> bool| {
            (1..=most).contains(&t.len()) && t.bytes().all(ok)
        };
        if !digits(ms, 14, |b| b.is_ascii_digit())
            || !digits(id, 32, |b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            || id.len() != 32
        {
            return Err(InvalidCursor);
        }
        let ms: i64 = ms.parse().map_err(|_| InvalidCursor)?;
        let created_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .map_err(|_| InvalidCursor)?;
        let id = Uuid::try_parse(id).map_err(|_| InvalidCursor)?;
        Ok(Self { created_at, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_domain::clock::from_millis;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let c = Cursor {
            created_at: from_millis(1_700_000_000_123),
            id: Uuid::now_v7(),
        };
        assert_eq!(c.to_string().parse::<Cursor>(), Ok(c));
        assert_eq!("nope".parse::<Cursor>(), Err(InvalidCursor));
        assert_eq!("12.notauuid".parse::<Cursor>(), Err(InvalidCursor));
        assert_eq!(
            "99999999999999999999.x".parse::<Cursor>(),
            Err(InvalidCursor)
        );
        let hyphenated = format!("12.{}", Uuid::now_v7());
        assert_eq!(hyphenated.parse::<Cursor>(), Err(InvalidCursor));
        assert_eq!(
            "+12.0123456789abcdef0123456789abcdef".parse::<Cursor>(),
            Err(InvalidCursor)
        );
    }

    proptest::proptest! {
        /// A cursor parses exactly when it matches the documented pattern, and what parses
        /// writes itself back the same way (up to leading zeros of the milliseconds).
        #[test]
        fn cursors_agree_with_their_pattern(
            text in "\\PC{0,50}|[0-9+-]{1,15}\\.[0-9a-fA-F-]{30,36}",
            drawn in "[0-9]{1,14}\\.[0-9a-f]{32}",
        ) {
            let pattern = regex::Regex::new(CURSOR_PATTERN).unwrap();
            for text in [text, drawn] {
                let parsed = text.parse::<Cursor>();
                proptest::prop_assert_eq!(parsed.is_ok(), pattern.is_match(&text), "{:?}", text);
                if let Ok(c) = parsed {
                    proptest::prop_assert_eq!(c.to_string().parse::<Cursor>(), Ok(c));
                }
            }
        }
    }
}
