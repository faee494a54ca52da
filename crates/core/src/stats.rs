//! What the caller's keys look like and how they are used: counts by state, verifications by
//! outcome, the most used keys. Usage comes from the per-key, per-day counters the verify path
//! keeps (see `usage`), so it lags by at most one flush.

use std::collections::BTreeMap;

use keyward_domain::scope::KeywardRight;
use keyward_store::{usage_day, KeyCounts};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::Result;
use crate::keys::Reach;
use crate::Keyward;

/// Keys not used for this long count as dormant in the stats.
pub const DORMANT_DAYS: i64 = 90;
/// How many of the most used keys the stats name.
pub const TOP_KEYS: u32 = 10;

#[derive(Debug)]
pub struct Stats {
    pub as_of: OffsetDateTime,
    pub keys: KeyCounts,
    /// Verifications by outcome code on the current and the previous UTC day (counters are kept
    /// per day, so this covers at least the last 24 hours).
    pub last_24h: BTreeMap<&'static str, u64>,
    /// Verifications by outcome code on the current UTC day and the 29 before it.
    pub last_30d: BTreeMap<&'static str, u64>,
    /// The most verified keys over the last 30 days, most first.
    pub top_keys: Vec<TopKey>,
}

#[derive(Debug)]
pub struct TopKey {
    pub id: Uuid,
    pub name: Option<String>,
    pub start: String,
    pub verifications: u64,
}

pub async fn stats(state: &Keyward, caller: &Caller, reach: Reach) -> Result<Stats> {
    caller.principal.require(KeywardRight::Read)?;
    let now = state.now();
    let of = reach.keys_of(caller);
    let today = usage_day(now);
    let keys = state
        .store
        .count_keys(of, now, now - Duration::days(DORMANT_DAYS))
        .await?;
    let by_code = |rows: Vec<(keyward_domain::VerifyCode, u64)>| {
        rows.into_iter()
            .map(|(code, n)| (code.as_str(), n))
            .collect::<BTreeMap<_, _>>()
    };
    let last_24h = by_code(state.store.usage_by_code(of, today - 1).await?);
    let last_30d = by_code(state.store.usage_by_code(of, today - 29).await?);
    let mut top_keys = Vec::new();
    for (id, verifications) in state.store.top_keys(of, today - 29, TOP_KEYS).await? {
        // A key that vanished between the two reads is simply left out.
        if let Some(key) = state.store.get_key(id).await? {
            top_keys.push(TopKey {
                id,
                name: key.name,
                start: key.start,
                verifications,
            });
        }
    }
    Ok(Stats {
        as_of: now,
        keys,
        last_24h,
        last_30d,
        top_keys,
    })
}

/// Verifications per UTC day over the last `days` days (today included), each day's counts by
/// outcome code; days without any are present with none.
#[derive(Debug)]
pub struct KeyUsage {
    /// Oldest first; `(day, counts by code)`.
    pub days: Vec<(time::Date, BTreeMap<keyward_domain::VerifyCode, u64>)>,
}

/// The usage of a key the caller may see ([`crate::keys::get`]'s rules: 404 otherwise), over the
/// last `days` days (1 to 366).
pub async fn key_usage(
    state: &Keyward,
    caller: &Caller,
    reach: Reach,
    id: Uuid,
    days: i64,
) -> Result<(keyward_domain::ApiKey, KeyUsage)> {
    if !(1..=366).contains(&days) {
        return Err(crate::Error::invalid_field(
            "days",
            "must be between 1 and 366",
        ));
    }
    let key = crate::keys::get(state, caller, reach, id).await?;
    let today = usage_day(state.now());
    let first = today - (days - 1);
    let counts = state.store.usage_of_keys(&[key.id], first).await?;
    let rows = counts.into_iter().map(|c| (c.day, c.code, c.count));
    Ok((key, per_day(first, today, rows)))
}

/// The verifications of every key within the caller's reach per UTC day over the last `days`
/// days (1 to 366), each day's counts by outcome code.
pub async fn daily(state: &Keyward, caller: &Caller, reach: Reach, days: i64) -> Result<KeyUsage> {
    caller.principal.require(KeywardRight::Read)?;
    if !(1..=366).contains(&days) {
        return Err(crate::Error::invalid_field(
            "days",
            "must be between 1 and 366",
        ));
    }
    let today = usage_day(state.now());
    let first = today - (days - 1);
    let rows = state
        .store
        .usage_by_day(reach.keys_of(caller), first)
        .await?;
    Ok(per_day(first, today, rows.into_iter()))
}

/// Every day from `first` to `today` (days since the epoch), with the counts `rows` give it.
fn per_day(
    first: i64,
    today: i64,
    rows: impl Iterator<Item = (i64, keyward_domain::VerifyCode, u64)>,
) -> KeyUsage {
    let mut by_day: BTreeMap<i64, BTreeMap<keyward_domain::VerifyCode, u64>> =
        (first..=today).map(|d| (d, BTreeMap::new())).collect();
    for (day, code, n) in rows {
        if let Some(day) = by_day.get_mut(&day) {
            *day.entry(code).or_default() += n;
        }
    }
    let days = by_day
        .into_iter()
        .map(|(day, codes)| {
            let date = (OffsetDateTime::UNIX_EPOCH + Duration::days(day)).date();
            (date, codes)
        })
        .collect();
    KeyUsage { days }
}

/// Verifications per UTC day of each of `keys` over the last `days` days (oldest first), for
/// sparklines beside a listing. Only for keys the caller was shown (a listing's page).
pub async fn daily_totals(
    state: &Keyward,
    keys: &[keyward_domain::ApiKey],
    days: i64,
) -> Result<std::collections::HashMap<Uuid, Vec<u64>>> {
    let today = usage_day(state.now());
    let first = today - (days - 1);
    let ids: Vec<Uuid> = keys.iter().map(|k| k.id).collect();
    let mut totals: std::collections::HashMap<Uuid, Vec<u64>> = ids
        .iter()
        .map(|id| (*id, vec![0; usize::try_from(days).unwrap_or(0)]))
        .collect();
    for chunk in ids.chunks(crate::page::MAX_PAGE as usize) {
        for c in state.store.usage_of_keys(chunk, first).await? {
            let slot = usize::try_from(c.day - first).ok();
            if let (Some(row), Some(slot)) = (totals.get_mut(&c.key_id), slot) {
                if let Some(n) = row.get_mut(slot) {
                    *n += c.count;
                }
            }
        }
    }
    Ok(totals)
}
