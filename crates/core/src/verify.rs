//! Verification: is this key valid, whose is it, may it do X, is it over its rate limit?
//!
//! A key that fails the shape or checksum check is answered `NOT_FOUND` without a storage
//! lookup. A verifier sees only keys its role covers (others are `NOT_FOUND`), unless keyward
//! runs with `--public-verify`.

use std::net::IpAddr;
use std::sync::Arc;

use keyward_domain::credits::Spend;
use keyward_domain::permission::Expr;
use keyward_domain::ratelimit::{Decision, Limit};
use keyward_domain::{verify, ApiKey, ParsedKey, Permission, Principal, Scope, VerifyCode};
use keyward_store::StoreError;

use crate::error::{Error, Result};
use crate::lookup::{guarded, key_by_digest};
use crate::Keyward;

#[derive(Debug)]
pub struct Verdict {
    pub code: VerifyCode,
    /// Present whenever the key exists (and is visible to the verifier).
    pub key: Option<Arc<ApiKey>>,
    pub ratelimit: Option<(Limit, Decision)>,
    /// Credits left after this verification, for keys that have credits.
    pub remaining: Option<i64>,
}

impl Verdict {
    /// No answer: storage is unreachable and nothing trustworthy is cached.
    pub fn unavailable() -> Self {
        Self {
            code: VerifyCode::Unavailable,
            key: None,
            ratelimit: None,
            remaining: None,
        }
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
/// an IPv4 or IPv6 address (else `invalid_field` naming `field`).
pub fn client_ip(text: &str, field: &'static str) -> Result<IpAddr> {
    text.trim().parse().map_err(|_| {
        Error::invalid_field(
            field,
            "must be an IPv4 or IPv6 address, such as 203.0.113.7 or 2001:db8::7",
        )
    })
}

/// A permission expression as a caller wrote it (in `field`): malformed, `invalid_field` naming
/// the field and the position.
pub fn expression(text: &str, field: &'static str) -> Result<Permission> {
    Expr::parse(text)
        .map(Permission::Expression)
        .map_err(|e| Error::invalid_field(field, format!("expression {e}")))
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
    let Ok(parsed) = ParsedKey::parse(key) else {
        return Ok(Verdict {
            code: VerifyCode::NotFound,
            key: None,
            ratelimit: None,
            remaining: None,
        });
    };
    let now = state.now();
    let key = match key_by_digest(state, parsed.digest(), now).await {
        Ok(key) => key,
        Err(StoreError::Unavailable(_)) => return Ok(Verdict::unavailable()),
        Err(e) => return Err(e.into()),
    };
    let key = key.filter(|k| verifier.is_none_or(|p| p.sees_key(k.tenant_id, k.owner_id)));
    let mut code = verify::check(key.as_deref(), permission, ip, now);
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
                Ok(Some(Spend::Spent(c))) => remaining = Some(c.remaining),
                Ok(Some(Spend::Exhausted(c))) => {
                    code = VerifyCode::UsageExceeded;
                    remaining = Some(c.remaining);
                }
                // The credits were removed since the key was cached: unlimited now.
                Ok(None) => {}
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

fn limit_of(key: &ApiKey) -> Option<Limit> {
    key.rate_limit.as_ref().map(|r| r.limit())
}
