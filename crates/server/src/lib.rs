//! keyward over HTTP, and only HTTP: the route table, the surfaces (`api::v1`, `api::estuary`,
//! `api::apikey`, and the web console in `console`), extractors, the OpenAPI document, request ids, and serving on a socket. What a
//! request may do and what it does is `keyward_core`'s; a handler extracts, calls one operation
//! and renders its answer in its surface's shape.
//!
//! Arrows point one way: the `keyward` binary -> this crate -> `keyward_core` -> (domain, store
//! trait). Inside, `app` (state, route table, layers) and `serve` (sockets) sit on the surfaces in
//! `api`, which sit on `extract`, `auth` (credentials out of headers), `error` (every status
//! code) and `request_label`. Handlers never see sqlx types; nothing below sees axum.

pub mod api;
pub mod app;
pub mod auth;
pub mod console;
pub mod error;
pub mod extract;
pub mod request_label;
pub mod serve;
pub mod webhook_sender;

pub use app::{router, AppState, Settings};
pub use serve::serve;
