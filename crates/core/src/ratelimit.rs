//! Per-key (and per-owner) rate limits at verify time, per node and in memory: each key's GCRA state is one
//! theoretical arrival time, kept in a sharded map so concurrent verifies of different keys
//! rarely contend.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

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
    /// another limit of the same verification refused: it does not count.
    pub fn give_back(&self, id: Uuid, limit: Limit) {
        if let Some(tat) = self.shard(id).get_mut(&id) {
            *tat = limit.give_back(*tat);
        }
    }
}
