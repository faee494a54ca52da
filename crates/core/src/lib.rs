//! keyward's operations, with no HTTP in them: what a caller may do, checked against policy and
//! carried out on the store with its audit entry; and the verify path that answers from memory.
//! Every surface (the native v1 API, the Estuary and form-encoded surfaces, the CLI) calls these
//! and only translates its wire shapes. One error type, [`Error`], with no status codes: each
//! surface maps it once.
//!
//! Arrows point one way. Outside: `keyward-server` (HTTP) and the `keyward` binary (CLI) -> this
//! crate -> (`keyward-domain`, the `keyward-store` trait); no axum, hyper, tower or http here
//! (`.ci/run` checks the dependency tree). Inside, from the top:
//! - the operations: `keys`, `tenants`, `users`, `login`, `console` (sign-in sessions of the web
//!   console), `verify`, `stats`, `export`, `audit` (on `page` for listings);
//! - `auth`: a presented credential into a `Principal` (on `jwt`, `throttle`, `lookup`);
//! - `lookup`: reads through the verify path's memory (on `cache`, `outage`);
//! - `context`: [`Keyward`], which holds `cache`, `usage`, `ratelimit`, `outage`, `metrics`,
//!   `password`, `jwt` and `throttle`; none of those imports an operation or the context.
//!
//! No module imports one that imports it back (`tests/module_graph.rs` reads the sources).

pub mod audit;
pub mod auth;
pub mod cache;
pub mod console;
mod context;
pub mod delivery_settings;
pub mod error;
pub mod export;
pub mod github_keys;
pub mod import;
pub mod jwt;
pub mod keys;
pub mod leaks;
pub mod login;
pub mod lookup;
pub mod metrics;
pub mod notices;
pub mod outage;
pub mod owner_limits;
pub mod page;
pub mod password;
pub mod ratelimit;
pub mod stats;
pub mod tenants;
pub mod throttle;
pub mod usage;
pub mod users;
pub mod verify;
pub mod webhooks;

pub use context::{Keyward, Settings};
pub use error::{AuthFailure, Error, Result};
