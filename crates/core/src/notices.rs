//! Events nobody asked for at the moment they happen: a key nearing or reaching its expiry, a
//! key spending its last credit (written by the spend itself, see [`credits_exhausted`]). Each is sent once per key (and threshold, or credit period),
//! across restarts and nodes: the store records a notice with the event, in one transaction,
//! and a notice recorded before stops the event.

use keyward_domain::credits::Credits;
use keyward_domain::{Actor, ActorType, ApiKey, Event, EventType, TenantPolicy};
use keyward_store::{ExpiringKey, Notice};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::error::Result;
use crate::keys::rfc3339;
use crate::Keyward;

/// Keys examined per page of a scan.
const PAGE: u32 = 500;
/// A key's expiry is announced (`key.expired`) if the scan sees it within this long of it:
/// keys that expired long before keyward first ran are not announced.
const EXPIRED_WINDOW: Duration = Duration::days(1);

/// keyward itself, as the actor of the events it sends on its own.
fn scheduler() -> Actor {
    Actor {
        id: "scheduler".into(),
        kind: ActorType::System,
        user_id: None,
        source_ip: None,
        request_id: None,
    }
}

/// A threshold (seconds) as the short form people write: `7d`, `12h`, `30m`, `45s`.
pub fn threshold_text(seconds: i64) -> String {
    keyward_domain::duration::short_text(seconds)
}

/// The reminder a key `left` before its expiry is due, under `policy`: the tightest threshold
/// it is within. Thresholds it has passed without a reminder (a key made two days before its
/// expiry, under 7 d and 1 d) are not sent late; the next one is.
pub fn due_threshold(policy: &TenantPolicy, left: Duration) -> Option<i64> {
    policy
        .expiry_reminders
        .iter()
        .copied()
        .filter(|&t| left <= Duration::seconds(t))
        .min()
}

/// Sends the expiry reminders and expiry notices due at now; returns how many were sent.
/// Run on every node every minute or so; each notice goes out once whichever node runs it.
pub async fn expiry(state: &Keyward) -> Result<usize> {
    let now = state.now();
    let mut policies: std::collections::HashMap<Uuid, TenantPolicy> = Default::default();
    let mut horizon = TenantPolicy::default()
        .expiry_reminders
        .iter()
        .copied()
        .max()
        .unwrap_or(0);
    for t in crate::tenants::all(state).await? {
        horizon = horizon.max(t.policy.expiry_reminders.iter().copied().max().unwrap_or(0));
        policies.insert(t.id, t.policy);
    }
    let policy_of = |key: &ApiKey| {
        key.tenant_id
            .and_then(|t| policies.get(&t).cloned())
            .unwrap_or_default()
    };
    let mut sent = 0;
    // Reminders: keys expiring within the longest threshold of any tenant.
    sent += scan(state, now, now + Duration::seconds(horizon), |k| {
        let left = k.key.expires_at? - now;
        let t = due_threshold(&policy_of(&k.key), left)?;
        let notice = format!("expiring:{t}");
        (!k.notices.contains(&notice)).then(|| {
            let data = json!({
                "expires_at": k.key.expires_at.map(rfc3339),
                "threshold": threshold_text(t),
            });
            (notice, EventType::KeyExpiring, data)
        })
    })
    .await?;
    // Expiry: keys that expired within the window.
    sent += scan(state, now - EXPIRED_WINDOW, now, |k| {
        (!k.notices.iter().any(|n| n == "expired")).then(|| {
            let data = json!({"expires_at": k.key.expires_at.map(rfc3339)});
            ("expired".to_owned(), EventType::KeyExpired, data)
        })
    })
    .await?;
    Ok(sent)
}

/// Sends, for each key expiring in `(from, to]` that `decide` picks, its notice and event.
async fn scan(
    state: &Keyward,
    from: OffsetDateTime,
    to: OffsetDateTime,
    decide: impl Fn(&ExpiringKey) -> Option<(String, EventType, serde_json::Value)>,
) -> Result<usize> {
    let actor = scheduler();
    let mut sent = 0;
    let mut start = from;
    loop {
        let page = state.store.keys_expiring(start, to, PAGE).await?;
        for k in &page {
            if let Some((notice, kind, data)) = decide(k) {
                let now = state.now();
                let event = Event::about_key(kind, &k.key, &actor, now, data);
                if state
                    .store
                    .notify_once(k.key.id, &notice, now, None, &[event])
                    .await?
                {
                    sent += 1;
                }
            }
        }
        // Pages move by expiry time; keys sharing the last one's expiry are seen on the next
        // pass (a minute later) when more than a page of them share it.
        match page.last().and_then(|k| k.key.expires_at) {
            Some(last) if page.len() == PAGE as usize && last > start => start = last,
            _ => return Ok(sent),
        }
    }
}

/// The notice a verification that spends `key`'s last credit records with the spend (in its
/// transaction): `key.credits_exhausted`, once per credit period (a refill or a new balance,
/// which moves the credits' `set_at`, starts another).
pub fn credits_exhausted(key: &ApiKey, after: &Credits, now: OffsetDateTime) -> Notice {
    let verify = Actor {
        id: "verify".into(),
        ..scheduler()
    };
    Notice {
        name: format!(
            "credits_exhausted:{}",
            keyward_domain::clock::to_millis(after.set_at)
        ),
        events: vec![Event::about_key(
            EventType::KeyCreditsExhausted,
            key,
            &verify,
            now,
            json!({"remaining": 0, "refill": after.refill.map(|r| r.interval.as_str())}),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tightest_threshold_reached_is_due() {
        let p = TenantPolicy::default();
        assert_eq!(due_threshold(&p, Duration::days(8)), None);
        assert_eq!(due_threshold(&p, Duration::days(7)), Some(7 * 86_400));
        assert_eq!(due_threshold(&p, Duration::days(2)), Some(7 * 86_400));
        assert_eq!(due_threshold(&p, Duration::hours(23)), Some(86_400));
        let none = TenantPolicy {
            expiry_reminders: vec![],
            ..TenantPolicy::default()
        };
        assert_eq!(due_threshold(&none, Duration::hours(1)), None);
        assert_eq!(threshold_text(7 * 86_400), "7d");
        assert_eq!(threshold_text(5400), "90m");
        assert_eq!(threshold_text(45), "45s");
    }
}
