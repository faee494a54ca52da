//! Per-key (and per-owner) rate limits at verify time, per node and in memory: each key's GCRA state is one
//! theoretical arrival time, kept in a sharded map so concurrent verifies of different keys
//! rarely contend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use keyward_domain::ratelimit::{Decision, Limit};
use time::OffsetDateTime;
use uuid::Uuid;

const SHARDS: usize = 16;

#[derive(Debug)]
pub struct KeyRateLimiter {
    shards: Vec<Mutex<HashMap<Uuid, i128>>>,
}

impl Default for KeyRateLimiter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl KeyRateLimiter {
    fn shard(&self, id: Uuid) -> std::sync::MutexGuard<'_, HashMap<Uuid, i128>> {
        self.shards[(id.as_u128() % SHARDS as u128) as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides one request of `key_id` under `limit`, spending it when allowed.
    pub fn check(&self, key_id: Uuid, limit: Limit, now: OffsetDateTime) -> Decision {
        let mut tats = self.shard(key_id);
        let tat = tats.get(&key_id).copied().unwrap_or(0);
        let decision = limit.decide(tat, now);
        if decision.allowed {
            tats.insert(key_id, decision.new_tat_nanos);
        }
        decision
    }

    /// Gives back one request that [`KeyRateLimiter::check`] allowed under `limit` and that
    /// another limit of the same verification refused: it does not count. Returns the state
    /// left: how many requests remain now, and when the limit is whole again.
    pub fn give_back(&self, id: Uuid, limit: Limit, now: OffsetDateTime) -> Decision {
        let mut tats = self.shard(id);
        let tat = tats.get(&id).map_or(0, |tat| limit.give_back(*tat));
        tats.insert(id, tat);
        let next = limit.decide(tat, now);
        Decision {
            allowed: false,
            new_tat_nanos: tat,
            // `decide` counts the request it decides; none was counted here.
            remaining: if next.allowed {
                (next.remaining + 1).min(limit.max)
            } else {
                0
            },
            reset: OffsetDateTime::from_unix_timestamp_nanos(tat.max(now.unix_timestamp_nanos()))
                .unwrap_or(now),
            ..next
        }
    }
}

/// This node's budgets of cluster-wide limits ([`keyward_domain::ratelimit::RateLimitScope::Cluster`]):
/// per key, what is left of what the node leased of the current fixed window. Verifications spend
/// from it in memory; only an empty budget asks storage for more (a lease), so no verification
/// writes to the database by itself, and the cluster never allows more than the window's `max`.
/// Concurrent verifications of one key on this node wait for one lease rather than each taking
/// one.
#[derive(Debug, Default)]
pub struct ClusterBudgets {
    budgets: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<Budget>>>>,
}

#[derive(Debug, Default)]
struct Budget {
    /// The window the budget belongs to.
    window_start: Option<OffsetDateTime>,
    /// Requests this node may still allow in it.
    tokens: u32,
    /// Storage said the window is spent: refuse until it ends, without asking again.
    spent: bool,
    /// The cluster's count of the window as of the last lease.
    used: u32,
    /// The limit the budget was leased under: a changed limit asks again (the database's count
    /// stays, and a raised limit has more to give).
    max: u32,
}

/// What a lease asks of storage: `(window_start, want)` to a lease or storage's error.
pub type LeaseResult<E> = Result<keyward_store::RateLease, E>;

impl ClusterBudgets {
    /// Decides one request of `key_id` under the cluster-wide `limit`, whose windows count from
    /// `anchor`; `lease` asks storage for more of a window when this node's budget is empty.
    pub async fn check<E, F, Fut>(
        &self,
        key_id: Uuid,
        limit: Limit,
        anchor: OffsetDateTime,
        now: OffsetDateTime,
        lease: F,
    ) -> Result<Decision, E>
    where
        F: FnOnce(OffsetDateTime, u32) -> Fut,
        Fut: std::future::Future<Output = LeaseResult<E>>,
    {
        let budget = {
            let mut budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(budgets.entry(key_id).or_default())
        };
        let mut budget = budget.lock().await;
        let (start, end) = limit.fixed_window(anchor, now);
        if budget.window_start != Some(start) || budget.max != limit.max {
            *budget = Budget {
                window_start: Some(start),
                max: limit.max,
                ..Budget::default()
            };
        }
        if budget.tokens == 0 && !budget.spent {
            // Ask for a sixteenth of the window at a time (storage grants at most a quarter of
            // what is left): few leases a window, little stranded when load moves elsewhere.
            let want = (limit.max / 16).max(1);
            let lease = lease(start, want).await?;
            budget.tokens = lease.granted;
            budget.used = lease.used;
            budget.spent = lease.granted == 0;
        }
        let allowed = budget.tokens > 0;
        if allowed {
            budget.tokens -= 1;
        }
        Ok(Decision {
            allowed,
            new_tat_nanos: 0,
            remaining: limit.max.saturating_sub(budget.used) + budget.tokens,
            reset: end,
            retry_at: if allowed { now } else { end },
        })
    }

    /// Gives back one request that [`ClusterBudgets::check`] allowed and that another limit of
    /// the same verification refused: this node may allow it again.
    pub fn give_back(&self, key_id: Uuid) {
        let budget = {
            let budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
            budgets.get(&key_id).map(Arc::clone)
        };
        if let Some(budget) = budget {
            if let Ok(mut budget) = budget.try_lock() {
                budget.tokens += 1;
            };
        }
    }
}
