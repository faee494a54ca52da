//! Limits shared by all the keys of one owner: a rate limit and/or credits set on a user, which
//! hold for its keys together, besides each key's own (so that a second key does not double a
//! quota). Admins set them on anyone, tenant admins on the members of their tenant (not on
//! themselves or their peers); every user reads its own. Another's user is a 404, as elsewhere.

use keyward_domain::credits::Refill;
use keyward_domain::scope::KeywardRight;
use keyward_domain::{AuditAction, OwnerLimits, Role};
use keyward_store::StoreError;
use serde_json::json;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::keys::{credits_of, rate_limit_of};
use crate::Keyward;

/// The limits to set, with the same fields and rules as a key's: the rate limit's two fields
/// together or neither; credits with an optional refill. All empty removes the limits.
#[derive(Debug, Clone, Default)]
pub struct LimitsInput {
    pub rate_limit_max: Option<i64>,
    pub rate_limit_window: Option<String>,
    pub remaining: Option<i64>,
    pub refill: Option<Refill>,
}

/// The limits shared by user `id`'s keys (`None`: none set).
pub async fn get(state: &Keyward, caller: &Caller, id: Uuid) -> Result<Option<OwnerLimits>> {
    caller.principal.require(KeywardRight::Read)?;
    let user = crate::users::visible(state, caller, id).await?;
    Ok(state.store.get_owner_limits(user.id).await?)
}

/// Replaces the limits shared by user `id`'s keys (all fields empty: removes them). Every node
/// applies them to the owner's keys within the cache's coherence (at once on this one).
pub async fn set(
    state: &Keyward,
    caller: &Caller,
    id: Uuid,
    input: LimitsInput,
) -> Result<Option<OwnerLimits>> {
    let p = &caller.principal;
    p.require(KeywardRight::Write)?;
    let user = crate::users::visible(state, caller, id).await?;
    match p.role {
        Role::Admin => {}
        // A limit a tenant admin could lift for itself, or for its peers, would limit nothing.
        Role::TenantAdmin if user.role == Role::Member => {}
        Role::TenantAdmin => {
            return Err(Error::Forbidden(
                "a tenant admin sets the limits of members only; an admin sets a tenant admin's"
                    .into(),
            ))
        }
        Role::Member => {
            return Err(Error::Forbidden(
                "setting a user's limits needs the admin or tenant_admin role".into(),
            ))
        }
    }
    let now = keyward_domain::clock::truncate_millis(state.now());
    let rate_limit = rate_limit_of(input.rate_limit_max, input.rate_limit_window.as_deref())?;
    let credits = credits_of(input.remaining, input.refill, now)?;
    let limits = (rate_limit.is_some() || credits.is_some()).then_some(OwnerLimits {
        user_id: user.id,
        rate_limit,
        credits,
        updated_at: now,
    });
    let audit = caller
        .actor()
        .entry(now, AuditAction::UserSetLimits, user.id)
        .tenant(user.tenant_id)
        .subject(user.id)
        .changes(json!({
            "rate_limit_max": limits.as_ref().and_then(|l| l.rate_limit.as_ref()).map(|r| r.max()),
            "rate_limit_window": limits.as_ref().and_then(|l| l.rate_limit.as_ref()).map(|r| r.window().to_owned()),
            "remaining": limits.as_ref().and_then(|l| l.credits).map(|c| c.remaining),
            "refill": limits.as_ref().and_then(|l| l.credits).and_then(|c| c.refill).map(|r| r.interval.as_str()),
        }));
    let digests = state
        .store
        .set_owner_limits(user.id, limits.as_ref(), &audit)
        .await;
    let digests = match digests {
        Ok(digests) => digests,
        Err(StoreError::NotFound) => return Err(Error::NotFound("user")),
        Err(e) => {
            // The outcome is unknown: forget everything cached rather than guess which keys.
            state.cache.clear();
            return Err(e.into());
        }
    };
    // Before the answer: verify on this node applies the limits from the next request.
    for digest in &digests {
        state.cache.invalidate(digest);
    }
    Ok(limits)
}
