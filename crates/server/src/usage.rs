//! Buffered key usage: verify and key authentication note `last_used_at`, and verify counts
//! each answer per key, per UTC day and per outcome code, all in memory. A background task
//! writes the batch every [`FLUSH_EVERY`] and at shutdown, so no request waits on a write.
//! `last_used_at` and the counters therefore lag by at most `FLUSH_EVERY`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyward_domain::VerifyCode;

use crate::metrics::Metrics;
use keyward_store::{usage_day, KeyUse, Store, UsageBatch, UsageCount};
use time::OffsetDateTime;
use uuid::Uuid;

pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Pending {
    last_used: HashMap<Uuid, OffsetDateTime>,
    counts: HashMap<(Uuid, i64, VerifyCode), u64>,
}

#[derive(Debug, Default)]
pub struct UsageBuffer {
    pending: Mutex<Pending>,
    metrics: Arc<Metrics>,
}

impl UsageBuffer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            pending: Mutex::default(),
            metrics,
        }
    }

    /// Notes that the key was used at `at` (moves `last_used_at` forward only).
    pub fn record(&self, key_id: Uuid, at: OffsetDateTime) {
        let mut pending = self.pending.lock().expect("usage lock");
        note_use(&mut pending, key_id, at);
    }

    /// Counts one verification of the key answered with `code`; a `VALID` one is also a use.
    pub fn record_verification(&self, key_id: Uuid, at: OffsetDateTime, code: VerifyCode) {
        let mut pending = self.pending.lock().expect("usage lock");
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
        let pending = self.pending.lock().expect("usage lock");
        pending.last_used.len() + pending.counts.len()
    }

    /// Writes what is buffered. On failure the batch is put back to be tried again.
    pub async fn flush(&self, store: &dyn Store) {
        let batch = {
            let mut pending = self.pending.lock().expect("usage lock");
            let taken = std::mem::take(&mut *pending);
            UsageBatch {
                last_used: taken
                    .last_used
                    .into_iter()
                    .map(|(key_id, at)| KeyUse { key_id, at })
                    .collect(),
                counts: taken
                    .counts
                    .into_iter()
                    .map(|((key_id, day, code), count)| UsageCount {
                        key_id,
                        day,
                        code,
                        count,
                    })
                    .collect(),
            }
        };
        if batch.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let written = store.record_usage(&batch).await;
        self.metrics.flushed(written.is_ok(), started.elapsed());
        if let Err(e) = written {
            tracing::warn!(error = %e, keys = batch.last_used.len(), counters = batch.counts.len(), "could not write key usage; will retry");
            let mut pending = self.pending.lock().expect("usage lock");
            for u in batch.last_used {
                note_use(&mut pending, u.key_id, u.at);
            }
            for c in batch.counts {
                *pending.counts.entry((c.key_id, c.day, c.code)).or_default() += c.count;
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
    let slot = pending.last_used.entry(key_id).or_insert(at);
    if *slot < at {
        *slot = at;
    }
}
