//! `/api/v1/api-keys`: every route and status code, the cross-tenant and cross-owner 404s.

use axum::http::StatusCode;
use keyward_domain::{ParsedKey, Role};
use serde_json::json;

use crate::support::{app, As};

#[tokio::test]
async fn create_shows_the_key_once_with_location_and_no_store() {
    let app = app().await;
    let tenant = app.tenant("acme").await;
    let member = app.member_of(tenant).await;
    let r = app
        .post(
            "/api/v1/api-keys",
            As::Bearer(&member),
            json!({"name": "ci", "scopes": ["orders:read"], "expires_in": "90d"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let key = r.body["key"].as_str().unwrap();
    assert!(ParsedKey::parse(key).is_ok());
    assert!(key.starts_with("kw_"));
    assert_eq!(r.body["prefix"], "kw");
    assert_eq!(r.body["tenant_id"], tenant.to_string());
    assert_eq!(r.body["scopes"], json!(["orders:read"]));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let id = r.body["id"].as_str().unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/api-keys/{id}").as_str())
    );
    let expires: time::OffsetDateTime = time::OffsetDateTime::parse(
        r.body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        expires,
        crate::support::start_time() + time::Duration::days(90)
    );

    let got = app
        .get(&format!("/api/v1/api-keys/{id}"), As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert!(
        !got.body.to_string().contains(key),
        "plaintext must never be shown again"
    );
    assert_eq!(got.body["start"], &key[..7]);
    assert_eq!(got.body["status"], "active");
    let listed = app
        .get("/api/v1/api-keys", As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert!(!listed.body.to_string().contains(key));
}

#[tokio::test]
async fn admins_must_name_an_existing_tenant() {
    let app = app().await;
    let admin = app.admin().await;
    let r = app
        .post("/api/v1/api-keys", As::Bearer(&admin), json!({"name": "x"}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tenant_id"));
    let unknown = uuid::Uuid::now_v7();
    app.post(
        "/api/v1/api-keys",
        As::Bearer(&admin),
        json!({"tenant_id": unknown}),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn naming_a_tenant_the_caller_cannot_see_is_404() {
    let app = app().await;
    let mine = app.tenant("mine").await;
    let other = app.tenant("other").await;
    let member = app.member_of(mine).await;
    let r = app
        .post(
            "/api/v1/api-keys",
            As::Bearer(&member),
            json!({"tenant_id": other}),
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "not_found");
}

#[tokio::test]
async fn create_validates_every_field() {
    let app = app().await;
    let tenant = app.tenant("acme").await;
    let member = app.member_of(tenant).await;
    let cases = [
        (
            json!({"rate_limit_max": 0, "rate_limit_window": "1 minute"}),
            "rate_limit_max",
        ),
        (
            json!({"rate_limit_max": 100001, "rate_limit_window": "1 minute"}),
            "rate_limit_max",
        ),
        (
            json!({"rate_limit_max": 5, "rate_limit_window": "1 week"}),
            "rate_limit_window",
        ),
        (json!({"rate_limit_max": 5}), "rate_limit_max"),
        (json!({"expires_in": "soon"}), "expires_in"),
        (json!({"expires_in": "0d"}), "expires_in"),
        (json!({"expires_at": "2020-01-01T00:00:00Z"}), "expires_at"),
        (
            json!({"expires_at": "2030-01-01T00:00:00Z", "expires_in": "1d"}),
            "expires_in",
        ),
        (json!({"metadata": [1, 2]}), "metadata"),
        (json!({"metadata": {"blob": "x".repeat(5000)}}), "metadata"),
        (json!({"scopes": ["has space"]}), "scopes"),
        (json!({"scopes": ["keyward:root"]}), "scopes"),
        (json!({"name": "n".repeat(256)}), "name"),
        (json!({"tenant_id": "not-a-uuid"}), "tenant_id"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
    ];
    for (body, field) in cases {
        let r = app
            .post("/api/v1/api-keys", As::Bearer(&member), body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{body}: message {message:?} should name {field}"
        );
    }
    let listed = app
        .get("/api/v1/api-keys", As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        listed.body.as_array().unwrap().len(),
        0,
        "nothing half-written"
    );
}

#[tokio::test]
async fn keys_authenticate_and_are_narrowed_by_their_scopes() {
    let app = app().await;
    let tenant = app.tenant("acme").await;
    let member = app.member_of(tenant).await;
    let (_, reader) = app.key_with(&member, &["keyward:read"]).await;
    let (_, writer) = app
        .key_with(&member, &["keyward:read", "keyward:write", "orders"])
        .await;
    let (_, app_only) = app.key_with(&member, &["orders"]).await;

    app.get("/api/v1/api-keys", As::ApiKey(&reader))
        .await
        .expect(StatusCode::OK);
    app.get("/api/v1/api-keys", As::Bearer(&reader))
        .await
        .expect(StatusCode::OK);
    let r = app
        .get("/api/v1/api-keys", As::ApiKey(&app_only))
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "forbidden");
    app.post("/api/v1/api-keys", As::ApiKey(&reader), json!({}))
        .await
        .expect(StatusCode::FORBIDDEN);

    // A key can only grant what it holds itself.
    app.post(
        "/api/v1/api-keys",
        As::ApiKey(&writer),
        json!({"scopes": ["orders"]}),
    )
    .await
    .expect(StatusCode::CREATED);
    app.post(
        "/api/v1/api-keys",
        As::ApiKey(&writer),
        json!({"scopes": ["billing"]}),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    app.post(
        "/api/v1/api-keys",
        As::ApiKey(&writer),
        json!({"scopes": ["keyward:admin"]}),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn listing_follows_roles_filters_and_pages() {
    let app = app().await;
    let a = app.tenant("a").await;
    let b = app.tenant("b").await;
    let admin = app.admin().await;
    let (alice, _) = app.user_in(a, Role::Member).await;
    let (bob, _) = app.user_in(a, Role::Member).await;
    let (carol, _) = app.user_in(b, Role::Member).await;
    let a_admin = app.tenant_admin_of(a).await;
    for _ in 0..3 {
        app.key_with(&alice, &[]).await;
        app.advance(time::Duration::seconds(1));
    }
    app.key_with(&bob, &[]).await;
    app.key_with(&carol, &[]).await;

    let count = |r: crate::support::Resp| r.expect(StatusCode::OK).body.as_array().unwrap().len();
    assert_eq!(
        count(app.get("/api/v1/api-keys", As::Bearer(&alice)).await),
        3
    );
    assert_eq!(
        count(app.get("/api/v1/api-keys", As::Bearer(&a_admin)).await),
        4
    );
    assert_eq!(
        count(
            app.get(
                &format!("/api/v1/api-keys?tenant_id={b}"),
                As::Bearer(&a_admin)
            )
            .await
        ),
        0
    );
    assert_eq!(
        count(app.get("/api/v1/api-keys", As::Bearer(&admin)).await),
        5
    );
    assert_eq!(
        count(
            app.get(
                &format!("/api/v1/api-keys?tenant_id={b}"),
                As::Bearer(&admin)
            )
            .await
        ),
        1
    );

    // Pages of two, in creation order, linked by X-Next-Cursor.
    let first = app
        .get("/api/v1/api-keys?limit=2", As::Bearer(&alice))
        .await
        .expect(StatusCode::OK);
    let cursor = first
        .header("x-next-cursor")
        .expect("a next cursor")
        .to_owned();
    let second = app
        .get(
            &format!("/api/v1/api-keys?limit=2&cursor={cursor}"),
            As::Bearer(&alice),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(second.body.as_array().unwrap().len(), 1);
    assert!(second.header("x-next-cursor").is_none());
    let first_created = first.body[1]["created_at"].as_str().unwrap().to_owned();
    assert!(second.body[0]["created_at"].as_str().unwrap() > first_created.as_str());

    // Status filter.
    let id = first.body[0]["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/api-keys/{id}"), As::Bearer(&alice))
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        count(
            app.get("/api/v1/api-keys?status=revoked", As::Bearer(&alice))
                .await
        ),
        1
    );
    assert_eq!(
        count(
            app.get("/api/v1/api-keys?status=active", As::Bearer(&alice))
                .await
        ),
        2
    );
    assert_eq!(
        count(
            app.get("/api/v1/api-keys?status=expired", As::Bearer(&alice))
                .await
        ),
        0
    );

    for bad in [
        "status=gone",
        "limit=0",
        "limit=1001",
        "cursor=garbage",
        "tenant_id=nope",
        "limit=-1",
    ] {
        let r = app
            .get(&format!("/api/v1/api-keys?{bad}"), As::Bearer(&alice))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        r.error_code();
    }
    app.get("/api/v1/api-keys", As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn other_tenants_and_owners_get_404_never_403() {
    let app = app().await;
    let a = app.tenant("a").await;
    let b = app.tenant("b").await;
    let alice = app.member_of(a).await;
    let bob = app.member_of(a).await;
    let b_admin = app.tenant_admin_of(b).await;
    let a_admin = app.tenant_admin_of(a).await;
    let (id, _) = app.key_with(&alice, &[]).await;
    let path = format!("/api/v1/api-keys/{id}");
    for who in [&bob, &b_admin] {
        app.get(&path, As::Bearer(who))
            .await
            .expect(StatusCode::NOT_FOUND);
        app.patch(&path, As::Bearer(who), json!({"name": "x"}))
            .await
            .expect(StatusCode::NOT_FOUND);
        app.post(&format!("{path}/rotate"), As::Bearer(who), json!({}))
            .await
            .expect(StatusCode::NOT_FOUND);
        app.delete(&path, As::Bearer(who))
            .await
            .expect(StatusCode::NOT_FOUND);
    }
    app.get(&path, As::Bearer(&a_admin))
        .await
        .expect(StatusCode::OK);
    app.delete(&path, As::Bearer(&a_admin))
        .await
        .expect(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn get_and_revoke_status_codes() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (id, _) = app.key_with(&member, &[]).await;
    let (_, reader) = app.key_with(&member, &["keyward:read"]).await;
    let path = format!("/api/v1/api-keys/{id}");
    app.get(&path, As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    app.get("/api/v1/api-keys/not-a-uuid", As::Bearer(&member))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.get(
        &format!("/api/v1/api-keys/{}", uuid::Uuid::now_v7()),
        As::Bearer(&member),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    app.get(&path, As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.delete(&path, As::ApiKey(&reader))
        .await
        .expect(StatusCode::FORBIDDEN);
    app.delete(&path, As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.delete("/api/v1/api-keys/not-a-uuid", As::Bearer(&member))
        .await
        .expect(StatusCode::BAD_REQUEST);
    let r = app
        .delete(&path, As::Bearer(&member))
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(r.body, serde_json::Value::Null);
    let again = app
        .delete(&path, As::Bearer(&member))
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(again.error_code(), "not_found");
    let got = app
        .get(&path, As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(got.body["status"], "revoked");
    assert!(got.body["revoked_at"].is_string());
}

#[tokio::test]
async fn patch_edits_fields_and_never_widens_scopes() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (id, _) = app
        .key_from(
            &member,
            json!({"name": "old", "scopes": ["a"], "expires_in": "1d"}),
        )
        .await;
    let (_, writer) = app.key_with(&member, &["keyward:write", "a"]).await;
    let path = format!("/api/v1/api-keys/{id}");
    let r = app
        .patch(
            &path,
            As::Bearer(&member),
            json!({"name": "new", "scopes": ["a", "b"], "metadata": {"team": "x"},
            "expires_at": null, "rate_limit_max": 10, "rate_limit_window": "1 minute"}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["name"], "new");
    assert_eq!(r.body["scopes"], json!(["a", "b"]));
    assert_eq!(r.body["metadata"], json!({"team": "x"}));
    assert_eq!(r.body["expires_at"], serde_json::Value::Null);
    assert_eq!(r.body["rate_limit_max"], 10);
    // Name absent leaves it; name null clears it.
    let r = app
        .patch(&path, As::Bearer(&member), json!({"scopes": ["a"]}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["name"], "new");
    let r = app
        .patch(&path, As::Bearer(&member), json!({"name": null}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["name"], serde_json::Value::Null);

    app.patch(&path, As::ApiKey(&writer), json!({"scopes": ["a"]}))
        .await
        .expect(StatusCode::OK);
    app.patch(&path, As::ApiKey(&writer), json!({"scopes": ["a", "b"]}))
        .await
        .expect(StatusCode::FORBIDDEN);
    app.patch(
        &path,
        As::Bearer(&member),
        json!({"rate_limit_window": "1 fortnight"}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    app.patch(
        &path,
        As::Bearer(&member),
        json!({"expires_at": "2001-01-01T00:00:00Z"}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    app.patch(&path, As::Nobody, json!({}))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.patch("/api/v1/api-keys/nope", As::Bearer(&member), json!({}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.delete(&path, As::Bearer(&member))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.patch(&path, As::Bearer(&member), json!({"name": "dead"}))
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rotate_issues_a_like_key_and_revokes_the_old_one_now_or_after_grace() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let (member, _) = app.user_in(t, Role::Member).await;
    let (verifier_id, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let _ = verifier_id;
    let (id, old) = app
        .key_from(
            &member,
            json!({"name": "svc", "scopes": ["orders"], "expires_in": "30d", "metadata": {"k": "v"},
            "rate_limit_max": 100, "rate_limit_window": "1 minute"}),
        )
        .await;
    let verify = |key: String| {
        let app = &app;
        let verifier = verifier.clone();
        async move {
            app.verify(&verifier, &key)
                .await
                .expect(StatusCode::OK)
                .body["code"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    app.advance(time::Duration::days(1));
    let r = app
        .post(
            &format!("/api/v1/api-keys/{id}/rotate"),
            As::Bearer(&member),
            json!({}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let new_key = r.body["key"].as_str().unwrap().to_owned();
    let new_id = r.body["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    assert_eq!(r.body["name"], "svc");
    let new = app
        .get(&format!("/api/v1/api-keys/{new_id}"), As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(new.body["scopes"], json!(["orders"]));
    assert_eq!(new.body["metadata"], json!({"k": "v"}));
    assert_eq!(new.body["rate_limit_max"], 100);
    let expected_expiry = crate::support::start_time() + time::Duration::days(31);
    let expires = time::OffsetDateTime::parse(
        new.body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires, expected_expiry, "same lifetime from rotation");
    assert_eq!(verify(old.clone()).await, "REVOKED");
    assert_eq!(verify(new_key.clone()).await, "VALID");
    app.post(
        &format!("/api/v1/api-keys/{id}/rotate"),
        As::Bearer(&member),
        json!({}),
    )
    .await
    .expect(StatusCode::NOT_FOUND);

    // With a grace period the old key verifies until it ends; no body at all is fine too.
    let r = app
        .post(
            &format!("/api/v1/api-keys/{new_id}/rotate"),
            As::Bearer(&member),
            json!({"name": "svc2", "grace_period": "10m"}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(r.body["name"], "svc2");
    assert_eq!(verify(new_key.clone()).await, "VALID");
    app.advance(time::Duration::minutes(10));
    assert_eq!(verify(new_key).await, "REVOKED");
    let third = r.body["id"].as_str().unwrap();
    let req = axum::http::Request::post(format!("/api/v1/api-keys/{third}/rotate"))
        .header("authorization", format!("Bearer {member}"))
        .body(axum::body::Body::empty())
        .unwrap();
    app.send(req).await.expect(StatusCode::CREATED);

    for bad in [
        json!({"grace_period": "8d"}),
        json!({"grace_period": "soon"}),
        json!({"name": "n".repeat(256)}),
    ] {
        let fresh = app.key_with(&member, &[]).await.0;
        app.post(
            &format!("/api/v1/api-keys/{fresh}/rotate"),
            As::Bearer(&member),
            bad,
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    }
    app.post(
        &format!("/api/v1/api-keys/{id}/rotate"),
        As::Nobody,
        json!({}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    let (_, reader) = app.key_with(&member, &["keyward:read"]).await;
    app.post(
        &format!("/api/v1/api-keys/{third}/rotate"),
        As::ApiKey(&reader),
        json!({}),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    app.post(
        "/api/v1/api-keys/nope/rotate",
        As::Bearer(&member),
        json!({}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn dormant_counts_from_last_use_or_creation() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let (unused_id, _) = app.key_with(&member, &[]).await;
    let (used_id, used) = app.key_with(&member, &[]).await;
    let dormant = |days: &str| {
        let app = &app;
        let member = member.clone();
        let days = days.to_owned();
        async move {
            let r = app
                .get(
                    &format!("/api/v1/api-keys/dormant{days}"),
                    As::Bearer(&member),
                )
                .await
                .expect(StatusCode::OK);
            r.body
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert!(
        dormant("").await.is_empty(),
        "a key made a minute ago is not dormant"
    );
    app.advance(time::Duration::days(10));
    app.post(
        "/api/v1/keys/verify",
        As::ApiKey(&verifier),
        json!({"key": used}),
    )
    .await
    .expect(StatusCode::OK);
    app.state
        .usage
        .flush(app.state.store.as_ref(), app.state.now())
        .await;
    app.advance(time::Duration::days(5));
    let d = dormant("?days=7").await;
    assert!(d.contains(&unused_id) && !d.contains(&used_id), "{d:?}");
    let d = dormant("?days=1").await;
    assert!(d.contains(&unused_id) && d.contains(&used_id));
    app.delete(
        &format!("/api/v1/api-keys/{unused_id}"),
        As::Bearer(&member),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert!(
        !dormant("?days=1").await.contains(&unused_id),
        "revoked keys are not dormant"
    );
    for bad in ["?days=0", "?days=366", "?days=x"] {
        app.get(
            &format!("/api/v1/api-keys/dormant{bad}"),
            As::Bearer(&member),
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    }
    app.get("/api/v1/api-keys/dormant", As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let (_, app_only) = app.key_with(&member, &["orders"]).await;
    app.get("/api/v1/api-keys/dormant", As::ApiKey(&app_only))
        .await
        .expect(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn tenant_prefix_applies_to_keys_made_after_it_is_set() {
    let app = app().await;
    let admin = app.admin().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (_, before) = app.key_with(&member, &[]).await;
    app.patch(
        &format!("/api/v1/tenants/{t}"),
        As::Bearer(&admin),
        json!({"key_prefix": "acme"}),
    )
    .await
    .expect(StatusCode::OK);
    let (_, after) = app.key_with(&member, &[]).await;
    assert!(before.starts_with("kw_"));
    assert!(after.starts_with("acme_"));
    assert!(ParsedKey::parse(&after).is_ok());
}
