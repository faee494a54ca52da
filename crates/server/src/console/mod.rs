//! The web console: server-rendered pages for the people who own keys, in the same binary as the
//! API. Every page calls the same `keyward_core` operations as the API surfaces (the console never
//! does what the API refuses), and every action is a plain HTML form that works with JavaScript
//! off; `assets/console.js` only adds comfort (a copy button, confirmations).
//!
//! The locks are the API's, and a few of its own: sign-in is `keyward_core::console` (the API's
//! password check, throttles and audit; a server-side session); the session cookie is `HttpOnly`,
//! `SameSite=Strict`, `Path=/`, and `Secure` with the `__Host-` prefix behind HTTPS; every
//! state-changing form carries its session's CSRF token; every page is sent with a
//! Content-Security-Policy without `unsafe-inline`, `nosniff`, `no-referrer` and `no-store` (a
//! plaintext key is in one response only, and going back never shows it again).

mod chart;
mod pages;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use keyward_core::console::Resumed;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::error::ApiError;

/// The cookie that carries a console session's token over plain HTTP (a local installation).
pub const SESSION_COOKIE: &str = "keyward_session";
/// The same behind HTTPS: the `__Host-` prefix (RFC 6265bis section 4.1.3.2) binds it to this
/// host, `Secure` and `Path=/`.
pub const SECURE_SESSION_COOKIE: &str = "__Host-keyward_session";

/// `Content-Security-Policy` of every console page: its own scripts, styles and forms only.
const CSP: &str =
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The console's routes (every path [`is_console_path`] names).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/sign-in", get(pages::sign_in_page).post(pages::sign_in))
        .route("/sign-out", post(pages::sign_out))
        .route("/keys", get(pages::keys).post(pages::create_key))
        .route("/keys/new", get(pages::new_key))
        .route("/keys/dormant", get(pages::dormant))
        .route("/keys/{id}", get(pages::key).post(pages::rename_key))
        .route("/keys/{id}/rotate", post(pages::rotate_key))
        .route("/keys/{id}/revoke", post(pages::revoke_key))
        .route("/tenants", get(pages::tenants).post(pages::create_tenant))
        .route(
            "/tenants/{id}",
            get(pages::tenant).post(pages::update_tenant),
        )
        .route("/tenants/{id}/delete", post(pages::delete_tenant))
        .route("/users", get(pages::users).post(pages::create_user))
        .route("/users/{id}/status", post(pages::set_user_status))
        .route("/users/{id}/delete", post(pages::delete_user))
        .route("/sessions", get(pages::sessions))
        .route("/sessions/{id}/end", post(pages::end_session))
        .route("/audit", get(pages::audit))
        .route("/stats", get(pages::stats))
        .route("/export", get(pages::export))
        .route("/assets/console.css", get(pages::css))
        .route("/assets/console.js", get(pages::js))
        .layer(axum::middleware::map_response(secure_headers))
}

/// Whether `path` is the console's (its pages answer errors as pages).
pub fn is_console_path(path: &str) -> bool {
    let path = path.trim_start_matches('/');
    let under = |root: &str| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    path.is_empty()
        || [
            "sign-in", "sign-out", "keys", "tenants", "users", "sessions", "audit", "stats",
            "export", "assets",
        ]
        .into_iter()
        .any(under)
}

async fn secure_headers(response: Response) -> Response {
    secured(response)
}

/// `response` with the headers every console page carries (also the error pages made before a
/// route's layers, e.g. for a method a page does not take).
fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Why a console request did not get its page.
#[derive(Debug)]
pub enum ConsoleError {
    /// No live session: to the sign-in page.
    SignIn,
    /// A state-changing form without its session's CSRF token.
    Csrf,
    /// What an operation or an extractor refused.
    Api(ApiError),
    /// A page that failed to render.
    Render(askama::Error),
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<keyward_core::Error> for ConsoleError {
    fn from(e: keyward_core::Error) -> Self {
        Self::Api(e.into())
    }
}

impl From<askama::Error> for ConsoleError {
    fn from(e: askama::Error) -> Self {
        Self::Render(e)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => Redirect::to("/sign-in").into_response(),
            Self::Csrf => error_page(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "This form has expired or did not come from this site. Go back, reload the page and try again.",
            ),
            Self::Api(e) => render_error(e),
            Self::Render(e) => render_error(ApiError::Internal(format!("rendering a page: {e}"))),
        }
    }
}

/// An [`ApiError`] as a page (the console's surface; see `api::dialect::Surface`).
pub fn render_error(error: ApiError) -> Response {
    error.log();
    let status = error.status();
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::UNAUTHORIZED => "Not signed in",
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
        s if s.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    let message = match status {
        StatusCode::NOT_FOUND => "There is nothing here that you may see.".to_owned(),
        _ => error.message(),
    };
    let mut response = error_page(status, title, &message);
    error.decorate(&mut response);
    response
}

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let page = pages::ErrorPage { title, message };
    secured(match askama::Template::render(&page) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, title.to_owned()).into_response(),
    })
}

/// The session cookie's token in a request, if any. Behind HTTPS only the `__Host-` cookie
/// counts: an unprefixed one may have been planted by a sibling host or over plain HTTP, and would
/// otherwise hide (or replace) the real session.
fn session_token(parts: &Parts, https: bool) -> Option<String> {
    let name = if https {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    };
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A page's query parameters, refused as a page (not the API's JSON) when they do not parse.
pub struct PageQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for PageQuery<T> {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let crate::extract::QueryParams(query) =
            crate::extract::QueryParams::from_request_parts(parts, state).await?;
        Ok(Self(query))
    }
}

/// The id in a page's path (`/keys/{id}`, `/tenants/{id}`): a UUID in its standard form, else
/// the page does not exist (404 page).
pub struct PageId(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PageId {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let not_found = || ConsoleError::Api(ApiError::NotFound("page"));
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| not_found())?;
        crate::extract::standard_uuid(&raw)
            .map(Self)
            .ok_or_else(not_found)
    }
}

/// A signed-in person: the session's caller and the CSRF token its forms carry, and the token
/// itself (for sign-out).
pub struct Signed {
    pub resumed: Resumed,
    pub token: secrecy::SecretString,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = session_token(parts, state.https()).ok_or(ConsoleError::SignIn)?;
        let meta = crate::auth::meta_of(parts);
        match keyward_core::console::resume(state, &token, meta).await {
            Ok(resumed) => Ok(Self {
                resumed,
                token: token.into(),
            }),
            Err(keyward_core::Error::Unauthenticated(_)) => Err(ConsoleError::SignIn),
            Err(e) => Err(e.into()),
        }
    }
}

/// A state-changing form of a signed-in person, its CSRF token checked before anything else is
/// read from it: fields of `T`, plus `csrf`.
pub struct SignedForm<T> {
    pub signed: Signed,
    pub form: T,
}

#[derive(serde::Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for SignedForm<T> {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let limit = crate::extract::MAX_BODY_BYTES;
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge(limit))?;
        // `serde_urlencoded` ignores fields a struct does not name: the token is read alone
        // first, so that a form is checked whatever else it carries.
        let csrf: CsrfOnly = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ApiError::bad_request("invalid_form", e.to_string()))?;
        if !keyward_core::console::csrf_matches(&signed.resumed, &csrf.csrf) {
            return Err(ConsoleError::Csrf);
        }
        let form = crate::extract::from_urlencoded(&bytes, "form")?;
        Ok(Self { signed, form })
    }
}

/// Whether the request came from a page of this site, for the one form without a session:
/// sign-in (login CSRF). A browser says where a request comes from in `Sec-Fetch-Site` (Fetch
/// Metadata); one too old for it, in `Origin` (RFC 6454), which is `null` under this site's
/// `no-referrer` policy and then says nothing. A request with neither (not a browser's) is let
/// through: it carries no cookie it could abuse.
fn same_origin(parts: &Parts) -> bool {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(site) = header("sec-fetch-site") {
        return site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none");
    }
    let Some(origin) = header("origin").filter(|o| o != "null") else {
        return true;
    };
    let host = header("host");
    let origin_host = origin.split_once("://").map(|(_, host)| host.to_owned());
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(&h))
}
