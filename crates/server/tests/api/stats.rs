//! `GET /api/v1/stats` and `GET /api/v1/export`: counts from the verify path's buffered
//! counters, visibility by role, and a streamed export that carries no secret.

use axum::http::StatusCode;
use keyward_domain::Role;
use serde_json::{json, Value};

use crate::support::{app, As, TestApp};

async fn verify(app: &TestApp, verifier: &str, key: &str, scopes: &[&str], times: usize) {
    for _ in 0..times {
        app.post(
            "/api/v1/keys/verify",
            As::ApiKey(verifier),
            json!({"key": key, "scopes": scopes}),
        )
        .await
        .expect(StatusCode::OK);
    }
}

#[tokio::test]
async fn stats_count_keys_and_verifications_by_outcome() {
    let app = app().await;
    let t = app.tenant("stats").await;
    let u = app.tenant("other").await;
    let ann = app.member_of(t).await;
    let bob = app.member_of(t).await;
    let tadmin = app.tenant_admin_of(t).await;
    let (_, verifier) = app.key_with(&ann, &["keyward:verify"]).await;
    let (_, busy) = app.key_with(&ann, &["orders:read"]).await;
    let (_, quiet) = app.key_with(&ann, &["orders:read"]).await;
    let (bobs_id, bobs) = app.key_with(&bob, &["orders:read"]).await;
    let stranger = app.member_of(u).await;
    app.key_with(&stranger, &[]).await;
    let admin = app.admin().await;
    let (_, admin_verifier) = app
        .key_from(
            &admin,
            json!({"tenant_id": u, "scopes": ["keyward:verify"]}),
        )
        .await;

    verify(&app, &verifier, &busy, &["orders:read"], 3).await;
    verify(&app, &verifier, &busy, &["orders:write"], 2).await;
    verify(&app, &verifier, &quiet, &[], 1).await;
    verify(&app, &admin_verifier, &bobs, &[], 4).await;
    app.delete(&format!("/api/v1/api-keys/{bobs_id}"), As::Bearer(&bob))
        .await
        .expect(StatusCode::NO_CONTENT);
    verify(&app, &admin_verifier, &bobs, &[], 1).await;
    // Counters reach storage in batches; the flusher's work is done here at once.
    app.state
        .usage
        .flush(app.state.store.as_ref(), app.state.now())
        .await;

    let mine = app
        .get("/api/v1/stats", As::Bearer(&ann))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        mine["keys"],
        json!({"total": 3, "active": 3, "expired": 0, "revoked": 0, "dormant": 0})
    );
    assert_eq!(
        mine["verifications"]["last_24h"],
        json!({"VALID": 4, "INSUFFICIENT_SCOPES": 2})
    );
    assert_eq!(
        mine["verifications"]["last_30d"],
        mine["verifications"]["last_24h"]
    );
    assert_eq!(mine["top_keys"][0]["verifications"], 5);
    assert_eq!(mine["top_keys"][1]["verifications"], 1);
    assert_eq!(mine["top_keys"].as_array().unwrap().len(), 2);
    assert_eq!(mine["dormant_days"], 90);

    let tenant = app
        .get("/api/v1/stats", As::Bearer(&tadmin))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(tenant["keys"]["total"], 4);
    assert_eq!(tenant["keys"]["revoked"], 1);
    assert_eq!(
        tenant["verifications"]["last_30d"],
        json!({"VALID": 8, "INSUFFICIENT_SCOPES": 2, "REVOKED": 1})
    );
    let all = app
        .get("/api/v1/stats", As::Bearer(&admin))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(all["keys"]["total"], 6);

    // Days later the 24-hour window is empty, the 30-day one is not; keys go dormant at 90.
    app.advance(time::Duration::days(3));
    let later = app
        .get("/api/v1/stats", As::Bearer(&ann))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(later["verifications"]["last_24h"], json!({}));
    assert_eq!(later["verifications"]["last_30d"]["VALID"], 4);
    app.advance(time::Duration::days(100));
    let dormant = app
        .get("/api/v1/stats", As::Bearer(&ann))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(dormant["keys"]["dormant"], 3);
    assert_eq!(dormant["top_keys"], json!([]));

    // Estuary's /user/stats is the same document for the caller's own keys, even an admin's.
    let own = app
        .get("/user/stats", As::Bearer(&admin))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(own["keys"]["total"], 1);
}

#[tokio::test]
async fn stats_and_export_need_a_reading_credential() {
    let app = app().await;
    let t = app.tenant("stats").await;
    let ann = app.member_of(t).await;
    let (_, verify_only) = app.key_with(&ann, &["keyward:verify"]).await;
    for path in ["/api/v1/stats", "/api/v1/export"] {
        let r = app
            .get(path, As::Nobody)
            .await
            .expect(StatusCode::UNAUTHORIZED);
        assert_eq!(r.error_code(), "unauthenticated");
        let r = app
            .get(path, As::ApiKey(&verify_only))
            .await
            .expect(StatusCode::FORBIDDEN);
        assert_eq!(r.error_code(), "forbidden");
    }
}

#[tokio::test]
async fn export_streams_everything_about_the_caller_and_no_secret() {
    let app = app().await;
    let t = app.tenant("exp").await;
    let email = "exporter@example.com";
    let ann_id = app.user(email, Role::Member, Some(t)).await;
    let ann = app.login(email).await;
    let other = app.member_of(t).await;
    let (_, verifier) = app.key_with(&ann, &["keyward:verify"]).await;
    let (used_id, used) = app.key_with(&ann, &["orders:read"]).await;
    app.key_with(&other, &["orders:read"]).await;
    verify(&app, &verifier, &used, &["orders:read"], 2).await;
    app.state
        .usage
        .flush(app.state.store.as_ref(), app.state.now())
        .await;
    // More keys than one storage page, so the export crosses page boundaries.
    let mut plaintexts = vec![used.clone(), verifier.clone()];
    for i in 0..520 {
        let r = app
            .post(
                "/api/v1/api-keys",
                As::Bearer(&ann),
                json!({"name": format!("bulk {i}")}),
            )
            .await
            .expect(StatusCode::CREATED);
        if i < 3 {
            plaintexts.push(r.body["key"].as_str().unwrap().to_owned());
        }
    }

    let r = app
        .get("/api/v1/export", As::Bearer(&ann))
        .await
        .expect(StatusCode::OK);
    let disposition = r.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"keyward-export-"),
        "{disposition}"
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc: &Value = &r.body;
    assert_eq!(doc["user"]["id"], ann_id.to_string());
    assert_eq!(doc["user"]["email"], email);
    assert_eq!(doc["tenant"]["id"], t.to_string());
    let keys = doc["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 522, "every key of the caller, and only those");
    let mut ids: Vec<&str> = keys.iter().map(|k| k["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 522, "no key twice across pages");
    assert!(keys.iter().all(|k| k["owner_id"] == ann_id.to_string()));
    assert_eq!(
        doc["usage"],
        json!([{"key_id": used_id, "date": "2026-03-01", "code": "VALID", "count": 2}])
    );
    let audit = doc["audit_log"].as_array().unwrap();
    assert!(
        audit.len() >= 523,
        "login and every key creation: {}",
        audit.len()
    );
    assert!(audit.iter().any(|e| e["action"] == "auth.login"));

    let text = r.body.to_string();
    for secret in &plaintexts {
        assert!(
            !text.contains(secret.as_str()),
            "a plaintext key in the export"
        );
        let digest = keyward_domain::KeyDigest::of(secret);
        assert!(!text.contains(&digest.to_base64url()) && !text.contains(&digest.to_hex()));
    }
    assert!(!text.contains("argon2") && !text.contains("password"));

    // Estuary's /user/export is the same document.
    let estuary = app
        .get("/user/export", As::Bearer(&ann))
        .await
        .expect(StatusCode::OK);
    assert_eq!(estuary.body["api_keys"].as_array().unwrap().len(), 522);
    assert_eq!(estuary.body["usage"], doc["usage"]);
}
