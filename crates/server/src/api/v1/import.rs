//! `POST /api/v1/api-keys/import`: another service's keys, as a JSON lines body, through
//! `keyward_core::import` (formats, batches and what a bad row does are explained there).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyward_core::import::{ImportOptions, ImportReport, Importer, DEFAULT_BATCH};
use keyward_domain::import::{ImportFormat, KeyShape, ShapeHash};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonLinesBody, NoQuery, QueryParams};

/// The route's path (its body may be larger than others': see `app::body_policy`).
pub const PATH: &str = "/api/v1/api-keys/import";

/// The request header that carries the secret Stratum `key_hash`es were made with
/// (HMAC-SHA256); never a query parameter, which proxies log.
pub const HMAC_SECRET_HEADER: &str = "keyward-import-hmac-secret";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// `estuary`, `stratum` or `sha256`.
    pub format: String,
    /// Make the users the rows name that do not exist (members, without a password).
    pub create_owners: Option<bool>,
    /// What every key starts with (sha256 imports only), 1 to 32 of A-Z a-z 0-9 _ -.
    pub prefix: Option<String>,
    /// Rows per transaction, 1..50000 (default 20000).
    pub batch: Option<usize>,
}

/// A row that was not imported.
#[derive(Debug, Serialize, ToSchema)]
pub struct BadRowView {
    /// 1-based line number in the body.
    pub line: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReportView {
    /// Rows read (blank lines are not rows).
    pub rows: u64,
    /// Keys stored by this request.
    pub imported: u64,
    /// Keys stored before (the same file again changes nothing).
    pub already_present: u64,
    /// Of those, keys whose end the body's `revoked_at` moved earlier (revoked in the old
    /// service since an earlier import; a `revoked_at` still to come schedules the end): each
    /// sends `key.revoked` with `reason: "import"`.
    pub revoked: u64,
    pub owners_created: u64,
    /// The first 1000 bad rows.
    pub bad_rows: Vec<BadRowView>,
    pub bad_count: u64,
    /// Good rows not written because their batch held a bad row.
    pub not_written: u64,
    /// Estuary login sessions (`isSession: true`) left out: they are not keys.
    pub sessions_skipped: u64,
}

impl From<ImportReport> for ImportReportView {
    fn from(r: ImportReport) -> Self {
        Self {
            rows: r.rows,
            imported: r.imported,
            already_present: r.already_present,
            revoked: r.revoked,
            owners_created: r.owners_created,
            bad_rows: r
                .bad
                .into_iter()
                .map(|b| BadRowView {
                    line: b.line,
                    reason: b.reason,
                })
                .collect(),
            bad_count: r.bad_count,
            not_written: r.not_written,
            sessions_skipped: r.sessions_skipped,
        }
    }
}

/// The 422's body: the error, and the report of what was written nonetheless.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportRefused {
    pub error: super::ErrorDetail,
    pub report: ImportReportView,
}

/// Import another service's keys (admins): a JSON lines body (`Content-Type:
/// application/jsonl`), one key per line, so that the keys keep working on every surface. Each
/// batch is written whole or not at all; a key stored before is left as it is.
#[utoipa::path(post, path = "/api/v1/api-keys/import", tag = "API Keys", operation_id = "importApiKeys",
    params(ImportParams, ("keyward-import-hmac-secret" = Option<String>, Header, description = "stratum: the HMAC-SHA256 secret the key_hash values were made with")),
    request_body(content = String, content_type = "application/jsonl", description = "One JSON object per line"),
    responses(
        (status = 200, description = "Every row imported or present", body = ImportReportView),
        (status = 400, description = "Bad parameter, or a body that is not UTF-8", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "Not an admin, or the credential lacks keyward:admin", body = super::Error),
        (status = 413, description = "Body over 64 MiB: split it, or use `keyward import`", body = super::Error),
        (status = 415, description = "Not JSON lines", body = super::Error),
        (status = 422, description = "Some rows refused (their batches were not written): see report.bad_rows", body = ImportRefused),
    ))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ImportParams>,
    headers: HeaderMap,
    JsonLinesBody(body): JsonLinesBody,
) -> ApiResult<Response> {
    let format = ImportFormat::parse(&q.format)
        .ok_or_else(|| ApiError::invalid_field("format", "one of estuary, stratum, sha256"))?;
    let hmac_secret = headers
        .get(HMAC_SECRET_HEADER)
        .map(|v| v.as_bytes().to_vec());
    let options = ImportOptions {
        format,
        prefix: q.prefix,
        hmac_secret,
        create_owners: q.create_owners.unwrap_or(false),
        batch_size: q.batch.unwrap_or(DEFAULT_BATCH),
    };
    let mut importer = Importer::start(&state, &caller, options).await?;
    for (n, line) in (1u64..).zip(body.lines()) {
        importer.line(n, line).await?;
    }
    let report = importer.finish().await?;
    if report.bad_count == 0 {
        return Ok(Json(ImportReportView::from(report)).into_response());
    }
    let message = format!(
        "{} rows refused; their batches ({} good rows) were not written: fix them and send them again",
        report.bad_count, report.not_written
    );
    let body = ImportRefused {
        error: super::ErrorDetail {
            code: "rows_refused".into(),
            message,
        },
        report: report.into(),
    };
    Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response())
}

/// A shape of imported keys: a presented string that starts with `prefix` is looked up by its
/// digest under `hash`. Never the HMAC secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyShapeView {
    /// `estuary`, `stratum` or `sha256`: the import's format.
    pub format: &'static str,
    /// What the keys start with (`EST`, `sk_live_`, or the `sha256` import's prefix).
    pub prefix: String,
    /// How the stored digest is made from a key: `sha256`, or `hmac-sha256` (under the secret
    /// the import was given, which keyward keeps because verify needs it).
    pub hash: &'static str,
    /// When the first import of this shape was written.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<KeyShape> for KeyShapeView {
    fn from(s: KeyShape) -> Self {
        Self {
            format: s.format.as_str(),
            prefix: s.prefix,
            hash: match s.hash {
                ShapeHash::Sha256 => "sha256",
                ShapeHash::HmacSha256(_) => "hmac-sha256",
            },
            created_at: s.created_at,
        }
    }
}

/// List the shapes of imported keys (admins), oldest first: the prefixes and digests under
/// which keyward looks up another service's keys.
#[utoipa::path(get, path = "/api/v1/api-keys/import/shapes", tag = "API Keys", operation_id = "listImportedKeyShapes",
    responses(
        (status = 200, description = "The shapes, oldest first", body = Vec<KeyShapeView>),
        (status = 400, description = "A query parameter was given (there are none)", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "Not an admin, or the credential lacks keyward:admin", body = super::Error),
    ))]
pub async fn shapes(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
) -> ApiResult<Json<Vec<KeyShapeView>>> {
    let shapes = keyward_core::import::shapes(&state, &caller).await?;
    Ok(Json(shapes.into_iter().map(KeyShapeView::from).collect()))
}
