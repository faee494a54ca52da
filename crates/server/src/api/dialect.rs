//! What makes a compatibility surface speak its own error shape without repeating any logic:
//! a [`Dialect`] says how an [`ApiError`] looks on its wire, and [`InDialect`] /
//! [`BodyInDialect`] wrap the shared extractors so their rejections come out in that shape too.
//! Status codes, headers (`Retry-After`, `WWW-Authenticate`) and logging stay `ApiError`'s.

use std::marker::PhantomData;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::ApiError;

/// Which surface a path belongs to, for the answers made before (or instead of) a handler: an
/// unknown route, a method a route does not take, a body refused by the body policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Native,
    Estuary,
    Form,
    /// The web console's pages: errors are pages too.
    Console,
}

impl Surface {
    pub fn of(path: &str) -> Self {
        // `//user/x` names no route, but its client meant the Estuary surface.
        let path = path.trim_start_matches('/');
        let under = |root: &str| {
            path.strip_prefix(root)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("user") {
            Self::Estuary
        } else if under("api/apikey") {
            Self::Form
        } else if crate::console::is_console_path(path) {
            Self::Console
        } else {
            Self::Native
        }
    }

    /// `error`'s body in this surface's shape.
    pub fn error_body(self, error: &ApiError) -> serde_json::Value {
        match self {
            Self::Native | Self::Console => error.native_body(),
            Self::Estuary => super::estuary::Estuary::error_body(error),
            Self::Form => super::apikey::FormApi::error_body(error),
        }
    }

    /// `error` in this surface's shape.
    pub fn render(self, error: ApiError) -> Response {
        match self {
            Self::Native => error.into_response(),
            Self::Console => crate::console::render_error(error),
            Self::Estuary => DialectError::<super::estuary::Estuary>::from(error).into_response(),
            Self::Form => DialectError::<super::apikey::FormApi>::from(error).into_response(),
        }
    }
}

/// A wire dialect's error body.
pub trait Dialect: Send + Sync + 'static {
    fn error_body(error: &ApiError) -> serde_json::Value;
}

/// An [`ApiError`] rendered in dialect `D`.
pub struct DialectError<D>(pub ApiError, PhantomData<D>);

impl<D> From<ApiError> for DialectError<D> {
    fn from(e: ApiError) -> Self {
        Self(e, PhantomData)
    }
}

impl<D> From<keyward_core::Error> for DialectError<D> {
    fn from(e: keyward_core::Error) -> Self {
        Self(e.into(), PhantomData)
    }
}

impl<D> From<keyward_store::StoreError> for DialectError<D> {
    fn from(e: keyward_store::StoreError) -> Self {
        Self(e.into(), PhantomData)
    }
}

impl<D: Dialect> IntoResponse for DialectError<D> {
    fn into_response(self) -> Response {
        let error = self.0;
        error.log();
        let mut response = (error.status(), axum::Json(D::error_body(&error))).into_response();
        error.decorate(&mut response);
        response
    }
}

/// A handler result in dialect `D`.
pub type DialectResult<D, T> = Result<T, DialectError<D>>;

/// A request-parts extractor (`Caller`, `QueryParams`, ...) whose rejection speaks `D`.
pub struct InDialect<D, T>(pub T, pub PhantomData<D>);

impl<D: Dialect, T> FromRequestParts<AppState> for InDialect<D, T>
where
    T: FromRequestParts<AppState, Rejection = ApiError>,
{
    type Rejection = DialectError<D>;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        T::from_request_parts(parts, state)
            .await
            .map(|v| Self(v, PhantomData))
            .map_err(DialectError::from)
    }
}

/// A body extractor (`FormOrJson`, ...) whose rejection speaks `D`.
pub struct BodyInDialect<D, T>(pub T, pub PhantomData<D>);

impl<D: Dialect, T> FromRequest<AppState> for BodyInDialect<D, T>
where
    T: FromRequest<AppState, Rejection = ApiError>,
{
    type Rejection = DialectError<D>;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        T::from_request(req, state)
            .await
            .map(|v| Self(v, PhantomData))
            .map_err(DialectError::from)
    }
}
