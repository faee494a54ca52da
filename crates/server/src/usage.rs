//! Buffered key usage: verify and key authentication note `last_used_at`, and verify counts
//! each answer per key, per UTC day and per outcome code, all in memory. A background task
//! writes the batch every [`FLUSH_EVERY`] and at shutdown, so no request waits on a write.
//! The counters therefore lag by at most `FLUSH_EVERY`; `last_used_at` by at most
//! `FLUSH_EVERY` plus [`LAST_USED_RESOLUTION`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyward_domain::VerifyCode;

use crate::metrics::Metrics;
use keyward_store::{usage_day, KeyUse, Store, UsageBatch, UsageCount};
use time::OffsetDateTime;
use uuid::Uuid;

pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// `last_used_at` is written at most once per this long per key: dormancy is counted in days,
/// and rewriting a row of every key on every flush costs a random page write each.
pub const LAST_USED_RESOLUTION: time::Duration = time::Duration::minutes(1);

/// Hash maps keyed by random key ids need no DoS-resistant hasher; foldhash is several times
/// cheaper than the default SipHash on the verify path.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct Pending {
    last_used: FastMap<Uuid, OffsetDateTime>,
    counts: FastMap<(Uuid, i64, VerifyCode), u64>,
    /// The `last_used_at` last sent to storage per key, while younger than the resolution.
    written: FastMap<Uuid, OffsetDateTime>,
}

/// Keys are spread over this many independently locked shards, so that concurrent verifies of
/// different keys rarely wait for each other.
const SHARDS: usize = 16;

#[derive(Debug, Default)]
pub struct UsageBuffer {
    shards: [Mutex<Pending>; SHARDS],
    metrics: Arc<Metrics>,
}

impl UsageBuffer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            shards: Default::default(),
            metrics,
        }
    }

    fn shard(&self, key_id: Uuid) -> std::sync::MutexGuard<'_, Pending> {
        let i = (key_id.as_u128() % SHARDS as u128) as usize;
        self.shards[i].lock().expect("usage lock")
    }

    /// Notes that the key was used at `at` (moves `last_used_at` forward only).
    pub fn record(&self, key_id: Uuid, at: OffsetDateTime) {
        note_use(&mut self.shard(key_id), key_id, at);
    }

    /// Counts one verification of the key answered with `code`; a `VALID` one is also a use.
    pub fn record_verification(&self, key_id: Uuid, at: OffsetDateTime, code: VerifyCode) {
        let mut pending = self.shard(key_id);
        *pending
            .counts
            .entry((key_id, usage_day(at), code))
            .or_default() += 1;
        if code == VerifyCode::Valid {
            note_use(&mut pending, key_id, at);
        }
    }

    /// How many keys and counters wait to be written.
    pub fn pending(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let p = s.lock().expect("usage lock");
                p.last_used.len() + p.counts.len()
            })
            .sum()
    }

    /// Empties the buffer into a batch, noting the uses as written. Each shard's lock is held
    /// only to swap its maps out, so verifies of its keys never wait for the sorting-through.
    fn take(&self) -> UsageBatch {
        let mut batch = UsageBatch::default();
        for shard in &self.shards {
            let (last_used, counts, mut written) = {
                let mut pending = shard.lock().expect("usage lock");
                (
                    std::mem::take(&mut pending.last_used),
                    std::mem::take(&mut pending.counts),
                    // Meanwhile a use may be noted again, which costs a redundant write at most.
                    std::mem::take(&mut pending.written),
                )
            };
            let first = batch.last_used.len();
            batch.last_used.extend(
                last_used
                    .into_iter()
                    .map(|(key_id, at)| KeyUse { key_id, at }),
            );
            if let Some(newest) = batch.last_used[first..].iter().map(|u| u.at).max() {
                written.retain(|_, at| newest - *at < LAST_USED_RESOLUTION);
            }
            for u in &batch.last_used[first..] {
                written.insert(u.key_id, u.at);
            }
            batch
                .counts
                .extend(
                    counts
                        .into_iter()
                        .map(|((key_id, day, code), count)| UsageCount {
                            key_id,
                            day,
                            code,
                            count,
                        }),
                );
            let mut pending = shard.lock().expect("usage lock");
            // Only a flush writes `written`; another one running at the same time (shutdown's)
            // may have put entries back: keep them too.
            written.extend(pending.written.drain());
            pending.written = written;
        }
        // In key order, so that storage reads each index page once per batch, not once per row.
        batch.last_used.sort_unstable_by_key(|u| u.key_id);
        batch
            .counts
            .sort_unstable_by_key(|c| (c.key_id, c.day, c.code.as_str()));
        batch
    }

    /// Writes what is buffered. On failure the batch is put back to be tried again.
    pub async fn flush(self: &Arc<Self>, store: &dyn Store) {
        // Draining a busy node's 100,000 entries takes milliseconds: off the async workers,
        // where every other request on the same worker would wait for it.
        let buffer = Arc::clone(self);
        let batch = match tokio::task::spawn_blocking(move || buffer.take()).await {
            Ok(batch) => batch,
            // Only a panic while draining gets here; what was taken is lost, nothing else.
            Err(e) => {
                tracing::error!(error = %e, "could not take the usage batch");
                return;
            }
        };

        if batch.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let batch = Arc::new(batch);
        let written = store.record_usage(Arc::clone(&batch)).await;
        self.metrics.flushed(written.is_ok(), started.elapsed());
        if let Err(e) = written {
            tracing::warn!(error = %e, keys = batch.last_used.len(), counters = batch.counts.len(), "could not write key usage; will retry");
            for u in batch.last_used.iter().copied() {
                let mut pending = self.shard(u.key_id);
                // Not written after all: the next flush must send it.
                pending.written.remove(&u.key_id);
                note_use(&mut pending, u.key_id, u.at);
            }
            for c in batch.counts.iter().copied() {
                *self
                    .shard(c.key_id)
                    .counts
                    .entry((c.key_id, c.day, c.code))
                    .or_default() += c.count;
            }
        }
    }

    /// Flushes every [`FLUSH_EVERY`] until the returned handle is aborted.
    pub fn spawn_flusher(self: &Arc<Self>, store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
        let buffer = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                buffer.flush(store.as_ref()).await;
            }
        })
    }
}

fn note_use(pending: &mut Pending, key_id: Uuid, at: OffsetDateTime) {
    if let Some(written) = pending.written.get(&key_id) {
        if at - *written < LAST_USED_RESOLUTION {
            return;
        }
    }
    let slot = pending.last_used.entry(key_id).or_insert(at);
    if *slot < at {
        *slot = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[tokio::test]
    async fn last_used_is_written_at_most_once_a_minute_and_counters_always() {
        let store = keyward_store_sqlite::SqliteStore::open("sqlite::memory:")
            .await
            .unwrap();
        let buffer = Arc::new(UsageBuffer::default());
        let key = Uuid::from_u128(1);
        let t0 = datetime!(2026-03-01 12:00 UTC);
        buffer.record_verification(key, t0, VerifyCode::Valid);
        assert_eq!(buffer.pending(), 2, "a use and a counter");
        buffer.flush(&store).await;
        assert_eq!(buffer.pending(), 0);
        buffer.record_verification(key, t0 + time::Duration::seconds(30), VerifyCode::Valid);
        assert_eq!(
            buffer.pending(),
            1,
            "only the counter: the use is within the minute"
        );
        buffer.flush(&store).await;
        buffer.record(key, t0 + time::Duration::seconds(61));
        assert_eq!(
            buffer.pending(),
            1,
            "a minute later the use is written again"
        );
    }
}
