//! Rate limiting by GCRA (generic cell rate algorithm): `max` requests per `window`, with bursts
//! up to `max`. The whole state of a key's limiter is one number, its theoretical arrival time
//! (TAT), so callers can keep it in an atomic and update it without a lock.

use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

/// The most requests per window a key's rate limit may allow.
pub const MAX_RATE_LIMIT: i64 = 100_000;

/// Why a key's rate limit was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    #[error("must be between 1 and 100000")]
    MaxOutOfRange,
    #[error(transparent)]
    Window(#[from] crate::duration::DurationError),
}

/// A key's rate limit: `max` requests per window, parsed once (when it is set, or read from
/// storage) so that verify never parses it again. The window is kept as it was written
/// (`"1 minute"`), which is what the wire shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRateLimit {
    limit: Limit,
    window_text: String,
    scope: RateLimitScope,
}

/// Where a rate limit holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitScope {
    /// On each node by itself (GCRA in memory, smooth): behind N nodes a key gets up to N times
    /// its limit. The default, and exact on one node.
    #[default]
    Node,
    /// For the whole cluster: fixed windows counted in the database, which each node spends from
    /// budgets it leases (never more than what is left of the window), so that no verification
    /// writes to the database by itself and the cluster never allows more than `max` a window.
    Cluster,
}

impl RateLimitScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Cluster => "cluster",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "node" => Some(Self::Node),
            "cluster" => Some(Self::Cluster),
            _ => None,
        }
    }
}

impl KeyRateLimit {
    /// A limit a caller sets: `max` in 1..=[`MAX_RATE_LIMIT`], the window as
    /// [`crate::duration::WINDOW_PATTERN`] states it.
    pub fn set(max: i64, window: &str) -> Result<Self, RateLimitError> {
        let window_len = crate::duration::parse_window_input(window)?;
        Self::of(max, window, window_len)
    }

    /// A limit read back from storage: the window with the reference's more lenient grammar
    /// ([`crate::duration::parse_window`]), which limits stored before the strict one follow.
    pub fn stored(max: i64, window: &str) -> Result<Self, RateLimitError> {
        let window_len = crate::duration::parse_window(window)?;
        Self::of(max, window, window_len)
    }

    fn of(max: i64, window: &str, window_len: Duration) -> Result<Self, RateLimitError> {
        let max = u32::try_from(max)
            .ok()
            .filter(|m| (1..=MAX_RATE_LIMIT).contains(&i64::from(*m)))
            .ok_or(RateLimitError::MaxOutOfRange)?;
        Ok(Self {
            limit: Limit {
                max,
                window: window_len,
            },
            window_text: window.to_owned(),
            scope: RateLimitScope::Node,
        })
    }

    /// The same limit, holding where `scope` says.
    pub fn with_scope(self, scope: RateLimitScope) -> Self {
        Self { scope, ..self }
    }

    pub fn scope(&self) -> RateLimitScope {
        self.scope
    }

    /// What the limiter decides with.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    pub fn max(&self) -> i64 {
        i64::from(self.limit.max)
    }

    /// The window as it was written.
    pub fn window(&self) -> &str {
        &self.window_text
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The TAT to store (unchanged when the request is rejected).
    pub new_tat_nanos: i128,
    pub remaining: u32,
    /// When the limiter is back to its full `max`.
    pub reset: OffsetDateTime,
    /// When the next request would be allowed (for `Retry-After`); `now` if allowed.
    pub retry_at: OffsetDateTime,
}

impl Decision {
    /// `Retry-After` in whole seconds, rounded up and never 0: a client told "retry now" would
    /// spin.
    pub fn retry_after_secs(&self, now: OffsetDateTime) -> u64 {
        let nanos = (self.retry_at - now).whole_nanoseconds().max(0) as u128;
        (nanos.div_ceil(1_000_000_000) as u64).max(1)
    }
}

impl Limit {
    /// The fixed window (of a cluster-wide limit) that `now` falls in, counted from `anchor` (the
    /// key's creation, the same on every node): its start and end.
    pub fn fixed_window(
        &self,
        anchor: OffsetDateTime,
        now: OffsetDateTime,
    ) -> (OffsetDateTime, OffsetDateTime) {
        let len = self.window.whole_nanoseconds().max(1);
        let since = (now - anchor).whole_nanoseconds().max(0);
        let start = anchor + Duration::nanoseconds_i128(since - since % len);
        (start, start + self.window)
    }

    fn interval_nanos(&self) -> i128 {
        (self.window.whole_nanoseconds() / i128::from(self.max.max(1))).max(1)
    }

    /// The TAT after giving back one request that `decide` allowed (it turned out not to count).
    pub fn give_back(&self, tat_nanos: i128) -> i128 {
        tat_nanos - self.interval_nanos()
    }

    /// Decides one request arriving at `now`, given the stored TAT (0 when none).
    pub fn decide(&self, tat_nanos: i128, now: OffsetDateTime) -> Decision {
        let now_n = now.unix_timestamp_nanos();
        let t = self.interval_nanos();
        let window = self.window.whole_nanoseconds();
        let tat = tat_nanos.max(now_n);
        let new_tat = tat + t;
        let at = |n: i128| OffsetDateTime::from_unix_timestamp_nanos(n).unwrap_or(now);
        if new_tat - now_n > window {
            // Rejected: the earliest allowed arrival is when `tat + t - window` is reached.
            let remaining = 0;
            Decision {
                allowed: false,
                new_tat_nanos: tat_nanos,
                remaining,
                reset: at(tat),
                retry_at: at(new_tat - window),
            }
        } else {
            let remaining = ((window - (new_tat - now_n)) / t) as u32;
            Decision {
                allowed: true,
                new_tat_nanos: new_tat,
                remaining,
                reset: at(new_tat),
                retry_at: now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn fixed_windows_count_from_their_anchor() {
        let limit = Limit {
            max: 3,
            window: Duration::seconds(60),
        };
        let anchor = datetime!(2026-01-01 00:00:10 UTC);
        let w = |now| limit.fixed_window(anchor, now);
        assert_eq!(w(anchor), (anchor, anchor + Duration::seconds(60)));
        assert_eq!(w(anchor + Duration::seconds(59)).0, anchor);
        assert_eq!(
            w(anchor + Duration::seconds(60)).0,
            anchor + Duration::seconds(60)
        );
        assert_eq!(
            w(anchor + Duration::seconds(125)).0,
            anchor + Duration::seconds(120)
        );
        assert_eq!(
            w(anchor - Duration::seconds(5)).0,
            anchor,
            "a clock behind the anchor"
        );
    }

    #[test]
    fn allows_max_then_rejects_until_an_interval_passes() {
        let limit = Limit {
            max: 3,
            window: Duration::seconds(60),
        };
        let now = datetime!(2026-01-01 00:00 UTC);
        let mut tat = 0;
        let mut remaining = vec![];
        for _ in 0..3 {
            let d = limit.decide(tat, now);
            assert!(d.allowed);
            remaining.push(d.remaining);
            tat = d.new_tat_nanos;
        }
        assert_eq!(remaining, vec![2, 1, 0]);
        let rejected = limit.decide(tat, now);
        assert!(!rejected.allowed);
        assert_eq!(rejected.retry_at, now + Duration::seconds(20));
        assert_eq!(rejected.reset, now + Duration::seconds(60));
        assert!(!limit.decide(tat, now + Duration::seconds(19)).allowed);
        assert!(limit.decide(tat, now + Duration::seconds(20)).allowed);
        let full = limit.decide(tat, now + Duration::seconds(60));
        assert_eq!(full.remaining, 2);
    }
}
