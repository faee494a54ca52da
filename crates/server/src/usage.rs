//! Buffered key usage: verify and key authentication note `last_used_at` in memory, and a
//! background task writes the batch every [`FLUSH_EVERY`] and at shutdown, so no request waits
//! on a write. `last_used_at` therefore lags by at most `FLUSH_EVERY`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyward_store::{KeyUse, Store};
use time::OffsetDateTime;
use uuid::Uuid;

pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct UsageBuffer {
    pending: Mutex<HashMap<Uuid, OffsetDateTime>>,
}

impl UsageBuffer {
    pub fn record(&self, key_id: Uuid, at: OffsetDateTime) {
        let mut pending = self.pending.lock().expect("usage lock");
        let slot = pending.entry(key_id).or_insert(at);
        if *slot < at {
            *slot = at;
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.lock().expect("usage lock").len()
    }

    /// Writes what is buffered. On failure the batch is put back to be tried again.
    pub async fn flush(&self, store: &dyn Store) {
        let batch: Vec<KeyUse> = {
            let mut pending = self.pending.lock().expect("usage lock");
            pending
                .drain()
                .map(|(key_id, at)| KeyUse { key_id, at })
                .collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Err(e) = store.record_key_uses(&batch).await {
            tracing::warn!(error = %e, keys = batch.len(), "could not write key usage; will retry");
            for u in batch {
                self.record(u.key_id, u.at);
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
