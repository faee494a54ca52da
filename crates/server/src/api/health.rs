//! Liveness, readiness, health and metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::extract::NoQuery;

/// `GET /healthz`: the process is up.
pub async fn healthz(_: NoQuery) -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers.
pub async fn readyz(
    State(state): State<AppState>,
    _: NoQuery,
) -> (StatusCode, Json<serde_json::Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable"})),
        ),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` when the database answers, `degraded` otherwise.
    pub status: &'static str,
    pub version: &'static str,
    /// `ok` or `unavailable`.
    pub database: &'static str,
    pub uptime_seconds: u64,
}

/// Service health.
#[utoipa::path(get, path = "/api/v1/health", tag = "Health", operation_id = "getHealth",
    security(()),
    responses((status = 200, description = "Health of the service", body = HealthResponse)))]
pub async fn health(State(state): State<AppState>, _: NoQuery) -> Json<HealthResponse> {
    let db_ok = state.store.ping().await.is_ok();
    Json(HealthResponse {
        status: if db_ok { "ok" } else { "degraded" },
        version: env!("CARGO_PKG_VERSION"),
        database: if db_ok { "ok" } else { "unavailable" },
        uptime_seconds: state.uptime().as_secs(),
    })
}

/// `GET /metrics`: Prometheus' text exposition format (version 0.0.4).
pub async fn metrics(
    State(state): State<AppState>,
    _: NoQuery,
) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics_text(),
    )
}
