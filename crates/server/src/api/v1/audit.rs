//! `GET /api/v1/audit-logs`.

use axum::extract::State;
use axum::response::Response;
use keyward_domain::AuditEntry;
use keyward_store::AuditQuery;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::page_response;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::QueryParams;
use keyward_core::audit;
use keyward_core::page::page_params;

/// The reference's `AuditLogEntry`. `actor_type` is `api_key` or `jwt`, and also `system` (the
/// command line) or `anonymous` (a failed login).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditLogEntry)]
pub struct AuditLogEntry {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub actor_id: String,
    pub actor_type: &'static str,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub changes: Option<Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<AuditEntry> for AuditLogEntry {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            tenant_id: e.tenant_id,
            action: e.action,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            actor_id: e.actor_id,
            actor_type: e.actor_type.as_str(),
            source_ip: e.source_ip,
            request_id: e.request_id,
            changes: e.changes,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    #[serde(default, deserialize_with = "crate::extract::optional_uuid")]
    pub tenant_id: Option<Uuid>,
    /// e.g. `api_key`, `tenant`, `user`.
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// e.g. `api_key.revoke`.
    pub action: Option<String>,
    /// The actor's id: a user id (a session), a key id, `cli`, or `anonymous`.
    pub actor_id: Option<String>,
    /// RFC 3339; entries at or after.
    #[serde(default, deserialize_with = "crate::extract::optional_time")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<OffsetDateTime>,
    /// RFC 3339; entries before.
    #[serde(default, deserialize_with = "crate::extract::optional_time")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<OffsetDateTime>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The audit log, oldest first: admins see all, tenant admins their tenant, members what they
/// did or what concerns them.
#[utoipa::path(get, path = "/api/v1/audit-logs", tag = "Audit", operation_id = "listAuditLogs", params(AuditParams),
    responses(
        (status = 200, description = "Audit entries", body = Vec<AuditLogEntry>, headers(("X-Next-Cursor" = String))),
        (status = 400, description = "Bad query parameter", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:read", body = super::Error),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<AuditParams>,
) -> ApiResult<Response> {
    let (limit, after) = page_params(q.limit, q.cursor.as_deref())?;
    let query = AuditQuery {
        tenant_id: q.tenant_id,
        involving_user: None,
        resource_type: q.resource_type,
        resource_id: q.resource_id,
        action: q.action,
        actor_id: q.actor_id,
        since: q.since,
        until: q.until,
        after,
        limit,
    };
    let page = audit::list(&state, &caller, query).await?;
    Ok(page_response(page, AuditLogEntry::from))
}
