//! `/healthz`, `/readyz`, `/api/v1/health`.

use axum::http::StatusCode;

use crate::support::{app, As};

#[tokio::test]
async fn health_endpoints() {
    let app = app().await;
    let r = app.get("/healthz", As::Nobody).await.expect(StatusCode::OK);
    assert_eq!(r.body["status"], "ok");
    let r = app.get("/readyz", As::Nobody).await.expect(StatusCode::OK);
    assert_eq!(r.body["status"], "ready");
    let r = app
        .get("/api/v1/health", As::Nobody)
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["status"], "ok");
    assert_eq!(r.body["database"], "ok");
    assert_eq!(r.body["version"], env!("CARGO_PKG_VERSION"));
    assert!(r.body["uptime_seconds"].is_u64());
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = app().await;
    app.state.store.close().await;
    let r = app
        .get("/readyz", As::Nobody)
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["status"], "unavailable");
    let r = app
        .get("/api/v1/health", As::Nobody)
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["status"], "degraded");
    let r = app
        .post(
            "/api/v1/auth/login",
            As::Nobody,
            serde_json::json!({"email": "a@b.c", "password": "whatever-whatever"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.error_code(), "unavailable");
}
