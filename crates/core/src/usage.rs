//! Buffered key usage: verify and key authentication note `last_used_at`, and verify counts
//! each answer per key, per UTC day and per outcome code, all in memory. A background task
//! writes the batch every [`FLUSH_EVERY`] and at shutdown, so no request waits on a write.
//! The counters therefore lag by at most `FLUSH_EVERY`; `last_used_at` by at most
//! `FLUSH_EVERY` plus [`LAST_USED_RESOLUTION`] (plus, for a remembered verifier's key, the
//! second within which a thread notes it once: [`crate::auth::VERIFIER_NOTE_EVERY`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keyward_domain::{Clock, VerifyCode};
use smallvec::SmallVec;

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

/// One key's usage since the last flush. Entries outlive flushes while their key is in use, so
/// that a verify finds its key's entry with one probe and allocates nothing.
#[derive(Debug, Default)]
struct KeyUsage {
    /// Verifications by UTC day and outcome code: one item, but at midnight or on a refusal,
    /// held inline so that counting touches no memory but the map's own slot (a random key's
    /// heap block is a cache miss on every verify).
    counts: SmallVec<[(i64, VerifyCode, u64); 1]>,
    /// The newest use not yet written.
    last_used: Option<OffsetDateTime>,
    /// The `last_used_at` last sent to storage, while younger than the resolution.
    written: Option<OffsetDateTime>,
}

#[derive(Debug, Default)]
struct Pending {
    keys: FastMap<Uuid, KeyUsage>,
    /// Rows waiting: uses plus counters.
    rows: usize,
}

/// Keys are spread over this many independently locked shards, so that concurrent verifies of
/// different keys rarely wait for each other, and a flush holds each lock only briefly.
const SHARDS: usize = 32;

#[derive(Debug, Default)]
pub struct UsageBuffer {
    shards: [Mutex<Pending>; SHARDS],
    /// A batch whose write failed. It goes again first, unchanged and under its id: its write
    /// may have landed with only the answer lost, and storage then knows the id and skips it.
    unsent: Mutex<Option<Arc<UsageBatch>>>,
    /// One flush at a time (the periodic one and shutdown's), so that batches go in order.
    flushing: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

impl UsageBuffer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            ..Self::default()
        }
    }

    fn shard(&self, key_id: Uuid) -> std::sync::MutexGuard<'_, Pending> {
        let i = (key_id.as_u128() % SHARDS as u128) as usize;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that the key was used at `at` (moves `last_used_at` forward only).
    pub fn record(&self, key_id: Uuid, at: OffsetDateTime) {
        let mut pending = self.shard(key_id);
        let pending = &mut *pending;
        let usage = pending.keys.entry(key_id).or_default();
        pending.rows += note_use(usage, at);
    }

    /// Counts one verification of the key answered with `code`; a `VALID` one is also a use.
    pub fn record_verification(&self, key_id: Uuid, at: OffsetDateTime, code: VerifyCode) {
        let mut pending = self.shard(key_id);
        let pending = &mut *pending;
        let usage = pending.keys.entry(key_id).or_default();
        let day = usage_day(at);
        match usage
            .counts
            .iter_mut()
            .find(|(d, c, _)| *d == day && *c == code)
        {
            Some((_, _, count)) => *count += 1,
            None => {
                usage.counts.push((day, code, 1));
                pending.rows += 1;
            }
        }
        if code == VerifyCode::Valid {
            pending.rows += note_use(usage, at);
        }
    }

    /// How many rows (uses and counters) wait to be written.
    pub fn pending(&self) -> usize {
        let unsent = self
            .unsent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |b| b.len());
        let buffered: usize = self
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).rows)
            .sum();
        unsent + buffered
    }

    /// Empties the buffer into a batch, noting the uses as written. Each shard is locked while
    /// its entries are read and reset (a 32nd of the keys: about a hundred microseconds on a busy node);
    /// the entries of keys not used since the last flush, and not written within the resolution
    /// before `now`, are dropped.
    fn take(&self, now: OffsetDateTime) -> UsageBatch {
        let mut batch = UsageBatch::new(now);
        // Room for every row first: growing the batch would copy it under a shard's lock.
        let rows: usize = self
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).rows)
            .sum();
        batch.counts.reserve(rows);
        batch.last_used.reserve(rows);
        for shard in &self.shards {
            let mut pending = shard.lock().unwrap_or_else(PoisonError::into_inner);
            pending.keys.retain(|key_id, usage| {
                let active = !usage.counts.is_empty() || usage.last_used.is_some();
                batch
                    .counts
                    .extend(usage.counts.drain(..).map(|(day, code, count)| UsageCount {
                        key_id: *key_id,
                        day,
                        code,
                        count,
                    }));
                if let Some(at) = usage.last_used.take() {
                    batch.last_used.push(KeyUse {
                        key_id: *key_id,
                        at,
                    });
                    usage.written = Some(at);
                }
                active
                    || usage
                        .written
                        .is_some_and(|at| now - at < LAST_USED_RESOLUTION)
            });
            // After a burst of keys, give the memory back.
            if pending.keys.len() < pending.keys.capacity() / 4 {
                let keep = pending.keys.len() * 2;
                pending.keys.shrink_to(keep);
            }
            pending.rows = 0;
        }
        // In key order, so that storage reads each index page once per batch, not once per row.
        batch.last_used.sort_unstable_by_key(|u| u.key_id);
        batch
            .counts
            .sort_unstable_by_key(|c| (c.key_id, c.day, c.code.as_str()));
        batch
    }

    /// Writes what is buffered. On failure the batch is kept, to go again (first) next time.
    pub async fn flush(self: &Arc<Self>, store: &dyn Store, now: OffsetDateTime) {
        let _one_at_a_time = self.flushing.lock().await;
        let unsent = self
            .unsent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(batch) = unsent {
            if !self.send(store, batch).await {
                return;
            }
        }
        // Draining a busy node's 100,000 entries takes milliseconds: off the async workers,
        // where every other request on the same worker would wait for it.
        let buffer = Arc::clone(self);
        let batch = match tokio::task::spawn_blocking(move || buffer.take(now)).await {
            Ok(batch) => batch,
            // Only a panic while draining gets here; what was taken is lost, nothing else.
            Err(e) => {
                tracing::error!(error = %e, "could not take the usage batch");
                return;
            }
        };
        if !batch.is_empty() {
            self.send(store, Arc::new(batch)).await;
        }
    }

    /// Writes one batch; on failure keeps it as the unsent one. Whether it was written.
    async fn send(&self, store: &dyn Store, batch: Arc<UsageBatch>) -> bool {
        // A duration measured, not a time of day: the clock of operations is not for this.
        #[allow(clippy::disallowed_methods)]
        let started = std::time::Instant::now();
        let written = store.record_usage(Arc::clone(&batch)).await;
        self.metrics.flushed(written.is_ok(), started.elapsed());
        match written {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, keys = batch.last_used.len(), counters = batch.counts.len(), "could not write key usage; will retry");
                *self.unsent.lock().unwrap_or_else(PoisonError::into_inner) = Some(batch);
                false
            }
        }
    }

    /// Flushes every [`FLUSH_EVERY`] until [`Flusher::stop`].
    pub fn spawn_flusher(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Flusher {
        let buffer = Arc::clone(self);
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // Only the wait is raced: a flush under way is never cut off (its batch would
                // be lost). A stop asked for during a flush wins over the next tick.
                tokio::select! {
                    biased;
                    () = stopped.notified() => return,
                    _ = tick.tick() => buffer.flush(store.as_ref(), clock.now()).await,
                }
            }
        });
        Flusher { stop, task }
    }
}

/// The periodic flush task.
pub struct Flusher {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Flusher {
    /// Returns once a flush under way (if any) has finished and no other will start.
    pub async fn stop(self) {
        self.stop.notify_one();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the usage flusher failed");
        }
    }
}

/// Notes a use at `at` in `usage`, unless one was written within the resolution: how many
/// rows that added (0 or 1).
fn note_use(usage: &mut KeyUsage, at: OffsetDateTime) -> usize {
    if usage
        .written
        .is_some_and(|written| at - written < LAST_USED_RESOLUTION)
    {
        return 0;
    }
    match &mut usage.last_used {
        Some(slot) => {
            if *slot < at {
                *slot = at;
            }
            0
        }
        None => {
            usage.last_used = Some(at);
            1
        }
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
        buffer.flush(&store, t0).await;
        assert_eq!(buffer.pending(), 0);
        buffer.record_verification(key, t0 + time::Duration::seconds(30), VerifyCode::Valid);
        assert_eq!(
            buffer.pending(),
            1,
            "only the counter: the use is within the minute"
        );
        buffer.flush(&store, t0).await;
        buffer.record(key, t0 + time::Duration::seconds(61));
        assert_eq!(
            buffer.pending(),
            1,
            "a minute later the use is written again"
        );
    }

    /// A SQLite file holding key 1 of owner 7; its URL and the key.
    async fn file_with_a_key(dir: &std::path::Path) -> (String, Uuid) {
        let url = format!("sqlite://{}", dir.join("usage.db").display());
        let store = keyward_store_sqlite::SqliteStore::open(&url).await.unwrap();
        let k = keyward_store::conformance::created_key(&store, Uuid::from_u128(7)).await;
        store.close().await;
        (url, k.id)
    }

    async fn valid_count(store: &dyn Store) -> Vec<(VerifyCode, u64)> {
        let of_owner = keyward_store::KeysOf {
            tenant_id: None,
            owner_id: Some(Uuid::from_u128(7)),
        };
        store.usage_by_code(of_owner, 0).await.unwrap()
    }

    /// A write that landed but whose answer was lost: the batch goes again unchanged, and
    /// storage counts it once; what was buffered meanwhile follows in a batch of its own.
    #[tokio::test]
    async fn a_failed_batch_goes_again_unchanged_and_counts_once() {
        use keyward_store_sqlite::SqliteStore;

        let dir = tempfile::tempdir().unwrap();
        let t0 = datetime!(2026-03-01 12:00 UTC);
        let (url, key) = file_with_a_key(dir.path()).await;
        let store = SqliteStore::open(&url).await.unwrap();
        store.close().await;

        let buffer = Arc::new(UsageBuffer::default());
        for _ in 0..3 {
            buffer.record_verification(key, t0, VerifyCode::Valid);
        }
        buffer.flush(&store, t0).await;
        assert_eq!(buffer.pending(), 2, "kept: the store is closed");
        let unsent = buffer.unsent.lock().unwrap().clone().expect("kept whole");

        let store = SqliteStore::open(&url).await.unwrap();
        // The first write did land; only its answer was lost.
        store.record_usage(Arc::clone(&unsent)).await.unwrap();
        buffer.record_verification(key, t0, VerifyCode::Valid);
        buffer.flush(&store, t0).await;
        assert_eq!(buffer.pending(), 0);
        assert_eq!(
            valid_count(&store).await,
            [(VerifyCode::Valid, 4)],
            "3 once, then 1"
        );
        store.close().await;
    }

    /// Shutdown stops the periodic flusher without cutting off the flush under way: here one
    /// that waits for another connection's write lock. (Aborting it lost that batch.)
    #[tokio::test]
    async fn stopping_the_flusher_lets_the_flush_under_way_finish() {
        use keyward_store_sqlite::SqliteStore;
        use sqlx::Connection;

        let dir = tempfile::tempdir().unwrap();
        let t0 = datetime!(2026-03-01 12:00 UTC);
        let (url, key) = file_with_a_key(dir.path()).await;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
        let mut locker = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut locker)
            .await
            .unwrap();

        let buffer = Arc::new(UsageBuffer::default());
        for _ in 0..5 {
            buffer.record_verification(key, t0, VerifyCode::Valid);
        }
        let clock = Arc::new(keyward_domain::clock::ManualClock::new(t0));
        // The first tick is at once: the flush starts and waits for the lock.
        let flusher = buffer.spawn_flusher(Arc::clone(&store), clock);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stopping = tokio::spawn(flusher.stop());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !stopping.is_finished(),
            "stop waits for the flush under way"
        );
        sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
        stopping.await.unwrap();
        assert_eq!(buffer.pending(), 0);
        assert_eq!(valid_count(store.as_ref()).await, [(VerifyCode::Valid, 5)]);
        store.close().await;
    }
}
