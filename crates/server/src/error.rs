//! The one error type of the HTTP layer. [`ApiError`] decides every status code; the native
//! surface renders it as `{"error":{"code","message"}}` here, and each compatibility surface maps
//! the same values onto its own wire shape in one place. An operation's [`keyward_core::Error`]
//! becomes an `ApiError` in one exhaustive `From`.
//!
//! A 5xx never tells the client why: it says "internal error" and logs the cause inside the
//! request's span. Messages of 4xx name the offending field and never echo a secret.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyward_domain::Forbidden;
use keyward_store::StoreError;
use serde::Serialize;

use crate::request_label::Label;

pub use keyward_core::error::{AuthFailure, MAX_MESSAGE_CHARS};

#[derive(Debug)]
pub enum ApiError {
    /// 400. `code` is stable; `message` names the field.
    BadRequest {
        code: &'static str,
        message: String,
    },
    Unauthenticated(AuthFailure),
    /// 403: authenticated, but this credential or role may not do this.
    Forbidden(String),
    /// 404. `what` is the resource, e.g. "api key".
    NotFound(&'static str),
    MethodNotAllowed,
    Conflict {
        code: &'static str,
        message: String,
    },
    /// The body is larger than this many bytes (the route's limit).
    PayloadTooLarge(usize),
    /// 408: the request's body stopped arriving.
    RequestTimeout,
    /// 414: the request's target is longer than keyward reads.
    UriTooLong,
    /// 431: the request's header fields are more or larger than keyward reads.
    HeadersTooLarge,
    UnsupportedMediaType(String),
    TooManyRequests {
        retry_after_secs: u64,
    },
    Unavailable,
    /// 503: more work of this kind is waiting than keyward takes on (password hashing).
    Busy,
    Internal(String),
}

impl ApiError {
    /// A 400. Messages may quote what the caller sent (a parser's complaint), so they are cut
    /// to [`MAX_MESSAGE_CHARS`]: a caller's text is never echoed at any length.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        let message = match keyward_domain::text::excerpt(&message, MAX_MESSAGE_CHARS) {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(cut) => cut,
        };
        Self::BadRequest { code, message }
    }

    pub fn invalid_field(field: &str, why: impl std::fmt::Display) -> Self {
        Self::bad_request("invalid_field", format!("{field}: {why}"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(AuthFailure::Ambiguous) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The native surface's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } | Self::Conflict { code, .. } => code,
            Self::Unauthenticated(AuthFailure::Expired) => "credential_expired",
            Self::Unauthenticated(AuthFailure::Missing) => "unauthenticated",
            Self::Unauthenticated(AuthFailure::Ambiguous) => "ambiguous_credential",
            Self::Unauthenticated(_) => "invalid_credential",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Unavailable => "unavailable",
            Self::Busy => "busy",
            Self::Internal(_) => "internal",
        }
    }

    /// A message fit for the client.
    pub fn message(&self) -> String {
        match self {
            Self::BadRequest { message, .. } | Self::Conflict { message, .. } => message.clone(),
            Self::Unauthenticated(AuthFailure::Missing) => {
                "authentication required: send X-API-Key or Authorization: Bearer".into()
            }
            Self::Unauthenticated(AuthFailure::NotBearer) => {
                "the Authorization header must be \"Bearer <token>\"".into()
            }
            Self::Unauthenticated(AuthFailure::Invalid) => "the credential is not valid".into(),
            Self::Unauthenticated(AuthFailure::Expired) => "the credential has expired".into(),
            Self::Unauthenticated(AuthFailure::Ambiguous) => {
                "more than one credential: send one, in X-API-Key or Authorization: Bearer".into()
            }
            Self::Forbidden(why) => why.clone(),
            Self::NotFound(what) => format!("{what} not found"),
            Self::MethodNotAllowed => "method not allowed on this route".into(),
            Self::PayloadTooLarge(limit) => match *limit {
                n if n >= 1 << 20 && n % (1 << 20) == 0 => {
                    format!("the request body is larger than {} MiB", n >> 20)
                }
                n => format!(
                    "the request body is larger than {} KiB",
                    n.div_ceil(1 << 10)
                ),
            },
            Self::RequestTimeout => "the request body did not arrive in time".into(),
            Self::UriTooLong => "the request target is longer than 8 KiB".into(),
            Self::HeadersTooLarge => {
                "the request's header fields are larger than 16 KiB or more than 64".into()
            }
            Self::UnsupportedMediaType(why) => why.clone(),
            Self::TooManyRequests { retry_after_secs } => {
                format!("too many attempts; retry in {retry_after_secs} s")
            }
            Self::Unavailable => "the service is temporarily unavailable".into(),
            Self::Busy => "too many requests of this kind at once; retry shortly".into(),
            Self::Internal(_) => "internal error".into(),
        }
    }

    /// The native surface's body for this error, `{"error": {"code", "message"}}`.
    pub fn native_body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code(), "message": self.message()}})
    }

    /// Headers every surface adds for this error (e.g. `Retry-After`, `WWW-Authenticate`).
    pub fn decorate(&self, response: &mut Response) {
        let headers = response.headers_mut();
        match self {
            Self::TooManyRequests { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            // The connection is not reused after a body that was not read to its end.
            Self::RequestTimeout | Self::PayloadTooLarge(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            // The node recovers by itself within seconds of the database's return.
            Self::Unavailable | Self::Busy => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(1));
            }
            Self::Unauthenticated(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"keyward\""),
                );
            }
            _ => {}
        }
    }

    /// Logs what the client is not told, with the request it answers. Called by every
    /// surface's renderer.
    pub fn log(&self) {
        self.log_for(Label::current().as_ref());
    }

    /// [`Self::log`] for an error met outside the request's task (a streamed body).
    pub fn log_for(&self, request: Option<&Label>) {
        let (method, route, request_id) = Label::fields(request);
        match self {
            Self::Internal(cause) => {
                tracing::error!(%cause, method, route, request_id, "internal error");
            }
            Self::Unavailable => {
                tracing::warn!(method, route, request_id, "storage unavailable");
            }
            _ => {}
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.message(),
            },
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        self.decorate(&mut response);
        response
    }
}

impl From<keyward_core::Error> for ApiError {
    fn from(e: keyward_core::Error) -> Self {
        use keyward_core::Error as E;
        match e {
            E::Invalid { code, message } => Self::BadRequest { code, message },
            E::Unauthenticated(failure) => Self::Unauthenticated(failure),
            E::Forbidden(why) => Self::Forbidden(why),
            E::NotFound(what) => Self::NotFound(what),
            E::Conflict { code, message } => Self::Conflict { code, message },
            E::Throttled { retry_after_secs } => Self::TooManyRequests { retry_after_secs },
            E::Unavailable => Self::Unavailable,
            E::Busy => Self::Busy,
            E::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        keyward_core::Error::from(e).into()
    }
}

impl From<Forbidden> for ApiError {
    fn from(e: Forbidden) -> Self {
        keyward_core::Error::from(e).into()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
