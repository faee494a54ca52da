//! Leaked-key reports: GitHub's secret-scanning partner protocol at `/api/v1/leaks/github`, and
//! the same report from any scanner with a `keyward:report_leak` credential at `/api/v1/leaks`.
//! See `keyward_core::leaks` for what a report does.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use keyward_core::leaks::{self, Label, Verdict};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::{Caller, Origin};
use crate::error::ApiResult;
use crate::extract::{NoQuery, RawJsonBody};

/// One reported token, as GitHub sends it.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Documents the body; the core reads it from the signed bytes.
pub struct LeakReportInput {
    /// The string found.
    token: String,
    /// The scanner's name for the kind of secret.
    #[schema(rename = "type")]
    kind: Option<String>,
    /// Where it was found.
    url: Option<String>,
    /// What kind of place (`content`, `commit`, `issue_comment`, ...).
    source: Option<String>,
}

/// keyward's answer about one token, in GitHub's feedback shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeakVerdictView {
    /// Lower-case hex SHA-256 of the reported token (never the token itself).
    pub token_hash: String,
    /// The `type` reported.
    pub token_type: String,
    /// `true_positive`: a key keyward issued (revoked by default); `false_positive`: not one.
    #[schema(value_type = String)]
    pub label: Label,
}

impl From<Verdict> for LeakVerdictView {
    fn from(v: Verdict) -> Self {
        Self {
            token_hash: v.token_hash,
            token_type: v.token_type,
            label: v.label,
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// GitHub's secret-scanning partner endpoint: the body is signed (ECDSA P-256 / SHA-256,
/// base64 DER in `Github-Public-Key-Signature`) by the key `Github-Public-Key-Identifier` names,
/// one of those the operator configured (`--github-keys`).
#[utoipa::path(post, path = "/api/v1/leaks/github", tag = "Leaks", operation_id = "reportLeaksFromGithub",
    request_body = Vec<LeakReportInput>,
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "Which of GitHub's keys signed the body"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 of the DER ECDSA signature over the raw body"),
    ),
    security(()),
    responses(
        (status = 200, description = "One verdict per token", body = Vec<LeakVerdictView>),
        (status = 400, description = "Not a JSON array of reports", body = super::Error),
        (status = 401, description = "Missing or wrong signature", body = super::Error),
        (status = 413, description = "Body too large", body = super::Error),
        (status = 415, description = "Not JSON", body = super::Error),
    ))]
pub async fn github(
    State(state): State<AppState>,
    _: NoQuery,
    Origin(meta): Origin,
    headers: HeaderMap,
    RawJsonBody(body): RawJsonBody,
) -> ApiResult<Json<Vec<LeakVerdictView>>> {
    let verdicts = leaks::report_from_github(
        &state,
        header(&headers, "github-public-key-identifier"),
        header(&headers, "github-public-key-signature"),
        &body,
        meta,
    )
    .await?;
    Ok(Json(verdicts.into_iter().map(Into::into).collect()))
}

/// Report leaked tokens (any scanner): the body GitHub sends, from a credential holding
/// `keyward:report_leak`.
#[utoipa::path(post, path = "/api/v1/leaks", tag = "Leaks", operation_id = "reportLeaks",
    request_body = Vec<LeakReportInput>,
    responses(
        (status = 200, description = "One verdict per token", body = Vec<LeakVerdictView>),
        (status = 400, description = "Not a JSON array of reports", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:report_leak", body = super::Error),
        (status = 413, description = "Body too large", body = super::Error),
        (status = 415, description = "Not JSON", body = super::Error),
    ))]
pub async fn report(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    RawJsonBody(body): RawJsonBody,
) -> ApiResult<Json<Vec<LeakVerdictView>>> {
    let verdicts = leaks::report(&state, &caller, &body).await?;
    Ok(Json(verdicts.into_iter().map(Into::into).collect()))
}
