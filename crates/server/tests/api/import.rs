//! `POST /api/v1/api-keys/import`: other services' keys brought in so that they keep working on
//! every surface, in batches written whole or not at all, idempotently.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use hmac::Mac;
use serde_json::{json, Value};
use sha2::Digest;
use uuid::Uuid;

use crate::support::{app, app_with, As, Resp, TestApp};

fn estuary_token() -> String {
    format!("EST{}ARY", Uuid::new_v4())
}

fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn jsonl(rows: &[Value]) -> String {
    rows.iter().map(|r| format!("{r}\n")).collect()
}

async fn import(app: &TestApp, admin: &str, query: &str, body: String) -> Resp {
    import_with(app, admin, query, body, &[]).await
}

async fn import_with(
    app: &TestApp,
    admin: &str,
    query: &str,
    body: String,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = Request::post(format!("/api/v1/api-keys/import?{query}"))
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/jsonl");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    app.send(req.body(Body::from(body)).unwrap()).await
}

/// An admin's key that verifies any key.
async fn verifier(app: &TestApp, admin: &str, tenant: Uuid) -> String {
    app.key_from(
        admin,
        json!({"tenant_id": tenant, "scopes": ["keyward:verify"]}),
    )
    .await
    .1
}

/// Imports `rows` one per batch, expecting some refused (422): the report, and each refused
/// row's reason in order.
async fn refused(app: &TestApp, admin: &str, rows: &[Value]) -> (Value, Vec<String>) {
    let r = import(
        app,
        admin,
        "format=estuary&create_owners=true&batch=1",
        jsonl(rows),
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    let report = r.body["report"].clone();
    let reasons = report["bad_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reason"].as_str().unwrap().to_owned())
        .collect();
    (report, reasons)
}

async fn code(app: &TestApp, verifier: &str, key: &str) -> String {
    app.verify(verifier, key).await.body["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn imported_estuary_tokens_work_on_every_surface_and_rotate_to_native_keys() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    let admin = app.admin().await;
    let verifier = verifier(&app, &admin, acme).await;
    let (plain, hashed) = (estuary_token(), estuary_token());
    let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(hashed.as_bytes()));
    let rows = [
        json!({"token": plain, "owner_email": "Ann@Acme.test", "tenant": "acme",
            "label": "laptop", "expiry": "2099-01-01T00:00:00Z",
            "created_at": "2025-01-02T03:04:05Z", "last_used_at": "2026-01-01T00:00:00Z"}),
        json!({"tokenHash": hash, "owner_email": "ann@acme.test", "tenant": "acme",
            "isSession": false, "scopes": ["orders:read"]}),
    ];
    let r = import(
        &app,
        &admin,
        "format=estuary&create_owners=true",
        jsonl(&rows),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(r.body["imported"], 2, "{}", r.body);
    assert_eq!(r.body["owners_created"], 1, "{}", r.body);

    // Verify and forward auth, like native keys.
    assert_eq!(code(&app, &verifier, &plain).await, "VALID");
    assert_eq!(code(&app, &verifier, &hashed).await, "VALID");
    let r = app
        .post(
            "/api/v1/keys/verify",
            As::ApiKey(&verifier),
            json!({"key": hashed, "scopes": ["orders:read"]}),
        )
        .await;
    assert_eq!(r.body["code"], "VALID", "{}", r.body);
    let req = Request::get("/api/v1/auth/forward")
        .header("x-keyward-verifier", &verifier)
        .header("x-api-key", &plain)
        .body(Body::empty())
        .unwrap();
    app.send(req).await.expect(StatusCode::OK);
    // The native API and Estuary's surface, as its user (an Estuary token's default scopes).
    let r = app
        .get("/api/v1/api-keys", As::ApiKey(&plain))
        .await
        .expect(StatusCode::OK);
    let listed = r.body.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{}", r.body);
    let laptop = listed.iter().find(|k| k["name"] == "laptop").unwrap();
    assert_eq!(laptop["prefix"], "EST");
    assert_eq!(laptop["tenant_id"], acme.to_string());
    assert_eq!(laptop["created_at"], "2025-01-02T03:04:05Z");
    assert!(laptop["start"].as_str().unwrap().starts_with("EST"));
    assert!(!r.body.to_string().contains(&plain), "no plaintext is kept");
    let r = app
        .get("/user/api-keys", As::Bearer(&plain))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body.as_array().unwrap().len(), 2, "{}", r.body);
    // The form surface.
    app.get("/api/apikey", As::ApiKey(&plain))
        .await
        .expect(StatusCode::OK);

    // Rotating an imported key gives a native one; the imported one stops.
    let id = laptop["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/api-keys/{id}/rotate"),
            As::Bearer(&admin),
            json!({}),
        )
        .await
        .expect(StatusCode::CREATED);
    let native = r.body["key"].as_str().unwrap().to_owned();
    assert!(native.starts_with("kw_"), "{native}");
    assert_eq!(code(&app, &verifier, &native).await, "VALID");
    assert_eq!(code(&app, &verifier, &plain).await, "REVOKED");
}

#[tokio::test]
async fn stratum_keys_by_digest_or_hmac_and_sha256_keys_by_their_prefix_verify() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    let admin = app.admin().await;
    let verifier = verifier(&app, &admin, acme).await;
    let owner = app
        .user("owner@acme.test", keyward_domain::Role::Member, None)
        .await;
    let _ = owner;

    let by_sha = format!("sk_live_{}", Uuid::new_v4().simple());
    let by_plain = format!("sk_live_{}", Uuid::new_v4().simple());
    let rows = [
        json!({"key_hash": sha256_hex(&by_sha), "owner_email": "owner@acme.test"}),
        json!({"key": by_plain, "owner_email": "owner@acme.test", "revoked_at": "2026-01-01T00:00:00Z"}),
    ];
    let r = import(&app, &admin, "format=stratum", jsonl(&rows))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["imported"], 2, "{}", r.body);
    assert_eq!(code(&app, &verifier, &by_sha).await, "VALID");
    assert_eq!(code(&app, &verifier, &by_plain).await, "REVOKED");

    // HMAC-SHA256 under the secret the other service used.
    let secret = "the stratum service's hmac secret";
    let by_mac = format!("sk_live_{}", Uuid::new_v4().simple());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(by_mac.as_bytes());
    let row = json!({"key_hash": hex::encode(mac.finalize().into_bytes()), "owner_email": "owner@acme.test"});
    let r = import_with(
        &app,
        &admin,
        "format=stratum",
        jsonl(&[row]),
        &[("keyward-import-hmac-secret", secret)],
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(r.body["imported"], 1, "{}", r.body);
    assert_eq!(code(&app, &verifier, &by_mac).await, "VALID");
    assert_eq!(
        code(&app, &verifier, &by_sha).await,
        "VALID",
        "both shapes hold"
    );

    // Any key, by its SHA-256 in hex or base64, under the prefix the import names.
    let (a, b) = ("ghx_first-key.1", "ghx_second/key+2");
    let b64 = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b.as_bytes()));
    let rows = [
        json!({"sha256": sha256_hex(a), "owner_email": "owner@acme.test", "scopes": ["read"]}),
        json!({"sha256": b64, "owner_email": "owner@acme.test"}),
    ];
    import(&app, &admin, "format=sha256&prefix=ghx_", jsonl(&rows))
        .await
        .expect(StatusCode::OK);
    assert_eq!(code(&app, &verifier, a).await, "VALID");
    assert_eq!(code(&app, &verifier, b).await, "VALID");
    assert_eq!(
        code(&app, &verifier, "ghx_never-imported").await,
        "NOT_FOUND"
    );

    // The shapes these imports taught, oldest first, never with the HMAC secret; admins only.
    let r = app
        .get("/api/v1/api-keys/import/shapes", As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    let shapes: Vec<(&str, &str, &str)> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["format"].as_str().unwrap(),
                s["prefix"].as_str().unwrap(),
                s["hash"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shapes,
        [
            ("stratum", "sk_live_", "sha256"),
            ("stratum", "sk_live_", "hmac-sha256"),
            ("sha256", "ghx_", "sha256"),
        ]
    );
    assert!(!r.body.to_string().contains("hmac secret"), "{}", r.body);
    let member = app.member_of(acme).await;
    app.get("/api/v1/api-keys/import/shapes", As::Bearer(&member))
        .await
        .expect(StatusCode::FORBIDDEN);
    app.get("/api/v1/api-keys/import/shapes", As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.get("/api/v1/api-keys/import/shapes?x=1", As::Bearer(&admin))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(
        code(
            &app,
            &verifier,
            &format!("sk_live_{}", Uuid::new_v4().simple())
        )
        .await,
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn a_later_run_carries_the_old_services_revocations_and_never_undoes_one() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    let admin = app.admin().await;
    let verifier = verifier(&app, &admin, acme).await;
    let hook = app
        .post(
            "/api/v1/webhooks",
            As::Bearer(&admin),
            json!({"url": "http://93.184.216.34/hook", "events": ["key.revoked"]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revocations = || async {
        app.get(
            &format!("/api/v1/webhooks/{hook}/deliveries?limit=100"),
            As::Bearer(&admin),
        )
        .await
        .expect(StatusCode::OK)
        .body
        .as_array()
        .unwrap()
        .len()
    };
    let (a, b) = (estuary_token(), estuary_token());
    let row = |t: &str, revoked_at: Option<&str>| {
        let mut row = json!({"token": t, "owner_email": "ann@acme.test", "tenant": "acme"});
        if let Some(at) = revoked_at {
            row["revoked_at"] = json!(at);
        }
        row
    };
    let run = |rows: Vec<Value>| {
        let (app, admin) = (&app, &admin);
        async move {
            let r = import_with(
                app,
                admin,
                "format=estuary&create_owners=true",
                jsonl(&rows),
                &[],
            )
            .await
            .expect(StatusCode::OK);
            (
                r.body["imported"].clone(),
                r.body["already_present"].clone(),
                r.body["revoked"].clone(),
            )
        }
    };
    assert_eq!(
        run(vec![row(&a, None), row(&b, None)]).await,
        (json!(2), json!(0), json!(0))
    );
    assert_eq!(code(&app, &verifier, &a).await, "VALID");

    // The old service revoked `a` since: the next run revokes it here, with its event.
    let revoked_since = vec![row(&a, Some("2026-01-01T00:00:00Z")), row(&b, None)];
    assert_eq!(
        run(revoked_since.clone()).await,
        (json!(0), json!(2), json!(1))
    );
    assert_eq!(code(&app, &verifier, &a).await, "REVOKED");
    assert_eq!(code(&app, &verifier, &b).await, "VALID");
    assert_eq!(revocations().await, 1);
    let key = app
        .state
        .store
        .get_key_by_digest(&keyward_domain::KeyDigest::of(&a))
        .await;
    assert_eq!(
        key.unwrap().unwrap().revoked_at,
        Some(time::macros::datetime!(2026-01-01 0:00 UTC))
    );

    // The same file again changes nothing; a row without `revoked_at` never brings a key back.
    assert_eq!(run(revoked_since).await, (json!(0), json!(2), json!(0)));
    assert_eq!(
        run(vec![row(&a, None)]).await,
        (json!(0), json!(1), json!(0))
    );
    assert_eq!(code(&app, &verifier, &a).await, "REVOKED");
    assert_eq!(revocations().await, 1);
}

#[tokio::test]
async fn a_bad_row_keeps_its_batch_out_and_a_second_run_changes_nothing() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    app.tenant("globex").await;
    let admin = app.admin().await;
    let verifier = verifier(&app, &admin, acme).await;
    app.user(
        "gus@globex.test",
        keyward_domain::Role::Member,
        Some(app.tenant("initech").await),
    )
    .await;
    let tokens: Vec<String> = (0..6).map(|_| estuary_token()).collect();
    let good = |t: &str| json!({"token": t, "owner_email": "ann@acme.test", "tenant": "acme"});
    let lines = [
        good(&tokens[0]).to_string(),
        // Line 2: bad, so line 1 (its batch of two) is not written either.
        json!({"token": "ESTnot-a-token", "owner_email": "ann@acme.test"}).to_string(),
        good(&tokens[2]).to_string(),
        good(&tokens[3]).to_string(),
        // Lines 5 and 6 fail for other reasons, each said.
        json!({"token": tokens[4], "owner_email": "gus@globex.test", "tenant": "globex"})
            .to_string(),
        "{not json".to_string(),
        String::new(),
        json!({"token": tokens[5], "owner_email": "ann@acme.test", "tenant": "nowhere", "color": 1})
            .to_string(),
    ];
    let body = lines.join("\n");
    let r = import(
        &app,
        &admin,
        "format=estuary&create_owners=true&batch=2",
        body.clone(),
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_code(), "rows_refused");
    let report = &r.body["report"];
    assert_eq!(report["imported"], 2, "{report}");
    assert_eq!(report["not_written"], 1, "{report}");
    assert_eq!(report["bad_count"], 4, "{report}");
    let bad: Vec<(u64, String)> = report["bad_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["line"].as_u64().unwrap(),
                b["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        bad.iter().map(|b| b.0).collect::<Vec<_>>(),
        [2, 5, 6, 8],
        "{bad:?}"
    );
    assert!(bad[0].1.contains("shape"), "{bad:?}");
    assert!(bad[1].1.contains("tenant"), "{bad:?}");
    assert!(bad[2].1.contains("JSON"), "{bad:?}");
    assert!(bad[3].1.contains("color"), "{bad:?}");
    assert_eq!(code(&app, &verifier, &tokens[0]).await, "NOT_FOUND");
    assert_eq!(code(&app, &verifier, &tokens[2]).await, "VALID");
    assert_eq!(code(&app, &verifier, &tokens[3]).await, "VALID");

    // The good rows again: what was written is left as it is; the rest is written now.
    let fixed = jsonl(&[good(&tokens[0]), good(&tokens[2]), good(&tokens[3])]);
    let r = import(&app, &admin, "format=estuary&batch=2", fixed.clone())
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (
            r.body["imported"].clone(),
            r.body["already_present"].clone()
        ),
        (json!(1), json!(2)),
        "{}",
        r.body
    );
    assert_eq!(code(&app, &verifier, &tokens[0]).await, "VALID");
    let r = import(&app, &admin, "format=estuary&batch=2", fixed)
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["imported"], 0, "{}", r.body);
    assert_eq!(r.body["already_present"], 3, "{}", r.body);

    // A body far larger than other requests' 64 KiB, with Estuary's own listing rows (its
    // login sessions among them, left out).
    let many: Vec<Value> = (0..2_000)
        .map(|i| {
            json!({"token": estuary_token(), "owner_email": "ann@acme.test",
            "tenant": "acme", "label": format!("k{i}"), "isSession": i % 500 == 0})
        })
        .collect();
    let body = jsonl(&many);
    assert!(body.len() > 200 * 1024, "{}", body.len());
    let r = import(&app, &admin, "format=estuary", body)
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["imported"], 1_996, "{}", r.body);
    assert_eq!(r.body["sessions_skipped"], 4, "{}", r.body);
}

#[tokio::test]
async fn imported_keys_follow_their_tenants_policy_and_never_act_for_admins() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    let admin = app.admin().await;
    app.patch(
        &format!("/api/v1/tenants/{acme}"),
        As::Bearer(&admin),
        json!({"policy": {"require_expiry": true, "allowed_scopes": ["orders:read"],
            "default_rate_limit": {"max": 10, "window": "1 minute"}}}),
    )
    .await
    .expect(StatusCode::OK);
    app.user(
        "boss@acme.test",
        keyward_domain::Role::TenantAdmin,
        Some(acme),
    )
    .await;
    let ok = json!({"token": estuary_token(), "owner_email": "ann@acme.test", "tenant": "acme",
        "scopes": ["orders:read"], "expires_at": "2099-01-01T00:00:00Z"});
    let rows = [
        ok.clone(),
        json!({"token": estuary_token(), "owner_email": "ann@acme.test", "tenant": "acme",
            "scopes": ["orders:read"]}),
        json!({"token": estuary_token(), "owner_email": "ann@acme.test", "tenant": "acme",
            "scopes": ["orders:write"], "expires_at": "2099-01-01T00:00:00Z"}),
        json!({"token": estuary_token(), "owner_email": "boss@acme.test", "tenant": "acme",
            "expires_at": "2099-01-01T00:00:00Z"}),
    ];
    let (report, reasons) = refused(&app, &admin, &rows).await;
    assert_eq!(report["imported"], 1, "{report}");
    assert!(reasons[0].contains("expiry"), "{reasons:?}");
    assert!(reasons[1].contains("orders:write"), "{reasons:?}");
    assert!(reasons[2].contains("tenant_admin"), "{reasons:?}");
    let r = app
        .get(
            &format!("/api/v1/api-keys?tenant_id={acme}"),
            As::Bearer(&admin),
        )
        .await
        .expect(StatusCode::OK);
    let imported = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["prefix"] == "EST")
        .unwrap();
    assert_eq!(
        imported["rate_limit_max"], 10,
        "the tenant's default: {imported}"
    );
    // A row's text never comes back in a reason.
    let secret_row = format!(
        r#"{{"token": "{}", "isSession": "{}"}}"#,
        estuary_token(),
        "sk_live_secret_value"
    );
    let r = import(&app, &admin, "format=estuary", secret_row)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        !r.body.to_string().contains("sk_live_secret_value"),
        "{}",
        r.body
    );
}

/// Another service's keys may look like keyward's (`<prefix>_` and 49 letters and digits):
/// imported, they verify though keyward's checksum would refuse them; with no import of their
/// prefix, such a string is still refused without a lookup (next test).
#[tokio::test]
async fn imported_keys_shaped_like_keywards_verify() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    let admin = app.admin().await;
    let verifier = verifier(&app, &admin, acme).await;
    let body: String = Uuid::new_v4().simple().to_string() + "ABCDEFGHIJKLMNOPQ";
    let key = format!("acme_{}", &body[..49]);
    assert_eq!(
        keyward_domain::ParsedKey::parse(&key).err(),
        Some(keyward_domain::KeyFormatError::BadChecksum),
        "shaped like keyward's"
    );
    let row = json!({"sha256": sha256_hex(&key), "owner_email": "o@acme.test", "tenant": "acme"});
    import(
        &app,
        &admin,
        "format=sha256&prefix=acme_&create_owners=true",
        jsonl(&[row]),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(code(&app, &verifier, &key).await, "VALID");
    // Nor may a tenant take the imported prefix as its own keys' prefix afterwards.
    for (method, path, body) in [
        (
            axum::http::Method::POST,
            "/api/v1/tenants".to_owned(),
            json!({"name": "A2", "slug": "a2", "key_prefix": "acme"}),
        ),
        (
            axum::http::Method::PATCH,
            format!("/api/v1/tenants/{acme}"),
            json!({"key_prefix": "acme"}),
        ),
    ] {
        let r = app
            .call(method, &path, As::Bearer(&admin), Some(body))
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert!(r.body.to_string().contains("key_prefix"), "{}", r.body);
    }
    let mut other = key.clone();
    other.replace_range(10..11, if &key[10..11] == "Z" { "Y" } else { "Z" });
    assert_eq!(code(&app, &verifier, &other).await, "NOT_FOUND");
}

/// A mistyped keyward key is refused without storage even on a node that has not read the
/// imported shapes yet (say, storage went away first).
#[tokio::test]
async fn a_mistyped_key_needs_no_storage_before_the_shapes_are_read() {
    let app = app_with(keyward_core::Settings {
        public_verify: true,
        ..keyward_core::Settings::default()
    })
    .await;
    let native =
        keyward_domain::PlainKey::generate(&keyward_domain::KeyPrefix::default_prefix()).unwrap();
    let mut typo = native.expose().to_owned();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    app.state.store.close().await;
    let r = app
        .post("/api/v1/keys/verify", As::Nobody, json!({"key": typo}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["code"], "NOT_FOUND", "{}", r.body);
}

#[tokio::test]
async fn strings_of_no_imported_shape_and_bad_checksums_never_reach_storage() {
    let app = app_with(keyward_core::Settings {
        public_verify: true,
        ..keyward_core::Settings::default()
    })
    .await;
    app.tenant("acme").await;
    let admin = app.admin().await;
    let token = estuary_token();
    let row = json!({"token": token, "owner_email": "ann@acme.test"});
    import(
        &app,
        &admin,
        "format=estuary&create_owners=true",
        jsonl(&[row]),
    )
    .await
    .expect(StatusCode::OK);
    let verify = |key: String| {
        let app = &app;
        async move {
            app.post("/api/v1/keys/verify", As::Nobody, json!({"key": key}))
                .await
                .body["code"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(verify(token.clone()).await, "VALID");
    // Storage goes away: what needs a lookup cannot be answered (fail closed); what has no
    // imported shape, or fails keyward's checksum, is answered without one.
    app.state.store.close().await;
    assert_eq!(verify(estuary_token()).await, "UNAVAILABLE");
    let native =
        keyward_domain::PlainKey::generate(&keyward_domain::KeyPrefix::default_prefix()).unwrap();
    let mut typo = native.expose().to_owned();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    for unknown in [
        "sk_live_not-imported-here".to_owned(),
        "ghp_someone-elses-token".to_owned(),
        "EST-not-quite-ARY".to_owned(),
        typo,
    ] {
        assert_eq!(verify(unknown.clone()).await, "NOT_FOUND", "{unknown}");
    }
}

#[tokio::test]
async fn rows_with_times_keyward_could_not_hold_are_refused_by_name() {
    let app = app().await;
    app.tenant("acme").await;
    let admin = app.admin().await;
    let rows: Vec<Value> = [
        ("revoked_at", "0000-01-01T00:00:00Z"),
        ("expires_at", "9999-12-31T00:00:00Z"),
        ("last_used_at", "1969-12-31T23:59:59Z"),
        ("created_at", "1900-01-01T00:00:00Z"),
    ]
    .iter()
    .map(|(field, at)| {
        let mut row =
            json!({"token": estuary_token(), "owner_email": "ann@acme.test", "tenant": "acme"});
        row[*field] = json!(at);
        row
    })
    .collect();
    let (report, reasons) = refused(&app, &admin, &rows).await;
    assert_eq!(reasons.len(), 4, "{report}");
    for (reason, field) in
        reasons
            .iter()
            .zip(["revoked_at", "expires_at", "last_used_at", "created_at"])
    {
        assert!(
            reason.contains(field) && reason.contains("1970"),
            "{reason}"
        );
    }
    assert_eq!(report["imported"], 0, "{report}");
}

#[tokio::test]
async fn imports_are_refused_with_reasons() {
    let app = app().await;
    let admin = app.admin().await;
    // A body declared larger than the import's own limit is refused before it is read, saying
    // that limit (not other routes' 64 KiB).
    let r = app
        .send(
            Request::post("/api/v1/api-keys/import?format=estuary")
                .header("authorization", format!("Bearer {admin}"))
                .header("content-type", "application/jsonl")
                .header("content-length", (64 * 1024 * 1024 + 1).to_string())
                .body(Body::from("{}\n"))
                .unwrap(),
        )
        .await
        .expect(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.body.to_string().contains("64 MiB"), "{}", r.body);
    app.post(
        "/api/v1/tenants",
        As::Bearer(&admin),
        json!({"name": "Zed", "slug": "zed", "key_prefix": "zed"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let row = jsonl(&[json!({"token": estuary_token(), "owner_email": "a@acme.test"})]);
    for (query, field) in [
        ("format=keycloak", "format"),
        ("format=estuary&prefix=x_", "prefix"),
        ("format=sha256", "prefix"),
        ("format=sha256&prefix=has%20space", "prefix"),
        // keyward's own prefixes (the default, a tenant's) are judged by its checksum alone.
        ("format=sha256&prefix=kw_", "prefix"),
        ("format=sha256&prefix=kw", "prefix"),
        ("format=sha256&prefix=zed_x", "prefix"),
        // A shorter prefix would claim them too (`k` starts every `kw_` key).
        ("format=sha256&prefix=k", "prefix"),
        ("format=sha256&prefix=ze", "prefix"),
        ("format=estuary&batch=0", "batch"),
        ("format=estuary&color=red", "color"),
        ("", "format"),
    ] {
        let r = import(&app, &admin, query, row.clone())
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert!(r.body.to_string().contains(field), "{query}: {}", r.body);
    }
    let r = import_with(
        &app,
        &admin,
        "format=stratum",
        row.clone(),
        &[("keyward-import-hmac-secret", "short")],
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    assert!(r.body.to_string().contains("hmac_secret"), "{}", r.body);
    import(&app, &member, "format=estuary", row.clone())
        .await
        .expect(StatusCode::FORBIDDEN);
    let req = Request::post("/api/v1/api-keys/import?format=estuary")
        .header("content-type", "application/jsonl")
        .body(Body::from(row.clone()))
        .unwrap();
    app.send(req).await.expect(StatusCode::UNAUTHORIZED);
    let req = Request::post("/api/v1/api-keys/import?format=estuary")
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/json")
        .body(Body::from(row.clone()))
        .unwrap();
    app.send(req)
        .await
        .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let req = Request::post("/api/v1/api-keys/import?format=estuary")
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/x-ndjson")
        .header("content-length", (65 * 1024 * 1024).to_string())
        .body(Body::from(row.clone()))
        .unwrap();
    app.send(req).await.expect(StatusCode::PAYLOAD_TOO_LARGE);
    let req = Request::post("/api/v1/api-keys/import?format=estuary")
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/jsonl")
        .body(Body::from(vec![0xff, 0xfe, b'\n']))
        .unwrap();
    app.send(req).await.expect(StatusCode::BAD_REQUEST);
}
