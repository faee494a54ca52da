//! What keyward tells the outside world: events about keys, the webhook endpoints that receive
//! them, and the deliveries of one to the other.
//!
//! An event's body has the shape the Standard Webhooks specification recommends
//! (<https://www.standardwebhooks.com/>, "Payload structure"): `{"type", "timestamp", "data"}`,
//! `type` a dotted name, `timestamp` RFC 3339. Its `data` names a key by id, tenant, owner, name
//! and `start` (never its plaintext or digest), the actor, the time and the request that caused it.

use std::fmt;

use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::{Actor, ApiKey};

/// The kinds of event. The wire names are part of the webhook contract: NEVER CHANGE one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    KeyCreated,
    KeyUpdated,
    KeyRotated,
    KeyRevoked,
    /// The key was paused (`enabled: false`).
    KeyDisabled,
    /// A paused key was resumed.
    KeyEnabled,
    /// The key expires within one of its tenant's reminder thresholds.
    KeyExpiring,
    KeyExpired,
    /// A scanner reported the key's plaintext as published somewhere.
    KeyLeaked,
    /// A verification spent the key's last credit.
    KeyCreditsExhausted,
    /// Sent on request, to check an endpoint.
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 11] = [
        Self::KeyCreated,
        Self::KeyUpdated,
        Self::KeyRotated,
        Self::KeyRevoked,
        Self::KeyDisabled,
        Self::KeyEnabled,
        Self::KeyExpiring,
        Self::KeyExpired,
        Self::KeyLeaked,
        Self::KeyCreditsExhausted,
        Self::WebhookTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyCreated => "key.created",
            Self::KeyUpdated => "key.updated",
            Self::KeyRotated => "key.rotated",
            Self::KeyRevoked => "key.revoked",
            Self::KeyDisabled => "key.disabled",
            Self::KeyEnabled => "key.enabled",
            Self::KeyExpiring => "key.expiring",
            Self::KeyExpired => "key.expired",
            Self::KeyLeaked => "key.leaked",
            Self::KeyCreditsExhausted => "key.credits_exhausted",
            Self::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event on its way to the outbox: written in the same transaction as the change that caused
/// it, then delivered to every enabled endpoint of its tenant (and the installation-wide ones)
/// that subscribes to its type.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The message id receivers see as `webhook-id`: the same on every attempt and endpoint, so
    /// a receiver can drop a repeat.
    pub id: Uuid,
    pub kind: EventType,
    /// Whose endpoints hear it; `None` only for installation-wide endpoints.
    pub tenant_id: Option<Uuid>,
    /// Sent to this endpoint only, whatever it subscribes to (`webhook.test`).
    pub only_endpoint: Option<Uuid>,
    /// The whole JSON body sent, `{"type","timestamp","data"}`.
    pub body: String,
    pub created_at: OffsetDateTime,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A key as an event names it: never its plaintext or digest.
pub fn key_json(key: &ApiKey) -> Value {
    json!({
        "id": key.id,
        "tenant_id": key.tenant_id,
        "owner_id": key.owner_id,
        "name": key.name,
        "start": key.start,
        "enabled": key.enabled,
        "expires_at": key.expires_at.map(rfc3339),
        "revoked_at": key.revoked_at.map(rfc3339),
    })
}

impl Event {
    /// An event of `kind` with `data` (an object), at `at`.
    pub fn new(kind: EventType, tenant_id: Option<Uuid>, data: Value, at: OffsetDateTime) -> Self {
        let body = json!({
            "type": kind.as_str(),
            "timestamp": rfc3339(at),
            "data": data,
        });
        Self {
            id: Uuid::now_v7(),
            kind,
            tenant_id,
            only_endpoint: None,
            body: body.to_string(),
            created_at: at,
        }
    }

    /// An event about `key` caused by `actor` at `at`; `extra` (an object, or null) adds fields
    /// to `data`.
    pub fn about_key(
        kind: EventType,
        key: &ApiKey,
        actor: &Actor,
        at: OffsetDateTime,
        extra: Value,
    ) -> Self {
        let mut data = json!({
            "key": key_json(key),
            "actor": {"type": actor.kind.as_str(), "id": actor.id},
            "at": rfc3339(at),
            "request_id": actor.request_id,
        });
        if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
            data.extend(extra);
        }
        Self::new(kind, key.tenant_id, data, at)
    }
}

/// Which events an endpoint hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    All,
    /// These, sorted, each once; never empty.
    Only(Vec<EventType>),
}

impl EventFilter {
    pub fn matches(&self, kind: EventType) -> bool {
        match self {
            Self::All => true,
            Self::Only(kinds) => kinds.contains(&kind),
        }
    }

    /// As stored: `*`, or the names between commas with a comma on each end (`,key.created,`),
    /// so that storage can match a type with a substring search.
    pub fn stored(&self) -> String {
        match self {
            Self::All => "*".into(),
            Self::Only(kinds) => {
                let mut s = String::from(",");
                for k in kinds {
                    s.push_str(k.as_str());
                    s.push(',');
                }
                s
            }
        }
    }

    pub fn from_stored(s: &str) -> Option<Self> {
        if s == "*" {
            return Some(Self::All);
        }
        let kinds: Option<Vec<EventType>> = s
            .split(',')
            .filter(|p| !p.is_empty())
            .map(EventType::parse)
            .collect();
        Self::only(kinds?)
    }

    /// The filter for a list of types; `None` for an empty list.
    pub fn only(mut kinds: Vec<EventType>) -> Option<Self> {
        kinds.sort();
        kinds.dedup();
        (!kinds.is_empty()).then_some(Self::Only(kinds))
    }

    /// The names, or `None` for all.
    pub fn names(&self) -> Option<Vec<&'static str>> {
        match self {
            Self::All => None,
            Self::Only(kinds) => Some(kinds.iter().map(|k| k.as_str()).collect()),
        }
    }
}

/// An endpoint's signing secret: `whsec_` and the base64 of 32 random bytes, the form the
/// Standard Webhooks specification gives ("Signature scheme"). Shown once; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub const PREFIX: &'static str = "whsec_";

    pub fn generate() -> Result<Self, getrandom::Error> {
        use base64::Engine;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(format!(
            "{}{}",
            Self::PREFIX,
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )))
    }

    /// A secret as stored.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The secret's text, for storage, signing, and the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// Where events are sent.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    /// `None`: installation-wide (admins only), hearing every tenant's events.
    pub tenant_id: Option<Uuid>,
    /// An absolute `http` or `https` URL.
    pub url: String,
    pub events: EventFilter,
    pub enabled: bool,
    pub description: Option<String>,
    pub secret: WebhookSecret,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Not yet sent, or failed and waiting for its next try.
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Every try failed; only a manual retry sends it again.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// Where a delivery stands after `attempt`, with its next try due at `next` (if any).
    pub fn after(attempt: &Attempt, next: Option<OffsetDateTime>) -> Self {
        match (attempt.succeeded(), next) {
            (true, _) => Self::Succeeded,
            (false, Some(_)) => Self::Pending,
            (false, None) => Self::Failed,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event on its way to one endpoint, with the outcome of its latest attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The event's id: the `webhook-id` header.
    pub event_id: Uuid,
    pub event_type: EventType,
    pub body: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<OffsetDateTime>,
    pub last_attempt_at: Option<OffsetDateTime>,
    /// The HTTP status of the latest answer, if one came.
    pub response_status: Option<u16>,
    /// The start of the latest answer's body ([`MAX_KEPT_RESPONSE`] bytes at most).
    pub response_body: Option<String>,
    /// How long the latest attempt took, in milliseconds.
    pub duration_ms: Option<u64>,
    /// Why the latest attempt failed without an answer (connection refused, timeout, refused
    /// address), in words.
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
}

/// How much of a receiver's answer is kept, in bytes.
pub const MAX_KEPT_RESPONSE: usize = 1024;

/// What one attempt to send a delivery came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub at: OffsetDateTime,
    pub response_status: Option<u16>,
    pub response_body: Option<String>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

impl Attempt {
    /// A 2xx answer; anything else (including a redirect, which is never followed) is a failure.
    pub fn succeeded(&self) -> bool {
        self.response_status
            .is_some_and(|s| (200..300).contains(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_through_text() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("key.Created"), None);
    }

    #[test]
    fn filters_round_trip_through_storage_and_match_by_name() {
        let only = EventFilter::only(vec![
            EventType::KeyRevoked,
            EventType::KeyCreated,
            EventType::KeyRevoked,
        ])
        .unwrap();
        assert_eq!(only.stored(), ",key.created,key.revoked,");
        assert_eq!(EventFilter::from_stored(&only.stored()), Some(only.clone()));
        assert!(only.matches(EventType::KeyCreated));
        assert!(!only.matches(EventType::KeyUpdated));
        assert_eq!(EventFilter::from_stored("*"), Some(EventFilter::All));
        assert_eq!(EventFilter::only(vec![]), None);
        assert_eq!(EventFilter::from_stored(",nope,"), None);
    }

    #[test]
    fn secrets_have_the_specification_form_and_hide_in_debug() {
        use base64::Engine;
        let s = WebhookSecret::generate().unwrap();
        let b64 = s.expose().strip_prefix("whsec_").unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert_eq!(format!("{s:?}"), "WebhookSecret(..)");
    }

    #[test]
    fn only_2xx_succeeds() {
        let a = |s| Attempt {
            at: OffsetDateTime::UNIX_EPOCH,
            response_status: s,
            response_body: None,
            duration_ms: 1,
            error: None,
        };
        assert!(a(Some(200)).succeeded());
        assert!(a(Some(204)).succeeded());
        assert!(!a(Some(301)).succeeded());
        assert!(!a(Some(500)).succeeded());
        assert!(!a(None).succeeded());
    }
}
