//! `/api/v1/audit-logs`: every mutation is recorded, each role sees its share, no secret leaks.

use axum::http::StatusCode;
use keyward_domain::Role;
use serde_json::json;

use crate::support::{app, As, PASSWORD};

fn actions(body: &serde_json::Value) -> Vec<String> {
    body.as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_mutation_is_audited_without_secrets() {
    let app = app().await;
    let admin = app.admin().await;
    let t = app.tenant("acme").await;
    app.patch(
        &format!("/api/v1/tenants/{t}"),
        As::Bearer(&admin),
        json!({"name": "Acme"}),
    )
    .await
    .expect(StatusCode::OK);
    let (member, _) = app.user_in(t, Role::Member).await;
    let (id, key) = app.key_with(&member, &[]).await;
    app.patch(
        &format!("/api/v1/api-keys/{id}"),
        As::Bearer(&member),
        json!({"name": "n"}),
    )
    .await
    .expect(StatusCode::OK);
    let rotated = app
        .post(
            &format!("/api/v1/api-keys/{id}/rotate"),
            As::Bearer(&member),
            json!({}),
        )
        .await
        .expect(StatusCode::CREATED);
    let new_key = rotated.body["key"].as_str().unwrap().to_owned();
    let new_id = rotated.body["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/api-keys/{new_id}"), As::Bearer(&member))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.post(
        "/api/v1/auth/login",
        As::Nobody,
        json!({"email": "nobody@example.com", "password": "wrong password"}),
    )
    .await;
    let other = app.tenant("other").await;
    app.delete(&format!("/api/v1/tenants/{other}"), As::Bearer(&admin))
        .await
        .expect(StatusCode::NO_CONTENT);

    let all = app
        .get("/api/v1/audit-logs?limit=1000", As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    let seen = actions(&all.body);
    for action in [
        "tenant.create",
        "tenant.update",
        "tenant.delete",
        "user.create",
        "auth.login",
        "auth.login_failed",
        "api_key.create",
        "api_key.update",
        "api_key.rotate",
        "api_key.revoke",
    ] {
        assert!(
            seen.contains(&action.to_owned()),
            "{action} missing from {seen:?}"
        );
    }
    let text = all.body.to_string();
    for secret in [key.as_str(), new_key.as_str(), PASSWORD, member.as_str()] {
        assert!(!text.contains(secret), "audit log leaks a secret");
    }
    let entry = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "api_key.update")
        .unwrap();
    assert_eq!(entry["actor_type"], "jwt");
    assert_eq!(entry["resource_type"], "api_key");
    assert_eq!(entry["resource_id"], id);
    assert_eq!(entry["tenant_id"], t.to_string());
    assert!(
        entry["request_id"].is_string(),
        "request ids reach the audit log"
    );
}

#[tokio::test]
async fn filters_pages_and_visibility() {
    let app = app().await;
    let admin = app.admin().await;
    let a = app.tenant("a").await;
    let b = app.tenant("b").await;
    let (alice, alice_id) = app.user_in(a, Role::Member).await;
    let (bob, _) = app.user_in(a, Role::Member).await;
    let a_admin = app.tenant_admin_of(a).await;
    let (b_member, _) = app.user_in(b, Role::Member).await;
    let (alice_key, _) = app.key_with(&alice, &[]).await;
    app.key_with(&bob, &[]).await;
    app.key_with(&b_member, &[]).await;

    let q = |who: &str, query: &str| {
        let app = &app;
        let who = who.to_owned();
        let query = query.to_owned();
        async move {
            app.get(&format!("/api/v1/audit-logs{query}"), As::Bearer(&who))
                .await
                .expect(StatusCode::OK)
                .body
        }
    };
    let alice_sees = q(&alice, "?action=api_key.create").await;
    assert_eq!(alice_sees.as_array().unwrap().len(), 1);
    assert_eq!(alice_sees[0]["resource_id"], alice_key);
    assert!(q(&alice, "")
        .await
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor_id"] == alice_id.to_string()
            || e["resource_id"] == alice_id.to_string()
            || e["tenant_id"] == a.to_string()));
    let tenant_view = q(&a_admin, "?action=api_key.create").await;
    assert_eq!(
        tenant_view.as_array().unwrap().len(),
        2,
        "tenant admin sees its tenant only"
    );
    assert_eq!(
        q(&a_admin, &format!("?tenant_id={b}"))
            .await
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        q(&admin, "?action=api_key.create")
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        q(&admin, &format!("?action=api_key.create&tenant_id={b}"))
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        q(
            &admin,
            &format!("?resource_type=api_key&resource_id={alice_key}")
        )
        .await
        .as_array()
        .unwrap()
        .len(),
        1
    );
    assert_eq!(
        q(&admin, "?since=2030-01-01T00:00:00Z")
            .await
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert!(!q(&admin, "?until=2030-01-01T00:00:00Z")
        .await
        .as_array()
        .unwrap()
        .is_empty());

    let page = app
        .get("/api/v1/audit-logs?limit=2", As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    let cursor = page.header("x-next-cursor").unwrap().to_owned();
    let next = app
        .get(
            &format!("/api/v1/audit-logs?limit=2&cursor={cursor}"),
            As::Bearer(&admin),
        )
        .await
        .expect(StatusCode::OK);
    assert_ne!(page.body[0]["id"], next.body[0]["id"]);

    app.get("/api/v1/audit-logs?since=yesterday", As::Bearer(&admin))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.get("/api/v1/audit-logs", As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let (_, app_only) = app.key_with(&alice, &["orders"]).await;
    app.get("/api/v1/audit-logs", As::ApiKey(&app_only))
        .await
        .expect(StatusCode::FORBIDDEN);
}
