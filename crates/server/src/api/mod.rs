//! The wire surfaces. Each is its own module with its own `router()`, translating its wire
//! shapes to the same `service` calls.

pub mod apikey;
pub mod dialect;
pub mod estuary;
pub mod health;
pub mod openapi;
pub mod v1;
