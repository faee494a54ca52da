//! `/api/v1/users/{id}/limits`: the rate limit and credits shared by all of a user's keys.
//! Wire shapes only; the rules live in `keyward_core::owner_limits`.

use axum::extract::State;
use axum::Json;
use keyward_domain::credits::Refill;
use keyward_domain::ratelimit::KeyRateLimit;
use keyward_domain::OwnerLimits;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::keys::RefillInput;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{IdPath, JsonBody, NoQuery, Obj};
use keyward_core::owner_limits::{self, LimitsInput};

/// The limits all of a user's keys share, besides each key's own. All null: none.
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnerLimitsView {
    pub user_id: Uuid,
    pub rate_limit_max: Option<i64>,
    pub rate_limit_window: Option<String>,
    /// Shared credits left as of the response (a due refill applied).
    pub remaining: Option<i64>,
    pub refill: Option<RefillInput>,
    /// When the limits were last set; null when none are.
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

impl OwnerLimitsView {
    pub(crate) fn of(user_id: Uuid, limits: Option<OwnerLimits>, now: OffsetDateTime) -> Self {
        let rate_limit = limits.as_ref().and_then(|l| l.rate_limit.as_ref());
        let credits = limits
            .as_ref()
            .and_then(|l| l.credits)
            .map(|c| c.current(now));
        Self {
            user_id,
            rate_limit_max: rate_limit.map(KeyRateLimit::max),
            rate_limit_window: rate_limit.map(|r| r.window().to_owned()),
            remaining: credits.map(|c| c.remaining),
            refill: credits.and_then(|c| c.refill).map(|r| RefillInput {
                interval: r.interval,
                amount: r.amount,
                day: Some(r.day),
            }),
            updated_at: limits.map(|l| l.updated_at),
        }
    }
}

/// The limits to set: the same fields and rules as a key's. Fields left out are none; all left
/// out removes the limits.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetOwnerLimitsInput {
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_limit_max: Option<i64>,
    /// `<number> <second|minute|hour|day>[s]`; with `rate_limit_max`.
    pub rate_limit_window: Option<String>,
    /// Credits shared by all the user's keys: each VALID verification of any of them spends its
    /// `cost` here too (and from the key's own credits, if it has them: both or neither).
    pub remaining: Option<i64>,
    #[schema(value_type = Option<RefillInput>)]
    pub refill: Option<Obj<RefillInput>>,
}

/// The limits shared by a user's keys. Everyone reads their own; tenant admins their tenant's
/// users'; admins anyone's.
#[utoipa::path(get, path = "/api/v1/users/{id}/limits", tag = "Users", operation_id = "getUserLimits",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The shared limits (all null: none)", body = OwnerLimitsView),
        (status = 400, description = "id is not a UUID", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:read", body = super::Error),
        (status = 404, description = "No such user the caller may see", body = super::Error),
    ))]
pub async fn get(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Json<OwnerLimitsView>> {
    let limits = owner_limits::get(&state, &caller, id).await?;
    Ok(Json(OwnerLimitsView::of(id, limits, state.now())))
}

/// The limits shared by the caller's own keys.
#[utoipa::path(get, path = "/api/v1/users/me/limits", tag = "Users", operation_id = "getMyLimits",
    responses(
        (status = 200, description = "The shared limits (all null: none)", body = OwnerLimitsView),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:read", body = super::Error),
    ))]
pub async fn mine(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
) -> ApiResult<Json<OwnerLimitsView>> {
    let id = caller.principal.user_id;
    let limits = owner_limits::get(&state, &caller, id).await?;
    Ok(Json(OwnerLimitsView::of(id, limits, state.now())))
}

/// Set the limits shared by all of a user's keys: a rate limit and/or credits that hold for its
/// keys together, besides each key's own, on every node within the usual second. Admins (on
/// anyone) and tenant admins (on their tenant's members).
#[utoipa::path(put, path = "/api/v1/users/{id}/limits", tag = "Users", operation_id = "setUserLimits",
    params(("id" = Uuid, Path)), request_body = SetOwnerLimitsInput,
    responses(
        (status = 200, description = "The shared limits now (all null: removed)", body = OwnerLimitsView),
        (status = 400, description = "Validation error", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "Not an admin, or a tenant admin setting a non-member's limits, or the credential lacks keyward:write", body = super::Error),
        (status = 404, description = "No such user the caller may see", body = super::Error),
    ))]
pub async fn set(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<SetOwnerLimitsInput>,
) -> ApiResult<Json<OwnerLimitsView>> {
    let input = LimitsInput {
        rate_limit_max: input.rate_limit_max,
        rate_limit_window: input.rate_limit_window,
        remaining: input.remaining,
        refill: input.refill.map(|r| Refill::from(r.0)),
    };
    let limits = owner_limits::set(&state, &caller, id, input).await?;
    Ok(Json(OwnerLimitsView::of(id, limits, state.now())))
}
