//! Who is calling, as HTTP says it: the one credential a request presents (in `X-API-Key` or
//! `Authorization: Bearer`), where the request came from, and the extractors that hand both to
//! `keyward_core::auth`, which authenticates. Nothing here logs a credential.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
pub use keyward_core::auth::authenticate_from;
use keyward_core::auth::RequestMeta;

use crate::app::AppState;
use crate::error::{ApiError, AuthFailure};

pub const API_KEY_HEADER: &str = "x-api-key";
pub const REQUEST_ID_HEADER: &str = "x-request-id";
// The same as header names: a lookup by name hashes it at once, where one by `&str` first
// parses the text (on every request).
const API_KEY_NAME: HeaderName = HeaderName::from_static(API_KEY_HEADER);
pub const REQUEST_ID_NAME: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// Where a request came from (its client's address and request id), for the audit log.
pub struct Origin(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(meta_of(parts)))
    }
}

/// The audit facts of a request: the client's address and the `X-Request-Id` it carries.
pub fn meta_of(parts: &Parts) -> RequestMeta {
    let source_ip = peer_ip(&parts.extensions).map(|ip| ip.to_string());
    let request_id = parts
        .headers
        .get(REQUEST_ID_NAME)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    RequestMeta {
        source_ip,
        request_id,
    }
}

/// An authenticated caller of the management API (a `keyward_core` caller, as an extractor).
#[derive(Debug, Clone)]
pub struct Caller(pub keyward_core::auth::Caller);

impl std::ops::Deref for Caller {
    type Target = keyward_core::auth::Caller;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = presented_credential(&parts.headers).map_err(ApiError::Unauthenticated)?;
        let meta = meta_of(parts);
        let principal = authenticate_from(state, token, meta.source_ip.as_deref()).await?;
        Ok(Self(keyward_core::auth::Caller::new(principal, meta)))
    }
}

/// The one credential a request presents, in `X-API-Key` or `Authorization: Bearer`. An empty
/// header is no credential. Two different credentials (two `X-API-Key` values, or a key and a
/// different bearer token) are ambiguous and refused: a proxy or upstream that reads another of
/// them than keyward did would act on a credential keyward never checked.
pub fn presented_credential(headers: &HeaderMap) -> Result<&str, AuthFailure> {
    let mut found = None;
    offer_all(&mut found, headers.get_all(API_KEY_NAME), Ok)?;
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
