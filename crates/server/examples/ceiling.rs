//! The verify benchmark's ceiling: what keyward's HTTP stack alone serves for verify's request.
//!
//! `POST /bench/ceiling` sits in keyward's own router, inside the same layers, and takes its
//! request through verify's own extractors (the headers, the JSON body into verify's input
//! type). Then it answers a fixed body, a real verify answer read from a file, without any of
//! verify's work: no credential, no key parsing or digest, no cache, no usage count. The process
//! is set up as `keyward serve` is: the same allocator, and the same functions for the runtime
//! (`serve::runtime`), the JSON logs and the serving (`serve::serve_router`).
//!
//! `bench/run.sh` loads it with verify's wrk script in the same run as verify and `/healthz`:
//! ceiling / healthz is what verify's request and answer alone cost the stack and the load
//! generator; verify / ceiling is what verify's own work costs.
//!
//! Usage: `cargo run --release --example ceiling -- <listen address> <answer file>`

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use keyward_core::jwt::JwtKeys;
use keyward_core::password::Passwords;
use keyward_domain::SystemClock;
use keyward_server::api::v1::verify::VerifyKeyInput;
use keyward_server::app::{layered, routes, AppState, Settings};
use keyward_server::extract::{JsonBody, NoQuery};
use keyward_server::serve::{init_tracing, runtime, LogFormat};
use keyward_server::serve::{serve_router, shutdown_signal, HttpLimits};
use keyward_store_sqlite::SqliteStore;

// As the `keyward` binary: the allocator is part of what the stack costs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(answer_file)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: ceiling <listen address> <answer file>");
    };
    let listen: SocketAddr = listen.parse().context("the listen address")?;
    let answer =
        Bytes::from(std::fs::read(&answer_file).with_context(|| format!("reading {answer_file}"))?);
    init_tracing(LogFormat::Json, "info");
    runtime()
        .context("starting the async runtime")?
        .block_on(serve(listen, answer))
}

/// The fixed answer, read once at start (verify's extractors need keyward's state as the route's).
static ANSWER: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();

async fn serve(listen: SocketAddr, answer: Bytes) -> anyhow::Result<()> {
    ANSWER.get_or_init(|| answer);
    // keyward's routes need a state; the ceiling's own route reads none of it.
    let store = SqliteStore::open("sqlite::memory:")
        .await
        .context("opening an in-memory store")?;
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("drawing a JWT secret: {e}"))?;
    let state = AppState::new(
        Arc::new(store),
        Arc::new(SystemClock),
        JwtKeys::new(secret, time::Duration::hours(1))?,
        Passwords::production()?,
        Settings::default(),
    );
    let app = layered(routes(&state).route("/bench/ceiling", post(ceiling)), state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(%listen, "ceiling listening");
    serve_router(listener, app, HttpLimits::default(), shutdown_signal())
        .await
        .context("serving")
}

/// Verify's extractors but its verifier's credential (the check of which is verify's own work),
/// then the fixed answer.
async fn ceiling(
    State(_): State<AppState>,
    _: NoQuery,
    JsonBody(input): JsonBody<VerifyKeyInput>,
) -> Response {
    std::hint::black_box(&input);
    let answer = ANSWER.get().cloned().unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], answer).into_response()
}
