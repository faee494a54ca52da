//! `/api/v1/tenants`: admins only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use keyward_domain::Tenant;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{created, page_response};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{IdPath, JsonBody, NoQuery, Obj, QueryParams};
use keyward_core::page::page_params;
use keyward_core::tenants::{self, PolicyChanges, TenantChanges};
use keyward_domain::Patch;

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    /// Prefix of keys made in this tenant; null means the default `kw`.
    pub key_prefix: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub policy: PolicyView,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id,
            name: t.name,
            slug: t.slug,
            key_prefix: t.key_prefix,
            metadata: t.metadata,
            policy: PolicyView::from(&t.policy),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A tenant's rules for its keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// A key reported leaked by a verified report is revoked at once (default true).
    pub revoke_leaked_keys: bool,
    /// How long before a key's expiry `key.expiring` is sent, longest first (default 7d, 1d).
    pub expiry_reminders: Vec<String>,
    /// The longest lifetime of a key made, rotated or given a new expiry (`90d`); null: none.
    pub max_key_lifetime: Option<String>,
    /// Every key made or given a new expiry must have one.
    pub require_expiry: bool,
    /// The application scopes keys may carry; null: any. keyward's own scopes follow roles.
    pub allowed_scopes: Option<Vec<String>>,
    /// The rate limit of new keys whose request names none; null: none.
    pub default_rate_limit: Option<RateLimitInput>,
    /// Where new keys' rate limits hold when their request does not say: `node` or `cluster`.
    pub rate_limit_scope: &'static str,
}

/// A rate limit: `max` requests per `window` (as a key's `rate_limit_max` and
/// `rate_limit_window`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitInput {
    #[schema(minimum = 1, maximum = 100000)]
    pub max: i64,
    /// `<number> <second|minute|hour|day>[s]`, e.g. `1 minute`.
    pub window: String,
}

impl From<&keyward_domain::TenantPolicy> for PolicyView {
    fn from(p: &keyward_domain::TenantPolicy) -> Self {
        Self {
            revoke_leaked_keys: p.revoke_leaked_keys,
            expiry_reminders: p
                .expiry_reminders
                .iter()
                .map(|&s| keyward_core::notices::threshold_text(s))
                .collect(),
            max_key_lifetime: p.max_key_lifetime.map(keyward_domain::duration::short_text),
            require_expiry: p.require_expiry,
            allowed_scopes: p.allowed_scopes.clone(),
            default_rate_limit: p.default_rate_limit.as_ref().map(|d| RateLimitInput {
                max: d.max,
                window: d.window.clone(),
            }),
            rate_limit_scope: p.rate_limit_scope.as_str(),
        }
    }
}

/// Changes to a tenant's policy; fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    #[schema(nullable)]
    pub revoke_leaked_keys: Option<bool>,
    /// Durations such as `7d`, `12h`, `30m` (at most 5, none listed twice); `[]` sends none.
    #[schema(nullable)]
    pub expiry_reminders: Option<Vec<String>>,
    /// The longest lifetime of a key made, rotated or given a new expiry, e.g. `90d`; null
    /// lifts it. Creating or extending a key beyond it is a 400 `policy_violation`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub max_key_lifetime: Patch<String>,
    /// Every key made or given a new expiry must have one (400 `policy_violation` otherwise).
    #[schema(nullable)]
    pub require_expiry: Option<bool>,
    /// The application scopes keys of the tenant may carry (at most 64, none under
    /// `keyward:`); null: any.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_scopes: Patch<Vec<String>>,
    /// The rate limit new keys get when their request names none; null: none.
    #[serde(default)]
    #[schema(value_type = Option<RateLimitInput>)]
    pub default_rate_limit: Patch<Obj<RateLimitInput>>,
    /// `node` or `cluster`: where new keys' rate limits hold when their request does not say.
    #[schema(value_type = Option<String>, nullable)]
    pub rate_limit_scope: Option<super::keys::RateLimitScopeInput>,
}

impl From<PolicyInput> for PolicyChanges {
    fn from(p: PolicyInput) -> Self {
        Self {
            revoke_leaked_keys: p.revoke_leaked_keys,
            expiry_reminders: p.expiry_reminders,
            max_key_lifetime: p.max_key_lifetime,
            require_expiry: p.require_expiry,
            allowed_scopes: p.allowed_scopes,
            default_rate_limit: p.default_rate_limit.map(|r| (r.0.max, r.0.window)),
            rate_limit_scope: p.rate_limit_scope.map(Into::into),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantInput {
    pub name: String,
    /// `[a-z0-9-]{1,63}`, unique.
    pub slug: String,
    /// `[a-z0-9]{1,16}`.
    pub key_prefix: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    #[schema(nullable)]
    #[schema(value_type = Option<PolicyInput>)]
    pub policy: Option<Obj<PolicyInput>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantInput {
    pub name: Option<String>,
    pub slug: Option<String>,
    /// null goes back to the default prefix.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub key_prefix: Patch<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    #[schema(nullable)]
    #[schema(value_type = Option<PolicyInput>)]
    pub policy: Option<Obj<PolicyInput>>,
}

/// Create a tenant.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "Tenants", operation_id = "createTenant", request_body = CreateTenantInput,
    responses(
        (status = 201, description = "Created", body = TenantView),
        (status = 400, description = "Validation error", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "Admins only", body = super::Error),
        (status = 409, description = "Slug taken", body = super::Error),
    ))]
pub async fn create(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    JsonBody(input): JsonBody<CreateTenantInput>,
) -> ApiResult<Response> {
    let changes = TenantChanges {
        name: Some(input.name),
        slug: Some(input.slug),
        metadata: input.metadata,
        key_prefix: Patch::from_nullable(input.key_prefix),
        policy: input.policy.map(|p| PolicyChanges::from(p.0)),
    };
    let tenant = tenants::create(&state, &caller, changes).await?;
    Ok(created(
        format!("/api/v1/tenants/{}", tenant.id),
        TenantView::from(tenant),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// List tenants, oldest first.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "Tenants", operation_id = "listTenants", params(PageParams),
    responses(
        (status = 200, description = "Tenants", body = Vec<TenantView>),
        (status = 400, description = "Bad query parameter", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "Admins only", body = super::Error),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<PageParams>,
) -> ApiResult<Response> {
    let (limit, after) = page_params(q.limit, q.cursor.as_deref())?;
    let page = tenants::list(&state, &caller, limit, after).await?;
    Ok(page_response(page, TenantView::from))
}

/// Get a tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{id}", tag = "Tenants", operation_id = "getTenant", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 400, description = "id is not a UUID", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "Admins only", body = super::Error),
        (status = 404, description = "Not found", body = super::Error),
    ))]
pub async fn get(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Json<TenantView>> {
    Ok(Json(tenants::get(&state, &caller, id).await?.into()))
}

/// Edit a tenant.
#[utoipa::path(patch, path = "/api/v1/tenants/{id}", tag = "Tenants", operation_id = "updateTenant", params(("id" = Uuid, Path)), request_body = UpdateTenantInput,
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 400, description = "Validation error", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "Admins only", body = super::Error),
        (status = 404, description = "Not found", body = super::Error),
        (status = 409, description = "Slug taken", body = super::Error),
    ))]
pub async fn update(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<UpdateTenantInput>,
) -> ApiResult<Json<TenantView>> {
    let changes = TenantChanges {
        name: input.name,
        slug: input.slug,
        metadata: input.metadata,
        key_prefix: input.key_prefix,
        policy: input.policy.map(|p| PolicyChanges::from(p.0)),
    };
    Ok(Json(
        tenants::update(&state, &caller, id, changes).await?.into(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Revoke the tenant's active keys in the same transaction.
    pub force: Option<bool>,
}

/// Delete a tenant. With active keys: 409 unless `force=true`.
#[utoipa::path(delete, path = "/api/v1/tenants/{id}", tag = "Tenants", operation_id = "deleteTenant", params(("id" = Uuid, Path), DeleteParams),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "id is not a UUID", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "Admins only", body = super::Error),
        (status = 404, description = "Not found", body = super::Error),
        (status = 409, description = "The tenant has active keys", body = super::Error),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    QueryParams(q): QueryParams<DeleteParams>,
) -> ApiResult<StatusCode> {
    tenants::delete(&state, &caller, id, q.force.unwrap_or(false)).await?;
    Ok(StatusCode::NO_CONTENT)
}
