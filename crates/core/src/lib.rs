//! keyward's operations, with no HTTP in them: what a caller may do, checked against policy and
//! carried out on the store with its audit entry; and the verify path that answers from memory.
//! Every surface (the native v1 API, the Estuary and form-encoded surfaces, the CLI) calls these
//! and only translates its wire shapes.
//!
//! Arrows point one way: `keyward-server` (HTTP) and the CLI -> this crate -> (`keyward-domain`,
//! the `keyward-store` trait). Inside, the operations (`keys`, `tenants`, `users`, `login`,
//! `verify`, `stats`, `export`, `audit`) sit on `auth` (credentials into principals), which sits
//! on `lookup` (cache-backed reads), which sits on the verify path's state (`cache`, `usage`,
//! `ratelimit`, `outage`, `metrics`). Nothing below calls up.
//!
//! One error type, [`Error`], with no status codes: each surface maps it once.

pub mod audit;
pub mod auth;
pub mod cache;
mod context;
pub mod error;
pub mod export;
pub mod keys;
pub mod login;
pub mod lookup;
pub mod metrics;
pub mod outage;
pub mod page;
pub mod ratelimit;
pub mod stats;
pub mod tenants;
pub mod usage;
pub mod users;
pub mod verify;

pub use context::{Keyward, Settings};
pub use error::{AuthFailure, Error, Result};
