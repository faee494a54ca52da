//! The native v1 API: the reference's API-key routes plus keyward's additions, in the same
//! style (snake_case JSON, UUID ids, RFC 3339 times, `{"error":{"code","message"}}`).

pub mod audit;
pub mod auth;
pub mod forward;
pub mod keys;
pub mod stats;
pub mod tenants;
pub mod users;
pub mod verify;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use keyward_core::page::Page;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/health", get(crate::api::health::health))
        .route(
            "/api/v1/openapi.json",
            get(crate::api::openapi::openapi_json),
        )
        .route("/docs", get(crate::api::openapi::docs))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/tenants", post(tenants::create).get(tenants::list))
        .route(
            "/api/v1/tenants/{id}",
            get(tenants::get)
                .patch(tenants::update)
                .delete(tenants::delete),
        )
        .route("/api/v1/users", post(users::create))
        .route("/api/v1/users/me", get(users::me))
        .route("/api/v1/api-keys", post(keys::create).get(keys::list))
        .route("/api/v1/api-keys/dormant", get(keys::dormant))
        .route(
            "/api/v1/api-keys/{id}",
            get(keys::get).patch(keys::update).delete(keys::revoke),
        )
        .route("/api/v1/api-keys/{id}/rotate", post(keys::rotate))
        .route("/api/v1/audit-logs", get(audit::list))
        .route("/api/v1/stats", get(stats::stats))
        .route("/api/v1/export", get(stats::export))
}

/// The hot path, apart from the rest: verify and forward auth.
pub fn verify_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/keys/verify", post(verify::verify))
        // The methods a proxy forwards; TRACE and CONNECT are not among them (405).
        .route(
            "/api/v1/auth/forward",
            get(forward::forward)
                .head(forward::forward)
                .post(forward::forward)
                .put(forward::forward)
                .patch(forward::forward)
                .delete(forward::forward)
                .options(forward::forward),
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
