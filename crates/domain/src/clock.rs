//! The one place keyward reads the wall clock. Everything else receives `now` from a [`Clock`],
//! so expiry, dormancy and rate-limit behaviour can be tested with a [`ManualClock`].

use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one reading of the wall clock that operations see.
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to; for tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    unix_nanos: AtomicI64,
}

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            unix_nanos: AtomicI64::new(start.unix_timestamp_nanos() as i64),
        }
    }

    pub fn advance(&self, by: time::Duration) {
        self.unix_nanos
            .fetch_add(by.whole_nanoseconds() as i64, Ordering::SeqCst);
    }

    pub fn set(&self, to: OffsetDateTime) {
        self.unix_nanos
            .store(to.unix_timestamp_nanos() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let nanos = self.unix_nanos.load(Ordering::SeqCst) as i128;
        // An i64 of nanoseconds (what `new`, `advance` and `set` store) is always in range.
        OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// Milliseconds since the Unix epoch: the precision keyward stores times at.
pub fn to_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The inverse of [`to_millis`]; values outside time's range saturate to the Unix epoch.
pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Truncates to the stored precision so values compare equal after a round trip.
pub fn truncate_millis(t: OffsetDateTime) -> OffsetDateTime {
    from_millis(to_millis(t))
}

/// Parses an RFC 3339 `date-time` exactly as written there (and as JSON Schema's `date-time`
/// format reads it): a `T` between date and time, never a space, and no leap second (`:60`),
/// which no stored time can hold. Anything else is `None`: never read as a nearby time.
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    let bytes = text.as_bytes();
    let t_between = matches!(bytes.get(10), Some(b'T' | b't'));
    let leap_second = bytes.get(17..19) == Some(b"60");
    if !t_between || leap_second {
        return None;
    }
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_exactly() {
        assert!(parse_rfc3339("2030-01-01T00:00:00Z").is_some());
        assert!(parse_rfc3339("2030-01-01t00:00:00.123+02:00").is_some());
        assert!(parse_rfc3339("2030-01-01 00:00:00Z").is_none(), "a space");
        assert!(
            parse_rfc3339("2030-06-30T23:59:60Z").is_none(),
            "a leap second"
        );
        assert!(parse_rfc3339("2030-01-01").is_none());
    }

    proptest::proptest! {
        /// Never panics, and whatever it reads writes back to the same instant.
        #[test]
        fn rfc3339_never_panics_and_round_trips(text in "\\PC{0,32}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})") {
            if let Some(t) = parse_rfc3339(&text) {
                let again = t.format(&time::format_description::well_known::Rfc3339).unwrap();
                proptest::prop_assert_eq!(parse_rfc3339(&again), Some(t));
            }
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = time::macros::datetime!(2026-01-01 00:00 UTC);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(time::Duration::minutes(5));
        assert_eq!(clock.now(), start + time::Duration::minutes(5));
    }

    #[test]
    fn millis_round_trip_truncates() {
        let t = time::macros::datetime!(2026-01-01 00:00:00.123456 UTC);
        assert_eq!(
            from_millis(to_millis(t)),
            time::macros::datetime!(2026-01-01 00:00:00.123 UTC)
        );
    }
}
