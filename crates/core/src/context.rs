//! [`Keyward`]: everything an operation needs, built once per process and shared by every
//! surface (the HTTP surfaces and the CLI alike).

use std::sync::Arc;

use keyward_domain::ratelimit::Limit;
use keyward_domain::Clock;
use keyward_store::Store;
use time::OffsetDateTime;

use crate::cache::{CacheSettings, KeyCache};
use crate::jwt::JwtKeys;
use crate::metrics::Metrics;
use crate::outage::Outage;
use crate::password::Passwords;
use crate::ratelimit::KeyRateLimiter;
use crate::throttle::FailureThrottle;
use crate::usage::UsageBuffer;

/// Operator choices that change what operations do.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Verify answers callers that present no credential.
    pub public_verify: bool,
    /// Failed sign-ins per email, past which sign-in is refused until the window passes.
    pub login_failures_per_email: Limit,
    /// Failed sign-ins per client address, likewise.
    pub login_failures_per_address: Limit,
    /// Credentials that fail to authenticate (unknown keys, bad tokens) per client address:
    /// past it, [`crate::Error::Throttled`] before any lookup.
    pub auth_failures_per_address: Limit,
    pub cache: CacheSettings,
    /// A console session idle for longer than this ends.
    pub console_idle: time::Duration,
    /// A console session ends this long after sign-in, however busy.
    pub console_lifetime: time::Duration,
    /// How webhooks are sent and retried.
    pub webhooks: crate::delivery_settings::WebhookSettings,
    /// The public keys GitHub's secret-scanning reports are signed with (`--github-keys`);
    /// empty: GitHub's reports are refused.
    pub github_keys: crate::github_keys::GithubKeys,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            public_verify: false,
            login_failures_per_email: Limit {
                max: 10,
                window: time::Duration::minutes(15),
            },
            login_failures_per_address: Limit {
                max: 50,
                window: time::Duration::minutes(15),
            },
            auth_failures_per_address: Limit {
                max: 600,
                window: time::Duration::minutes(1),
            },
            cache: CacheSettings::default(),
            console_idle: time::Duration::minutes(30),
            console_lifetime: time::Duration::hours(12),
            webhooks: crate::delivery_settings::WebhookSettings::default(),
            github_keys: crate::github_keys::GithubKeys::default(),
        }
    }
}

/// keyward's operations' context: storage, time, secrets, and the verify path's memory.
pub struct Keyward {
    /// Where everything durable lives (SQLite or PostgreSQL).
    pub store: Arc<dyn Store>,
    /// The only source of "now" for operations (tests pass a fixed or stepping clock).
    pub clock: Arc<dyn Clock>,
    /// Signs and checks session tokens; `None` in a context that signs nobody in (the CLI),
    /// where a sign-in is refused and a session token never authenticates.
    pub sessions: Option<JwtKeys>,
    /// Hashes and checks passwords, off the async runtime and bounded.
    pub passwords: Passwords,
    pub settings: Arc<Settings>,
    /// Failed sign-ins by (lower-cased) email.
    pub login_by_email: Arc<FailureThrottle>,
    /// Failed sign-ins by client address.
    pub login_by_addr: Arc<FailureThrottle>,
    /// Credentials that failed to authenticate, by client address.
    pub auth_failures_by_addr: Arc<FailureThrottle>,
    /// Each rate-limited key's window on this node.
    pub limiter: Arc<KeyRateLimiter>,
    /// Each owner's shared window on this node (owners with a shared rate limit), by user id.
    pub owner_limiter: Arc<KeyRateLimiter>,
    /// This node's budgets of keys' cluster-wide rate limits.
    pub cluster_budgets: Arc<crate::ratelimit::ClusterBudgets>,
    /// Usage (last use, verifications per day and code) waiting to be written.
    pub usage: Arc<UsageBuffer>,
    /// Keys by digest and users by id, for the verify path.
    pub cache: Arc<KeyCache>,
    /// Counters and histograms, rendered by `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// Whether the verify path knows storage to be unreachable.
    pub outage: Arc<Outage>,
}

impl std::fmt::Debug for Keyward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyward")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Keyward {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        sessions: Option<JwtKeys>,
        passwords: Passwords,
        settings: Settings,
    ) -> Self {
        let metrics = Arc::new(Metrics::default());
        // On a shared database nothing cached is trusted until the change feed listens.
        let coherent = !store.publishes_changes();
        Self {
            store,
            clock,
            sessions,
            passwords,
            login_by_email: Arc::new(FailureThrottle::new(settings.login_failures_per_email)),
            login_by_addr: Arc::new(FailureThrottle::new(settings.login_failures_per_address)),
            auth_failures_by_addr: Arc::new(FailureThrottle::new(
                settings.auth_failures_per_address,
            )),
            cache: Arc::new(KeyCache::new(settings.cache, coherent)),
            outage: Arc::new(Outage::default()),
            metrics: Arc::clone(&metrics),
            settings: Arc::new(settings),
            limiter: Arc::new(KeyRateLimiter::default()),
            owner_limiter: Arc::new(KeyRateLimiter::default()),
            cluster_budgets: Arc::default(),
            usage: Arc::new(UsageBuffer::new(metrics)),
        }
    }

    /// A context for commands run beside (or without) a server: no sessions, production
    /// password hashing, default settings.
    pub fn offline(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> crate::Result<Self> {
        Ok(Self::new(
            store,
            clock,
            None,
            Passwords::production()?,
            Settings::default(),
        ))
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Every metric in Prometheus' text exposition format (version 0.0.4), with the gauges
    /// read now.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(&crate::metrics::Gauges {
            cache_hits: self.cache.hits(),
            cache_misses: self.cache.misses(),
            cache_entries: self.cache.len(),
            cache_coherent: self.cache.is_coherent(),
            storage_down: self.outage.is_down(),
            usage_pending: self.usage.pending(),
        })
    }
}
