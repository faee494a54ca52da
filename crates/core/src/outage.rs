//! Whether storage is reachable, as the verify path sees it: after a read fails with
//! `Unavailable`, verify stops asking storage (answering from the cache's fallback or failing
//! closed at once, instead of each request waiting out a connect timeout) until a background probe
//! finds the database again.
//!
//! It never decides anything about keys; it only saves the hot path from waiting on a database
//! that is known to be gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keyward_store::Store;

/// How often the probe asks a missing database whether it is back.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// How long the probe waits for one answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Outage {
    down: AtomicBool,
}

impl Outage {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Storage did not answer: mark it down and, if nobody is probing yet, probe until it is back.
    pub fn report(self: &Arc<Self>, store: &Arc<dyn Store>) {
        if self.down.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::warn!(
            "storage unreachable: verify answers from the cache within its TTL, else UNAVAILABLE"
        );
        let outage = Arc::clone(self);
        let store = Arc::clone(store);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let ping = tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await;
                if matches!(ping, Ok(Ok(()))) {
                    outage.down.store(false, Ordering::SeqCst);
                    tracing::info!("storage reachable again");
                    return;
                }
            }
        });
    }
}
