//! `GET /api/v1/stats` and `GET /api/v1/export`: the caller's keys and their use, and
//! everything keyward holds about the caller. The Estuary surface serves the same documents.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyward_store::UsageCount;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::audit::AuditLogEntry;
use super::keys::ApiKeyView;
use super::tenants::TenantView;
use super::users::UserView;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::NoQuery;
use crate::request_label::Label;
use keyward_core::export::{self, Export, ExportPart, Profile};
use keyward_core::keys::Reach;
use keyward_core::stats::{self, Stats, DORMANT_DAYS};

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyCountsView {
    pub total: u64,
    pub active: u64,
    pub expired: u64,
    pub revoked: u64,
    /// Not revoked and not used (or, if never used, made) in `dormant_days` days.
    pub dormant: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationCounts {
    /// By outcome code (`VALID`, `EXPIRED`, ...), over the current and the previous UTC day:
    /// counters are kept per UTC day, so this covers at least the last 24 hours.
    pub last_24h: BTreeMap<&'static str, u64>,
    /// By outcome code, over the current UTC day and the 29 before it.
    pub last_30d: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopKeyView {
    pub id: Uuid,
    pub name: Option<String>,
    pub start: String,
    /// Verifications over the last 30 days, all outcomes.
    pub verifications: u64,
}

/// Keys the caller can see and how they were verified. `NOT_FOUND` answers name no key, so
/// they are not counted here.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsResponse {
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: OffsetDateTime,
    pub dormant_days: i64,
    pub keys: KeyCountsView,
    pub verifications: VerificationCounts,
    pub top_keys: Vec<TopKeyView>,
}

impl From<Stats> for StatsResponse {
    fn from(s: Stats) -> Self {
        Self {
            as_of: s.as_of,
            dormant_days: DORMANT_DAYS,
            keys: KeyCountsView {
                total: s.keys.total,
                active: s.keys.active,
                expired: s.keys.expired,
                revoked: s.keys.revoked,
                dormant: s.keys.dormant,
            },
            verifications: VerificationCounts {
                last_24h: s.last_24h,
                last_30d: s.last_30d,
            },
            top_keys: s
                .top_keys
                .into_iter()
                .map(|k| TopKeyView {
                    id: k.id,
                    name: k.name,
                    start: k.start,
                    verifications: k.verifications,
                })
                .collect(),
        }
    }
}

/// Key counts by state, verifications by outcome and the most used keys, for the keys the
/// caller can see (all for admins, the tenant's for tenant admins, its own for members).
#[utoipa::path(get, path = "/api/v1/stats", tag = "Stats", operation_id = "getStats",
    responses(
        (status = 200, description = "Statistics", body = StatsResponse),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:read", body = super::Error),
    ))]
pub async fn stats(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
) -> ApiResult<Response> {
    stats_response(&state, &caller, Reach::Role).await
}

/// The stats document for `reach`; the Estuary surface serves it for the caller's own keys.
pub async fn stats_response(
    state: &AppState,
    caller: &Caller,
    reach: Reach,
) -> ApiResult<Response> {
    let s = stats::stats(state, caller, reach).await?;
    Ok(Json(StatsResponse::from(s)).into_response())
}

/// One usage counter as exported.
#[derive(Debug, Serialize)]
struct UsageView {
    key_id: Uuid,
    /// The UTC day, `YYYY-MM-DD`.
    date: String,
    code: &'static str,
    count: u64,
}

impl From<UsageCount> for UsageView {
    fn from(u: UsageCount) -> Self {
        let date = OffsetDateTime::from_unix_timestamp(u.day.saturating_mul(86_400))
            .map(|t| t.date().to_string())
            .unwrap_or_default();
        Self {
            key_id: u.key_id,
            date,
            code: u.code.as_str(),
            count: u.count,
        }
    }
}

/// Everything keyward holds about the caller as one JSON document (profile, tenant, keys without
/// secrets or digests, usage counters, audit entries about the caller or its keys), streamed.
#[utoipa::path(get, path = "/api/v1/export", tag = "Stats", operation_id = "exportData",
    responses(
        (status = 200, description = "A JSON document with `exported_at`, `user`, `limits` (shared by the user's keys), `tenant`, `api_keys`, `usage` and `audit_log`, sent as an attachment",
            content_type = "application/json", headers(("Content-Disposition" = String))),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:read", body = super::Error),
    ))]
pub async fn export(
    State(state): State<AppState>,
    _: NoQuery,
    method: Method,
    caller: Caller,
) -> ApiResult<Response> {
    export_response(&state, &caller, method == Method::HEAD).await
}

/// The export document as a streamed attachment; the Estuary surface serves it too. For `HEAD`
/// (`head`), the same headers and none of the export's work.
pub async fn export_response(state: &AppState, caller: &Caller, head: bool) -> ApiResult<Response> {
    let filename = format!("keyward-export-{}.json", caller.principal.user_id);
    let mut response = if head {
        export::may_export(caller)?;
        Body::empty().into_response()
    } else {
        let (profile, export) = export::start(state, caller).await?;
        Body::from_stream(export_stream(
            profile,
            export,
            state.now(),
            Label::current(),
        ))
        .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    // A person's whole record: no cache on the way keeps a copy.
    crate::api::no_store(headers);
    Ok(response)
}

/// Where the renderer is in the document.
struct Renderer {
    export: Export,
    now: OffsetDateTime,
    /// The array now open, and whether it has an item yet.
    open: Option<(&'static str, bool)>,
    head: Option<Profile>,
    finished: bool,
    /// The request, for the log: the body is read after the handler's task has moved on.
    request: Option<Label>,
}

fn export_stream(
    profile: Profile,
    export: Export,
    now: OffsetDateTime,
    request: Option<Label>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let renderer = Renderer {
        export,
        now,
        open: None,
        head: Some(profile),
        finished: false,
        request,
    };
    futures_util::stream::unfold(renderer, |mut r| async move {
        if r.finished {
            return None;
        }
        match r.step().await {
            Ok(chunk) => Some((Ok(chunk), r)),
            Err(e) => {
                // Headers are gone already: cut the body short so the client sees a broken
                // document, and log why.
                e.log_for(r.request.as_ref());
                r.finished = true;
                Some((Err(std::io::Error::other("export aborted")), r))
            }
        }
    })
}

impl Renderer {
    async fn step(&mut self) -> ApiResult<Bytes> {
        if let Some(head) = self.head.take() {
            // The document's object stays open: the sections follow, and the last step closes it.
            let mut out = b"{\"exported_at\":".to_vec();
            serde_json::to_writer(&mut out, &keyward_core::keys::rfc3339(head.exported_at))
                .map_err(internal)?;
            out.extend_from_slice(b",\"user\":");
            let user_id = head.user.id;
            serde_json::to_writer(&mut out, &UserView::from(head.user)).map_err(internal)?;
            out.extend_from_slice(b",\"limits\":");
            let limits = super::owner_limits::OwnerLimitsView::of(user_id, head.limits, self.now);
            serde_json::to_writer(&mut out, &limits).map_err(internal)?;
            out.extend_from_slice(b",\"tenant\":");
            serde_json::to_writer(&mut out, &head.tenant.map(TenantView::from))
                .map_err(internal)?;
            return Ok(Bytes::from(out));
        }
        let mut out = Vec::new();
        match self.export.next().await? {
            None => {
                if self.open.is_some() {
                    out.push(b']');
                }
                out.push(b'}');
                self.finished = true;
            }
            Some(ExportPart::Keys(keys)) => {
                let now = self.now;
                self.items(&mut out, "api_keys", keys, |k| ApiKeyView::of(k, now))?
            }
            Some(ExportPart::Usage(rows)) => {
                self.items(&mut out, "usage", rows, UsageView::from)?
            }
            Some(ExportPart::Audit(rows)) => {
                self.items(&mut out, "audit_log", rows, AuditLogEntry::from)?
            }
        }
        Ok(Bytes::from(out))
    }

    /// Appends items to the array `section`, opening it (and closing the previous one) first.
    fn items<T, V: Serialize>(
        &mut self,
        out: &mut Vec<u8>,
        section: &'static str,
        items: Vec<T>,
        view: impl Fn(T) -> V,
    ) -> ApiResult<()> {
        let mut any = match self.open {
            Some((open, any)) if open == section => any,
            previous => {
                if previous.is_some() {
                    out.push(b']');
                }
                out.extend_from_slice(format!(",\"{section}\":[").as_bytes());
                false
            }
        };
        for item in items {
            if any {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, &view(item)).map_err(internal)?;
            any = true;
        }
        self.open = Some((section, any));
        Ok(())
    }
}

fn internal(e: serde_json::Error) -> crate::error::ApiError {
    crate::error::ApiError::Internal(format!("export serialization: {e}"))
}
