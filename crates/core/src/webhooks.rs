//! Webhook endpoints and the delivery of events to them.
//!
//! Endpoints belong to a tenant (tenant admins manage their own tenant's; admins any, and
//! installation-wide ones that hear every tenant). Everyone else is told there is nothing here
//! (404), as for any resource out of reach.
//!
//! Delivery is an outbox: the change that causes an event writes its deliveries in the same
//! transaction (see `keyward_store`), and [`deliver_due`] — run on every node by the server —
//! leases due deliveries, sends them through a [`Sender`], and records each attempt. At least
//! once: a node that dies mid-send leaves its lease to run out, and another node sends again
//! with the same `webhook-id`, which receivers use to drop repeats.

use std::net::IpAddr;
use std::sync::LazyLock;

use async_trait::async_trait;
use ipnet::IpNet;
use keyward_domain::event::Attempt;
use keyward_domain::scope::KeywardRight;
use keyward_domain::{
    AuditAction, Delivery, Event, EventFilter, EventType, Patch, Role, WebhookEndpoint,
    WebhookSecret,
};
use keyward_store::{Cursor, StoreError, WebhooksOf};
use serde_json::json;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::page::{paginate, Page};
use crate::Keyward;

/// The longest endpoint URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// The most endpoints one tenant (or the installation) may have.
pub const MAX_ENDPOINTS: u32 = 50;

pub use crate::delivery_settings::WebhookSettings;

// --- addresses a webhook may not reach -------------------------------------------------------

/// Networks no webhook reaches unless the operator allows private addresses: "this" network,
/// private (RFC 1918, RFC 4193), shared (RFC 6598), loopback, link-local (which holds the cloud
/// metadata services, 169.254.169.254 and fd00:ec2::254), benchmarking, reserved, multicast and
/// broadcast addresses, and the IPv6 forms that embed an IPv4 address.
static FORBIDDEN: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
});

/// Whether a webhook may not be sent to `ip` (the networks listed above). An IPv4-mapped IPv6
/// address is judged as the IPv4 address it holds.
pub fn is_forbidden(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    FORBIDDEN.iter().any(|net| net.contains(&ip))
}

/// A webhook URL's syntax: absolute `http` or `https`, a host, no user name or password, at
/// most [`MAX_URL_LEN`] bytes. Returns the host and port to resolve.
pub fn parse_url(raw: &str) -> Result<(url::Host<String>, u16)> {
    let bad = |why: &str| Error::invalid_field("url", why);
    if raw.len() > MAX_URL_LEN {
        return Err(bad("must be at most 2048 bytes"));
    }
    let url = url::Url::parse(raw).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry a user name or password"));
    }
    let host = url
        .host()
        .ok_or_else(|| bad("must name a host"))?
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| bad("has no port"))?;
    Ok((host, port))
}

/// Whether a webhook may be sent to `raw`: its syntax ([`parse_url`]) and, unless
/// `allow_private`, every address it reaches (written in it, or resolved through DNS now) is
/// one [`is_forbidden`] allows. A name that does not resolve is refused (it would fail at send
/// time, where the addresses are checked again).
pub async fn check_url(raw: &str, allow_private: bool) -> Result<()> {
    let (host, port) = parse_url(raw)?;
    if allow_private {
        return Ok(());
    }
    let addrs: Vec<IpAddr> = match &host {
        url::Host::Ipv4(ip) => vec![IpAddr::V4(*ip)],
        url::Host::Ipv6(ip) => vec![IpAddr::V6(*ip)],
        url::Host::Domain(name) => tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|_| Error::invalid_field("url", "names a host that does not resolve"))?
            .map(|a| a.ip())
            .collect(),
    };
    if addrs.into_iter().any(is_forbidden) {
        return Err(Error::invalid_field(
            "url",
            "reaches a loopback, private, link-local or metadata address, which webhooks may not \
             (the operator may allow it with --webhook-allow-private)",
        ));
    }
    Ok(())
}

// --- endpoints -------------------------------------------------------------------------------

/// A new endpoint as a caller asks for it.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Tenant admins: their own tenant (given or not). Admins: a tenant, or none for an
    /// installation-wide endpoint.
    pub tenant_id: Option<Uuid>,
    pub url: String,
    /// Event type names; `None` for every event.
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

/// Changes to an endpoint; `None` (or [`Patch::Keep`]) leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    /// Cleared: every event.
    pub events: Patch<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Patch<String>,
    /// Replace the signing secret with a new one (shown once in the answer).
    pub roll_secret: bool,
}

/// Endpoints are for admins and tenant admins (with `keyward:admin` to change them,
/// `keyward:read` to read them); for anyone else they do not exist.
fn require_manager(caller: &Caller, right: KeywardRight) -> Result<()> {
    let p = &caller.principal;
    match p.role {
        Role::Admin => {}
        Role::TenantAdmin if p.tenant_id.is_some() => {}
        _ => return Err(Error::NotFound("webhook")),
    }
    p.require(right)?;
    Ok(())
}

fn reaches(caller: &Caller, endpoint: &WebhookEndpoint) -> bool {
    let p = &caller.principal;
    p.is_admin() || (endpoint.tenant_id.is_some() && endpoint.tenant_id == p.tenant_id)
}

fn event_filter(names: Option<Vec<String>>) -> Result<EventFilter> {
    let Some(names) = names else {
        return Ok(EventFilter::All);
    };
    let kinds = names
        .iter()
        .map(|n| {
            EventType::parse(n).ok_or_else(|| {
                Error::invalid_field(
                    "events",
                    format!(
                        "{:?} is not an event type (one of {})",
                        keyward_domain::text::excerpt(n, 40),
                        EventType::ALL.map(EventType::as_str).join(", ")
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    EventFilter::only(kinds)
        .ok_or_else(|| Error::invalid_field("events", "must name at least one event, or be null"))
}

fn validate_description(d: &Option<String>) -> Result<()> {
    match d {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(Error::invalid_field(
            "description",
            "must be at most 200 characters",
        )),
        Some(d) if d.chars().any(char::is_control) => Err(Error::invalid_field(
            "description",
            "must not hold control characters",
        )),
        _ => Ok(()),
    }
}

fn new_secret() -> Result<WebhookSecret> {
    WebhookSecret::generate().map_err(|e| Error::Internal(format!("OS random source: {e}")))
}

/// The tenant a new endpoint belongs to, for this caller.
async fn endpoint_tenant(
    state: &Keyward,
    caller: &Caller,
    asked: Option<Uuid>,
) -> Result<Option<Uuid>> {
    let p = &caller.principal;
    if p.is_admin() {
        if let Some(t) = asked {
            state
                .store
                .get_tenant(t)
                .await?
                .ok_or(Error::NotFound("tenant"))?;
        }
        return Ok(asked);
    }
    match asked {
        Some(t) if Some(t) != p.tenant_id => Err(Error::NotFound("tenant")),
        _ => Ok(p.tenant_id),
    }
}

pub async fn create(state: &Keyward, caller: &Caller, req: NewWebhook) -> Result<WebhookEndpoint> {
    require_manager(caller, KeywardRight::Admin)?;
    let events = event_filter(req.events)?;
    validate_description(&req.description)?;
    check_url(&req.url, state.settings.webhooks.allow_private).await?;
    let tenant_id = endpoint_tenant(state, caller, req.tenant_id).await?;
    let of = tenant_id.map_or(WebhooksOf::Installation, WebhooksOf::Tenant);
    let existing = state.store.list_webhooks(of, None, MAX_ENDPOINTS).await?;
    if existing.len() >= MAX_ENDPOINTS as usize {
        return Err(Error::invalid(
            "too_many_webhooks",
            "at most 50 webhook endpoints per tenant (and 50 installation-wide)",
        ));
    }
    let now = keyward_domain::clock::truncate_millis(state.now());
    let endpoint = WebhookEndpoint {
        id: Uuid::now_v7(),
        tenant_id,
        url: req.url,
        events,
        enabled: req.enabled.unwrap_or(true),
        description: req.description,
        secret: new_secret()?,
        created_at: now,
        updated_at: now,
    };
    let audit = caller
        .actor()
        .entry(now, AuditAction::WebhookCreate, endpoint.id)
        .tenant(endpoint.tenant_id)
        .changes(json!({"url": endpoint.url, "events": endpoint.events.names()}));
    state.store.create_webhook(&endpoint, &audit).await?;
    Ok(endpoint)
}

/// An endpoint within the caller's reach, or 404.
pub async fn get(state: &Keyward, caller: &Caller, id: Uuid) -> Result<WebhookEndpoint> {
    require_manager(caller, KeywardRight::Read)?;
    visible(state, caller, id).await
}

async fn visible(state: &Keyward, caller: &Caller, id: Uuid) -> Result<WebhookEndpoint> {
    match state.store.get_webhook(id).await? {
        Some(w) if reaches(caller, &w) => Ok(w),
        _ => Err(Error::NotFound("webhook")),
    }
}

pub async fn list(
    state: &Keyward,
    caller: &Caller,
    limit: u32,
    after: Option<Cursor>,
) -> Result<Page<WebhookEndpoint>> {
    require_manager(caller, KeywardRight::Read)?;
    let limit = crate::page::checked_size(limit)?;
    let p = &caller.principal;
    let of = match (p.is_admin(), p.tenant_id) {
        (true, _) | (false, None) => WebhooksOf::All,
        (false, Some(t)) => WebhooksOf::Tenant(t),
    };
    let items = state.store.list_webhooks(of, after, limit + 1).await?;
    Ok(paginate(items, limit, |w| Cursor {
        created_at: w.created_at,
        id: w.id,
    }))
}

pub async fn update(
    state: &Keyward,
    caller: &Caller,
    id: Uuid,
    patch: WebhookPatch,
) -> Result<WebhookEndpoint> {
    require_manager(caller, KeywardRight::Admin)?;
    let mut w = visible(state, caller, id).await?;
    let mut changes = serde_json::Map::new();
    if let Some(url) = patch.url {
        check_url(&url, state.settings.webhooks.allow_private).await?;
        changes.insert("url".into(), json!(url));
        w.url = url;
    }
    if !patch.events.is_keep() {
        w.events = event_filter(patch.events.apply(None))?;
        changes.insert("events".into(), json!(w.events.names()));
    }
    if let Some(enabled) = patch.enabled {
        w.enabled = enabled;
        changes.insert("enabled".into(), json!(enabled));
    }
    if !patch.description.is_keep() {
        let d = patch.description.apply(w.description.take());
        validate_description(&d)?;
        changes.insert("description".into(), json!(d));
        w.description = d;
    }
    if patch.roll_secret {
        w.secret = new_secret()?;
        changes.insert("secret".into(), json!("rolled"));
    }
    w.updated_at = keyward_domain::clock::truncate_millis(state.now());
    let audit = caller
        .actor()
        .entry(w.updated_at, AuditAction::WebhookUpdate, w.id)
        .tenant(w.tenant_id)
        .changes(serde_json::Value::Object(changes));
    state
        .store
        .update_webhook(&w, &audit)
        .await
        .map_err(not_found_as("webhook"))?;
    Ok(w)
}

pub async fn delete(state: &Keyward, caller: &Caller, id: Uuid) -> Result<()> {
    require_manager(caller, KeywardRight::Admin)?;
    let w = visible(state, caller, id).await?;
    let audit = caller
        .actor()
        .entry(state.now(), AuditAction::WebhookDelete, w.id)
        .tenant(w.tenant_id)
        .changes(json!({"url": w.url}));
    state
        .store
        .delete_webhook(w.id, &audit)
        .await
        .map_err(not_found_as("webhook"))
}

/// The endpoint's deliveries, newest first.
pub async fn deliveries(
    state: &Keyward,
    caller: &Caller,
    id: Uuid,
    limit: u32,
    before: Option<Cursor>,
) -> Result<Page<Delivery>> {
    require_manager(caller, KeywardRight::Read)?;
    let w = visible(state, caller, id).await?;
    let limit = crate::page::checked_size(limit)?;
    let items = state.store.list_deliveries(w.id, before, limit + 1).await?;
    Ok(paginate(items, limit, |d| Cursor {
        created_at: d.created_at,
        id: d.id,
    }))
}

/// Sends a delivery of the endpoint again, now, whatever became of it.
pub async fn retry(
    state: &Keyward,
    caller: &Caller,
    endpoint_id: Uuid,
    delivery_id: Uuid,
) -> Result<Delivery> {
    require_manager(caller, KeywardRight::Admin)?;
    let w = visible(state, caller, endpoint_id).await?;
    let found = state.store.get_delivery(delivery_id).await?;
    let Some(delivery) = found.filter(|d| d.endpoint_id == w.id) else {
        return Err(Error::NotFound("delivery"));
    };
    let now = keyward_domain::clock::truncate_millis(state.now());
    let audit = caller
        .actor()
        .entry(now, AuditAction::WebhookRetry, w.id)
        .tenant(w.tenant_id)
        .changes(json!({"delivery_id": delivery.id}));
    state
        .store
        .retry_delivery(delivery.id, now, &audit)
        .await
        .map_err(not_found_as("delivery"))?;
    state
        .store
        .get_delivery(delivery.id)
        .await?
        .ok_or(Error::NotFound("delivery"))
}

/// Sends a `webhook.test` event to this endpoint only (enabled or not, whatever it subscribes
/// to); returns the event.
pub async fn send_test(state: &Keyward, caller: &Caller, id: Uuid) -> Result<Event> {
    require_manager(caller, KeywardRight::Admin)?;
    let w = visible(state, caller, id).await?;
    let now = keyward_domain::clock::truncate_millis(state.now());
    let actor = caller.actor();
    let mut event = Event::new(
        EventType::WebhookTest,
        w.tenant_id,
        json!({
            "webhook_id": w.id,
            "actor": {"type": actor.kind.as_str(), "id": actor.id},
            "at": crate::keys::rfc3339(now),
            "request_id": actor.request_id,
        }),
        now,
    );
    event.only_endpoint = Some(w.id);
    let audit = actor
        .entry(now, AuditAction::WebhookTest, w.id)
        .tenant(w.tenant_id)
        .changes(json!({"event_id": event.id}))
        .event(event.clone());
    state.store.append_audit(&audit).await?;
    Ok(event)
}

fn not_found_as(what: &'static str) -> impl Fn(StoreError) -> Error {
    move |e| match e {
        StoreError::NotFound => Error::NotFound(what),
        other => other.into(),
    }
}

// --- delivery ---------------------------------------------------------------------------------

/// Sends one delivery to its endpoint and says what came of it. The server's sender signs the
/// body as the Standard Webhooks specification says, follows no redirect, and refuses (after
/// DNS) addresses [`is_forbidden`] names unless private addresses are allowed.
#[async_trait]
pub trait Sender: Send + Sync {
    async fn send(&self, endpoint: &WebhookEndpoint, delivery: &Delivery) -> Attempt;
}

/// Deliveries a node leases at once.
const CLAIM_BATCH: u32 = 16;

/// Leases the deliveries due now, sends them (concurrently), and records each attempt; returns
/// how many were sent. Run by every node in a loop: the store hands each due delivery to one.
pub async fn deliver_due(state: &Keyward, sender: &dyn Sender) -> Result<usize> {
    let settings = &state.settings.webhooks;
    let now = state.now();
    let claimed = state
        .store
        .claim_deliveries(now, now + settings.lease, CLAIM_BATCH)
        .await?;
    let sends = claimed.iter().map(|c| async move {
        // A test event is sent because someone asked for it, whatever the endpoint's state.
        let send = c.endpoint.enabled || c.delivery.event_type == EventType::WebhookTest;
        let attempt = if send {
            sender.send(&c.endpoint, &c.delivery).await
        } else {
            Attempt {
                at: state.now(),
                response_status: None,
                response_body: None,
                duration_ms: 0,
                error: Some("the endpoint is disabled".into()),
            }
        };
        let next = if attempt.succeeded() || !send {
            None
        } else {
            settings.next_attempt(c.delivery.attempts + 1, attempt.at, jitter())
        };
        let recorded = state
            .store
            .record_attempt(c.delivery.id, c.lease_id, &attempt, next)
            .await;
        if send {
            // Counted as sent, whether or not this node still held the lease to record it.
            state
                .metrics
                .webhook_attempted(attempt.succeeded(), !attempt.succeeded() && next.is_none());
        }
        match recorded {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                delivery = %c.delivery.id,
                "a webhook delivery's lease ran out while it was sent; another node owns it"
            ),
            Err(e) => tracing::warn!(delivery = %c.delivery.id, error = %e, "recording a webhook attempt failed"),
        }
    });
    futures_util::future::join_all(sends).await;
    Ok(claimed.len())
}

/// Forgets deliveries finished longer ago than the settings keep them.
pub async fn prune(state: &Keyward) -> Result<u64> {
    let before = state.now() - state.settings.webhooks.keep;
    Ok(state.store.prune_deliveries(before).await?)
}

/// A number in [0, 1) from the OS's random source (0.5 if it fails: no jitter).
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::{Duration, OffsetDateTime};

    #[test]
    fn forbidden_addresses_include_private_loopback_link_local_and_metadata() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "172.32.0.1",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_for_syntax_and_address() {
        for bad in [
            "ftp://example.com/",
            "not a url",
            "http://user:pw@93.184.216.34/",
            "http://127.0.0.1:8080/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:7f00:1]/",
        ] {
            assert!(check_url(bad, false).await.is_err(), "{bad}");
        }
        assert!(check_url("http://93.184.216.34/hook", false).await.is_ok());
        assert!(check_url("http://127.0.0.1:8080/hook", true).await.is_ok());
        assert!(check_url("ftp://127.0.0.1/", true).await.is_err());
    }

    #[test]
    fn the_schedule_retries_within_seconds_then_backs_off_over_about_a_day() {
        let s = WebhookSettings::default();
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let first = s.next_attempt(1, t0, 0.999).unwrap() - t0;
        assert!(first <= Duration::seconds(30), "{first}");
        let total: Duration = (1..=10)
            .map(|n| s.next_attempt(n, t0, 0.5).unwrap() - t0)
            .sum();
        assert!(
            total >= Duration::hours(20) && total <= Duration::hours(30),
            "{total}"
        );
        assert_eq!(s.next_attempt(11, t0, 0.5), None);
        assert_eq!(s.next_attempt(0, t0, 0.5), None);
        let low = s.next_attempt(3, t0, 0.0).unwrap() - t0;
        let high = s.next_attempt(3, t0, 0.9999).unwrap() - t0;
        assert!(low >= Duration::seconds(96) && high <= Duration::seconds(144) && low < high);
    }
}
