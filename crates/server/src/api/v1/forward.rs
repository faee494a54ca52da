//! `/api/v1/auth/forward`: verify as a reverse proxy's sub-request (nginx `auth_request`,
//! Traefik ForwardAuth, Caddy `forward_auth`), and `/api/v1/auth/forward/{path}` for proxies that
//! append the client's path and query to the address they ask (Envoy's `ext_authz` over HTTP,
//! `path_prefix`). The client's key comes in the forwarded request's `X-API-Key` or
//! `Authorization: Bearer`; the proxy adds its own verifier credential in [`VERIFIER_HEADER`]
//! (unless keyward runs with `--public-verify`). The answer is the status alone (200, 401, 403,
//! 429) plus identity headers on 200: proxies ignore bodies.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyward_domain::{ApiKey, Permission, VerifyCode};
use serde::Deserialize;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{presented_credential, single_credential, PeerIp};
use crate::error::{ApiError, ApiResult, AuthFailure};
use crate::extract::QueryParams;
use keyward_core::auth::verifier;
use keyward_core::metrics::VerifyRoute;
use keyward_core::verify::{self, VerifyRequest};

/// The header in which the proxy presents keyward's verifier credential (a key with
/// `keyward:verify`, or a login JWT of a user whose role allows it).
pub const VERIFIER_HEADER: &str = "x-keyward-verifier";

/// The header in which a proxy names the scopes the key must hold, where it cannot put them in
/// the query (`/api/v1/auth/forward/{path}`, whose query is the client's). Same syntax as the
/// `scopes` parameter; sent at most once.
pub const REQUIRED_SCOPES_HEADER: &str = "x-keyward-required-scopes";

// The two as header names: looked up without parsing the name on each request.
const VERIFIER: HeaderName = HeaderName::from_static(VERIFIER_HEADER);
const REQUIRED_SCOPES: HeaderName = HeaderName::from_static(REQUIRED_SCOPES_HEADER);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ForwardParams {
    /// Scopes the key must hold, comma-separated; or a permission expression (URL-encoded),
    /// recognised by its white space or parentheses: `orders:read AND (orders:write OR admin)`.
    pub scopes: Option<String>,
}

/// Verify the key of a forwarded request: 200 with `X-Keyward-Key-Id`, `X-Keyward-Tenant-Id`,
/// `X-Keyward-Owner-Id` and `X-Keyward-Scopes`; 401 for a missing, unknown, expired or revoked
/// key; 403 when it lacks a scope or has no credits left; 429 with `Retry-After` over its rate limit.
#[utoipa::path(method(get, head, post, put, patch, delete, options), path = "/api/v1/auth/forward", tag = "Verify", operation_id = "forwardAuth",
    params(ForwardParams,
        ("X-Keyward-Required-Scopes" = Option<String>, Header, description = "The scopes the key must hold, as the `scopes` parameter: one of the two at most")),
    security(("verifierKey" = [])),
    responses(
        (status = 200, description = "The key is valid", headers(
            ("X-Keyward-Key-Id" = String), ("X-Keyward-Tenant-Id" = String),
            ("X-Keyward-Owner-Id" = String), ("X-Keyward-Scopes" = String))),
        (status = 400, description = "Bad query parameter", body = super::Error),
        (status = 401, description = "No valid key (or no valid verifier credential)", body = super::Error),
        (status = 403, description = "The key lacks a required scope (or the verifier lacks keyward:verify)", body = super::Error),
        (status = 429, description = "The key is over its rate limit", body = super::Error, headers(("Retry-After" = u64))),
        (status = 503, description = "Storage is unreachable and the key is not cached (fail closed)", body = super::Error),
    ))]
pub async fn forward(
    State(state): State<AppState>,
    PeerIp(peer): PeerIp,
    QueryParams(params): QueryParams<ForwardParams>,
    request: Request,
) -> ApiResult<Response> {
    // The request itself, not `HeaderMap`: that extractor copies the whole map.
    let headers = request.headers();
    let required = required_scopes(headers, params.scopes.as_deref())?;
    decide(&state, peer, headers, required.as_deref()).await
}

/// Verify the key of a forwarded request whose path and query the proxy appended (Envoy's
/// `ext_authz` HTTP service with `path_prefix: /api/v1/auth/forward`): the same answers as
/// `forwardAuth`. The appended path and query are the client's and are not read; the scopes the
/// key must hold come in `X-Keyward-Required-Scopes`. `/api/v1/auth/forward/` (the client asked
/// for `/`) answers the same.
#[utoipa::path(method(get, head, post, put, patch, delete, options), path = "/api/v1/auth/forward/{*path}", tag = "Verify", operation_id = "forwardAuthPath",
    params(
        ("path" = String, Path, description = "The forwarded request's path, and its query after it: not read"),
        ("X-Keyward-Required-Scopes" = Option<String>, Header, description = "Scopes the key must hold, comma-separated, or a permission expression (as the `scopes` parameter of `forwardAuth`)"),
    ),
    security(("verifierKey" = [])),
    responses(
        (status = 200, description = "The key is valid", headers(
            ("X-Keyward-Key-Id" = String), ("X-Keyward-Tenant-Id" = String),
            ("X-Keyward-Owner-Id" = String), ("X-Keyward-Scopes" = String))),
        (status = 400, description = "Bad X-Keyward-Required-Scopes", body = super::Error),
        (status = 401, description = "No valid key (or no valid verifier credential)", body = super::Error),
        (status = 403, description = "The key lacks a required scope (or the verifier lacks keyward:verify)", body = super::Error),
        (status = 429, description = "The key is over its rate limit", body = super::Error, headers(("Retry-After" = u64))),
        (status = 503, description = "Storage is unreachable and the key is not cached (fail closed)", body = super::Error),
    ))]
pub async fn forward_path(
    State(state): State<AppState>,
    PeerIp(peer): PeerIp,
    request: Request,
) -> ApiResult<Response> {
    let headers = request.headers();
    let required = required_scopes(headers, None)?;
    decide(&state, peer, headers, required.as_deref()).await
}

/// The scopes the proxy requires: the `scopes` parameter or [`REQUIRED_SCOPES_HEADER`], one of
/// them at most (400 for both, or for the header sent twice or not text).
fn required_scopes(headers: &HeaderMap, query: Option<&str>) -> ApiResult<Option<String>> {
    let mut lines = headers.get_all(REQUIRED_SCOPES).iter();
    let Some(line) = lines.next() else {
        return Ok(query.map(str::to_owned));
    };
    let refused = |why: &str| ApiError::invalid_field(REQUIRED_SCOPES_HEADER, why);
    if lines.next().is_some() {
        return Err(refused("is sent once"));
    }
    if query.is_some() {
        return Err(refused(
            "and the scopes parameter are alternatives: send one",
        ));
    }
    let text = line
        .to_str()
        .map_err(|_| refused("must be visible ASCII"))?;
    Ok(Some(text.to_owned()))
}

/// Forward auth's one operation: the verifier's credential, the client's key, the scopes required
/// (`None`: none), the client's address where configured; the verdict as a status.
async fn decide(
    state: &AppState,
    peer: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    scopes: Option<&str>,
) -> ApiResult<Response> {
    // The metrics' latency: a duration measured, not a time of day.
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    // Proxies pass on 401 and 403 only: an ambiguous credential (the verifier's or the
    // client's) is denied as invalid.
    let unambiguous = |failure| match failure {
        AuthFailure::Ambiguous => AuthFailure::Invalid,
        other => other,
    };
    let verifier_credential = single_credential(headers.get_all(VERIFIER)).map_err(unambiguous);
    let verifier = verifier(state, verifier_credential, peer).await?;
    let key = presented_credential(headers)
        .map_err(|failure| ApiError::Unauthenticated(unambiguous(failure)))?;
    // Taken as sent: the list is the proxy's configuration, comma-separated, nothing trimmed.
    // An empty list or item (an unset variable in that configuration) is no "no scope": a 400.
    let permission = match scopes {
        None => verify::Required::Owned(Permission::default()),
        Some(text) if text.contains(|c: char| c.is_whitespace() || c == '(' || c == ')') => {
            verify::expression(text, "scopes")?
        }
        Some(list) => verify::Required::Owned(Permission::All(
            list.split(',').map(str::to_owned).collect(),
        )),
    };
    let ip = match state.forward_client_ip_header() {
        None => None,
        Some(name) => client_ip(headers, name)?,
    };
    let request = VerifyRequest {
        ip,
        ..VerifyRequest::new(key, &permission)
    };
    let verdict = verify::verify(state, verifier.as_deref(), &request).await?;
    state
        .metrics
        .verified(VerifyRoute::Forward, verdict.code, started.elapsed());
    let refusal = match verdict.code {
        VerifyCode::Valid => None,
        // A disabled owner's keys authenticate nobody, as on every other surface.
        VerifyCode::NotFound | VerifyCode::Revoked | VerifyCode::OwnerDisabled => {
            Some(ApiError::Unauthenticated(AuthFailure::Invalid))
        }
        VerifyCode::Expired => Some(ApiError::Unauthenticated(AuthFailure::Expired)),
        VerifyCode::InsufficientScopes => {
            Some(ApiError::Forbidden("the key lacks a required scope".into()))
        }
        VerifyCode::UsageExceeded => Some(ApiError::Forbidden(
            match verdict.limited_by {
                Some(verify::LimitHolder::Owner) => "the key's owner has no credits left",
                _ => "the key has no credits left",
            }
            .into(),
        )),
        VerifyCode::Disabled => Some(ApiError::Forbidden("the key is paused".into())),
        VerifyCode::IpNotAllowed => Some(ApiError::Forbidden(
            "the key may not be used from this address".into(),
        )),
        VerifyCode::RateLimited => Some(ApiError::TooManyRequests {
            retry_after_secs: verdict.retry_after_secs(state.now()),
        }),
        VerifyCode::Unavailable => Some(ApiError::Unavailable),
    };
    if let Some(refusal) = refusal {
        return Err(refusal);
    }
    let Some(key) = verdict.key else {
        return Err(ApiError::Internal("a VALID verdict without its key".into()));
    };
    let mut response = StatusCode::OK.into_response();
    *response.headers_mut() = identity_headers(&key);
    Ok(response)
}

const KEY_ID: HeaderName = HeaderName::from_static("x-keyward-key-id");
const TENANT_ID: HeaderName = HeaderName::from_static("x-keyward-tenant-id");
const OWNER_ID: HeaderName = HeaderName::from_static("x-keyward-owner-id");
const SCOPES: HeaderName = HeaderName::from_static("x-keyward-scopes");

/// A valid key's identity headers: its id, tenant id (empty without a tenant), owner id (UUIDs,
/// hyphenated, lower case) and scopes (comma-separated). The four values are slices of one
/// buffer, written once (not a string of its own each).
fn identity_headers(key: &ApiKey) -> HeaderMap {
    const UUID: usize = uuid::fmt::Hyphenated::LENGTH;
    let scopes_len = key.scopes.iter().map(|s| s.len() + 1).sum::<usize>();
    let mut text = Vec::with_capacity(3 * UUID + scopes_len);
    let uuid = |id: Uuid, text: &mut Vec<u8>| {
        let at = text.len();
        text.extend_from_slice(id.hyphenated().encode_lower(&mut [0; UUID]).as_bytes());
        at..text.len()
    };
    let key_id = uuid(key.id, &mut text);
    let tenant_id = match key.tenant_id {
        Some(t) => uuid(t, &mut text),
        None => text.len()..text.len(),
    };
    let owner_id = uuid(key.owner_id, &mut text);
    let scopes_at = text.len();
    for (i, scope) in key.scopes.iter().enumerate() {
        if i > 0 {
            text.push(b',');
        }
        text.extend_from_slice(scope.as_bytes());
    }
    let text = Bytes::from(text);
    let mut headers = HeaderMap::with_capacity(4);
    let mut set = |name: HeaderName, range: std::ops::Range<usize>| {
        // UUIDs and scopes are visible ASCII: every value is valid.
        if let Ok(value) = HeaderValue::from_maybe_shared(text.slice(range)) {
            headers.insert(name, value);
        }
    };
    set(KEY_ID, key_id);
    set(TENANT_ID, tenant_id);
    set(OWNER_ID, owner_id);
    set(SCOPES, scopes_at..text.len());
    headers
}

/// The client's address as the trusted proxy states it in `name`: absent is none (the key's
/// allowlist then refuses). `X-Forwarded-For` is a list (over one or more field lines, RFC 9110
/// section 5.3) whose last entry, the one the trusted proxy added, counts; any other header
/// (`X-Real-IP`) holds one address, sent once. Anything else is a 400 naming the header.
fn client_ip(headers: &HeaderMap, name: &HeaderName) -> ApiResult<Option<std::net::IpAddr>> {
    let refused = |why: &str| ApiError::invalid_field(name.as_str(), why);
    let mut lines = headers.get_all(name).iter();
    let Some(first) = lines.next() else {
        return Ok(None);
    };
    let value = if name == "x-forwarded-for" {
        let last = lines.next_back().unwrap_or(first);
        let list = last
            .to_str()
            .map_err(|_| refused("must be IPv4 or IPv6 addresses"))?;
        // Entries are separated by a comma and optional white space (RFC 9110's list syntax).
        list.rsplit(',')
            .next()
            .unwrap_or_default()
            .trim_matches([' ', '\t'])
    } else {
        if lines.next().is_some() {
            return Err(refused("is sent once"));
        }
        first
            .to_str()
            .map_err(|_| refused("must be an IPv4 or IPv6 address"))?
    };
    verify::client_ip(value, "ip")
        .map(Some)
        .map_err(|_| refused("must be an IPv4 or IPv6 address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_domain::{KeyPrefix, PlainKey, Scopes};

    fn key(tenant_id: Option<Uuid>, scopes: &[&str]) -> ApiKey {
        let prefix = KeyPrefix::default_prefix();
        ApiKey::issued(
            Uuid::from_u128(1),
            &PlainKey::from_secret_bytes(&prefix, [7; 32]),
            &prefix,
            Uuid::from_u128(2),
            tenant_id,
            Scopes::parse(scopes).expect("valid scopes"),
            time::OffsetDateTime::UNIX_EPOCH,
        )
    }

    fn rendered(headers: &HeaderMap) -> Vec<(&str, &str)> {
        let mut all: Vec<_> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().expect("ASCII")))
            .collect();
        all.sort();
        all
    }

    #[test]
    fn identity_headers_name_the_key_its_tenant_owner_and_scopes() {
        let tenant = Uuid::from_u128(3);
        let headers = identity_headers(&key(Some(tenant), &["orders:write", "orders:read"]));
        assert_eq!(
            rendered(&headers),
            [
                ("x-keyward-key-id", "00000000-0000-0000-0000-000000000001"),
                ("x-keyward-owner-id", "00000000-0000-0000-0000-000000000002"),
                ("x-keyward-scopes", "orders:read,orders:write"),
                (
                    "x-keyward-tenant-id",
                    "00000000-0000-0000-0000-000000000003"
                ),
            ]
        );
    }

    #[test]
    fn a_key_without_tenant_or_scopes_has_those_headers_empty() {
        let headers = identity_headers(&key(None, &[]));
        assert_eq!(
            rendered(&headers),
            [
                ("x-keyward-key-id", "00000000-0000-0000-0000-000000000001"),
                ("x-keyward-owner-id", "00000000-0000-0000-0000-000000000002"),
                ("x-keyward-scopes", ""),
                ("x-keyward-tenant-id", ""),
            ]
        );
    }
}
