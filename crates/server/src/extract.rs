//! Extractors that turn every malformed request into an [`ApiError`] (a 4xx in the surface's
//! own shape) instead of axum's plain-text rejections, and that never alter input silently:
//!
//! - A body's media type is parsed (RFC 9110 section 8.3.1: type and subtype case-insensitive,
//!   parameters allowed; `charset`, when given, must be UTF-8), the same way on every surface.
//! - A compressed body (`Content-Encoding` other than `identity`) is a 415 (RFC 9110 section
//!   15.5.16), never read as if it were plain.
//! - A declared body larger than [`MAX_BODY_BYTES`] is a 413 before any of it is read (so an
//!   `Expect: 100-continue` client is told at once); a body that stops arriving before the
//!   operator's body-read timeout is a 408.
//! - URL-encoded text (query strings, form bodies) must decode to UTF-8: invalid bytes are a 400,
//!   never replaced with U+FFFD.
//! - Bodies are read whole and parsed with unknown fields refused (each input type says
//!   `deny_unknown_fields`), so no part of a body is dropped unread.

use std::future::Future as _;
use std::task::Poll;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::ApiError;

/// The largest request body any route accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What a request's `Content-Type` says its body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json`, or any `application/*+json` (RFC 6839).
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// JSON lines: `application/jsonl`, `application/x-ndjson` or `application/x-jsonlines`.
    JsonLines,
    /// Some other type.
    Other,
    /// No `Content-Type` header.
    Absent,
}

impl MediaType {
    /// Parses the request's `Content-Type`. A header that is not a media type, or that names a
    /// charset other than UTF-8, is a 415.
    pub fn of(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut values = headers.get_all(header::CONTENT_TYPE).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return if headers.contains_key(header::CONTENT_TYPE) {
                Err(unsupported("more than one Content-Type"))
            } else {
                Ok(Self::Absent)
            };
        };
        // The usual value, on every verify: no parse.
        if value.as_bytes().eq_ignore_ascii_case(b"application/json") {
            return Ok(Self::Json);
        }
        // RFC 9110 allows optional white space around each `;`, which `mime` does not read.
        let text = value
            .to_str()
            .map_err(|_| unsupported("Content-Type is not a media type"))?;
        let mime: Option<mime::Mime> = if text.contains(';') {
            text.split(';')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(";")
                .parse()
                .ok()
        } else {
            text.trim().parse().ok()
        };
        let mime = mime.ok_or_else(|| unsupported("Content-Type is not a media type"))?;
        let mut charsets = mime.params().filter(|(name, _)| *name == mime::CHARSET);
        match (charsets.next(), charsets.next()) {
            (Some((_, charset)), None) if !charset.as_str().eq_ignore_ascii_case("utf-8") => {
                return Err(unsupported("the only charset accepted is utf-8"));
            }
            (Some(_), Some(_)) => return Err(unsupported("more than one charset")),
            _ => {}
        }
        // `mime` keeps type and subtype lower-cased, so these comparisons are case-insensitive.
        Ok(match (mime.type_(), mime.subtype(), mime.suffix()) {
            (mime::APPLICATION, mime::JSON, _) | (mime::APPLICATION, _, Some(mime::JSON)) => {
                Self::Json
            }
            (mime::APPLICATION, mime::WWW_FORM_URLENCODED, _) => Self::Form,
            (mime::APPLICATION, sub, None)
                if ["jsonl", "x-ndjson", "x-jsonlines"].contains(&sub.as_str()) =>
            {
                Self::JsonLines
            }
            _ => Self::Other,
        })
    }
}

fn unsupported(why: &str) -> ApiError {
    ApiError::UnsupportedMediaType(why.into())
}

/// Reads a request's body whole, as the module's rules say: 415 for a content coding, 413 for
/// a body (declared or sent) over [`MAX_BODY_BYTES`], 408 when it stops arriving for longer
/// than `timeout`, 400 when the client ends it early.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    read_body_up_to(headers, body, timeout, MAX_BODY_BYTES).await
}

/// [`read_body`] with another limit than [`MAX_BODY_BYTES`] (an import's).
pub async fn read_body_up_to(
    headers: &HeaderMap,
    body: Body,
    timeout: Duration,
    limit: usize,
) -> Result<Bytes, ApiError> {
    check_declared_up_to(headers, limit)?;
    let mut collect = std::pin::pin!(axum::body::to_bytes(body, limit));
    // A body that came with its head (most do) is there at once: no timer for it.
    let at_once = std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
    let read = match at_once {
        Poll::Ready(read) => read,
        Poll::Pending => tokio::time::timeout(timeout, collect)
            .await
            .map_err(|_| ApiError::RequestTimeout)?,
    };
    match read {
        Ok(bytes) => Ok(bytes),
        Err(e) if is_length_limit(&e) => Err(ApiError::PayloadTooLarge(limit)),
        Err(_) => Err(ApiError::bad_request(
            "body_unreadable",
            "the request body ended before it was complete",
        )),
    }
}

/// What a request says of its body before any of it is read: 415 for a content coding, 413 for
/// a declared length over [`MAX_BODY_BYTES`].
pub fn check_declared(headers: &HeaderMap) -> Result<(), ApiError> {
    check_declared_up_to(headers, MAX_BODY_BYTES)
}

/// [`check_declared`] with another limit than [`MAX_BODY_BYTES`].
pub fn check_declared_up_to(headers: &HeaderMap, limit: usize) -> Result<(), ApiError> {
    for coding in headers.get_all(header::CONTENT_ENCODING) {
        let identity = coding.to_str().is_ok_and(|c| {
            c.split(',')
                .all(|c| c.trim().eq_ignore_ascii_case("identity"))
        });
        if !identity {
            return Err(unsupported(
                "Content-Encoding is not supported: send the body uncompressed",
            ));
        }
    }
    // hyper decodes `chunked` alone: any other transfer coding would be read as if it were none.
    for coding in headers.get_all(header::TRANSFER_ENCODING) {
        let chunked_only = coding.to_str().is_ok_and(|c| {
            c.split(',')
                .all(|c| c.trim().eq_ignore_ascii_case("chunked"))
        });
        if !chunked_only {
            return Err(unsupported(
                "Transfer-Encoding other than chunked is not supported",
            ));
        }
    }
    if declared_length(headers).is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    Ok(())
}

/// The `Content-Length` a request declares (a malformed one is left to hyper, which refuses it).
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

async fn body_of(req: Request, state: &AppState) -> Result<(Parts, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(&parts.headers, body, state.http().body_read_timeout).await?;
    Ok((parts, bytes))
}

/// `T` from a body of JSON text, which is an object (every body keyward takes is one).
/// Malformed JSON is `malformed_json`; well-formed JSON that is not a `T` (an array, a wrong type,
/// an unknown or missing field) is `invalid_body`, naming the field.
///
/// An array is refused before serde sees it: a derived struct would take an array of its fields
/// in order (`["name", "slug", null, null, null]`), which no client means and no schema allows.
/// Nested objects are read through [`Obj`] for the same reason.
///
/// A number written with a zero fraction (`20.0`) is the integer it equals, as JSON Schema says:
/// a body refused for a float where an integer belongs is read again with such numbers as
/// integers (only then, so that the usual body costs one parse).
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first == Some(&b'[') {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object, not an array",
        ));
    }
    let first = parse_json(bytes);
    if let Err(ApiError::BadRequest {
        code: "invalid_body",
        ..
    }) = &first
    {
        if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if integral_floats_as_integers(&mut value) {
                if let Ok(again) = serde_json::to_vec(&value) {
                    if let Ok(parsed) = parse_json(&again) {
                        return Ok(parsed);
                    }
                }
            }
        }
    }
    first
}

/// Rewrites every number with a zero fraction that fits an `i64` as that integer; true when any
/// was rewritten.
fn integral_floats_as_integers(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            match n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                Some(f) => {
                    *value = serde_json::Value::from(f as i64);
                    true
                }
                None => false,
            }
        }
        // Every element is visited: no short circuit.
        serde_json::Value::Array(items) => items
            .iter_mut()
            .map(integral_floats_as_integers)
            .fold(false, |a, b| a | b),
        serde_json::Value::Object(map) => map
            .values_mut()
            .map(integral_floats_as_integers)
            .fold(false, |a, b| a | b),
        _ => false,
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| (e.path().to_string(), e.into_inner()))
        .and_then(|v| de.end().map(|()| v).map_err(|e| (String::new(), e)));
    value.map_err(|(path, inner)| {
        let code = match inner.classify() {
            serde_json::error::Category::Data => "invalid_body",
            _ => "malformed_json",
        };
        let message = if path == "." || path.is_empty() {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        };
        ApiError::bad_request(code, message)
    })
}

/// `T` from `application/x-www-form-urlencoded` text (a query string or a form body), which
/// must decode to UTF-8.
pub fn from_urlencoded<T: DeserializeOwned>(raw: &[u8], what: &'static str) -> Result<T, ApiError> {
    strict_urlencoded(raw, what)?;
    serde_urlencoded::from_bytes(raw).map_err(|e| ApiError::bad_request(what, e.to_string()))
}

/// Checks that every name and value of URL-encoded text decodes to UTF-8 (the WHATWG URL
/// standard's `application/x-www-form-urlencoded` parser would replace what does not).
pub fn strict_urlencoded(raw: &[u8], what: &'static str) -> Result<(), ApiError> {
    // Where nothing is percent-encoded, the text is checked as it is (borrowed, not copied).
    let valid = raw
        .split(|b| *b == b'&')
        .all(|pair| percent_encoding::percent_decode(pair).decode_utf8().is_ok());
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            what,
            "the text is not UTF-8 once percent-decoded",
        ))
    }
}

/// A JSON body. 415 unless the request says JSON; then as [`from_json`].
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if MediaType::of(req.headers())? != MediaType::Json {
            return Err(unsupported("expected Content-Type: application/json"));
        }
        let (_, bytes) = body_of(req, state).await?;
        from_json(&bytes).map(Self)
    }
}

/// The largest JSON lines body (an import's), in bytes: larger imports are split, or run with
/// `keyward import`.
pub const MAX_JSON_LINES_BYTES: usize = 64 * 1024 * 1024;

/// A JSON lines body (an import's), whole: 415 unless the request says JSON lines, 413 over
/// [`MAX_JSON_LINES_BYTES`], 400 unless it is UTF-8.
pub struct JsonLinesBody(pub String);

impl FromRequest<AppState> for JsonLinesBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if MediaType::of(req.headers())? != MediaType::JsonLines {
            return Err(unsupported(
                "expected Content-Type: application/jsonl (or application/x-ndjson)",
            ));
        }
        let (parts, body) = req.into_parts();
        let timeout = state.http().body_read_timeout;
        let bytes = read_body_up_to(&parts.headers, body, timeout, MAX_JSON_LINES_BYTES).await?;
        String::from_utf8(bytes.into())
            .map(Self)
            .map_err(|_| ApiError::bad_request("body_not_utf8", "the body is not UTF-8"))
    }
}

/// A form-encoded body, or a JSON one (the `/api/apikey` surface accepts both): chosen by the
/// parsed `Content-Type`; any other type is a 415.
pub struct FormOrJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for FormOrJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let kind = MediaType::of(req.headers())?;
        if !matches!(kind, MediaType::Json | MediaType::Form) {
            return Err(unsupported(
                "expected Content-Type: application/x-www-form-urlencoded or application/json",
            ));
        }
        let (_, bytes) = body_of(req, state).await?;
        match kind {
            MediaType::Json => from_json(&bytes).map(Self),
            _ => from_urlencoded(&bytes, "invalid_form").map(Self),
        }
    }
}

/// A JSON body that may be absent altogether: an empty body means `T::default()`. A body that is
/// there must be JSON (415 otherwise), so that it is never ignored.
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let kind = MediaType::of(req.headers())?;
        let (_, bytes) = body_of(req, state).await?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        if kind != MediaType::Json {
            return Err(unsupported(
                "a body was sent: expected Content-Type: application/json",
            ));
        }
        from_json(&bytes).map(Self)
    }
}

/// The body of a route that takes none: empty, or an empty JSON object (which some clients send
/// by habit, the Estuary client with every POST and DELETE). Anything else would be dropped
/// unread, so it is a 400.
pub struct NoBody;

impl FromRequest<AppState> for NoBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, bytes) = body_of(req, state).await?;
        if is_empty_body(&bytes) {
            Ok(Self)
        } else {
            Err(unexpected_body(&parts))
        }
    }
}

/// No body, or one that says nothing: an empty JSON object.
pub fn is_empty_body(bytes: &[u8]) -> bool {
    let text = bytes.trim_ascii();
    text.is_empty()
        || text
            .strip_prefix(b"{")
            .and_then(|t| t.strip_suffix(b"}"))
            .is_some_and(|t| t.trim_ascii().is_empty())
}

/// The 400 for a body sent to a route that takes none.
pub fn unexpected_body(parts: &Parts) -> ApiError {
    ApiError::bad_request(
        "unexpected_body",
        format!(
            "{} {} takes no request body",
            parts.method,
            parts.uri.path()
        ),
    )
}

/// The query of a route that takes none: a query string would be dropped unread (a misspelt
/// parameter taken for no parameter), so it is a 400.
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.uri.query() {
            None | Some("") => Ok(Self),
            Some(_) => Err(ApiError::bad_request(
                "unexpected_query",
                format!(
                    "{} {} takes no query parameters",
                    parts.method,
                    parts.uri.path()
                ),
            )),
        }
    }
}

/// Query parameters, decoded strictly (each parameter type refuses names it does not know); a wrong one is a 400 naming it.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        from_urlencoded(query.as_bytes(), "invalid_query").map(Self)
    }
}

/// The UUID a path segment names in its standard form (see [`IdPath`]), if it does.
pub fn standard_uuid(raw: &str) -> Option<Uuid> {
    Some(raw)
        .filter(|raw| raw.len() == 36)
        .and_then(|raw| Uuid::try_parse(raw).ok())
}

/// A UUID path segment in its standard form (RFC 9562: 36 characters, hyphenated; hex digits
/// in either case); anything else, braced, URN or hyphenless forms included, is a 400.
pub struct IdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let StringPath(raw) = StringPath::from_request_parts(parts, state).await?;
        standard_uuid(&raw)
            .map(Self)
            .ok_or_else(|| ApiError::bad_request("invalid_id", "id: not a UUID"))
    }
}

/// A JSON object read as `T`. serde's derived structs also take an array of their fields in
/// order (`[true, ["1d"]]`), which no JSON client means and no schema allows: nested objects of
/// a body are read through this, which takes an object only.
#[derive(Debug, Clone)]
pub struct Obj<T>(pub T);

impl<'de, T: DeserializeOwned> serde::Deserialize<'de> for Obj<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        T::deserialize(serde_json::Value::Object(map))
            .map(Obj)
            .map_err(serde::de::Error::custom)
    }
}

/// Two UUID path segments, each as [`IdPath`] takes one (a resource and one of its parts).
pub struct IdsPath(pub Uuid, pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdsPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path((a, b)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(path_rejection)?;
        match (standard_uuid(&a), standard_uuid(&b)) {
            (Some(a), Some(b)) => Ok(Self(a, b)),
            _ => Err(ApiError::bad_request("invalid_id", "id: not a UUID")),
        }
    }
}

/// A JSON body kept as the bytes that came (a signature covers them exactly). 415 unless the
/// request says JSON; the body rules of [`read_body`] apply.
pub struct RawJsonBody(pub Bytes);

impl FromRequest<AppState> for RawJsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if MediaType::of(req.headers())? != MediaType::Json {
            return Err(unsupported("expected Content-Type: application/json"));
        }
        let (_, bytes) = body_of(req, state).await?;
        Ok(Self(bytes))
    }
}

/// A raw string path segment (percent-decoded; invalid UTF-8 is a 400).
pub struct StringPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for StringPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(s)| Self(s))
            .map_err(path_rejection)
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    ApiError::bad_request("invalid_path", rejection.body_text())
}

/// Deserializes an optional UUID in its standard form only (see [`standard_uuid`]).
pub fn optional_uuid<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(d)?;
    text.map(|t| {
        standard_uuid(&t).ok_or_else(|| {
            serde::de::Error::custom("not a UUID in its standard form (36 characters, hyphenated)")
        })
    })
    .transpose()
}

/// Deserializes an optional RFC 3339 time, read exactly (see
/// [`keyward_domain::clock::parse_rfc3339`]).
pub fn optional_time<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<time::OffsetDateTime>, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(d)?;
    text.map(|t| {
        keyward_domain::clock::parse_rfc3339(&t).ok_or_else(|| {
            serde::de::Error::custom("not an RFC 3339 date-time (YYYY-MM-DDThh:mm:ss[.f]Z|±hh:mm)")
        })
    })
    .transpose()
}

/// [`optional_time`] for a PATCH field (with `#[serde(default)]`): absent keeps, `null` clears.
pub fn patch_time<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<keyward_domain::Patch<time::OffsetDateTime>, D::Error> {
    optional_time(d).map(keyward_domain::Patch::from_nullable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    fn kind(content_type: &str) -> Result<MediaType, ApiError> {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        MediaType::of(&h)
    }

    #[test]
    fn media_types_are_parsed_not_matched() {
        for json in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/json ; charset=utf-8",
            "application/json\t;charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert_eq!(kind(json).unwrap(), MediaType::Json, "{json}");
        }
        for form in [
            "application/x-www-form-urlencoded",
            "APPLICATION/X-WWW-FORM-URLENCODED; charset=utf-8",
        ] {
            assert_eq!(kind(form).unwrap(), MediaType::Form, "{form}");
        }
        assert_eq!(kind("text/plain").unwrap(), MediaType::Other);
        assert_eq!(kind("application/jsonx").unwrap(), MediaType::Other);
        assert!(kind("application/json; charset=latin1").is_err());
        assert!(kind("application/json; charset=utf-8; charset=latin1").is_err());
        assert!(kind("json").is_err());
        assert_eq!(MediaType::of(&HeaderMap::new()).unwrap(), MediaType::Absent);
    }

    #[test]
    fn integral_floats_read_as_integers() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Limits {
            max: i64,
            day: Option<u8>,
        }
        let limits: Limits = from_json(br#"{"max": 20.0, "day": 5.0}"#).unwrap();
        assert_eq!(
            limits,
            Limits {
                max: 20,
                day: Some(5)
            }
        );
        assert!(from_json::<Limits>(br#"{"max": 20.5}"#).is_err());
        assert!(from_json::<Limits>(br#"{"max": 1e300}"#).is_err());
    }

    #[test]
    fn urlencoded_text_must_be_utf8() {
        assert!(strict_urlencoded(b"label=caf%C3%A9&x=1", "q").is_ok());
        assert!(strict_urlencoded(b"label=%FF", "q").is_err());
        assert!(strict_urlencoded(b"label=\xff", "q").is_err());
        assert!(strict_urlencoded(b"%C3=1", "q").is_err());
    }

    proptest! {
        /// The content-type parser never panics, and anything it calls JSON has the JSON
        /// essence or a `+json` suffix, whatever the case.
        #[test]
        fn content_types_never_panic(value in "[ -~]{0,80}") {
            if let Ok(v) = HeaderValue::from_str(&value) {
                let mut h = HeaderMap::new();
                h.insert(header::CONTENT_TYPE, v);
                if let Ok(MediaType::Json) = MediaType::of(&h) {
                    let lower = value.to_ascii_lowercase();
                    let essence = lower.split(';').next().unwrap().trim().to_owned();
                    prop_assert!(essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")), "{}", value);
                }
            }
        }

        /// Strict decoding agrees with decoding and then checking UTF-8, on any bytes.
        #[test]
        fn strict_decoding_agrees_with_utf8(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let lossless = raw.split(|b| *b == b'&').all(|p| String::from_utf8(percent_encoding::percent_decode(p).collect()).is_ok());
            prop_assert_eq!(strict_urlencoded(&raw, "q").is_ok(), lossless);
        }
    }
}
