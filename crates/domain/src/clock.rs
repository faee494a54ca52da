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
        OffsetDateTime::from_unix_timestamp_nanos(nanos).expect("manual clock within range")
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

#[cfg(test)]
mod tests {
    use super::*;

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
