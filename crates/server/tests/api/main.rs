//! keyward's HTTP test suite: one binary, one module per area. Most tests drive the router
//! in-process (`oneshot`); `process` runs the real binary on a real socket, `nodes` several of
//! them on one PostgreSQL.

// Test code: a failed step is a failed test, and waits on real processes and sockets are timed
// by the real clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod support;

mod apikey;
mod audit;
mod auth;
mod bad_input;
mod browser;
mod cli;
mod clients;
mod compat;
mod console;
mod credits;
mod deploy;
mod estuary;
mod forward;
mod fuzz;
mod health;
mod hostile;
mod import;
mod keys;
mod lifecycle;
mod migrate;
mod nodes;
mod openapi;
mod policies;
mod process;
mod proxies;
mod slow_clients;
mod stats;
mod tenants;
mod users;
mod verify;
mod webhook_delivery;
mod webhooks;
