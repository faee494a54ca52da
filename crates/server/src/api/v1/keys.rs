//! `/api/v1/api-keys`: the reference's routes (create, list, dormant, revoke, rotate) plus get
//! and edit. Wire shapes only; the lifecycle lives in `keyward_core::keys`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyward_domain::credits::{Refill, RefillInterval};
use keyward_domain::duration::parse_short;
use keyward_domain::ratelimit::{KeyRateLimit, RateLimitScope};
use keyward_domain::{ApiKey, KeyStatus, Patch};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::page_response;
use crate::api::ShownOnce;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{
    optional_time, optional_uuid, patch_time, IdPath, JsonBody, NoQuery, Obj, OptionalJsonBody,
    QueryParams,
};
use keyward_core::keys::{
    self as lifecycle, IssuedKey, KeyExpiry, KeyPatch, KeyTenant, NewKey, Reach,
};
use keyward_core::page::page_params;
use keyward_store::KeyQuery;

/// An API key as listed: never its plaintext or digest.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub name: Option<String>,
    pub prefix: String,
    pub rate_limit_max: Option<i64>,
    pub rate_limit_window: Option<String>,
    /// Where the rate limit holds: `node` (each node by itself) or `cluster` (all nodes
    /// together); null without a rate limit.
    #[schema(value_type = Option<String>)]
    pub rate_limit_scope: Option<&'static str>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the key stopped (or, during a rotation's grace period, will stop) verifying.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Prefix and first characters of the key, for recognising it.
    pub start: String,
    pub scopes: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub owner_id: Uuid,
    /// `active`, `expired` or `revoked`, as of the response.
    #[schema(value_type = String)]
    pub status: KeyStatus,
    /// Credits left as of the response (a due refill applied); absent for unlimited keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refill: Option<RefillInput>,
    /// False while the key is paused: verify answers `DISABLED` until it is enabled again.
    pub enabled: bool,
    /// The networks (CIDR, canonical form) the key may be verified from; empty: anywhere.
    pub allowed_ips: Vec<String>,
}

impl ApiKeyView {
    pub fn of(key: ApiKey, now: OffsetDateTime) -> Self {
        let status = key.status(now);
        let credits = key.credits.map(|c| c.current(now));
        Self {
            enabled: key.enabled,
            allowed_ips: key.allowed_ips.to_strings(),
            id: key.id,
            tenant_id: key.tenant_id,
            name: key.name,
            prefix: key.prefix,
            rate_limit_max: key.rate_limit.as_ref().map(KeyRateLimit::max),
            rate_limit_scope: key.rate_limit.as_ref().map(|r| r.scope().as_str()),
            rate_limit_window: key.rate_limit.map(|r| r.window().to_owned()),
            last_used_at: key.last_used_at,
            created_at: key.created_at,
            revoked_at: key.revoked_at,
            start: key.start,
            scopes: key.scopes.into(),
            metadata: key.metadata,
            expires_at: key.expires_at,
            owner_id: key.owner_id,
            status,
            remaining: credits.map(|c| c.remaining),
            refill: credits.and_then(|c| c.refill).map(|r| RefillInput {
                interval: r.interval,
                amount: r.amount,
                day: Some(r.day),
            }),
        }
    }
}

/// A key just created or rotated, with its plaintext: shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKeyCreated)]
pub struct ApiKeyCreated {
    pub id: Uuid,
    /// The plaintext API key. Only returned once at creation time.
    #[serde(serialize_with = "super::expose_secret")]
    #[schema(value_type = String)]
    pub key: secrecy::SecretString,
    pub prefix: String,
    pub tenant_id: Option<Uuid>,
    pub name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub scopes: Vec<String>,
}

impl From<IssuedKey> for ApiKeyCreated {
    fn from(issued: IssuedKey) -> Self {
        let k = issued.key;
        Self {
            id: k.id,
            key: issued.plaintext.expose().into(),
            prefix: k.prefix,
            tenant_id: k.tenant_id,
            name: k.name,
            created_at: k.created_at,
            expires_at: k.expires_at,
            scopes: k.scopes.into(),
        }
    }
}

fn issued_response(issued: IssuedKey) -> Response {
    let body = ApiKeyCreated::from(issued);
    ShownOnce::created(format!("/api/v1/api-keys/{}", body.id), body).into_response()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyInput {
    /// Required from admins; everyone else may omit it and gets their own tenant. (The reference
    /// requires it of everyone: every request it takes, keyward takes too.)
    #[serde(default, deserialize_with = "optional_uuid")]
    pub tenant_id: Option<Uuid>,
    pub name: Option<String>,
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_limit_max: Option<i64>,
    /// `<number> <second|minute|hour|day>[s]`; the document states the pattern.
    pub rate_limit_window: Option<String>,
    /// RFC 3339, in the future and within 100 years.
    #[serde(default, deserialize_with = "optional_time")]
    pub expires_at: Option<OffsetDateTime>,
    /// Lifetime from now, e.g. `90d`, `12h`, `30m`. Not together with `expires_at`.
    pub expires_in: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// A JSON object of at most 4 KiB.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Uses the key has (each VALID verification spends its `cost`); absent for unlimited.
    pub remaining: Option<i64>,
    /// Sets `remaining` back to an amount every day or month (alone, it starts at the amount).
    #[schema(value_type = Option<RefillInput>)]
    pub refill: Option<Obj<RefillInput>>,
    /// IPv4/IPv6 networks in CIDR notation (RFC 4632, RFC 4291), or single addresses, at most
    /// 100: verify then needs the caller's `ip` inside one of them (`IP_NOT_ALLOWED` otherwise).
    #[schema(max_items = 100)]
    pub allowed_ips: Option<Vec<String>>,
    /// Where the rate limit holds: `node` (each node by itself, smooth; behind N nodes up to N
    /// times the limit) or `cluster` (all nodes together, in fixed windows counted from the
    /// key's creation). Default: the tenant policy's `rate_limit_scope` (`node`).
    #[schema(value_type = Option<String>)]
    pub rate_limit_scope: Option<RateLimitScopeInput>,
}

/// `node` or `cluster`.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitScopeInput {
    Node,
    Cluster,
}

impl From<RateLimitScopeInput> for RateLimitScope {
    fn from(s: RateLimitScopeInput) -> Self {
        match s {
            RateLimitScopeInput::Node => Self::Node,
            RateLimitScopeInput::Cluster => Self::Cluster,
        }
    }
}

/// Create a new API key. The plaintext key is only returned once.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "API Keys", operation_id = "createApiKey",
    request_body = CreateApiKeyInput,
    responses(
        (status = 201, description = "Created API key with plaintext secret", body = ApiKeyCreated,
            headers(("Location" = String), ("Cache-Control" = String))),
        (status = 400, description = "Validation error", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential may not create keys, or grant these scopes", body = super::Error),
        (status = 404, description = "The tenant does not exist or is not visible", body = super::Error),
    ))]
pub async fn create(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    JsonBody(input): JsonBody<CreateApiKeyInput>,
) -> ApiResult<Response> {
    let expiry = match (input.expires_at, input.expires_in) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field(
                "expires_in",
                "give expires_at or expires_in, not both",
            ))
        }
        (Some(at), None) => KeyExpiry::At(at),
        (None, Some(d)) => {
            KeyExpiry::After(parse_short(&d).map_err(|e| ApiError::invalid_field("expires_in", e))?)
        }
        (None, None) => KeyExpiry::Never,
    };
    let req = NewKey {
        tenant: KeyTenant::Requested(input.tenant_id),
        name: input.name,
        scopes: input.scopes.unwrap_or_default(),
        metadata: input.metadata,
        rate_limit_max: input.rate_limit_max,
        rate_limit_window: input.rate_limit_window,
        expiry,
        remaining: input.remaining,
        refill: input.refill.map(|r| Refill::from(r.0)),
        allowed_ips: input.allowed_ips.unwrap_or_default(),
        rate_limit_scope: input.rate_limit_scope.map(RateLimitScope::from),
    };
    Ok(issued_response(
        lifecycle::create(&state, &caller, req).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Filter by tenant ID.
    #[serde(default, deserialize_with = "optional_uuid")]
    pub tenant_id: Option<Uuid>,
    /// `active`, `expired` or `revoked`.
    pub status: Option<String>,
    /// Page size, 1..1000 (default 100).
    pub limit: Option<u32>,
    /// The `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
}

fn parse_status(status: Option<&str>) -> ApiResult<Option<KeyStatus>> {
    status
        .map(|s| {
            KeyStatus::parse(s)
                .ok_or_else(|| ApiError::invalid_field("status", "one of active, expired, revoked"))
        })
        .transpose()
}

/// List API keys the caller can see, optionally filtered by tenant and status, oldest first.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "API Keys", operation_id = "listApiKeys", params(ListParams),
    responses(
        (status = 200, description = "List of API keys", body = Vec<ApiKeyView>, headers(("X-Next-Cursor" = String))),
        (status = 400, description = "Bad query parameter", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:read", body = super::Error),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListParams>,
) -> ApiResult<Response> {
    let (limit, after) = page_params(q.limit, q.cursor.as_deref())?;
    let status = parse_status(q.status.as_deref())?;
    let now = state.now();
    let mut query = KeyQuery::new(now, limit);
    query.of.tenant_id = q.tenant_id;
    query.status = status;
    query.after = after;
    let page = lifecycle::list(&state, &caller, Reach::Role, query).await?;
    Ok(page_response(page, |k| ApiKeyView::of(k, now)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DormantParams {
    /// Number of days of inactivity, 1..365 (default 90).
    pub days: Option<i64>,
    #[serde(default, deserialize_with = "optional_uuid")]
    pub tenant_id: Option<Uuid>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// List keys not used within `days` days. A never-used key counts from its creation, so a key
/// made a minute ago is not dormant. Revoked keys are never dormant.
#[utoipa::path(get, path = "/api/v1/api-keys/dormant", tag = "API Keys", operation_id = "listDormantApiKeys",
    params(DormantParams),
    responses(
        (status = 200, description = "List of dormant API keys", body = Vec<ApiKeyView>),
        (status = 400, description = "days outside 1..365", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:read", body = super::Error),
    ))]
pub async fn dormant(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<DormantParams>,
) -> ApiResult<Response> {
    let days = q.days.unwrap_or(90);
    if !(1..=365).contains(&days) {
        return Err(ApiError::invalid_field("days", "must be between 1 and 365"));
    }
    let (limit, after) = page_params(q.limit, q.cursor.as_deref())?;
    let now = state.now();
    let mut query = KeyQuery::new(now, limit);
    query.of.tenant_id = q.tenant_id;
    query.dormant_before = Some(now - time::Duration::days(days));
    query.after = after;
    let page = lifecycle::list(&state, &caller, Reach::Role, query).await?;
    Ok(page_response(page, |k| ApiKeyView::of(k, now)))
}

/// Get one API key.
#[utoipa::path(get, path = "/api/v1/api-keys/{id}", tag = "API Keys", operation_id = "getApiKey",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The API key", body = ApiKeyView),
        (status = 400, description = "id is not a UUID", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:read", body = super::Error),
        (status = 404, description = "API key not found", body = super::Error),
    ))]
pub async fn get(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Json<ApiKeyView>> {
    let key = lifecycle::get(&state, &caller, Reach::Role, id).await?;
    Ok(Json(ApiKeyView::of(key, state.now())))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApiKeyInput {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Patch<String>,
    pub scopes: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// RFC 3339, or null for a key that never expires.
    #[serde(default, deserialize_with = "patch_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Patch<OffsetDateTime>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub rate_limit_max: Patch<i64>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub rate_limit_window: Patch<String>,
    /// Credits left; null removes the credits (the key becomes unlimited).
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub remaining: Patch<i64>,
    /// The refill; null removes it.
    #[serde(default)]
    #[schema(value_type = Option<RefillInput>)]
    pub refill: Patch<Obj<RefillInput>>,
    /// false pauses the key (verify answers `DISABLED`, forward auth 403) and keeps its
    /// history; true resumes it.
    pub enabled: Option<bool>,
    /// A new IP allowlist (networks in CIDR notation or addresses, at most 100); `[]` or null
    /// lifts it.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, max_items = 100)]
    pub allowed_ips: Patch<Vec<String>>,
    /// `node` or `cluster`: where the key's rate limit holds (it must have one).
    #[schema(value_type = Option<String>)]
    pub rate_limit_scope: Option<RateLimitScopeInput>,
}

/// A refill of a key's credits: back to `amount` every UTC day, or every month on `day`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefillInput {
    /// `daily` or `monthly`.
    #[schema(value_type = String)]
    pub interval: RefillInterval,
    pub amount: i64,
    /// Day of the month for monthly refills (1..=31, default 1; short months use their last day).
    pub day: Option<u8>,
}

impl From<RefillInput> for Refill {
    fn from(r: RefillInput) -> Self {
        Refill {
            interval: r.interval,
            amount: r.amount,
            day: r.day.unwrap_or(1),
        }
    }
}

/// Edit a key's name, scopes, expiry, metadata, rate limit or credits, or pause and resume it
/// (`enabled`). Scopes can only be granted by a caller that holds them.
#[utoipa::path(patch, path = "/api/v1/api-keys/{id}", tag = "API Keys", operation_id = "updateApiKey",
    params(("id" = Uuid, Path)), request_body = UpdateApiKeyInput,
    responses(
        (status = 200, description = "The updated key", body = ApiKeyView),
        (status = 400, description = "Validation error", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:write or the scopes", body = super::Error),
        (status = 404, description = "API key not found or revoked", body = super::Error),
    ))]
pub async fn update(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<UpdateApiKeyInput>,
) -> ApiResult<Json<ApiKeyView>> {
    let patch = KeyPatch {
        name: input.name,
        scopes: input.scopes,
        metadata: input.metadata,
        expires_at: input.expires_at,
        rate_limit_max: input.rate_limit_max,
        rate_limit_window: input.rate_limit_window,
        remaining: input.remaining,
        refill: input.refill.map(|r| Refill::from(r.0)),
        enabled: input.enabled,
        allowed_ips: match input.allowed_ips {
            Patch::Keep => None,
            Patch::Clear => Some(Vec::new()),
            Patch::Set(nets) => Some(nets),
        },
        rate_limit_scope: input.rate_limit_scope.map(RateLimitScope::from),
    };
    let key = lifecycle::update(&state, &caller, Reach::Role, id, patch).await?;
    Ok(Json(ApiKeyView::of(key, state.now())))
}

/// Revoke an API key, permanently disabling it.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "API Keys", operation_id = "revokeApiKey",
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "API key revoked"),
        (status = 400, description = "id is not a UUID", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:write", body = super::Error),
        (status = 404, description = "API key not found or already revoked", body = super::Error),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    lifecycle::revoke(&state, &caller, Reach::Role, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateApiKeyInput {
    #[schema(max_length = 255)]
    pub name: Option<String>,
    /// How long the old key keeps verifying, e.g. `10m`; at most `7d`. Default: revoked at once.
    pub grace_period: Option<String>,
}

/// Rotate an API key: a new key with the same tenant, owner, scopes, metadata, limits and
/// lifetime; the old one is revoked at once or when the grace period ends.
#[utoipa::path(post, path = "/api/v1/api-keys/{id}/rotate", tag = "API Keys", operation_id = "rotateApiKey",
    params(("id" = Uuid, Path)), request_body(content = RotateApiKeyInput, description = "Optional"),
    responses(
        (status = 201, description = "New API key with plaintext secret", body = ApiKeyCreated),
        (status = 400, description = "Validation error", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:write or the key's scopes", body = super::Error),
        (status = 404, description = "API key not found or already revoked", body = super::Error),
    ))]
pub async fn rotate(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
    OptionalJsonBody(input): OptionalJsonBody<RotateApiKeyInput>,
) -> ApiResult<Response> {
    let grace = input
        .grace_period
        .map(|g| parse_short(&g).map_err(|e| ApiError::invalid_field("grace_period", e)))
        .transpose()?;
    Ok(issued_response(
        lifecycle::rotate(&state, &caller, id, input.name, grace).await?,
    ))
}
