//! The Estuary-compatible `/user/*` surface: what the published `estuary-client` speaks.
//! Wire shapes and Estuary's error shape only; every operation is a `service` call.
//!
//! Where Estuary had bugs keyward differs on purpose: an unparsable `expiry` is a 400 (not a
//! 500), and DELETE answers 404 when no key of the caller matched (not 200).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use keyward_domain::compat::parse_go_duration;
use keyward_domain::{ApiKey, KeyDigest, ParsedKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::Duration;

use super::dialect::{BodyInDialect, Dialect, DialectResult, InDialect};
use super::ShownOnce;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, AuthFailure};
use crate::extract::{NoBody, NoQuery, QueryParams, StringPath};
use keyward_core::keys::{self as lifecycle, KeyExpiry, KeyTenant, NewKey, Reach};

/// Estuary's `{"error": {"code": <status>, "reason": "ERR_...", "details": "..."}}`.
pub struct Estuary;

impl Dialect for Estuary {
    fn error_body(error: &ApiError) -> serde_json::Value {
        let reason = match error {
            ApiError::Unauthenticated(AuthFailure::Missing) => "ERR_AUTH_MISSING",
            ApiError::Unauthenticated(AuthFailure::NotBearer) => "ERR_AUTH_MISSING_BEARER",
            ApiError::Unauthenticated(AuthFailure::Invalid) => "ERR_INVALID_TOKEN",
            ApiError::Unauthenticated(AuthFailure::Expired) => "ERR_TOKEN_EXPIRED",
            ApiError::Unauthenticated(AuthFailure::Ambiguous) => "ERR_INVALID_INPUT",
            ApiError::BadRequest { .. } | ApiError::UnsupportedMediaType(_) => "ERR_INVALID_INPUT",
            ApiError::Forbidden(_) => "ERR_NOT_AUTHORIZED",
            ApiError::NotFound(_) => "ERR_RECORD_NOT_FOUND",
            ApiError::MethodNotAllowed => "ERR_METHOD_NOT_ALLOWED",
            ApiError::Conflict { .. } => "ERR_CONFLICT",
            ApiError::PayloadTooLarge(_) => "ERR_CONTENT_SIZE_OVER_LIMIT",
            ApiError::RequestTimeout => "ERR_REQUEST_TIMEOUT",
            ApiError::UriTooLong | ApiError::HeadersTooLarge => "ERR_INVALID_INPUT",
            ApiError::TooManyRequests { .. } => "ERR_TOO_MANY_REQUESTS",
            ApiError::Unavailable | ApiError::Busy => "ERR_SERVICE_UNAVAILABLE",
            ApiError::Internal(_) => "ERR_INTERNAL_SERVER",
        };
        json!({"error": {"code": error.status().as_u16(), "reason": reason, "details": error.message()}})
    }
}

type EstuaryResult<T> = DialectResult<Estuary, T>;
type Who = InDialect<Estuary, Caller>;

/// A key created without `expiry` lives this long (Estuary's default).
pub const DEFAULT_EXPIRY: Duration = Duration::days(30);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/user/api-keys", get(list).post(create))
        .route("/user/api-keys/{key_or_hash}", delete(revoke))
        .route("/user/stats", get(stats))
        .route("/user/export", get(export))
}

/// Estuary's `api.getApiKeysResp`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EstuaryKey {
    /// The plaintext, only in the answer to its creation; `""` in listings (keyward keeps no
    /// plaintext).
    #[serde(serialize_with = "super::v1::expose_secret")]
    token: secrecy::SecretString,
    /// base64url (no padding) of SHA-256 of the key.
    token_hash: String,
    label: String,
    /// RFC 3339; `null` for a key that never expires.
    expiry: Option<String>,
    is_session: bool,
}

impl EstuaryKey {
    fn of(key: &ApiKey, token: secrecy::SecretString) -> Self {
        Self {
            token,
            token_hash: key.digest.to_base64url(),
            label: key.name.clone().unwrap_or_default(),
            expiry: key.expires_at.map(lifecycle::rfc3339),
            is_session: false,
        }
    }
}

async fn list(
    State(state): State<AppState>,
    _: InDialect<Estuary, NoQuery>,
    InDialect(caller, ..): Who,
) -> EstuaryResult<Response> {
    let keys = lifecycle::list_live_own(&state, &caller).await?;
    let body: Vec<EstuaryKey> = keys.iter().map(|k| EstuaryKey::of(k, "".into())).collect();
    Ok(Json(body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateParams {
    expiry: Option<String>,
    perms: Option<String>,
    label: Option<String>,
}

/// `expiry`: a Go duration, `false` for never, absent or empty for [`DEFAULT_EXPIRY`].
fn expiry_of(raw: Option<&str>) -> Result<KeyExpiry, ApiError> {
    match raw {
        None | Some("") => Ok(KeyExpiry::After(DEFAULT_EXPIRY)),
        Some("false") => Ok(KeyExpiry::Never),
        Some(s) => parse_go_duration(s)
            .map(KeyExpiry::After)
            .map_err(|e| ApiError::invalid_field("expiry", e)),
    }
}

/// `perms`: `all` (the default) may use keyward's API as the user; `upload` is an application
/// scope for the team's own services to check at verify.
fn scopes_of(perms: Option<&str>) -> Result<Vec<String>, ApiError> {
    match perms {
        None | Some("") | Some("all") => Ok(lifecycle::owner_scopes()),
        Some("upload") => Ok(vec!["upload".into()]),
        Some(_) => Err(ApiError::invalid_field("perms", "expected all or upload")),
    }
}

async fn create(
    State(state): State<AppState>,
    InDialect(caller, ..): Who,
    InDialect(QueryParams(params), ..): InDialect<Estuary, QueryParams<CreateParams>>,
    // Estuary takes its inputs as query parameters: a body would be dropped unread.
    _: BodyInDialect<Estuary, NoBody>,
) -> EstuaryResult<Response> {
    let req = NewKey {
        allowed_ips: Vec::new(),
        rate_limit_scope: None,
        tenant: KeyTenant::CallersOwn,
        name: params.label,
        scopes: scopes_of(params.perms.as_deref())?,
        metadata: None,
        rate_limit_max: None,
        rate_limit_window: None,
        remaining: None,
        refill: None,
        expiry: expiry_of(params.expiry.as_deref())?,
    };
    let issued = lifecycle::create(&state, &caller, req).await?;
    let body = EstuaryKey::of(&issued.key, issued.plaintext.expose().into());
    Ok(ShownOnce::with_status(StatusCode::OK, body).into_response())
}

/// The path names a key by its plaintext (keyward's, or an imported Estuary token) or its
/// `tokenHash`; anything else matches no key.
async fn revoke(
    State(state): State<AppState>,
    _: InDialect<Estuary, NoQuery>,
    InDialect(caller, ..): Who,
    InDialect(StringPath(key_or_hash), ..): InDialect<Estuary, StringPath>,
) -> EstuaryResult<Response> {
    let digest = match ParsedKey::parse(&key_or_hash) {
        Ok(parsed) => Some(parsed.digest()),
        // An imported Estuary token's digest is its SHA-256, as its `tokenHash` says.
        Err(_) if keyward_domain::import::is_estuary_token(&key_or_hash) => {
            Some(KeyDigest::of(&key_or_hash))
        }
        Err(_) => KeyDigest::from_base64url(&key_or_hash),
    };
    let key = lifecycle::revoke_own_by_digest(&state, &caller, digest.as_ref()).await?;
    Ok(Json(json!({"revoked": true, "tokenHash": key.digest.to_base64url()})).into_response())
}

async fn stats(
    State(state): State<AppState>,
    _: InDialect<Estuary, NoQuery>,
    InDialect(caller, ..): Who,
) -> EstuaryResult<Response> {
    Ok(super::v1::stats::stats_response(&state, &caller, Reach::Own).await?)
}

async fn export(
    State(state): State<AppState>,
    _: InDialect<Estuary, NoQuery>,
    method: axum::http::Method,
    InDialect(caller, ..): Who,
) -> EstuaryResult<Response> {
    let head = method == axum::http::Method::HEAD;
    Ok(super::v1::stats::export_response(&state, &caller, head).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_and_perms() {
        assert_eq!(expiry_of(None).unwrap(), KeyExpiry::After(DEFAULT_EXPIRY));
        assert_eq!(expiry_of(Some("false")).unwrap(), KeyExpiry::Never);
        assert_eq!(
            expiry_of(Some("1h30m")).unwrap(),
            KeyExpiry::After(Duration::minutes(90))
        );
        assert!(expiry_of(Some("soon")).is_err());
        assert_eq!(scopes_of(None).unwrap(), ["keyward:read", "keyward:write"]);
        assert_eq!(scopes_of(Some("upload")).unwrap(), ["upload"]);
        assert!(scopes_of(Some("admin")).is_err());
    }
}
