//! The native v1 API: the reference's API-key routes plus keyward's additions, in the same
//! style (snake_case JSON, UUID ids, RFC 3339 times, `{"error":{"code","message"}}`).

pub mod audit;
pub mod auth;
pub mod forward;
pub mod import;
pub mod keys;
pub mod leaks;
pub mod owner_limits;
pub mod stats;
pub mod tenants;
pub mod users;
pub mod verify;
pub mod webhooks;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use keyward_core::page::Page;

/// The native routes but verify's: each documented one registered from its handler's
/// `#[utoipa::path]` (so the router and the OpenAPI document come from this one table), and the
/// pages about the API itself.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(crate::api::health::health))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(tenants::create, tenants::list))
        .routes(routes!(tenants::get, tenants::update, tenants::delete))
        .routes(routes!(users::create, users::list))
        .routes(routes!(users::me))
        .routes(routes!(users::get, users::update, users::delete))
        .routes(routes!(users::set_password))
        .routes(routes!(users::change_my_password))
        .routes(routes!(users::sessions))
        .routes(routes!(users::end_session))
        .routes(routes!(owner_limits::mine))
        .routes(routes!(owner_limits::get, owner_limits::set))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(import::import))
        .routes(routes!(import::shapes))
        .routes(routes!(keys::dormant))
        .routes(routes!(keys::get, keys::update, keys::revoke))
        .routes(routes!(keys::rotate))
        .routes(routes!(audit::list))
        .routes(routes!(stats::stats))
        .routes(routes!(stats::export))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::retry))
        .routes(routes!(webhooks::test))
        .routes(routes!(leaks::report))
        .routes(routes!(leaks::github))
        .route(
            "/api/v1/openapi.json",
            get(crate::api::openapi::openapi_json),
        )
        .route("/docs", get(crate::api::openapi::docs_redirect))
        .route("/docs/", get(crate::api::openapi::docs))
        .route("/docs/{*file}", get(crate::api::openapi::docs))
}

/// The hot path, apart from the rest: verify, and forward auth (on every method a proxy forwards;
/// TRACE and CONNECT are not among them: 405).
pub fn verify_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify::verify))
        .routes(routes!(forward::forward))
        .routes(routes!(forward::forward_path))
        // The path form with nothing appended but `/` (a client asked for the API's root): the
        // router's catch-all matches no empty rest. Documented with `forwardAuthPath`.
        .route(
            "/api/v1/auth/forward/",
            get(forward::forward_path)
                .head(forward::forward_path)
                .post(forward::forward_path)
                .put(forward::forward_path)
                .patch(forward::forward_path)
                .delete(forward::forward_path)
                .options(forward::forward_path),
        )
}

/// The reference's error shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct Error {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// Writes a secret (a plaintext key shown once, a session's JWT) into a response body: the one
/// place a secret is exposed to the wire, never to a log.
pub fn expose_secret<S: serde::Serializer>(
    secret: &secrecy::SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secrecy::ExposeSecret::expose_secret(secret))
}

/// Header carrying the cursor of the next page, so list bodies stay plain arrays.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

/// A page as a JSON array, with `X-Next-Cursor` when another page exists.
pub fn page_response<T, W: Serialize>(page: Page<T>, view: impl Fn(T) -> W) -> Response {
    let next = page.next;
    let body: Vec<W> = page.items.into_iter().map(view).collect();
    let mut response = axum::Json(body).into_response();
    if let Some(cursor) = next {
        if let Ok(v) = HeaderValue::from_str(&cursor.to_string()) {
            response.headers_mut().insert(NEXT_CURSOR_HEADER, v);
        }
    }
    response
}

/// 201 with `Location` (a body with a plaintext key is a [`crate::api::ShownOnce`] instead).
pub fn created<B: Serialize>(location: String, body: B) -> Response {
    let mut response = (axum::http::StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}
