//! Prometheus metrics, recorded with relaxed atomics only: the hot path takes no lock to count.
//! [`Metrics::render`] writes them in Prometheus' text exposition format (version 0.0.4),
//! which the server's `GET /metrics` answers.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use keyward_domain::VerifyCode;

/// How many stripes a [`Counter`] has: one per runtime worker on up to 16 cores (beyond, threads
/// share stripes, which stays correct and contends less than one shared atomic).
const STRIPES: usize = 16;

/// A counter that many threads add to at once without contending: each thread adds to a stripe
/// of its own, on a cache line of its own, and a read sums the stripes. (One shared atomic that
/// every verification adds to moves its cache line between the cores on every request.)
#[derive(Debug, Default)]
pub struct Counter {
    stripes: [CachePadded<AtomicU64>; STRIPES],
}

impl Counter {
    pub fn add(&self, n: u64) {
        self.stripes[this_threads_stripe()].fetch_add(n, Ordering::Relaxed);
    }

    /// The sum of what every thread added (a relaxed read: it may miss additions in flight).
    pub fn get(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// The calling thread's stripe: threads take the stripes in turn as they first count.
fn this_threads_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

/// Upper bounds of the verify latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
];

#[derive(Debug, Default)]
struct Histogram {
    /// Counts per bucket (not cumulative; summed when rendered), the last for +Inf.
    buckets: [Counter; LATENCY_BUCKETS.len() + 1],
    sum_nanos: Counter,
    count: Counter,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].add(1);
        self.sum_nanos
            .add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.count.add(1);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].get();
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[LATENCY_BUCKETS.len()].get();
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_nanos.get() as f64 / 1e9;
        let labels = labels.trim_end_matches(',');
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {}", self.count.get());
    }
}

/// Where a verification came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyRoute {
    Verify,
    Forward,
}

/// What the metrics report as read at the moment of a scrape, from where it lives.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_entries: usize,
    pub cache_coherent: bool,
    pub storage_down: bool,
    pub usage_pending: usize,
}

#[derive(Debug, Default)]
pub struct Metrics {
    verifications: [[Counter; VerifyCode::ALL.len()]; 2],
    latency: [Histogram; 2],
    flushes: AtomicU64,
    flush_failures: AtomicU64,
    flush_latency: Histogram,
    cluster_leases: AtomicU64,
    /// Webhook attempts by outcome: [succeeded, failed], and deliveries given up on.
    webhook_attempts: [AtomicU64; 2],
    webhook_given_up: AtomicU64,
}

fn code_index(code: VerifyCode) -> usize {
    VerifyCode::ALL.iter().position(|c| *c == code).unwrap_or(0)
}

impl Metrics {
    pub fn verified(&self, route: VerifyRoute, code: VerifyCode, took: Duration) {
        let r = route as usize;
        self.verifications[r][code_index(code)].add(1);
        self.latency[r].observe(took);
    }

    /// One attempt to deliver a webhook event ended: 2xx (`succeeded`) or not; `given_up` when
    /// it was the delivery's last.
    pub fn webhook_attempted(&self, succeeded: bool, given_up: bool) {
        self.webhook_attempts[usize::from(!succeeded)].fetch_add(1, Ordering::Relaxed);
        if given_up {
            self.webhook_given_up.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A lease of a cluster-wide limit's budget was asked of storage.
    pub fn leased(&self) {
        self.cluster_leases.fetch_add(1, Ordering::Relaxed);
    }

    pub fn flushed(&self, ok: bool, took: Duration) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.flush_failures.fetch_add(1, Ordering::Relaxed);
        }
        self.flush_latency.observe(took);
    }

    /// The text exposition of every metric, with `gauges` read where they live
    /// ([`crate::Keyward::metrics_text`] reads them).
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP keyward_verifications_total Verifications answered, by route and outcome code.\n# TYPE keyward_verifications_total counter\n");
        for (r, route) in ["verify", "forward"].iter().enumerate() {
            for code in VerifyCode::ALL {
                let n = self.verifications[r][code_index(code)].get();
                let _ = writeln!(
                    out,
                    "keyward_verifications_total{{route=\"{route}\",code=\"{}\"}} {n}",
                    code.as_str()
                );
            }
        }
        let limited: u64 = (0..2)
            .map(|r| self.verifications[r][code_index(VerifyCode::RateLimited)].get())
            .sum();
        out.push_str("# HELP keyward_rate_limited_total Verifications rejected by a key's rate limit.\n# TYPE keyward_rate_limited_total counter\n");
        let _ = writeln!(out, "keyward_rate_limited_total {limited}");
        out.push_str("# HELP keyward_cluster_rate_limit_leases_total Budgets of cluster-wide rate limits leased from the database by this node.\n# TYPE keyward_cluster_rate_limit_leases_total counter\n");
        let _ = writeln!(
            out,
            "keyward_cluster_rate_limit_leases_total {}",
            self.cluster_leases.load(Ordering::Relaxed)
        );
        out.push_str("# HELP keyward_verify_duration_seconds Time to decide a verification (after the request is read).\n# TYPE keyward_verify_duration_seconds histogram\n");
        for (r, route) in ["verify", "forward"].iter().enumerate() {
            self.latency[r].render(
                &mut out,
                "keyward_verify_duration_seconds",
                &format!("route=\"{route}\","),
            );
        }
        let _ = write!(
            out,
            "# HELP keyward_cache_hits_total Key lookups answered from memory.\n# TYPE keyward_cache_hits_total counter\nkeyward_cache_hits_total {}\n\
             # HELP keyward_cache_misses_total Key lookups that read storage.\n# TYPE keyward_cache_misses_total counter\nkeyward_cache_misses_total {}\n\
             # HELP keyward_cache_entries Keys (and unknown digests) in memory.\n# TYPE keyward_cache_entries gauge\nkeyward_cache_entries {}\n\
             # HELP keyward_cache_coherent 1 while cached entries are trusted (on PostgreSQL: the change feed listens).\n# TYPE keyward_cache_coherent gauge\nkeyward_cache_coherent {}\n\
             # HELP keyward_storage_down 1 while the verify path knows storage to be unreachable.\n# TYPE keyward_storage_down gauge\nkeyward_storage_down {}\n",
            gauges.cache_hits,
            gauges.cache_misses,
            gauges.cache_entries,
            u8::from(gauges.cache_coherent),
            u8::from(gauges.storage_down)
        );
        let _ = write!(
            out,
            "# HELP keyward_usage_pending Buffered usage records waiting to be written.\n# TYPE keyward_usage_pending gauge\nkeyward_usage_pending {}\n\
             # HELP keyward_usage_flushes_total Batches of usage written (or tried).\n# TYPE keyward_usage_flushes_total counter\nkeyward_usage_flushes_total {}\n\
             # HELP keyward_usage_flush_failures_total Batches that failed and were kept for the next try.\n# TYPE keyward_usage_flush_failures_total counter\nkeyward_usage_flush_failures_total {}\n",
            gauges.usage_pending,
            self.flushes.load(Ordering::Relaxed),
            self.flush_failures.load(Ordering::Relaxed)
        );
        out.push_str("# HELP keyward_webhook_attempts_total Attempts to deliver a webhook event, by outcome (a 2xx answer or not).\n# TYPE keyward_webhook_attempts_total counter\n");
        for (i, outcome) in ["succeeded", "failed"].iter().enumerate() {
            let _ = writeln!(
                out,
                "keyward_webhook_attempts_total{{outcome=\"{outcome}\"}} {}",
                self.webhook_attempts[i].load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP keyward_webhook_deliveries_failed_total Deliveries given up on after their last retry.\n# TYPE keyward_webhook_deliveries_failed_total counter\n");
        let _ = writeln!(
            out,
            "keyward_webhook_deliveries_failed_total {}",
            self.webhook_given_up.load(Ordering::Relaxed)
        );
        out.push_str("# HELP keyward_usage_flush_duration_seconds Time to write one batch of usage.\n# TYPE keyward_usage_flush_duration_seconds histogram\n");
        self.flush_latency
            .render(&mut out, "keyward_usage_flush_duration_seconds", "");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_sums_what_every_thread_added() {
        let counter = Counter::default();
        // More threads than stripes: some share one.
        std::thread::scope(|s| {
            for _ in 0..STRIPES + 4 {
                s.spawn(|| (0..1000).for_each(|_| counter.add(2)));
            }
        });
        assert_eq!(counter.get(), 2 * 1000 * (STRIPES as u64 + 4));
    }

    #[test]
    fn the_latency_histogram_renders_what_threads_observed() {
        let metrics = Metrics::default();
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    metrics.verified(
                        VerifyRoute::Forward,
                        VerifyCode::Valid,
                        Duration::from_micros(30),
                    )
                });
            }
        });
        let text = metrics.render(&Gauges::default());
        assert!(text.contains("keyward_verifications_total{route=\"forward\",code=\"VALID\"} 3\n"));
        assert!(text.contains(
            "keyward_verify_duration_seconds_bucket{route=\"forward\",le=\"0.000025\"} 0\n"
        ));
        assert!(text.contains(
            "keyward_verify_duration_seconds_bucket{route=\"forward\",le=\"0.00005\"} 3"
        ));
        assert!(text.contains("keyward_verify_duration_seconds_count{route=\"forward\"} 3\n"));
    }
}
