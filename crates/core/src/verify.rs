//! Verification: is this key valid, whose is it, may it do X, is it over its rate limit?
//!
//! A key that fails the shape or checksum check is answered `NOT_FOUND` without a storage
//! lookup. A verifier sees only keys its role covers (others are `NOT_FOUND`), unless keyward
//! runs with `--public-verify`.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;

use time::OffsetDateTime;

use keyward_domain::permission::Expr;
use keyward_domain::ratelimit::{Decision, Limit, RateLimitScope};
use keyward_domain::{verify, ApiKey, Permission, Principal, Scope, VerifyCode};
use keyward_store::StoreError;

use crate::error::{Error, Result};
use crate::lookup::guarded;
use crate::Keyward;

#[derive(Debug)]
pub struct Verdict {
    pub code: VerifyCode,
    /// Present whenever the key exists (and is visible to the verifier).
    pub key: Option<Arc<ApiKey>>,
    /// The key's own rate limit and what it decided, for keys that have one.
    pub ratelimit: Option<(Limit, Decision)>,
    /// The owner's shared rate limit and what it decided, when it was consulted.
    pub owner_ratelimit: Option<(Limit, Decision)>,
    /// Credits left after this verification, for keys that have credits.
    pub remaining: Option<i64>,
    /// The owner's shared credits left after this verification, when it has them.
    pub owner_remaining: Option<i64>,
    /// Whose limit refused a `RATE_LIMITED` or `USAGE_EXCEEDED` verification.
    pub limited_by: Option<LimitHolder>,
}

/// Whose limit decided: the key's own, or the one its owner's keys share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHolder {
    Key,
    Owner,
}

impl LimitHolder {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Owner => "owner",
        }
    }
}

impl Verdict {
    /// No answer: storage is unreachable and nothing trustworthy is cached.
    pub fn unavailable() -> Self {
        Self::bare(VerifyCode::Unavailable)
    }

    /// `code`, about no key and no limit.
    fn bare(code: VerifyCode) -> Self {
        Self {
            code,
            key: None,
            ratelimit: None,
            owner_ratelimit: None,
            remaining: None,
            owner_remaining: None,
            limited_by: None,
        }
    }

    /// When a `RATE_LIMITED` verification may be retried, in whole seconds (at least 1), from
    /// the limit that refused it.
    pub fn retry_after_secs(&self, now: OffsetDateTime) -> u64 {
        let decided = match self.limited_by {
            Some(LimitHolder::Owner) => self.owner_ratelimit,
            _ => self.ratelimit,
        };
        decided.map_or(1, |(_, d)| d.retry_after_secs(now))
    }
}

/// The most credits one verification may spend.
pub const MAX_COST: i64 = 1_000_000;

/// One verification asked for.
#[derive(Debug, Clone)]
pub struct VerifyRequest<'a> {
    /// The presented key, as sent.
    pub key: &'a str,
    /// What the key's scopes must satisfy: a list (at most 64, each a scope: else
    /// `invalid_field` naming `scopes`) or an expression ([`Permission::Expression`]).
    pub permission: &'a Permission,
    /// Credits spent by a valid verification of a key with credits, 0 to [`MAX_COST`] (else
    /// `invalid_field` naming `cost`).
    pub cost: i64,
    /// The calling client's address, as the caller reports it: a key with an IP allowlist is
    /// `IP_NOT_ALLOWED` without one.
    pub ip: Option<IpAddr>,
}

impl<'a> VerifyRequest<'a> {
    /// `key`, with any scopes, at a cost of 1, from no known address.
    pub fn new(key: &'a str, permission: &'a Permission) -> Self {
        Self {
            key,
            permission,
            cost: 1,
            ip: None,
        }
    }
}

/// A client address as a verify caller sends it (`ip`, or the forward-auth client header):
/// an IPv4 or IPv6 address, as the standard library reads one: nothing around it, no leading
/// zeros, no zone (else `invalid_field` naming `field`).
pub fn client_ip(text: &str, field: &'static str) -> Result<IpAddr> {
    text.parse().map_err(|_| {
        Error::invalid_field(
            field,
            "must be an IPv4 or IPv6 address, such as 203.0.113.7 or 2001:db8::7",
        )
    })
}

/// What a verification requires, as a surface read it: a list made for this request, or a
/// parsed expression shared with the thread's memory of recent ones (no allocation either way).
#[derive(Debug, Clone)]
pub enum Required {
    Owned(Permission),
    Remembered(Arc<Permission>),
}

impl std::ops::Deref for Required {
    type Target = Permission;

    fn deref(&self) -> &Permission {
        match self {
            Self::Owned(p) => p,
            Self::Remembered(p) => p,
        }
    }
}

/// How many expressions each thread remembers parsed.
const RECENT_EXPRESSIONS: usize = 8;

thread_local! {
    /// The expressions last parsed on this thread, newest last: a service sends the same few
    /// with every request, and parsing one costs more than the rest of its check.
    static RECENT: RefCell<Vec<(Box<str>, Arc<Permission>)>> = const { RefCell::new(Vec::new()) };
}

/// A permission expression as a caller wrote it (in `field`): malformed, `invalid_field` naming
/// the field and the position. Parsed once per thread for the last few expressions seen.
pub fn expression(text: &str, field: &'static str) -> Result<Required> {
    let known = RECENT.with_borrow(|recent| {
        recent
            .iter()
            .find(|(seen, _)| **seen == *text)
            .map(|(_, parsed)| Arc::clone(parsed))
    });
    if let Some(parsed) = known {
        return Ok(Required::Remembered(parsed));
    }
    let parsed = Expr::parse(text)
        .map(|e| Arc::new(Permission::Expression(e)))
        .map_err(|e| Error::invalid_field(field, format!("expression {e}")))?;
    RECENT.with_borrow_mut(|recent| {
        if recent.len() >= RECENT_EXPRESSIONS {
            recent.remove(0);
        }
        recent.push((text.into(), Arc::clone(&parsed)));
    });
    Ok(Required::Remembered(parsed))
}

/// Verifies `request.key` for `verifier` (`None` only under `--public-verify`): known, live,
/// enabled, used from an allowed address, permitted by its scopes, within its rate limit and,
/// for a key with credits, able to spend `request.cost` of them.
pub async fn verify(
    state: &Keyward,
    verifier: Option<&Principal>,
    request: &VerifyRequest<'_>,
) -> Result<Verdict> {
    let VerifyRequest {
        key,
        permission,
        cost,
        ip,
    } = *request;
    if let Permission::All(scopes) = permission {
        Scope::check_required(scopes).map_err(|e| Error::invalid_field("scopes", e))?;
    }
    if !(0..=MAX_COST).contains(&cost) {
        return Err(Error::invalid_field(
            "cost",
            "must be between 0 and 1000000",
        ));
    }
    let now = state.now();
    let key = match crate::lookup::key_by_token(state, key, now).await {
        Ok(key) => key,
        Err(StoreError::Unavailable(_)) => return Ok(Verdict::unavailable()),
        Err(e) => return Err(e.into()),
    };
    let key = key.filter(|k| verifier.is_none_or(|p| p.sees_key(k.tenant_id, k.owner_id)));
    let code = verify::check(key.as_deref(), permission, ip, now);
    let mut verdict = Verdict::bare(code);
    if let (VerifyCode::Valid, Some(k)) = (code, key.as_ref()) {
        match check_rate_limits(state, k, now, &mut verdict).await {
            Ok(()) => {}
            // Fail closed: a cluster-wide limit cannot be kept without storage.
            Err(StoreError::Unavailable(_)) => return Ok(Verdict::unavailable()),
            Err(e) => return Err(e.into()),
        }
    }
    if let (VerifyCode::Valid, Some(k)) = (verdict.code, key.as_ref()) {
        if k.credits.is_some() || k.shared.credits {
            // The slow path, for keys with credits (their own or their owner's) only: storage
            // decides, so that no two verifications (on any node) spend the same credit.
            let last_credit = |after: &keyward_domain::credits::Credits| {
                Some(crate::notices::credits_exhausted(k, after, now))
            };
            let spend = guarded(
                state,
                state.store.spend_credits(k.id, cost, now, &last_credit),
            )
            .await;
            match spend {
                // Fail closed: no credit can be spent without storage.
                Err(StoreError::Unavailable(_)) => return Ok(Verdict::unavailable()),
                Err(e) => return Err(e.into()),
                // Credits removed since the key was cached come back as `None`: unlimited now.
                Ok(spent) => {
                    verdict.remaining = spent.key.map(|s| s.after().remaining);
                    verdict.owner_remaining = spent.owner.map(|s| s.after().remaining);
                    let holder = if spent.key.is_some_and(|s| s.is_exhausted()) {
                        Some(LimitHolder::Key)
                    } else if spent.owner.is_some_and(|s| s.is_exhausted()) {
                        Some(LimitHolder::Owner)
                    } else {
                        None
                    };
                    if holder.is_some() {
                        verdict.code = VerifyCode::UsageExceeded;
                        verdict.limited_by = holder;
                    }
                }
            }
        }
    }
    if let Some(k) = key.as_ref() {
        state.usage.record_verification(k.id, now, verdict.code);
    }
    verdict.key = key;
    Ok(verdict)
}

/// The key's own rate limit, then its owner's shared one: a request counts against both or
/// neither (a request the owner's limit refuses is given back to the key's).
///
/// A key's cluster-wide limit spends this node's leased budget, asking storage for more only
/// when it is empty (its error is returned).
async fn check_rate_limits(
    state: &Keyward,
    k: &ApiKey,
    now: OffsetDateTime,
    verdict: &mut Verdict,
) -> Result<(), StoreError> {
    let own = match k.rate_limit.as_ref() {
        None => None,
        Some(r) if r.scope() == RateLimitScope::Cluster => {
            let limit = r.limit();
            let lease = |start, want| {
                state.metrics.leased();
                guarded(
                    state,
                    state.store.lease_rate_budget(k.id, start, limit.max, want),
                )
            };
            let decision = state
                .cluster_budgets
                .check(k.id, limit, k.created_at, now, lease)
                .await?;
            Some((limit, decision))
        }
        Some(r) => Some((r.limit(), state.limiter.check(k.id, r.limit(), now))),
    };
    verdict.ratelimit = own;
    if own.is_some_and(|(_, d)| !d.allowed) {
        verdict.code = VerifyCode::RateLimited;
        verdict.limited_by = Some(LimitHolder::Key);
        return Ok(());
    }
    let Some(limit) = k.shared.rate_limit.as_ref().map(|r| r.limit()) else {
        return Ok(());
    };
    let decision = state.owner_limiter.check(k.owner_id, limit, now);
    verdict.owner_ratelimit = Some((limit, decision));
    if !decision.allowed {
        if let (Some((own_limit, own_decision)), Some(r)) = (own, k.rate_limit.as_ref()) {
            // The request did not count against the key's own limit: say what is left of it.
            let left = match r.scope() {
                RateLimitScope::Node => state.limiter.give_back(k.id, own_limit, now),
                RateLimitScope::Cluster => {
                    state.cluster_budgets.give_back(k.id);
                    Decision {
                        allowed: false,
                        remaining: (own_decision.remaining + 1).min(own_limit.max),
                        ..own_decision
                    }
                }
            };
            verdict.ratelimit = Some((own_limit, left));
        }
        verdict.code = VerifyCode::RateLimited;
        verdict.limited_by = Some(LimitHolder::Owner);
    }
    Ok(())
}
