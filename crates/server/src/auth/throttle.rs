//! Limits on failed logins, per email and per client address, so passwords cannot be guessed at
//! speed. In memory, per node: a restart forgets them, which only ever loosens the limit.

use std::collections::HashMap;
use std::sync::Mutex;

use keyward_domain::ratelimit::Limit;
use time::OffsetDateTime;

/// Entries past which stale ones are swept, bounding memory under a flood of distinct names.
const SWEEP_AT: usize = 10_000;

#[derive(Debug)]
pub struct FailureThrottle {
    limit: Limit,
    tats: Mutex<HashMap<String, i128>>,
}

impl FailureThrottle {
    pub fn new(limit: Limit) -> Self {
        Self {
            limit,
            tats: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after_secs)` while `subject` has used up its failures.
    pub fn check(&self, subject: &str, now: OffsetDateTime) -> Result<(), u64> {
        let tats = self.tats.lock().expect("throttle lock");
        let tat = tats.get(subject).copied().unwrap_or(0);
        let decision = self.limit.decide(tat, now);
        if decision.allowed {
            Ok(())
        } else {
            Err(decision.retry_after_secs(now))
        }
    }

    /// Counts one failure against `subject`.
    pub fn record_failure(&self, subject: &str, now: OffsetDateTime) {
        let mut tats = self.tats.lock().expect("throttle lock");
        if tats.len() >= SWEEP_AT {
            let now_n = now.unix_timestamp_nanos();
            tats.retain(|_, tat| *tat > now_n);
        }
        let tat = tats.get(subject).copied().unwrap_or(0);
        let decision = self.limit.decide(tat, now);
        let next = if decision.allowed {
            decision.new_tat_nanos
        } else {
            tat
        };
        tats.insert(subject.to_owned(), next);
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
        assert!(t.check("a", now).is_ok());
        t.record_failure("a", now);
        t.record_failure("a", now);
        let retry = t.check("a", now).unwrap_err();
        assert!((299..=301).contains(&retry), "{retry}");
        assert!(t.check("b", now).is_ok());
        assert!(t.check("a", now + time::Duration::minutes(5)).is_ok());
    }
}
