//! keyward's domain: what a key is, who may do what with it, and how time-based rules
//! (expiry, dormancy, rate limits) are decided.
//!
//! This crate does no I/O: no clock reads outside [`clock`], no storage, no HTTP. Every rule that
//! depends on time takes `now` as a parameter so tests never sleep.

pub mod clock;
pub mod compat;
pub mod credits;
pub mod duration;
pub mod event;
pub mod import;
pub mod key;
pub mod model;
pub mod network;
pub mod patch;
pub mod permission;
pub mod policy;
pub mod ratelimit;
pub mod scope;
pub mod text;
pub mod verify;

pub use clock::{Clock, ManualClock, SystemClock};
pub use event::{
    Delivery, DeliveryStatus, Event, EventFilter, EventType, WebhookEndpoint, WebhookSecret,
};
pub use key::{KeyDigest, KeyFormatError, KeyPrefix, ParsedKey, PlainKey};
pub use model::*;
pub use network::IpAllowlist;
pub use patch::Patch;
pub use permission::Permission;
pub use policy::{Credential, Forbidden, Principal};
pub use scope::{KeywardRight, Scope, ScopeError, Scopes};
pub use verify::VerifyCode;
