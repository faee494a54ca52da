//! The one error type of keyward's operations. It says what went wrong in the domain's terms and
//! never how a surface answers it: no status codes here. Each surface maps it once, exhaustively
//! (the HTTP surfaces in `keyward_server::error`, the CLI by its message).
//!
//! Messages of the caller's mistakes name the offending field, are cut to
//! [`MAX_MESSAGE_CHARS`], and never echo a secret. An [`Error::Internal`] cause is for the log
//! only.

use keyward_domain::Forbidden;
use keyward_store::StoreError;

/// Why a credential failed to authenticate. Surfaces word these differently (Estuary has its
/// own reason codes), so the cause is kept apart from any message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential at all.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    NotBearer,
    /// A credential that is unknown, malformed, revoked or badly signed.
    Invalid,
    /// A credential that was valid and has expired.
    Expired,
    /// More than one credential, and they differ (RFC 6750 section 3.1: `invalid_request`).
    Ambiguous,
}

/// The longest message of an [`Error::Invalid`], in characters.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// What an operation refused or failed at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input breaks a rule. `code` is stable (`invalid_field`, ...); `message`
    /// names the field.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The credential did not authenticate.
    #[error("not authenticated: {0:?}")]
    Unauthenticated(AuthFailure),
    /// Authenticated, but this credential or role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing the caller may see has this id. `.0` is the resource, e.g. "api key".
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change clashes with what exists (a taken email or slug).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Too many attempts (sign-ins, failing credentials); retry after this many seconds.
    #[error("too many attempts; retry in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    /// Storage cannot be reached; retry shortly.
    #[error("storage is unavailable")]
    Unavailable,
    /// More work of this kind is waiting than keyward takes on (password hashing).
    #[error("too many requests of this kind at once")]
    Busy,
    /// A fault of keyward's own or of its storage; the cause is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The result of an operation; `E` defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Invalid`]. Messages may quote what the caller sent (a parser's complaint), so
    /// they are cut to [`MAX_MESSAGE_CHARS`]: a caller's text is never echoed at any length.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        let message = match keyward_domain::text::excerpt(&message, MAX_MESSAGE_CHARS) {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(cut) => cut,
        };
        Self::Invalid { code, message }
    }

    /// `invalid_field`: "`field`: `why`".
    pub fn invalid_field(field: &str, why: impl std::fmt::Display) -> Self {
        Self::invalid("invalid_field", format!("{field}: {why}"))
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("resource"),
            StoreError::Conflict(what) => Self::Conflict {
                code: "conflict",
                message: format!("{what} already exists"),
            },
            StoreError::Unavailable(_) => Self::Unavailable,
            StoreError::Other(cause) => Self::Internal(cause),
        }
    }
}

impl From<Forbidden> for Error {
    fn from(e: Forbidden) -> Self {
        Self::Forbidden(e.to_string())
    }
}
