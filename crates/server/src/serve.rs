//! Running the server on a bound listener until `shutdown` resolves, then flushing buffered
//! writes. `main` binds the listener; tests call [`serve`] on port 0.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use keyward_store::ChangeSink;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::api::dialect::Surface;
use crate::app::{router, AppState};
use crate::auth::REQUEST_ID_HEADER;
use crate::error::ApiError;

pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let flusher = state
        .usage
        .spawn_flusher(state.store.clone(), state.clock.clone());
    let watcher = spawn_change_watcher(&state);
    let outbox = spawn_outbox(&state)?;
    let notices = spawn_notices(&state);
    let limits = *state.http();
    let result = serve_router(listener, router(state.clone()), limits, shutdown).await;
    // A delivery cut off mid-send is leased: it is sent again once its lease runs out.
    outbox.abort();
    notices.abort();
    flusher.stop().await;
    watcher.abort();
    state.usage.flush(state.store.as_ref(), state.now()).await;
    state.store.close().await;
    tracing::info!("stopped; buffered writes flushed");
    result
}

/// What slow, idle or oversized clients may hold of the server. Each is a `keyward serve` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a request's head (request line and header fields) may take to arrive, from its
    /// first byte; then the connection is closed. Default 10 s.
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive, once its head is in; then 408. Default 10 s.
    pub body_read_timeout: Duration,
    /// How long a connection may wait, idle, for its next request (counted to the end of that
    /// request's head); then it is closed. Default 75 s: longer than the keep-alive time of the
    /// usual proxies in front (nginx 60 s), so that a proxy closes first and never reuses a
    /// connection as keyward closes it.
    pub idle_timeout: Duration,
    /// Most connections served at once. Past it, new connections wait in the listen backlog
    /// until one closes. Default 10,000.
    pub max_connections: usize,
    /// How long an answer may wait for the client to take it (a write that makes no progress);
    /// then the connection is closed. Default 30 s: a client that sends requests and never reads
    /// the answers cannot hold a connection.
    pub write_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: 10_000,
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Header fields hyper itself reads at most (it answers 431, with no body, past it). keyward's own
/// limit ([`MAX_HEADERS`]) is lower, so that a client that sends too many is told in the
/// surface's shape.
const HYPER_MAX_HEADERS: usize = 4 * MAX_HEADERS;
/// Header fields keyward reads at most (431 past it).
pub const MAX_HEADERS: usize = 64;
/// Bytes of header fields (names and values) keyward reads at most (431 past it).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Bytes of request target keyward reads at most (414 past it).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Serves `app` as keyward serves its router until `shutdown` resolves: HTTP/1.1 on each accepted
/// connection with the peer address as `ConnectInfo` (the audit log records it), within `limits`.
/// Also the benchmark's ceiling server's way to serve. On shutdown, stops accepting and waits for
/// the connections to finish their requests.
pub async fn serve_router(
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_headers(HYPER_MAX_HEADERS);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let deadlines = Deadlines::new(limits);
    let sweeper = tokio::spawn(Arc::clone(&deadlines).sweep());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // the listener itself is fine, so wait a moment and go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let state = deadlines.watch();
        let io = TokioIo::new(ClientIo::new(stream, Arc::clone(&state)));
        let service = {
            let state_in = Arc::clone(&state);
            let state_out = Arc::clone(&state);
            app.clone()
                .map_request(move |req: axum::http::Request<hyper::body::Incoming>| {
                    state_in.begin_request();
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                })
                .map_response(move |res| {
                    state_out.end_request();
                    res
                })
        };
        let conn = graceful.watch(http.serve_connection(io, TowerToHyperService::new(service)));
        tokio::spawn(async move {
            // A client that goes away ends its connection; one past a deadline is dropped (and
            // with it the socket). Nothing to report either way.
            tokio::select! {
                _ = conn => {}
                () = state.expired.notified() => {}
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    sweeper.abort();
    Ok(())
}

/// The connections' deadlines (header-read, idle, write), kept without a timer per request: each
/// connection notes, in a few atomics, the coarse time when its head began, when it last made
/// progress and when a write began to wait; a sweeper looks at them all every
/// [`SWEEP_EVERY`] and ends those past a limit. So the limits hold to within that, and the
/// request path pays a few relaxed stores for them.
struct Deadlines {
    limits: HttpLimits,
    started: std::time::Instant,
    /// Milliseconds since `started`, plus one (0 means "not set" below), as of the last sweep.
    now_ms: AtomicU64,
    connections: std::sync::Mutex<Vec<std::sync::Weak<ConnState>>>,
}

/// How often the sweeper looks: the precision of the connection limits.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

impl Deadlines {
    fn new(limits: HttpLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            // Deadlines are durations since the server began, not times of day.
            started: {
                #[allow(clippy::disallowed_methods)]
                std::time::Instant::now()
            },
            now_ms: AtomicU64::new(1),
            connections: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// A new connection's state, watched from now on.
    fn watch(self: &Arc<Self>) -> Arc<ConnState> {
        let state = Arc::new(ConnState {
            deadlines: Arc::clone(self),
            begun: AtomicU64::new(0),
            serving: AtomicBool::new(false),
            head_since: AtomicU64::new(0),
            active_at: AtomicU64::new(self.now()),
            write_waits_since: AtomicU64::new(0),
            expired: tokio::sync::Notify::new(),
        });
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::downgrade(&state));
        state
    }

    fn now(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed)
    }

    async fn sweep(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
            self.now_ms.store(now, Ordering::Relaxed);
            self.connections
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|conn| match conn.upgrade() {
                    None => false,
                    Some(conn) => {
                        if conn.past_a_deadline(now, &self.limits) {
                            conn.expired.notify_one();
                        }
                        true
                    }
                });
        }
    }
}

/// Where a connection is between requests, shared by its I/O, its service and the sweeper.
/// Times are [`Deadlines::now_ms`] readings; 0 is "not set".
#[derive(Debug)]
struct ConnState {
    deadlines: Arc<Deadlines>,
    /// Requests whose head hyper has handed to the service so far.
    begun: AtomicU64,
    /// A request is being served (its head is in, its response not yet made).
    serving: AtomicBool,
    /// When the head being read began to arrive.
    head_since: AtomicU64,
    /// When the connection last made progress (read, wrote, or finished an answer).
    active_at: AtomicU64,
    /// When a write began to wait for the client to take its bytes.
    write_waits_since: AtomicU64,
    /// Told by the sweeper: the connection is past a deadline and must end.
    expired: tokio::sync::Notify,
}

impl std::fmt::Debug for Deadlines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadlines")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ConnState {
    fn begin_request(&self) {
        self.begun.fetch_add(1, Ordering::Relaxed);
        self.serving.store(true, Ordering::Relaxed);
        self.head_since.store(0, Ordering::Relaxed);
    }

    fn end_request(&self) {
        self.serving.store(false, Ordering::Relaxed);
        self.active_at
            .store(self.deadlines.now(), Ordering::Relaxed);
    }

    /// Whether the connection is past one of `limits` at `now`: its head has taken longer than
    /// the header-read timeout, a write has waited longer than the write timeout, or, idle
    /// between requests, it has been quiet longer than the idle timeout. (A request being served
    /// is the body-read timeout's business, in the extractors.)
    fn past_a_deadline(&self, now: u64, limits: &HttpLimits) -> bool {
        let older_than = |since: u64, limit: Duration| {
            since != 0 && u128::from(now.saturating_sub(since)) > limit.as_millis()
        };
        let serving = self.serving.load(Ordering::Relaxed);
        let head_since = self.head_since.load(Ordering::Relaxed);
        let write_waits = self.write_waits_since.load(Ordering::Relaxed);
        older_than(write_waits, limits.write_timeout)
            || (!serving && older_than(head_since, limits.header_read_timeout))
            || (!serving
                && head_since == 0
                && write_waits == 0
                && older_than(self.active_at.load(Ordering::Relaxed), limits.idle_timeout))
    }
}

/// A connection's I/O as keyward guards it: it notes the times [`Deadlines`] needs, and when
/// hyper answers a head it could not parse (400, 414, 431: bodiless, made before any router sees
/// the request), keyward's answer goes out in its place: the same refusal with a body in the
/// shape of the surface the head's path names.
struct ClientIo {
    stream: tokio::net::TcpStream,
    state: Arc<ConnState>,
    /// The first bytes of the head being read, to find its path should hyper refuse it, and the
    /// request count they were read at.
    head_sample: Vec<u8>,
    sampled_at: u64,
    /// keyward's refusal in place of hyper's, and how much of it is written; once it is there,
    /// hyper's own bytes are dropped (hyper closes the connection after a refusal).
    refusal: Option<(Vec<u8>, usize)>,
}

/// How much of a head is kept to find its path.
const HEAD_SAMPLE_BYTES: usize = 2048;

impl ClientIo {
    fn new(stream: tokio::net::TcpStream, state: Arc<ConnState>) -> Self {
        Self {
            stream,
            state,
            head_sample: Vec::new(),
            sampled_at: 0,
            refusal: None,
        }
    }

    /// Writes `bufs` (see [`Self::write_now`]), noting when a write begins to wait for the client
    /// (a client that stops reading is past the write timeout soon after).
    fn write(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = self.write_now(cx, bufs);
        match &written {
            Poll::Pending => {
                if self.state.write_waits_since.load(Ordering::Relaxed) == 0 {
                    let now = self.state.deadlines.now();
                    self.state.write_waits_since.store(now, Ordering::Relaxed);
                }
            }
            Poll::Ready(_) => {
                if self.state.write_waits_since.load(Ordering::Relaxed) != 0 {
                    self.state.write_waits_since.store(0, Ordering::Relaxed);
                }
            }
        }
        written
    }

    /// Writes `bufs`, or keyward's refusal in place of hyper's own answer to an unparsable head.
    fn write_now(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.refusal.is_none() && !self.state.serving.load(Ordering::Relaxed) {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            if is_hypers_own_refusal(first) {
                self.refusal = Some((refusal_for(first, &self.head_sample), 0));
            }
        }
        let Some((bytes, written)) = &mut self.refusal else {
            return tokio::io::AsyncWrite::poll_write_vectored(
                Pin::new(&mut self.stream),
                cx,
                bufs,
            );
        };
        while *written < bytes.len() {
            match tokio::io::AsyncWrite::poll_write(
                Pin::new(&mut self.stream),
                cx,
                &bytes[*written..],
            ) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(total))
    }
}

/// Whether `head` (the start of a write) is the head of an answer hyper made itself: a final
/// status whose header section lacks the `x-request-id` that every answer of keyward's router
/// carries (an interim `100 Continue` lacks it too, and is left alone).
fn is_hypers_own_refusal(head: &[u8]) -> bool {
    let Some(section_end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let section = &head[..section_end];
    section.starts_with(b"HTTP/1.")
        && section.get(9) != Some(&b'1')
        && !section
            .windows(REQUEST_ID_HEADER.len())
            .any(|w| w.eq_ignore_ascii_case(REQUEST_ID_HEADER.as_bytes()))
}

/// keyward's answer in place of hyper's bodiless `answer` (its first bytes: the status line) to
/// a head that began with `head`: the same status (a 400 for anything but 414 and 431), with a
/// body in the shape of the surface the head's path names.
fn refusal_for(answer: &[u8], head: &[u8]) -> Vec<u8> {
    let status = answer.get(9..12).and_then(|s| std::str::from_utf8(s).ok());
    let error = match status {
        Some("414") => ApiError::UriTooLong,
        Some("431") => ApiError::HeadersTooLarge,
        _ => ApiError::bad_request(
            "malformed_request",
            "the request is not well-formed HTTP/1.1",
        ),
    };
    // The refused head is the last request line the sample holds (earlier requests on the
    // connection, and their bodies, may have come in the same read); its target is read as far
    // as it is text.
    let target = head
        .split(|b| *b == b'\n')
        .rfind(|line| line.windows(6).any(|w| w == b" HTTP/"))
        .and_then(|line| line.split(|b| *b == b' ').nth(1))
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let path = if target.starts_with('/') {
        &target[..]
    } else {
        "/"
    };
    let body = serde_json::to_vec(&Surface::of(path).error_body(&error)).unwrap_or_default();
    let status = error.status();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

impl tokio::io::AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        let got = &buf.filled()[before..];
        if got.is_empty() {
            return read;
        }
        let state = &this.state;
        let now = state.deadlines.now();
        state.active_at.store(now, Ordering::Relaxed);
        if state.serving.load(Ordering::Relaxed) {
            return read;
        }
        // Bytes while no request is served: a head begins (or goes on).
        if state.head_since.load(Ordering::Relaxed) == 0 {
            state.head_since.store(now, Ordering::Relaxed);
        }
        let begun = state.begun.load(Ordering::Relaxed);
        if this.sampled_at != begun {
            this.head_sample.clear();
            this.sampled_at = begun;
        }
        let room = HEAD_SAMPLE_BYTES.saturating_sub(this.head_sample.len());
        this.head_sample
            .extend_from_slice(&got[..got.len().min(room)]);
        read
    }
}

impl tokio::io::AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().write(cx, &[std::io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().write(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The refusal of a request whose target or header fields are larger than keyward reads (hyper's
/// own limits sit above these, and what hyper refuses `ClientIo` answers).
pub fn head_limit_refusal(req: &axum::extract::Request) -> Option<ApiError> {
    if req.uri().path_and_query().map_or(0, |p| p.as_str().len()) > MAX_URI_BYTES {
        return Some(ApiError::UriTooLong);
    }
    let headers = req.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES)
        .then_some(ApiError::HeadersTooLarge)
}

/// Feeds the store's change feed (other nodes' revocations and edits) into this node's cache
/// until the returned handle is aborted.
/// Sends due webhook deliveries for as long as the node runs (every node does; the store hands
/// each delivery to one).
pub fn spawn_outbox(state: &AppState) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let settings = state.settings.webhooks.clone();
    let sender = crate::webhook_sender::HttpSender::new(&settings, state.clock.clone())
        .map_err(std::io::Error::other)?;
    let state = state.clone();
    Ok(tokio::spawn(async move {
        loop {
            match keyward_core::webhooks::deliver_due(&state, &sender).await {
                Ok(0) => tokio::time::sleep(settings.poll_interval).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "sending webhooks failed; trying again shortly");
                    tokio::time::sleep(settings.poll_interval).await;
                }
            }
        }
    }))
}

/// Sends expiry reminders and expiry notices for as long as the node runs, and prunes old
/// finished webhook deliveries about hourly (a scan of the deliveries, so not at every pass).
pub fn spawn_notices(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let every = state.settings.webhooks.notice_interval;
        let passes_an_hour = (3600 / every.as_secs().max(1)).max(1);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for pass in 0u64.. {
            tick.tick().await;
            if let Err(e) = keyward_core::notices::expiry(&state).await {
                tracing::warn!(error = %e, "sending expiry notices failed; trying again next time");
            }
            if pass % passes_an_hour == 0 {
                if let Err(e) = keyward_core::webhooks::prune(&state).await {
                    tracing::warn!(error = %e, "pruning old webhook deliveries failed");
                }
            }
        }
    })
}

pub fn spawn_change_watcher(state: &AppState) -> tokio::task::JoinHandle<()> {
    let store = state.store.clone();
    let sink: Arc<dyn ChangeSink> = state.cache.clone();
    tokio::spawn(async move { store.watch(sink).await })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// How the process logs: lines for people, or one JSON object per line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// The async runtime keyward runs on (also the benchmark's ceiling server's).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Logs to stderr in `format`, at the level `KEYWARD_LOG` names (default `default_level`:
/// `info` for a server, `warn` for a one-shot command, whose output is its answer). Colours only
/// when stderr is a terminal.
pub fn init_tracing(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
