//! Sends webhook deliveries over HTTP: `POST` of the event's JSON body, signed as the Standard
//! Webhooks specification says (`webhook-id`, `webhook-timestamp` in Unix seconds,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, through the
//! specification's own `standardwebhooks` crate). No redirect is followed (a 3xx is a failed
//! attempt), connecting and the whole attempt have timeouts, and unless private addresses are
//! allowed, a host is resolved here and its loopback, private, link-local and metadata
//! addresses are never connected to (checked after DNS, at send time, so a name that changes its
//! answer after the endpoint was made still cannot reach inside).

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use keyward_core::webhooks::{is_forbidden, parse_url, Sender, WebhookSettings};
use keyward_domain::event::{Attempt, MAX_KEPT_RESPONSE};
use keyward_domain::{Clock, Delivery, WebhookEndpoint};

/// The [`Sender`] the server runs.
pub struct HttpSender {
    client: reqwest::Client,
    allow_private: bool,
    clock: Arc<dyn Clock>,
}

/// Resolves names for the webhook client, leaving out the addresses webhooks may not reach.
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| !is_forbidden(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(
                    "the host resolves only to addresses webhooks may not reach \
                            (loopback, private, link-local or metadata)"
                        .into(),
                );
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

impl HttpSender {
    pub fn new(settings: &WebhookSettings, clock: Arc<dyn Clock>) -> reqwest::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .user_agent(concat!("keyward-webhooks/", env!("CARGO_PKG_VERSION")))
            .no_proxy();
        if !settings.allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(Self {
            client: builder.build()?,
            allow_private: settings.allow_private,
            clock,
        })
    }

    async fn post(
        &self,
        endpoint: &WebhookEndpoint,
        delivery: &Delivery,
    ) -> Result<(u16, String), String> {
        // An address written in the URL is never resolved: check it here.
        let (host, _) = parse_url(&endpoint.url).map_err(|e| e.to_string())?;
        let literal = match host {
            url::Host::Ipv4(ip) => Some(std::net::IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(std::net::IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        };
        if !self.allow_private && literal.is_some_and(is_forbidden) {
            return Err("the URL's address is one webhooks may not reach".into());
        }
        let timestamp = self.clock.now().unix_timestamp();
        let msg_id = delivery.event_id.to_string();
        let signature = standardwebhooks::Webhook::new(endpoint.secret.expose())
            .and_then(|wh| wh.sign(&msg_id, timestamp, delivery.body.as_bytes()))
            .map_err(|e| format!("signing failed: {e}"))?;
        let response = self
            .client
            .post(&endpoint.url)
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        // Keep only the start of the answer, and read no more of it than that.
        let mut kept = Vec::new();
        let mut response = response;
        while kept.len() < MAX_KEPT_RESPONSE {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                _ => break,
            }
        }
        kept.truncate(MAX_KEPT_RESPONSE);
        Ok((status, String::from_utf8_lossy(&kept).into_owned()))
    }
}

/// A failed request in words, without the URL (which may carry a token in its query).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

#[async_trait]
impl Sender for HttpSender {
    async fn send(&self, endpoint: &WebhookEndpoint, delivery: &Delivery) -> Attempt {
        let at = self.clock.now();
        // The attempt's duration is measured, not a time of day.
        #[allow(clippy::disallowed_methods)]
        let started = std::time::Instant::now();
        let outcome = self.post(endpoint, delivery).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match outcome {
            Ok((status, body)) => Attempt {
                at,
                response_status: Some(status),
                response_body: Some(body),
                duration_ms,
                error: None,
            },
            Err(error) => Attempt {
                at,
                response_status: None,
                response_body: None,
                duration_ms,
                error: Some(error),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_domain::{DeliveryStatus, EventFilter, EventType, ManualClock, WebhookSecret};
    use reqwest::dns::Resolve;

    fn endpoint(url: &str) -> WebhookEndpoint {
        WebhookEndpoint {
            id: uuid::Uuid::now_v7(),
            tenant_id: None,
            url: url.into(),
            events: EventFilter::All,
            enabled: true,
            description: None,
            secret: WebhookSecret::generate().unwrap(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn delivery() -> Delivery {
        Delivery {
            id: uuid::Uuid::now_v7(),
            endpoint_id: uuid::Uuid::now_v7(),
            event_id: uuid::Uuid::now_v7(),
            event_type: EventType::WebhookTest,
            body: "{}".into(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: None,
            last_attempt_at: None,
            response_status: None,
            response_body: None,
            duration_ms: None,
            error: None,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// At send time, after DNS: a name that resolves to loopback is never connected to.
    #[tokio::test]
    async fn the_resolver_refuses_names_of_forbidden_addresses() {
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let refused = GuardedResolver.resolve(name).await;
        assert!(refused.is_err());
    }

    /// An address written in the URL is checked too, and nothing is sent to it.
    #[tokio::test]
    async fn a_literal_forbidden_address_is_not_sent_to() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let clock = Arc::new(ManualClock::new(time::OffsetDateTime::UNIX_EPOCH));
        let guarded = HttpSender::new(&WebhookSettings::default(), clock.clone()).unwrap();
        let attempt = guarded.send(&endpoint(&url), &delivery()).await;
        assert_eq!(attempt.response_status, None);
        assert!(attempt.error.unwrap().contains("may not reach"));
        assert!(listener.accept().is_err(), "no connection was made");
        // Allowed by the operator: it connects (and the listener never answers HTTP).
        let open = WebhookSettings {
            allow_private: true,
            total_timeout: std::time::Duration::from_millis(300),
            ..WebhookSettings::default()
        };
        let sender = HttpSender::new(&open, clock).unwrap();
        let attempt = sender.send(&endpoint(&url), &delivery()).await;
        assert!(attempt.error.is_some());
        assert!(
            listener.accept().is_ok(),
            "the allowed address was connected to"
        );
    }
}
