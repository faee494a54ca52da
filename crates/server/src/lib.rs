//! keyward's HTTP server: state, router, surfaces, and the command line that runs them.
//!
//! Arrows point one way: `api` -> `service` -> (`auth`, domain) -> store trait. Handlers
//! never see sqlx types; the store never sees axum.

pub mod api;
pub mod app;
pub mod auth;
pub mod error;
pub mod extract;
pub mod request_label;
pub mod serve;

pub use app::{router, AppState, Settings};
pub use serve::serve;
