//! Running the server on a bound listener until `shutdown` resolves, then flushing buffered
//! writes. `main` binds the listener; tests call [`serve`] on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use keyward_store::ChangeSink;

use tokio::net::TcpListener;

use crate::app::{router, AppState};

pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let flusher = state
        .usage
        .spawn_flusher(state.store.clone(), state.clock.clone());
    let watcher = spawn_change_watcher(&state);
    let result = serve_router(listener, router(state.clone()), shutdown).await;
    flusher.stop().await;
    watcher.abort();
    state.usage.flush(state.store.as_ref(), state.now()).await;
    state.store.close().await;
    tracing::info!("stopped; buffered writes flushed");
    result
}

/// Serves `app` as keyward serves its router (with each request's peer address, which the audit
/// log records) until `shutdown` resolves. Also the benchmark's ceiling server's way to serve.
pub async fn serve_router(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Feeds the store's change feed (other nodes' revocations and edits) into this node's cache
/// until the returned handle is aborted.
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
