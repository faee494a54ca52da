//! `POST /api/v1/keys/verify`: every code, the verifier credential, and rate limits.

use axum::http::StatusCode;
use keyward_core::Settings;
use serde_json::json;

use crate::support::{app, app_with, As};

#[tokio::test]
async fn answers_every_code_with_identity_only_for_existing_keys() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let (member, member_id) = app.user_in(t, keyward_domain::Role::Member).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let (id, key) = app.key_from(&member, json!({"name": "svc", "scopes": ["orders:read"], "metadata": {"plan": "pro"}, "expires_in": "1h"})).await;
    let v = |body: serde_json::Value| {
        let app = &app;
        let verifier = verifier.clone();
        async move {
            app.post("/api/v1/keys/verify", As::ApiKey(&verifier), body)
                .await
                .expect(StatusCode::OK)
                .body
        }
    };

    let ok = v(json!({"key": key, "scopes": ["orders:read"]})).await;
    assert_eq!(ok["valid"], true);
    assert_eq!(ok["code"], "VALID");
    assert_eq!(ok["key_id"], id);
    assert_eq!(ok["tenant_id"], t.to_string());
    assert_eq!(ok["owner_id"], member_id.to_string());
    assert_eq!(ok["name"], "svc");
    assert_eq!(ok["scopes"], json!(["orders:read"]));
    assert_eq!(ok["metadata"], json!({"plan": "pro"}));
    assert!(ok["expires_at"].is_string());

    let scopes = v(json!({"key": key, "scopes": ["orders:write"]})).await;
    assert_eq!(
        (scopes["valid"].clone(), scopes["code"].clone()),
        (json!(false), json!("INSUFFICIENT_SCOPES"))
    );
    assert_eq!(scopes["key_id"], id);

    for garbage in [
        "",
        "nope",
        "kw_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &key[..key.len() - 1],
    ] {
        let r = v(json!({"key": garbage})).await;
        assert_eq!(r["code"], "NOT_FOUND", "{garbage}");
        assert!(r.get("key_id").is_none());
    }
    let unknown =
        keyward_domain::PlainKey::generate(&keyward_domain::KeyPrefix::default_prefix()).unwrap();
    let r = v(json!({"key": unknown.expose()})).await;
    assert_eq!(r["code"], "NOT_FOUND");
    assert!(r.get("owner_id").is_none());

    app.advance(time::Duration::hours(1));
    let expired = v(json!({"key": key})).await;
    assert_eq!(expired["code"], "EXPIRED");
    assert_eq!(expired["key_id"], id);

    let (rid, revoked) = app.key_with(&member, &[]).await;
    app.delete(&format!("/api/v1/api-keys/{rid}"), As::Bearer(&member))
        .await
        .expect(StatusCode::NO_CONTENT);
    let r = v(json!({"key": revoked})).await;
    assert_eq!(r["code"], "REVOKED", "revoked on the very next request");
    assert_eq!(r["valid"], false);
}

#[tokio::test]
async fn rate_limits_answer_rate_limited_with_the_reset_time() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let (_, key) = app
        .key_from(
            &member,
            json!({"rate_limit_max": 2, "rate_limit_window": "1 minute"}),
        )
        .await;
    let mut remaining = vec![];
    for _ in 0..2 {
        let r = app
            .post(
                "/api/v1/keys/verify",
                As::ApiKey(&verifier),
                json!({"key": key}),
            )
            .await
            .expect(StatusCode::OK);
        assert_eq!(r.body["code"], "VALID");
        assert_eq!(r.body["ratelimit"]["limit"], 2);
        remaining.push(r.body["ratelimit"]["remaining"].as_u64().unwrap());
    }
    assert_eq!(remaining, vec![1, 0]);
    let r = app
        .post(
            "/api/v1/keys/verify",
            As::ApiKey(&verifier),
            json!({"key": key}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["code"], "RATE_LIMITED");
    assert_eq!(r.body["valid"], false);
    let reset = time::OffsetDateTime::parse(
        r.body["ratelimit"]["reset"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        reset,
        crate::support::start_time() + time::Duration::minutes(1)
    );
    app.advance(time::Duration::seconds(30));
    let r = app
        .post(
            "/api/v1/keys/verify",
            As::ApiKey(&verifier),
            json!({"key": key}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["code"], "VALID", "half the window frees one request");
}

#[tokio::test]
async fn the_verifier_needs_keyward_verify_and_sees_only_its_keys() {
    let app = app().await;
    let a = app.tenant("a").await;
    let b = app.tenant("b").await;
    let a_admin = app.tenant_admin_of(a).await;
    let b_member = app.member_of(b).await;
    let (_, a_verifier) = app.key_with(&a_admin, &["keyward:verify"]).await;
    let (_, a_reader) = app.key_with(&a_admin, &["keyward:read"]).await;
    let (_, b_key) = app.key_with(&b_member, &[]).await;
    let a_member = app.member_of(a).await;
    let (_, a_key) = app.key_with(&a_member, &[]).await;

    let r = app
        .post("/api/v1/keys/verify", As::Nobody, json!({"key": a_key}))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "unauthenticated");
    app.post(
        "/api/v1/keys/verify",
        As::ApiKey(&a_reader),
        json!({"key": a_key}),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    app.post(
        "/api/v1/keys/verify",
        As::Bearer("garbage"),
        json!({"key": a_key}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    let ok = app
        .post(
            "/api/v1/keys/verify",
            As::ApiKey(&a_verifier),
            json!({"key": a_key}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        ok.body["code"], "VALID",
        "a tenant admin's verifier covers its tenant"
    );
    let other = app
        .post(
            "/api/v1/keys/verify",
            As::ApiKey(&a_verifier),
            json!({"key": b_key}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        other.body["code"], "NOT_FOUND",
        "another tenant's key is not revealed"
    );
    assert!(other.body.get("tenant_id").is_none());
    app.post(
        "/api/v1/keys/verify",
        As::ApiKey(&a_verifier),
        json!({"nokey": 1}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn public_verify_needs_no_credential() {
    let app = app_with(Settings {
        public_verify: true,
        ..Settings::default()
    })
    .await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (_, key) = app.key_with(&member, &[]).await;
    let r = app
        .post("/api/v1/keys/verify", As::Nobody, json!({"key": key}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["code"], "VALID");
}

#[tokio::test]
async fn use_is_recorded_in_batches() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let (id, key) = app.key_with(&member, &[]).await;
    app.post(
        "/api/v1/keys/verify",
        As::ApiKey(&verifier),
        json!({"key": key}),
    )
    .await
    .expect(StatusCode::OK);
    let before = app
        .get(&format!("/api/v1/api-keys/{id}"), As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        before.body["last_used_at"],
        serde_json::Value::Null,
        "not written per request"
    );
    assert!(app.state.usage.pending() >= 1);
    app.state
        .usage
        .flush(app.state.store.as_ref(), app.state.now())
        .await;
    let after = app
        .get(&format!("/api/v1/api-keys/{id}"), As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(after.body["last_used_at"], "2026-03-01T12:00:00Z");
}

/// A verifier presented on every request has its use noted at most once a second per thread
/// (`last_used_at` is written at most once a minute): a use within the second after a note moves
/// nothing, the first one after it is noted.
#[tokio::test]
async fn a_verifiers_use_is_noted_at_most_once_a_second_per_thread() {
    use time::{format_description::well_known::Rfc3339, Duration, OffsetDateTime};
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (first_id, first) = app.key_with(&member, &["keyward:verify"]).await;
    let (second_id, second) = app.key_with(&member, &["keyward:verify"]).await;
    let (_, key) = app.key_with(&member, &[]).await;
    let start = crate::support::start_time();

    // `tokio::test` runs every request on this one thread, so each verifier is remembered here.
    app.verify(&first, &key).await.expect(StatusCode::OK);
    app.advance(Duration::milliseconds(500));
    app.verify(&first, &key).await.expect(StatusCode::OK);
    app.verify(&second, &key).await.expect(StatusCode::OK);
    app.advance(Duration::milliseconds(1200));
    app.verify(&second, &key).await.expect(StatusCode::OK);
    app.state
        .usage
        .flush(app.state.store.as_ref(), app.state.now())
        .await;

    let last_used = |id: String| {
        let app = &app;
        let member = member.clone();
        async move {
            let r = app
                .get(&format!("/api/v1/api-keys/{id}"), As::Bearer(&member))
                .await
                .expect(StatusCode::OK);
            let at = r.body["last_used_at"]
                .as_str()
                .expect("a last use")
                .to_owned();
            OffsetDateTime::parse(&at, &Rfc3339).expect("RFC 3339")
        }
    };
    assert_eq!(
        last_used(first_id).await,
        start,
        "the use 0.5 s after its note"
    );
    assert_eq!(
        last_used(second_id).await,
        start + Duration::milliseconds(1700),
        "the use 1.2 s after its note"
    );
}

#[tokio::test]
async fn known_keys_are_answered_from_the_cache_and_changes_land_before_the_2xx() {
    let app = crate::support::app().await;
    let t = app.tenant("cache").await;
    let member = app.member_of(t).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let (id, key) = app.key_with(&member, &["orders:read"]).await;
    let verify = |scopes: serde_json::Value| {
        let (app, verifier, key) = (&app, verifier.clone(), key.clone());
        async move {
            app.post(
                "/api/v1/keys/verify",
                As::ApiKey(&verifier),
                json!({"key": key, "scopes": scopes}),
            )
            .await
            .expect(StatusCode::OK)
            .body["code"]
                .clone()
        }
    };
    assert_eq!(verify(json!(["orders:read"])).await, "VALID");
    let hits = app.state.cache.hits();
    assert_eq!(verify(json!(["orders:read"])).await, "VALID");
    assert!(
        app.state.cache.hits() > hits,
        "the verified key came from the cache (the verifier's key from the thread's memory of it)"
    );

    // A write that bypasses this node (the CLI, another node) is not seen until the safety TTL
    // ends: proof that the answer above came from memory, not storage.
    let uuid: uuid::Uuid = id.parse().unwrap();
    let mut stored = app.state.store.get_key(uuid).await.unwrap().unwrap();
    stored.scopes = keyward_domain::Scopes::parse(&["orders:write"]).unwrap();
    let audit = keyward_domain::Actor::system().entry(
        app.state.now(),
        keyward_domain::AuditAction::ApiKeyUpdate,
        uuid,
    );
    app.state
        .store
        .update_key(&stored, app.state.now(), &audit)
        .await
        .unwrap();
    assert_eq!(verify(json!(["orders:read"])).await, "VALID");
    app.advance(time::Duration::seconds(31));
    assert_eq!(
        verify(json!(["orders:read"])).await,
        "INSUFFICIENT_SCOPES",
        "past the TTL storage is read again"
    );

    // Changes made through this node take effect on the very next request.
    app.patch(
        &format!("/api/v1/api-keys/{id}"),
        As::Bearer(&member),
        json!({"scopes": ["orders:read"]}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(verify(json!(["orders:read"])).await, "VALID");
    app.delete(&format!("/api/v1/api-keys/{id}"), As::Bearer(&member))
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(verify(json!([])).await, "REVOKED");
}

#[tokio::test]
async fn rotation_and_tenant_deletion_reach_the_cache_at_once() {
    let app = crate::support::app().await;
    let t = app.tenant("cache").await;
    let elsewhere = app.tenant("elsewhere").await;
    let admin = app.admin().await;
    let member = app.member_of(t).await;
    let (_, verifier) = app
        .key_from(
            &admin,
            json!({"tenant_id": elsewhere, "scopes": ["keyward:verify"]}),
        )
        .await;
    let (id, old) = app.key_with(&member, &[]).await;
    let code = |key: String| verify_code(&app, &verifier, key);
    assert_eq!(code(old.clone()).await, "VALID");
    let rotated = app
        .post(
            &format!("/api/v1/api-keys/{id}/rotate"),
            As::Bearer(&member),
            json!({}),
        )
        .await
        .expect(StatusCode::CREATED);
    let new = rotated.body["key"].as_str().unwrap().to_owned();
    assert_eq!(code(old).await, "REVOKED");
    assert_eq!(code(new.clone()).await, "VALID");
    app.delete(
        &format!("/api/v1/tenants/{t}?force=true"),
        As::Bearer(&admin),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert_eq!(code(new).await, "REVOKED");
}

#[tokio::test]
async fn time_is_checked_on_every_verify_and_malformed_keys_never_reach_the_cache() {
    let app = crate::support::app().await;
    let t = app.tenant("clock").await;
    let member = app.member_of(t).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let soon = crate::support::start_time() + time::Duration::seconds(10);
    let (_, expiring) = app
        .key_from(
            &member,
            json!({"expires_at": soon.format(&time::format_description::well_known::Rfc3339).unwrap()}),
        )
        .await;
    let (id, rotated) = app.key_with(&member, &[]).await;
    let code = |key: String| verify_code(&app, &verifier, key);
    assert_eq!(code(expiring.clone()).await, "VALID");
    assert_eq!(code(rotated.clone()).await, "VALID");
    app.post(
        &format!("/api/v1/api-keys/{id}/rotate"),
        As::Bearer(&member),
        json!({"grace_period": "5s"}),
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(
        code(rotated.clone()).await,
        "VALID",
        "inside the grace period"
    );

    // Both keys stay cached (the safety TTL is 30 s); the clock alone ends them.
    app.advance(time::Duration::seconds(11));
    let misses = app.state.cache.misses();
    assert_eq!(code(expiring).await, "EXPIRED");
    assert_eq!(code(rotated).await, "REVOKED");
    assert_eq!(app.state.cache.misses(), misses, "answered from the cache");

    // A malformed key or a wrong checksum is answered without a lookup of any kind.
    let (hits, misses) = (app.state.cache.hits(), app.state.cache.misses());
    // The verifier is remembered: no lookup for it either.
    let verifier_lookup = 0;
    for garbage in [
        "nope",
        "kw_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert_eq!(code(garbage.into()).await, "NOT_FOUND");
    }
    assert_eq!(
        (app.state.cache.hits(), app.state.cache.misses()),
        (hits + 2 * verifier_lookup, misses),
        "nothing was looked up"
    );
}

/// The verdict's code for `key`, verified with the `verifier` key.
async fn verify_code(
    app: &crate::support::TestApp,
    verifier: &str,
    key: String,
) -> serde_json::Value {
    app.verify(verifier, &key).await.expect(StatusCode::OK).body["code"].clone()
}

/// The verifier's own credential is served from the cache like any key: a revocation, a scope
/// change and its expiry reach it on the very next request.
#[tokio::test]
async fn the_verifiers_own_credential_is_checked_again_on_every_request() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (_, key) = app.key_with(&member, &[]).await;
    let verify_as = |verifier: String| {
        let app = &app;
        let key = key.clone();
        async move { app.verify(&verifier, &key).await }
    };

    let (_, expiring) = app
        .key_from(
            &member,
            json!({"scopes": ["keyward:verify"], "expires_in": "1h"}),
        )
        .await;
    app.advance(time::Duration::hours(1) - time::Duration::milliseconds(500));
    let r = verify_as(expiring.clone()).await.expect(StatusCode::OK);
    assert_eq!(r.body["code"], "VALID");
    app.advance(time::Duration::milliseconds(600));
    let r = verify_as(expiring).await.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "credential_expired");

    let (id, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    verify_as(verifier.clone()).await.expect(StatusCode::OK);
    app.patch(
        &format!("/api/v1/api-keys/{id}"),
        As::Bearer(&member),
        json!({"scopes": ["keyward:read"]}),
    )
    .await
    .expect(StatusCode::OK);
    verify_as(verifier.clone())
        .await
        .expect(StatusCode::FORBIDDEN);
    app.patch(
        &format!("/api/v1/api-keys/{id}"),
        As::Bearer(&member),
        json!({"scopes": ["keyward:verify"]}),
    )
    .await
    .expect(StatusCode::OK);
    verify_as(verifier.clone()).await.expect(StatusCode::OK);
    app.delete(&format!("/api/v1/api-keys/{id}"), As::Bearer(&member))
        .await
        .expect(StatusCode::NO_CONTENT);
    verify_as(verifier).await.expect(StatusCode::UNAUTHORIZED);
}
