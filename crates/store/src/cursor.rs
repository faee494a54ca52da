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

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, id) = s.split_once('.').ok_or(InvalidCursor)?;
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
    }
}
