//! Limits on failed logins, per email and per client address, so passwords cannot be guessed at
//! speed. In memory, per node: a restart forgets them, which only ever loosens the limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};

use keyward_domain::ratelimit::Limit;
use time::OffsetDateTime;

/// Entries past which stale ones are swept, bounding memory under a flood of distinct names.
const SWEEP_AT: usize = 10_000;

#[derive(Debug)]
pub struct FailureThrottle {
    limit: Limit,
    tats: Mutex<HashMap<String, i128>>,
    /// Until when (Unix seconds) some subject may be out of attempts: before it, [`Self::check`]
    /// must look; after it, nobody is, and a check costs one atomic load (the verify path checks
    /// every verifier's address).
    blocked_until: AtomicI64,
}

impl FailureThrottle {
    pub fn new(limit: Limit) -> Self {
        Self {
            limit,
            tats: Mutex::new(HashMap::new()),
            blocked_until: AtomicI64::new(i64::MIN),
        }
    }

    /// Counts one attempt against `subject`, as a failure until [`Self::forgive`] says otherwise:
    /// `Err(retry_after_secs)`, counting nothing, while `subject` has used up its failures. The
    /// check and the count are one step under the lock, so that attempts made at the same moment
    /// cannot all pass the check before any of them is counted.
    pub fn attempt(&self, subject: &str, now: OffsetDateTime) -> Result<(), u64> {
        let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        if tats.len() >= SWEEP_AT {
            let now_n = now.unix_timestamp_nanos();
            tats.retain(|_, tat| *tat > now_n);
        }
        let tat = tats.get(subject).copied().unwrap_or(0);
        let decision = self.limit.decide(tat, now);
        if !decision.allowed {
            return Err(decision.retry_after_secs(now));
        }
        tats.insert(subject.to_owned(), decision.new_tat_nanos);
        if decision.remaining == 0 {
            // Out of attempts until its TAT falls back within the window.
            let until = decision.reset.unix_timestamp() + 1;
            self.blocked_until.fetch_max(until, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The attempt counted by [`Self::attempt`] succeeded: it is not a failure.
    pub fn forgive(&self, subject: &str) {
        let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tat) = tats.get_mut(subject) {
            *tat = self.limit.give_back(*tat);
        }
    }

    /// Whether some subject may be out of attempts now (when not, no check can fail).
    pub fn may_block(&self, now: OffsetDateTime) -> bool {
        now.unix_timestamp() <= self.blocked_until.load(Ordering::Relaxed)
    }

    /// Whether `subject` may try again now (without counting an attempt).
    pub fn check(&self, subject: &str, now: OffsetDateTime) -> Result<(), u64> {
        if now.unix_timestamp() > self.blocked_until.load(Ordering::Relaxed) {
            return Ok(());
        }
        let tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        let decision = self
            .limit
            .decide(tats.get(subject).copied().unwrap_or(0), now);
        if decision.allowed {
            Ok(())
        } else {
            Err(decision.retry_after_secs(now))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn blocks_after_the_allowed_failures_and_recovers() {
        let t = FailureThrottle::new(Limit {
            max: 2,
            window: time::Duration::minutes(10),
        });
        let now = datetime!(2026-01-01 00:00 UTC);
        assert!(t.attempt("a", now).is_ok());
        assert!(t.attempt("a", now).is_ok());
        let retry = t.attempt("a", now).unwrap_err();
        assert!((299..=301).contains(&retry), "{retry}");
        assert!(t.check("a", now).is_err());
        assert!(t.attempt("b", now).is_ok());
        assert!(t.attempt("a", now + time::Duration::minutes(5)).is_ok());
    }

    #[test]
    fn a_forgiven_attempt_is_no_failure() {
        let t = FailureThrottle::new(Limit {
            max: 2,
            window: time::Duration::minutes(10),
        });
        let now = datetime!(2026-01-01 00:00 UTC);
        for _ in 0..10 {
            t.attempt("a", now).unwrap();
            t.forgive("a");
        }
        t.attempt("a", now).unwrap();
        t.attempt("a", now).unwrap();
        assert!(t.attempt("a", now).is_err());
    }
}
