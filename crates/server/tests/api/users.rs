//! `/api/v1/users`.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{app, As, PASSWORD};

#[tokio::test]
async fn admins_create_users_without_exposing_hashes() {
    let app = app().await;
    let admin = app.admin().await;
    let t = app.tenant("acme").await;
    let r = app
        .post("/api/v1/users", As::Bearer(&admin), json!({"email": "Bob@Example.com", "password": PASSWORD, "role": "tenant_admin", "tenant_id": t}))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(r.body["email"], "bob@example.com");
    assert_eq!(r.body["role"], "tenant_admin");
    assert_eq!(r.body["tenant_id"], t.to_string());
    assert!(r.header("location").unwrap().starts_with("/api/v1/users/"));
    let text = r.body.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );
    let token = app.login("bob@example.com").await;
    let me = app
        .get("/api/v1/users/me", As::Bearer(&token))
        .await
        .expect(StatusCode::OK);
    assert_eq!(me.body["id"], r.body["id"]);
    assert!(!me.body.to_string().contains("argon2"));
}

#[tokio::test]
async fn validation_and_conflicts() {
    let app = app().await;
    let admin = app.admin().await;
    let t = app.tenant("acme").await;
    app.post(
        "/api/v1/users",
        As::Bearer(&admin),
        json!({"email": "a@example.com", "password": PASSWORD}),
    )
    .await
    .expect(StatusCode::CREATED);
    let r = app
        .post(
            "/api/v1/users",
            As::Bearer(&admin),
            json!({"email": "A@example.com", "password": PASSWORD}),
        )
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(r.error_code(), "email_taken");
    for (body, field) in [
        (
            json!({"email": "b@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"email": "b@example.com", "password": PASSWORD, "role": "root"}),
            "role",
        ),
        (
            json!({"email": "b@example.com", "password": PASSWORD, "role": "tenant_admin"}),
            "tenant_id",
        ),
    ] {
        let r = app
            .post("/api/v1/users", As::Bearer(&admin), body.clone())
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(field),
            "{body}"
        );
    }
    let missing = uuid::Uuid::now_v7();
    app.post(
        "/api/v1/users",
        As::Bearer(&admin),
        json!({"email": "c@example.com", "password": PASSWORD, "tenant_id": missing}),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    app.post(
        "/api/v1/users",
        As::Nobody,
        json!({"email": "d@example.com", "password": PASSWORD}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    let _ = t;
}

#[tokio::test]
async fn tenant_admins_create_users_in_their_own_tenant_only() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let other = app.tenant("other").await;
    let tadmin = app.tenant_admin_of(t).await;
    let member = app.member_of(t).await;
    let r = app
        .post(
            "/api/v1/users",
            As::Bearer(&tadmin),
            json!({"email": "m@example.com", "password": PASSWORD}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        r.body["tenant_id"],
        t.to_string(),
        "defaults to the tenant admin's tenant"
    );
    assert_eq!(r.body["role"], "member");
    app.post(
        "/api/v1/users",
        As::Bearer(&tadmin),
        json!({"email": "n@example.com", "password": PASSWORD, "tenant_id": other}),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    app.post(
        "/api/v1/users",
        As::Bearer(&tadmin),
        json!({"email": "o@example.com", "password": PASSWORD, "role": "admin"}),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    app.post(
        "/api/v1/users",
        As::Bearer(&member),
        json!({"email": "p@example.com", "password": PASSWORD}),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn me_needs_read() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (_, app_only) = app.key_with(&member, &["orders"]).await;
    app.get("/api/v1/users/me", As::ApiKey(&app_only))
        .await
        .expect(StatusCode::FORBIDDEN);
    app.get("/api/v1/users/me", As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
}
