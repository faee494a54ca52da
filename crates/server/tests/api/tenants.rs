//! `/api/v1/tenants`: admins only.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{app, As};

#[tokio::test]
async fn create_get_list_update() {
    let app = app().await;
    let admin = app.admin().await;
    let r = app
        .post(
            "/api/v1/tenants",
            As::Bearer(&admin),
            json!({"name": "Acme", "slug": "acme", "metadata": {"plan": "pro"}}),
        )
        .await
        .expect(StatusCode::CREATED);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/tenants/{id}").as_str())
    );
    for field in ["id", "name", "slug", "metadata", "created_at", "updated_at"] {
        assert!(r.body.get(field).is_some(), "{field}");
    }
    let got = app
        .get(&format!("/api/v1/tenants/{id}"), As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert_eq!(got.body["slug"], "acme");
    app.post(
        "/api/v1/tenants",
        As::Bearer(&admin),
        json!({"name": "B", "slug": "b"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let list = app
        .get("/api/v1/tenants?limit=1", As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert!(list.header("x-next-cursor").is_some());
    app.advance(time::Duration::seconds(5));
    let r = app
        .patch(
            &format!("/api/v1/tenants/{id}"),
            As::Bearer(&admin),
            json!({"name": "Acme Inc", "key_prefix": "acme"}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["name"], "Acme Inc");
    assert_eq!(r.body["key_prefix"], "acme");
    assert_ne!(r.body["updated_at"], r.body["created_at"]);
    let r = app
        .patch(
            &format!("/api/v1/tenants/{id}"),
            As::Bearer(&admin),
            json!({"key_prefix": null}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["key_prefix"], serde_json::Value::Null);
}

#[tokio::test]
async fn validation_conflicts_and_rights() {
    let app = app().await;
    let admin = app.admin().await;
    let t = app.tenant("taken").await;
    let tadmin = app.tenant_admin_of(t).await;
    for body in [
        json!({"name": "X", "slug": "Bad Slug"}),
        json!({"name": "X", "slug": ""}),
        json!({"name": "X", "slug": "a".repeat(64)}),
        json!({"name": "", "slug": "ok"}),
        json!({"name": "X", "slug": "ok", "key_prefix": "NO_"}),
        json!({"name": "X", "slug": "ok", "metadata": "text"}),
        json!({"slug": "ok"}),
    ] {
        let r = app
            .post("/api/v1/tenants", As::Bearer(&admin), body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let r = app
        .post(
            "/api/v1/tenants",
            As::Bearer(&admin),
            json!({"name": "X", "slug": "taken"}),
        )
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(r.error_code(), "slug_taken");
    let other = app.tenant("other").await;
    app.patch(
        &format!("/api/v1/tenants/{other}"),
        As::Bearer(&admin),
        json!({"slug": "taken"}),
    )
    .await
    .expect(StatusCode::CONFLICT);
    app.patch(
        &format!("/api/v1/tenants/{other}"),
        As::Bearer(&admin),
        json!({"slug": "NOPE"}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    let missing = uuid::Uuid::now_v7();
    app.get(&format!("/api/v1/tenants/{missing}"), As::Bearer(&admin))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.patch(
        &format!("/api/v1/tenants/{missing}"),
        As::Bearer(&admin),
        json!({"name": "x"}),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    app.delete(&format!("/api/v1/tenants/{missing}"), As::Bearer(&admin))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.get("/api/v1/tenants/xyz", As::Bearer(&admin))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.patch("/api/v1/tenants/xyz", As::Bearer(&admin), json!({}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.delete("/api/v1/tenants/xyz", As::Bearer(&admin))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.get("/api/v1/tenants?limit=0", As::Bearer(&admin))
        .await
        .expect(StatusCode::BAD_REQUEST);

    // Admins only: tenant admins and admin keys without keyward:admin get 403; nobody 401.
    let (_, admin_reader) = app
        .key_from(&admin, json!({"tenant_id": t, "scopes": ["keyward:read"]}))
        .await;
    let (_, admin_key) = app
        .key_from(&admin, json!({"tenant_id": t, "scopes": ["keyward:admin"]}))
        .await;
    app.get("/api/v1/tenants", As::ApiKey(&admin_key))
        .await
        .expect(StatusCode::OK);
    for who in [As::Bearer(&tadmin), As::ApiKey(&admin_reader)] {
        app.post("/api/v1/tenants", who, json!({"name": "X", "slug": "new"}))
            .await
            .expect(StatusCode::FORBIDDEN);
        app.get("/api/v1/tenants", who)
            .await
            .expect(StatusCode::FORBIDDEN);
        app.get(&format!("/api/v1/tenants/{t}"), who)
            .await
            .expect(StatusCode::FORBIDDEN);
        app.patch(&format!("/api/v1/tenants/{t}"), who, json!({"name": "x"}))
            .await
            .expect(StatusCode::FORBIDDEN);
        app.delete(&format!("/api/v1/tenants/{t}"), who)
            .await
            .expect(StatusCode::FORBIDDEN);
    }
    app.post(
        "/api/v1/tenants",
        As::Nobody,
        json!({"name": "X", "slug": "new"}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    app.get("/api/v1/tenants", As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.get(&format!("/api/v1/tenants/{t}"), As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.patch(&format!("/api/v1/tenants/{t}"), As::Nobody, json!({}))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.delete(&format!("/api/v1/tenants/{t}"), As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deleting_a_tenant_with_active_keys_needs_force_which_revokes_them() {
    let app = app().await;
    let admin = app.admin().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (_, verifier) = app
        .key_from(
            &admin,
            json!({"tenant_id": app.tenant("ops").await, "scopes": ["keyward:verify"]}),
        )
        .await;
    let (_, key) = app.key_with(&member, &[]).await;
    let r = app
        .delete(&format!("/api/v1/tenants/{t}"), As::Bearer(&admin))
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(r.error_code(), "tenant_has_active_keys");
    let v = app
        .post(
            "/api/v1/keys/verify",
            As::ApiKey(&verifier),
            json!({"key": key}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(v.body["code"], "VALID", "a refused delete changes nothing");
    app.delete(
        &format!("/api/v1/tenants/{t}?force=true"),
        As::Bearer(&admin),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let v = app
        .post(
            "/api/v1/keys/verify",
            As::ApiKey(&verifier),
            json!({"key": key}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(v.body["code"], "REVOKED");
    app.get(&format!("/api/v1/tenants/{t}"), As::Bearer(&admin))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.delete(
        &format!("/api/v1/tenants/{t}?force=maybe"),
        As::Bearer(&admin),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
}
