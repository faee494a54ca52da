//! Application state and the router that puts every surface together.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{Method, Response, Uri};
use axum::routing::get;
use axum::Router;
use keyward_core::jwt::JwtKeys;
use keyward_core::password::Passwords;
use keyward_core::Keyward;
use keyward_domain::Clock;
use keyward_store::Store;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::api::dialect::Surface;
use crate::error::ApiError;
use crate::request_label::Label;

pub use crate::extract::MAX_BODY_BYTES;

/// Operator choices: what operations do, and what HTTP clients may hold of the server.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub core: keyward_core::Settings,
    /// What slow, idle or oversized clients may hold of the server.
    pub http: crate::serve::HttpLimits,
    /// keyward is reached over HTTPS (directly or through a proxy that ends TLS): the console's
    /// session cookie is `Secure` with the `__Host-` prefix.
    pub https: bool,
    /// The header in which the trusted proxy in front of forward auth names the client's address
    /// (`X-Real-IP`, or the last entry of `X-Forwarded-For`). Unset: forward auth knows no client
    /// address, and keys with an IP allowlist are refused there (no client-sent header is trusted).
    pub forward_client_ip_header: Option<axum::http::HeaderName>,
}

/// Shared by every request: one `Arc`, so that extracting it (once or more per request) is a
/// single reference-count increment rather than one per field. It dereferences to the
/// operations' context, [`Keyward`], which handlers hand to `keyward_core`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    keyward: Keyward,
    http: crate::serve::HttpLimits,
    https: bool,
    forward_client_ip_header: Option<axum::http::HeaderName>,
    started: Instant,
}

impl std::ops::Deref for AppState {
    type Target = Keyward;

    fn deref(&self) -> &Keyward {
        &self.0.keyward
    }
}

impl AppState {
    /// The state of a server that signs users in with `jwt`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        jwt: JwtKeys,
        passwords: Passwords,
        settings: Settings,
    ) -> Self {
        let keyward = Keyward::new(store, clock, Some(jwt), passwords, settings.core);
        Self(Arc::new(Shared {
            keyward,
            http: settings.http,
            https: settings.https,
            forward_client_ip_header: settings.forward_client_ip_header,
            // Uptime is a duration measured, not a time of day.
            started: {
                #[allow(clippy::disallowed_methods)]
                Instant::now()
            },
        }))
    }

    /// The limits on slow, idle and oversized clients.
    pub fn http(&self) -> &crate::serve::HttpLimits {
        &self.0.http
    }

    /// Whether keyward is reached over HTTPS (see [`Settings::https`]).
    pub fn https(&self) -> bool {
        self.0.https
    }

    /// See [`Settings::forward_client_ip_header`].
    pub fn forward_client_ip_header(&self) -> Option<&axum::http::HeaderName> {
        self.0.forward_client_ip_header.as_ref()
    }

    pub fn uptime(&self) -> Duration {
        self.0.started.elapsed()
    }
}

pub fn router(state: AppState) -> Router {
    layered(routes(&state), state)
}

/// Every route of every surface.
pub fn routes(state: &AppState) -> Router<AppState> {
    let state = state.clone();
    let with_body_policy = |management: OpenApiRouter<AppState>| {
        management.layer(axum::middleware::from_fn_with_state(state, body_policy))
    };
    let (routes, _document) = route_table(with_body_policy).split_for_parts();
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Every route of every surface, documented or not: the one table that both the router and the
/// OpenAPI document ([`crate::api::openapi::document`]) are made from. `management` wraps every
/// route but verify's and forward auth's (the router gives them the body policy there).
pub fn route_table(
    management: impl FnOnce(OpenApiRouter<AppState>) -> OpenApiRouter<AppState>,
) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // Verify reads its body before anything else and forward auth takes none, so the hot
        // path skips the read-ahead that the management surfaces need.
        .merge(crate::api::v1::verify_routes())
        .merge(management(
            OpenApiRouter::new()
                .route("/healthz", get(crate::api::health::healthz))
                .route("/readyz", get(crate::api::health::readyz))
                .route("/metrics", get(crate::api::health::metrics))
                .merge(crate::api::v1::routes())
                .merge(OpenApiRouter::from(crate::api::estuary::router()))
                .merge(OpenApiRouter::from(crate::api::apikey::router()))
                .merge(OpenApiRouter::from(crate::console::routes())),
        ))
}

/// `routes` inside the layers that every request passes. (The benchmark's ceiling server,
/// `examples/ceiling.rs`, puts one route of its own among keyward's.)
pub fn layered(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| -> Response<axum::body::Body> {
                axum::response::IntoResponse::into_response(ApiError::Internal(
                    "handler panicked".into(),
                ))
            },
        ))
        .layer(
            // The span names the route template, never the raw path: some paths carry a key.
            // DEBUG: what the default level's log lines need of the request comes from
            // `request_label`, at a fraction of a span's cost.
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let (method, route, request_id) = Label::fields_of(req);
                    tracing::debug_span!("request", method, route, request_id)
                })
                .on_failure(log_failure),
        )
        // Outside the trace layer, so that its failure log (and everything inside) sees the label
        // and the request id.
        .layer(axum::middleware::from_fn(crate::request_label::front))
        .with_state(state)
}

/// A 5xx answer (or a response body that failed), logged with the request it answers.
fn log_failure(class: ServerErrorsFailureClass, latency: Duration, _: &tracing::Span) {
    let label = Label::current();
    let (method, route, request_id) = Label::fields(label.as_ref());
    let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    tracing::error!(%class, latency_ms, method, route, request_id, "response failed");
}

/// The body policy of every route but verify (whose extractor applies the same rules) and
/// forward auth (the forwarded request's body is its upstream's, never keyward's input), before
/// any handler:
///
/// - A body is read whole (as `extract::read_body` says: 415 for a content coding, 413 over the
///   limit, 408 when it stalls) so that hyper keeps the connection alive whatever the handler
///   reads (the Estuary client sends `{}` with every POST and DELETE).
/// - A request that asks `Expect: 100-continue` is not invited to send its body here: the
///   handler reads it, after its credential is checked, so that nobody without one is asked
///   for a body (the limits are checked at once all the same).
/// - A request whose method takes no body (GET, HEAD, DELETE, OPTIONS) may carry none, or an
///   empty JSON object: anything else would be dropped unread, so it is a 400.
///
/// Refusals speak the path's surface. A request with no body at all (its framing says so) costs
/// nothing here.
async fn body_policy(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response<axum::body::Body> {
    use axum::body::HttpBody as _;
    use axum::http::header::EXPECT;
    if req.body().size_hint().exact() == Some(0) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let surface = Surface::of(parts.uri.path());
    let takes_no_body = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS
    );
    let continues = parts
        .headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    // An import's body is JSON lines, up to its own limit; every other body up to 64 KiB.
    let limit = if parts.method == Method::POST && parts.uri.path() == crate::api::v1::import::PATH
    {
        crate::extract::MAX_JSON_LINES_BYTES
    } else {
        crate::extract::MAX_BODY_BYTES
    };
    if continues && !takes_no_body {
        if let Err(e) = crate::extract::check_declared_up_to(&parts.headers, limit) {
            return surface.render(e);
        }
        return next.run(Request::from_parts(parts, body)).await;
    }
    let timeout = state.http().body_read_timeout;
    let bytes = match crate::extract::read_body_up_to(&parts.headers, body, timeout, limit).await {
        Ok(bytes) => bytes,
        Err(e) => return surface.render(e),
    };
    if takes_no_body && !crate::extract::is_empty_body(&bytes) {
        return surface.render(crate::extract::unexpected_body(&parts));
    }
    next.run(Request::from_parts(parts, bytes.into())).await
}

async fn not_found(uri: Uri) -> Response<axum::body::Body> {
    Surface::of(uri.path()).render(ApiError::NotFound("route"))
}

async fn method_not_allowed(uri: Uri) -> Response<axum::body::Body> {
    Surface::of(uri.path()).render(ApiError::MethodNotAllowed)
}
