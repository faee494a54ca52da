//! Who is calling. One authentication path for every surface: a credential comes from
//! `X-API-Key` or `Authorization: Bearer`, and is either a login JWT or a keyward key.
//!
//! Keys are shape- and checksum-checked before any storage lookup. Nothing here logs a
//! credential.

pub mod jwt;
pub mod password;
pub mod throttle;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use keyward_domain::{Actor, Credential, KeyStatus, ParsedKey, Principal};

use crate::app::AppState;
use crate::error::{ApiError, AuthFailure};
use crate::service::verify::{key_by_digest, user_by_id};

pub const API_KEY_HEADER: &str = "x-api-key";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts))
    }
}

impl RequestMeta {
    pub fn of(parts: &Parts) -> Self {
        let source_ip = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let request_id = parts
            .headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Self {
            source_ip,
            request_id,
        }
    }
}

/// An authenticated caller of the management API.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub meta: RequestMeta,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        self.principal
            .actor(self.meta.source_ip.clone(), self.meta.request_id.clone())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = presented_credential(&parts.headers).map_err(ApiError::Unauthenticated)?;
        let meta = RequestMeta::of(parts);
        let principal = authenticate_from(state, token, meta.source_ip.as_deref()).await?;
        Ok(Self { principal, meta })
    }
}

/// The one credential a request presents, in `X-API-Key` or `Authorization: Bearer`. An empty
/// header is no credential. Two different credentials (two `X-API-Key` values, or a key and a
/// different bearer token) are ambiguous and refused: a proxy or upstream that reads another of
/// them than keyward did would act on a credential keyward never checked.
pub fn presented_credential(headers: &HeaderMap) -> Result<&str, AuthFailure> {
    let mut found = None;
    offer_all(&mut found, headers.get_all(API_KEY_HEADER), Ok)?;
    // `Authorization` holds one value (RFC 9110 section 11.6.2): a second one, of any scheme,
    // is one a proxy or upstream may read instead of the one keyward checked.
    if headers.get_all(AUTHORIZATION).iter().nth(1).is_some() {
        return Err(AuthFailure::Ambiguous);
    }
    let mut not_bearer = false;
    // Beside a key, an `Authorization` of another scheme is a second credential too (one an
    // upstream may act on): it counts as itself, so it differs. Alone, it is just not one
    // keyward takes.
    let beside_a_key = found.is_some();
    offer_all(
        &mut found,
        headers.get_all(AUTHORIZATION),
        |value| match bearer_token(value) {
            Ok(token) => Ok(token),
            Err(_) if beside_a_key => Ok(value),
            Err(failure) => {
                not_bearer = true;
                Err(failure)
            }
        },
    )?;
    match found {
        Some(token) => Ok(token),
        None if not_bearer => Err(AuthFailure::NotBearer),
        None => Err(AuthFailure::Missing),
    }
}

/// The one credential of a header that carries nothing else (the forward-auth verifier's).
pub fn single_credential<'a>(
    values: axum::http::header::GetAll<'a, axum::http::HeaderValue>,
) -> Result<&'a str, AuthFailure> {
    let mut found = None;
    offer_all(&mut found, values, Ok)?;
    found.ok_or(AuthFailure::Missing)
}

/// Adds each non-empty value of a header, as `token_of` reads it, to `found`; a second credential
/// that differs from the first is [`AuthFailure::Ambiguous`]. A value that `token_of` refuses is
/// skipped (it remembers why).
fn offer_all<'a>(
    found: &mut Option<&'a str>,
    values: axum::http::header::GetAll<'a, axum::http::HeaderValue>,
    mut token_of: impl FnMut(&'a str) -> Result<&'a str, AuthFailure>,
) -> Result<(), AuthFailure> {
    for value in values {
        // Header values that are not visible ASCII are no credential keyward issued.
        let value = value.to_str().map_err(|_| AuthFailure::Invalid)?.trim();
        if value.is_empty() {
            continue;
        }
        let Ok(token) = token_of(value) else { continue };
        match found {
            Some(first) if *first != token => return Err(AuthFailure::Ambiguous),
            _ => *found = Some(token),
        }
    }
    Ok(())
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
pub fn bearer_token(value: &str) -> Result<&str, AuthFailure> {
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthFailure::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthFailure::NotBearer);
    }
    Ok(token.trim())
}

/// The client's address, when the server knows it (not in in-process tests): cheap enough for
/// the verify path (no allocation), for the limit on failing credentials.
pub fn peer_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// [`peer_ip`] as an extractor (it clones nothing).
pub struct PeerIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(peer_ip(&parts.extensions)))
    }
}

/// [`authenticate`], for a request from `address`: an address that keeps presenting credentials
/// that fail (guessing keys) is answered 429 before each guess costs a lookup, on every route
/// that authenticates (the management surfaces, and verify's and forward auth's verifier).
pub async fn authenticate_from(
    state: &AppState,
    token: &str,
    address: Option<&str>,
) -> Result<Principal, ApiError> {
    let failures = &state.auth_failures_by_addr;
    if let Some(address) = address {
        failures
            .check(address, state.now())
            .map_err(|retry_after_secs| ApiError::TooManyRequests { retry_after_secs })?;
    }
    let result = authenticate(state, token).await;
    if let (Err(ApiError::Unauthenticated(_)), Some(address)) = (&result, address) {
        let _ = failures.attempt(address, state.now());
    }
    result
}

/// Resolves a presented token (a login JWT or a keyward key) to the principal it speaks for.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let now = state.now();
    if jwt::looks_like_jwt(token) {
        let user_id = state
            .jwt
            .verify(token, now)
            .map_err(ApiError::Unauthenticated)?;
        let user = user_by_id(state, user_id, now)
            .await?
            .ok_or(ApiError::Unauthenticated(AuthFailure::Invalid))?;
        return Ok(Principal {
            user_id: user.id,
            role: user.role,
            tenant_id: user.tenant_id,
            credential: Credential::Session,
        });
    }
    let parsed =
        ParsedKey::parse(token).map_err(|_| ApiError::Unauthenticated(AuthFailure::Invalid))?;
    let key = key_by_digest(state, parsed.digest(), now)
        .await?
        .ok_or(ApiError::Unauthenticated(AuthFailure::Invalid))?;
    match key.status(now) {
        KeyStatus::Active => {}
        KeyStatus::Expired => return Err(ApiError::Unauthenticated(AuthFailure::Expired)),
        KeyStatus::Revoked => return Err(ApiError::Unauthenticated(AuthFailure::Invalid)),
    }
    let owner = user_by_id(state, key.owner_id, now)
        .await?
        .ok_or(ApiError::Unauthenticated(AuthFailure::Invalid))?;
    state.usage.record(key.id, now);
    Ok(Principal {
        user_id: owner.id,
        role: owner.role,
        tenant_id: owner.tenant_id,
        credential: Credential::ApiKey {
            key_id: key.id,
            scopes: key.scopes.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Ok("abc"));
        assert_eq!(bearer_token("bearer  abc "), Ok("abc"));
        assert_eq!(bearer_token("Basic abc"), Err(AuthFailure::NotBearer));
        assert_eq!(bearer_token("Bearer"), Err(AuthFailure::NotBearer));
        assert_eq!(bearer_token("abc"), Err(AuthFailure::NotBearer));
    }

    #[test]
    fn header_precedence() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_credential(&h), Err(AuthFailure::Missing));
        h.insert(AUTHORIZATION, "Token x".parse().unwrap());
        assert_eq!(presented_credential(&h), Err(AuthFailure::NotBearer));
        h.insert(API_KEY_HEADER, "kw_x".parse().unwrap());
        assert_eq!(
            presented_credential(&h),
            Err(AuthFailure::Ambiguous),
            "a key beside another scheme"
        );
        h.insert(AUTHORIZATION, "Bearer kw_x".parse().unwrap());
        assert_eq!(
            presented_credential(&h),
            Ok("kw_x"),
            "the same credential twice"
        );
        h.insert(AUTHORIZATION, "Bearer kw_y".parse().unwrap());
        assert_eq!(presented_credential(&h), Err(AuthFailure::Ambiguous));
        h.insert(API_KEY_HEADER, "".parse().unwrap());
        assert_eq!(
            presented_credential(&h),
            Ok("kw_y"),
            "an empty header is none"
        );
        h.append(API_KEY_HEADER, "kw_z".parse().unwrap());
        assert_eq!(presented_credential(&h), Err(AuthFailure::Ambiguous));
        h.remove(AUTHORIZATION);
        h.append(API_KEY_HEADER, "kw_w".parse().unwrap());
        assert_eq!(presented_credential(&h), Err(AuthFailure::Ambiguous));
        let mut h = HeaderMap::new();
        h.append(AUTHORIZATION, "Basic Zm9vOmJhcg==".parse().unwrap());
        h.append(AUTHORIZATION, "Bearer kw_x".parse().unwrap());
        assert_eq!(
            presented_credential(&h),
            Err(AuthFailure::Ambiguous),
            "two Authorization values"
        );
    }
}
