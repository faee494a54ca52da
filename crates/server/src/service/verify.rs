//! Verification: is this key valid, whose is it, may it do X, is it over its rate limit?
//!
//! A key that fails the shape or checksum check is answered `NOT_FOUND` without a storage
//! lookup. A verifier sees only keys its role covers (others are `NOT_FOUND`), unless keyward
//! runs with `--public-verify`.

use std::sync::Arc;

use keyward_domain::credits::Spend;
use keyward_domain::ratelimit::{Decision, Limit};
use keyward_domain::{verify, ApiKey, KeyDigest, ParsedKey, Principal, User, VerifyCode};
use keyward_store::StoreError;
use uuid::Uuid;

use crate::app::AppState;
use crate::cache::Lookup;
use crate::error::ApiResult;

#[derive(Debug)]
pub struct Verdict {
    pub code: VerifyCode,
    /// Present whenever the key exists (and is visible to the verifier).
    pub key: Option<Arc<ApiKey>>,
    pub ratelimit: Option<(Limit, Decision)>,
    /// Credits left after this verification, for keys that have credits.
    pub remaining: Option<i64>,
}

/// `verifier` is `None` only under `--public-verify`.
pub async fn verify(
    state: &AppState,
    verifier: Option<&Principal>,
    key: &str,
    scopes: &[String],
    cost: i64,
) -> ApiResult<Verdict> {
    let Ok(parsed) = ParsedKey::parse(key) else {
        return Ok(Verdict {
            code: VerifyCode::NotFound,
            key: None,
            ratelimit: None,
            remaining: None,
        });
    };
    let now = state.now();
    let key = key_by_digest(state, parsed.digest())
        .await?
        .filter(|k| verifier.is_none_or(|p| p.sees_key(k.tenant_id, k.owner_id)));
    let mut code = verify::check(key.as_deref(), scopes, now);
    let mut ratelimit = None;
    if let (VerifyCode::Valid, Some(k)) = (code, key.as_ref()) {
        if let Some(limit) = limit_of(k) {
            let decision = state.limiter.check(k.id, limit, now);
            if !decision.allowed {
                code = VerifyCode::RateLimited;
            }
            ratelimit = Some((limit, decision));
        }
    }
    let mut remaining = None;
    if let (VerifyCode::Valid, Some(k)) = (code, key.as_ref()) {
        if k.credits.is_some() {
            // The slow path, for keys with credits only: storage decides, so that no two
            // verifications (on any node) spend the same credit.
            match state.store.spend_credits(k.id, cost, now).await? {
                Some(Spend::Spent(c)) => remaining = Some(c.remaining),
                Some(Spend::Exhausted(c)) => {
                    code = VerifyCode::UsageExceeded;
                    remaining = Some(c.remaining);
                }
                // The credits were removed since the key was cached: unlimited now.
                None => {}
            }
        }
    }
    if let Some(k) = key.as_ref() {
        state.usage.record_verification(k.id, now, code);
    }
    Ok(Verdict {
        code,
        key,
        ratelimit,
        remaining,
    })
}

/// The key with this digest, from the cache when it knows, else from storage (and cached).
pub async fn key_by_digest(
    state: &AppState,
    digest: KeyDigest,
) -> Result<Option<Arc<ApiKey>>, StoreError> {
    let now = state.now();
    match state.cache.lookup(&digest, now) {
        Lookup::Hit(key) => Ok(key),
        Lookup::Miss(epoch) => {
            let key = state.store.get_key_by_digest(&digest).await?;
            Ok(state.cache.fill(digest, key, epoch, now))
        }
    }
}

/// The user with this id, from the cache while it is fresh, else from storage.
pub async fn user_by_id(state: &AppState, id: Uuid) -> Result<Option<Arc<User>>, StoreError> {
    let now = state.now();
    if let Some(user) = state.cache.user(id, now) {
        return Ok(Some(user));
    }
    Ok(state
        .store
        .get_user(id)
        .await?
        .map(|u| state.cache.fill_user(u, now)))
}

fn limit_of(key: &ApiKey) -> Option<Limit> {
    let max = u32::try_from(key.rate_limit_max?).ok()?;
    let window = keyward_domain::duration::parse_window(key.rate_limit_window.as_deref()?).ok()?;
    Some(Limit { max, window })
}
