//! The wire surfaces. Each is its own module with its own `router()`, translating its wire
//! shapes to the same `keyward_core` operations.

pub mod apikey;
pub mod dialect;
pub mod estuary;
pub mod health;
pub mod openapi;
pub mod v1;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `Cache-Control: no-store` (RFC 9111 section 5.2.2.5): no cache on the way keeps the answer.
pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// An answer that carries a key's plaintext, which exists only in this response: rendered as
/// JSON, always with `Cache-Control: no-store` (and `Location` when given). Its `Debug` is the
/// body's, whose plaintext is a `SecretString` (so it prints no secret).
#[derive(Debug)]
pub struct ShownOnce<B> {
    status: StatusCode,
    location: Option<String>,
    body: B,
}

impl<B: Serialize> ShownOnce<B> {
    /// 201 Created, at `location`.
    pub fn created(location: String, body: B) -> Self {
        Self {
            status: StatusCode::CREATED,
            location: Some(location),
            body,
        }
    }

    /// `status` (the Estuary surface answers 200), without a `Location`.
    pub fn with_status(status: StatusCode, body: B) -> Self {
        Self {
            status,
            location: None,
            body,
        }
    }
}

impl<B: Serialize> IntoResponse for ShownOnce<B> {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        let headers = response.headers_mut();
        no_store(headers);
        if let Some(v) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, v);
        }
        response
    }
}
