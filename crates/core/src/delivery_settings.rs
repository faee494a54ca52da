//! How webhooks are sent and retried: operator settings, apart from the operations so that the
//! context can hold them without importing what imports it.

use time::{Duration, OffsetDateTime};

/// How deliveries are sent and retried.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Endpoints may resolve to loopback, private, link-local or metadata addresses
    /// (`--webhook-allow-private`). Off by default: such URLs are refused at create and at send.
    pub allow_private: bool,
    /// The waits before each retry after a failed attempt; past the last, the delivery fails.
    /// Each wait is drawn within ±20% of its value (jitter). Default: 5 s, 30 s, 2 min, 10 min,
    /// 30 min, 1 h, 2 h, 4 h, 8 h, 8 h (eleven attempts over about a day).
    pub retry_schedule: Vec<Duration>,
    /// How long a node holds a delivery it is sending before another may take it over.
    pub lease: Duration,
    /// Connecting to a receiver gives up after this long.
    pub connect_timeout: std::time::Duration,
    /// A whole attempt (connect, send, answer) gives up after this long.
    pub total_timeout: std::time::Duration,
    /// Finished deliveries are kept this long, then pruned.
    pub keep: Duration,
    /// How often a node looks for due deliveries when it found none.
    pub poll_interval: std::time::Duration,
    /// How often a node looks for keys due an expiry reminder or notice.
    pub notice_interval: std::time::Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            retry_schedule: [5, 30, 120, 600, 1800, 3600, 7200, 14_400, 28_800, 28_800]
                .map(Duration::seconds)
                .to_vec(),
            lease: Duration::seconds(60),
            connect_timeout: std::time::Duration::from_secs(5),
            total_timeout: std::time::Duration::from_secs(15),
            keep: Duration::days(30),
            poll_interval: std::time::Duration::from_millis(500),
            notice_interval: std::time::Duration::from_secs(60),
        }
    }
}

impl WebhookSettings {
    /// When the attempt after `attempts` failed ones is due, or `None` when none is left.
    /// `jitter` is in [0, 1): it moves the wait within ±20% of the schedule's.
    pub fn next_attempt(
        &self,
        attempts: u32,
        now: OffsetDateTime,
        jitter: f64,
    ) -> Option<OffsetDateTime> {
        let index = usize::try_from(attempts).ok()?.checked_sub(1)?;
        let wait = *self.retry_schedule.get(index)?;
        let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
        Some(now + wait * factor)
    }
}
