//! Webhook endpoints, the events each change writes to the outbox (in its own transaction),
//! paused keys, expiry and credit notices, and leaked-key reports (GitHub's signed protocol and
//! the scanner-agnostic one), in-process on the suite's backend. Sending them over HTTP to a
//! real receiver is `webhook_delivery`'s.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::support::{app, app_with, As, TestApp};
use keyward_domain::Role;

/// A public address that is never contacted here (nothing sends in-process).
const HOOK: &str = "http://93.184.216.34/hook";

async fn endpoint(app: &TestApp, token: &str, body: Value) -> (String, String) {
    let r = app
        .post("/api/v1/webhooks", As::Bearer(token), body)
        .await
        .expect(StatusCode::CREATED);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["secret"].as_str().unwrap().to_owned(),
    )
}

/// The deliveries of an endpoint, oldest first: (event type, parsed body).
async fn outbox(app: &TestApp, token: &str, id: &str) -> Vec<(String, Value)> {
    let r = app
        .get(
            &format!("/api/v1/webhooks/{id}/deliveries?limit=1000"),
            As::Bearer(token),
        )
        .await
        .expect(StatusCode::OK);
    let mut out = Vec::new();
    for d in r.body.as_array().unwrap().iter().rev() {
        assert_eq!(d["status"], "pending", "{d}");
        let body: Value = {
            // The body is not in the listing: read it from storage through the delivery id.
            let id = d["id"].as_str().unwrap().parse().unwrap();
            let stored = app.state.store.get_delivery(id).await.unwrap().unwrap();
            serde_json::from_str(&stored.body).unwrap()
        };
        out.push((d["event_type"].as_str().unwrap().to_owned(), body));
    }
    out
}

fn types(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(t, _)| t.as_str()).collect()
}

#[tokio::test]
async fn endpoints_belong_to_admins_and_tenant_admins() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let other = app.tenant("other").await;
    let admin = app.admin().await;
    let tadmin = app.tenant_admin_of(t).await;
    let member = app.member_of(t).await;

    // A tenant admin makes one in its tenant; the secret is shown once, not stored in caches.
    let r = app
        .post(
            "/api/v1/webhooks",
            As::Bearer(&tadmin),
            json!({"url": HOOK, "events": ["key.revoked", "key.created"], "description": "ops"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/webhooks/{id}").as_str())
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let secret = r.body["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    assert_eq!(r.body["tenant_id"], t.to_string());
    assert_eq!(r.body["events"], json!(["key.created", "key.revoked"]));
    assert_eq!(r.body["enabled"], true);

    let got = app
        .get(&format!("/api/v1/webhooks/{id}"), As::Bearer(&tadmin))
        .await
        .expect(StatusCode::OK);
    assert!(got.body.get("secret").is_none(), "{}", got.body);
    let list = app
        .get("/api/v1/webhooks", As::Bearer(&tadmin))
        .await
        .expect(StatusCode::OK);
    assert_eq!(list.body.as_array().unwrap().len(), 1);

    // Members, and tenant admins of other tenants, find nothing.
    for (who, path) in [
        (&member, "/api/v1/webhooks".to_owned()),
        (&member, format!("/api/v1/webhooks/{id}")),
    ] {
        app.get(&path, As::Bearer(who))
            .await
            .expect(StatusCode::NOT_FOUND);
    }
    app.post(
        "/api/v1/webhooks",
        As::Bearer(&member),
        json!({"url": HOOK}),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    let stranger = app.tenant_admin_of(other).await;
    app.get(&format!("/api/v1/webhooks/{id}"), As::Bearer(&stranger))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.post(
        "/api/v1/webhooks",
        As::Bearer(&stranger),
        json!({"url": HOOK, "tenant_id": t}),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    let list = app
        .get("/api/v1/webhooks", As::Bearer(&stranger))
        .await
        .expect(StatusCode::OK);
    assert_eq!(list.body, json!([]));
    app.get("/api/v1/webhooks", As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    // A key of the tenant admin that reads but may not administer: 403 to change, 200 to read.
    let (_, reader) = app.key_with(&tadmin, &["keyward:read"]).await;
    app.get(&format!("/api/v1/webhooks/{id}"), As::ApiKey(&reader))
        .await
        .expect(StatusCode::OK);
    app.post(
        "/api/v1/webhooks",
        As::ApiKey(&reader),
        json!({"url": HOOK}),
    )
    .await
    .expect(StatusCode::FORBIDDEN);

    // Edits; rolling the secret shows the new one, once.
    let r = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            As::Bearer(&tadmin),
            json!({"events": null, "description": null, "enabled": false}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["events"], Value::Null);
    assert_eq!(r.body["enabled"], false);
    assert!(r.body.get("secret").is_none());
    let r = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            As::Bearer(&tadmin),
            json!({"roll_secret": true}),
        )
        .await
        .expect(StatusCode::OK);
    let rolled = r.body["secret"].as_str().unwrap();
    assert!(rolled.starts_with("whsec_") && rolled != secret);
    assert_eq!(r.header("cache-control"), Some("no-store"));

    // Admins see every endpoint and may make installation-wide ones.
    let (wide, _) = endpoint(&app, &admin, json!({"url": HOOK})).await;
    let r = app
        .get(&format!("/api/v1/webhooks/{wide}"), As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["tenant_id"], Value::Null);
    app.get(&format!("/api/v1/webhooks/{wide}"), As::Bearer(&tadmin))
        .await
        .expect(StatusCode::NOT_FOUND);
    let all = app
        .get("/api/v1/webhooks", As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert_eq!(all.body.as_array().unwrap().len(), 2);

    // Deleted: gone, with its deliveries.
    app.delete(&format!("/api/v1/webhooks/{id}"), As::Bearer(&tadmin))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get(&format!("/api/v1/webhooks/{id}"), As::Bearer(&tadmin))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.delete(&format!("/api/v1/webhooks/{id}"), As::Bearer(&tadmin))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.get("/api/v1/webhooks/not-a-uuid", As::Bearer(&admin))
        .await
        .expect(StatusCode::BAD_REQUEST);

    // Every change is audited.
    let r = app
        .get(
            "/api/v1/audit-logs?resource_type=webhook&limit=100",
            As::Bearer(&admin),
        )
        .await
        .expect(StatusCode::OK);
    let actions: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in ["webhook.create", "webhook.update", "webhook.delete"] {
        assert!(actions.contains(&a), "{actions:?}");
    }
}

#[tokio::test]
async fn bad_endpoints_are_refused_with_the_field_named() {
    let app = app().await;
    let admin = app.admin().await;
    for (body, why) in [
        (json!({"url": "http://127.0.0.1:9/hook"}), "loopback"),
        (json!({"url": "http://10.0.0.8/hook"}), "private"),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data"}),
            "metadata",
        ),
        (json!({"url": "http://[::1]/hook"}), "loopback v6"),
        (json!({"url": "http://[fd00:ec2::254]/"}), "metadata v6"),
        (
            json!({"url": "http://[::ffff:127.0.0.1]/"}),
            "mapped loopback",
        ),
        (json!({"url": "ftp://93.184.216.34/"}), "scheme"),
        (
            json!({"url": "http://user:pw@93.184.216.34/"}),
            "credentials",
        ),
        (json!({"url": "not a url"}), "syntax"),
        (json!({"url": HOOK, "events": ["key.eaten"]}), "event"),
        (json!({"url": HOOK, "events": []}), "no events"),
        (
            json!({"url": HOOK, "description": "x".repeat(201)}),
            "description",
        ),
    ] {
        let r = app.post("/api/v1/webhooks", As::Bearer(&admin), body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{why}: {}", r.body);
        assert_eq!(r.error_code(), "invalid_field", "{why}");
    }
    let r = app
        .post(
            "/api/v1/webhooks",
            As::Bearer(&admin),
            json!({"url": HOOK, "tenant_id": uuid::Uuid::now_v7()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    app.post(
        "/api/v1/webhooks",
        As::Bearer(&admin),
        json!({"url": HOOK, "secret": "mine"}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn private_addresses_are_allowed_when_the_operator_says_so() {
    let mut settings = keyward_core::Settings::default();
    settings.webhooks.allow_private = true;
    let app = app_with(settings).await;
    let admin = app.admin().await;
    endpoint(&app, &admin, json!({"url": "http://127.0.0.1:9/hook"})).await;
    app.post(
        "/api/v1/webhooks",
        As::Bearer(&admin),
        json!({"url": "gopher://127.0.0.1/"}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn each_key_action_writes_its_event_and_a_failed_change_writes_none() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let other = app.tenant("other").await;
    let admin = app.admin().await;
    let tadmin = app.tenant_admin_of(t).await;
    let member = app.member_of(t).await;
    let (all, _) = endpoint(&app, &tadmin, json!({"url": HOOK})).await;
    let (revocations, _) = endpoint(
        &app,
        &tadmin,
        json!({"url": HOOK, "events": ["key.revoked"]}),
    )
    .await;
    let (wide, _) = endpoint(&app, &admin, json!({"url": HOOK})).await;
    let (paused_hook, _) = endpoint(&app, &tadmin, json!({"url": HOOK, "enabled": false})).await;

    let (id, plain) = app
        .key_from(&member, json!({"name": "ci", "remaining": 1}))
        .await;
    let path = format!("/api/v1/api-keys/{id}");
    app.patch(&path, As::Bearer(&member), json!({"name": "ci-2"}))
        .await
        .expect(StatusCode::OK);
    app.patch(&path, As::Bearer(&member), json!({"enabled": false}))
        .await
        .expect(StatusCode::OK);
    // A failed change writes nothing: a bad field, and a pause of a paused key (no change).
    app.patch(
        &path,
        As::Bearer(&member),
        json!({"rate_limit_max": 0, "rate_limit_window": "1 hour"}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    app.patch(&path, As::Bearer(&member), json!({"enabled": true}))
        .await
        .expect(StatusCode::OK);
    // The last credit spent: key.credits_exhausted (once).
    let (_, verifier) = app.key_with(&tadmin, &["keyward:verify"]).await;
    for _ in 0..2 {
        app.verify(&verifier, &plain).await.expect(StatusCode::OK);
    }
    let r = app
        .post(
            &format!("{path}/rotate"),
            As::Bearer(&member),
            json!({"grace_period": "1h"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let successor = r.body["id"].as_str().unwrap().to_owned();
    app.delete(
        &format!("/api/v1/api-keys/{successor}"),
        As::Bearer(&member),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    app.delete(
        &format!("/api/v1/api-keys/{successor}"),
        As::Bearer(&member),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    // Another tenant's key: only the installation-wide endpoint hears it.
    let stranger = app.member_of(other).await;
    app.key_with(&stranger, &[]).await;

    let events = outbox(&app, &tadmin, &all).await;
    assert_eq!(
        types(&events),
        [
            "key.created",
            "key.updated",
            "key.disabled",
            "key.enabled",
            "key.created", // the verifier key
            "key.credits_exhausted",
            "key.rotated",
            "key.revoked"
        ],
        "{events:#?}"
    );
    // The body: {type, timestamp, data}, naming the key and never its secret.
    let (kind, created) = &events[0];
    assert_eq!(created["type"], kind.as_str());
    time::OffsetDateTime::parse(
        created["timestamp"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let data = &created["data"];
    assert_eq!(data["key"]["id"], id);
    assert_eq!(data["key"]["tenant_id"], t.to_string());
    assert_eq!(data["key"]["name"], "ci");
    assert!(data["key"]["start"].as_str().unwrap().starts_with("kw_"));
    assert_eq!(data["actor"]["type"], "jwt");
    assert!(data["request_id"].is_string(), "{data}");
    for (_, body) in &events {
        let text = body.to_string();
        assert!(!text.contains(&plain), "a plaintext in {text}");
        assert!(!text.contains("digest") && !text.contains("hash"), "{text}");
    }
    assert_eq!(events[1].1["data"]["changes"]["name"], "ci-2");
    assert_eq!(events[6].1["data"]["new_key"]["id"], successor);
    // Filters, tenants, and disabled endpoints.
    assert_eq!(
        types(&outbox(&app, &tadmin, &revocations).await),
        ["key.revoked"]
    );
    assert_eq!(outbox(&app, &tadmin, &paused_hook).await.len(), 0);
    let wide_events = outbox(&app, &admin, &wide).await;
    assert_eq!(wide_events.len(), events.len() + 1, "{wide_events:#?}");

    // A test event goes to the one endpoint asked, even a disabled one.
    let r = app
        .post(
            &format!("/api/v1/webhooks/{paused_hook}/test"),
            As::Bearer(&tadmin),
            json!({}),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(r.body["type"], "webhook.test");
    assert_eq!(
        types(&outbox(&app, &tadmin, &paused_hook).await),
        ["webhook.test"]
    );
    assert_eq!(outbox(&app, &tadmin, &all).await.len(), events.len());
    // A delivery is retried by hand; one of another endpoint is not found there.
    let r = app
        .get(
            &format!("/api/v1/webhooks/{all}/deliveries?limit=1"),
            As::Bearer(&tadmin),
        )
        .await
        .expect(StatusCode::OK);
    assert!(r.header("x-next-cursor").is_some());
    let delivery = r.body[0]["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/webhooks/{all}/deliveries/{delivery}/retry"),
            As::Bearer(&tadmin),
            json!({}),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(r.body["status"], "pending");
    app.post(
        &format!("/api/v1/webhooks/{revocations}/deliveries/{delivery}/retry"),
        As::Bearer(&tadmin),
        json!({}),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    app.post(
        &format!("/api/v1/webhooks/{all}/deliveries/{delivery}/retry"),
        As::Bearer(&member),
        json!({}),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_paused_key_is_refused_and_resumed_with_its_history() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let tadmin = app.tenant_admin_of(t).await;
    let (_, verifier) = app.key_with(&tadmin, &["keyward:verify"]).await;
    let (id, plain) = app.key_with(&member, &[]).await;
    let path = format!("/api/v1/api-keys/{id}");
    assert_eq!(app.verify(&verifier, &plain).await.body["code"], "VALID");
    let r = app
        .patch(&path, As::Bearer(&member), json!({"enabled": false}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["enabled"], false);
    assert_eq!(r.body["status"], "active");
    let r = app.verify(&verifier, &plain).await.expect(StatusCode::OK);
    assert_eq!(r.body["code"], "DISABLED");
    assert_eq!(r.body["valid"], false);
    // The compatibility surfaces list it as live: their formats have no paused state.
    let r = app
        .get("/user/api-keys", As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body.as_array().unwrap().len(), 1, "{}", r.body);
    let r = app
        .get("/api/apikey", As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["total"], 1, "{}", r.body);
    app.patch(&path, As::Bearer(&member), json!({"enabled": "no"}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    let r = app
        .patch(&path, As::Bearer(&member), json!({"enabled": true}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["enabled"], true);
    assert_eq!(app.verify(&verifier, &plain).await.body["code"], "VALID");
    let r = app
        .get(&path, As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert!(r.body["last_used_at"].is_string() || r.body["last_used_at"].is_null());
}

#[tokio::test]
async fn expiry_reminders_and_notices_go_once_per_key_and_threshold() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let admin = app.admin().await;
    let tadmin = app.tenant_admin_of(t).await;
    let member = app.member_of(t).await;
    let (hook, _) = endpoint(
        &app,
        &tadmin,
        json!({"url": HOOK, "events": ["key.expiring", "key.expired"]}),
    )
    .await;
    let (soon, _) = app.key_from(&member, json!({"expires_in": "3d"})).await;
    let (later, _) = app.key_from(&member, json!({"expires_in": "30d"})).await;
    let run = || keyward_core::notices::expiry(&app.state);
    assert_eq!(run().await.unwrap(), 1); // soon: within 7d
    assert_eq!(run().await.unwrap(), 0, "once per threshold");
    app.advance(time::Duration::days(2) + time::Duration::hours(1)); // soon: within 1d
    assert_eq!(run().await.unwrap(), 1);
    app.advance(time::Duration::days(1)); // soon expired
    assert_eq!(run().await.unwrap(), 1);
    assert_eq!(run().await.unwrap(), 0);
    let events = outbox(&app, &tadmin, &hook).await;
    assert_eq!(
        types(&events),
        ["key.expiring", "key.expiring", "key.expired"]
    );
    assert_eq!(events[0].1["data"]["threshold"], "7d");
    assert_eq!(events[1].1["data"]["threshold"], "1d");
    for (_, e) in &events {
        assert_eq!(e["data"]["key"]["id"], soon);
    }
    // The tenant's own thresholds: 30d reaches the later key at once.
    app.patch(
        &format!("/api/v1/tenants/{t}"),
        As::Bearer(&admin),
        json!({"policy": {"expiry_reminders": ["30d"]}}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(run().await.unwrap(), 1);
    let events = outbox(&app, &tadmin, &hook).await;
    assert_eq!(events[3].1["data"]["key"]["id"], later);
    assert_eq!(events[3].1["data"]["threshold"], "30d");
}

#[tokio::test]
async fn tenant_policies_are_validated_and_shown() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let admin = app.admin().await;
    let path = format!("/api/v1/tenants/{t}");
    let r = app
        .get(&path, As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        r.body["policy"],
        json!({"revoke_leaked_keys": true, "expiry_reminders": ["7d", "1d"],
            "max_key_lifetime": null, "require_expiry": false, "allowed_scopes": null,
            "default_rate_limit": null, "rate_limit_scope": "node"})
    );
    for bad in [
        json!({"expiry_reminders": ["7d", "7d"]}),
        json!({"expiry_reminders": ["-1d"]}),
        json!({"expiry_reminders": ["07d"]}),
        json!({"expiry_reminders": ["soon"]}),
        json!({"expiry_reminders": ["1d", "2d", "3d", "4d", "5d", "6d"]}),
        json!({"revoke_leaked_keys": "yes"}),
        json!({"unknown": true}),
        // An array of the fields in order is not an object (serde would take it).
        json!([true, ["1d"]]),
        json!([null, null]),
    ] {
        let r = app
            .patch(&path, As::Bearer(&admin), json!({"policy": bad}))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    // The same for a key's refill: an object, never an array.
    let member = app.member_of(t).await;
    for refill in [json!(["daily", 5, null]), json!(["daily", 5, 1])] {
        let r = app
            .post(
                "/api/v1/api-keys",
                As::Bearer(&member),
                json!({"refill": refill}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    }
    let r = app
        .patch(&path, As::Bearer(&admin), json!({"policy": {"expiry_reminders": ["1d", "12h", "14d"], "revoke_leaked_keys": false}}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["policy"]["revoke_leaked_keys"], false);
    assert_eq!(
        r.body["policy"]["expiry_reminders"],
        json!(["14d", "1d", "12h"])
    );
}

/// A JSON `POST` of a leak report to `path` with `headers`.
fn report_request(
    path: &str,
    headers: impl Iterator<Item = (&'static str, String)>,
    body: String,
) -> Request<Body> {
    let mut req = Request::post(path).header("content-type", "application/json");
    for (name, value) in headers {
        req = req.header(name, value);
    }
    req.body(Body::from(body)).unwrap()
}

/// A report body as GitHub sends it.
fn report(tokens: &[&str]) -> String {
    let items: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"token": t, "type": "keyward_api_key", "url": "https://github.com/o/r/blob/x/.env", "source": "content"}))
        .collect();
    Value::from(items).to_string()
}

#[tokio::test]
async fn scanner_reports_revoke_live_keys_once_and_need_their_scope() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let admin = app.admin().await;
    let tadmin = app.tenant_admin_of(t).await;
    let member = app.member_of(t).await;
    let (hook, _) = endpoint(
        &app,
        &tadmin,
        json!({"url": HOOK, "events": ["key.leaked", "key.revoked"]}),
    )
    .await;
    let (_, scanner) = app
        .key_from(
            &admin,
            json!({"tenant_id": t, "scopes": ["keyward:report_leak"]}),
        )
        .await;
    let (_, not_scanner) = app
        .key_from(&admin, json!({"tenant_id": t, "scopes": ["keyward:read"]}))
        .await;
    let (_, verifier) = app.key_with(&tadmin, &["keyward:verify"]).await;
    let (leaked_id, leaked) = app.key_with(&member, &[]).await;
    let unknown =
        keyward_domain::PlainKey::generate(&keyward_domain::KeyPrefix::default_prefix()).unwrap();

    let post = |who: Option<&str>, body: String| {
        let key = who.map(|k| ("x-api-key", k.to_owned()));
        app.send(report_request("/api/v1/leaks", key.into_iter(), body))
    };
    post(None, report(&[&leaked]))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    post(Some(&not_scanner), report(&[&leaked]))
        .await
        .expect(StatusCode::FORBIDDEN);
    post(Some(&scanner), "{not json".into())
        .await
        .expect(StatusCode::BAD_REQUEST);
    post(Some(&scanner), json!({"token": leaked}).to_string())
        .await
        .expect(StatusCode::BAD_REQUEST);
    // Nothing happened on any of those.
    assert_eq!(app.verify(&verifier, &leaked).await.body["code"], "VALID");

    let r = post(
        Some(&scanner),
        report(&[&leaked, unknown.expose(), "ghp_notours"]),
    )
    .await
    .expect(StatusCode::OK);
    let labels: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["true_positive", "false_positive", "false_positive"]
    );
    assert_eq!(
        r.body[0]["token_hash"],
        keyward_domain::KeyDigest::of(&leaked).to_hex()
    );
    assert_eq!(r.body[0]["token_type"], "keyward_api_key");
    assert!(!r.body.to_string().contains(&leaked));
    assert_eq!(app.verify(&verifier, &leaked).await.body["code"], "REVOKED");
    // Idempotent: reported again, still a true positive, nothing new sent.
    let r = post(Some(&scanner), report(&[&leaked]))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body[0]["label"], "true_positive");
    let events = outbox(&app, &tadmin, &hook).await;
    assert_eq!(types(&events), ["key.revoked", "key.leaked"]);
    let leak = &events[1].1["data"];
    assert_eq!(leak["key"]["id"], leaked_id);
    assert_eq!(leak["report"]["url"], "https://github.com/o/r/blob/x/.env");
    assert_eq!(leak["revoked"], true);
    assert_eq!(leak["actor"]["type"], "api_key");
    let audit = app
        .get(
            &format!("/api/v1/audit-logs?resource_id={leaked_id}&action=api_key.leak"),
            As::Bearer(&admin),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(audit.body.as_array().unwrap().len(), 1);

    // A tenant that keeps leaked keys working: announced, not revoked.
    app.patch(
        &format!("/api/v1/tenants/{t}"),
        As::Bearer(&admin),
        json!({"policy": {"revoke_leaked_keys": false}}),
    )
    .await
    .expect(StatusCode::OK);
    let (_, kept) = app.key_with(&member, &[]).await;
    let r = post(Some(&scanner), report(&[&kept]))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body[0]["label"], "true_positive");
    assert_eq!(app.verify(&verifier, &kept).await.body["code"], "VALID");
    let events = outbox(&app, &tadmin, &hook).await;
    assert_eq!(types(&events), ["key.revoked", "key.leaked", "key.leaked"]);
    assert_eq!(events[2].1["data"]["revoked"], false);
}

/// GitHub's side of the protocol: a P-256 key pair of the test's own, published to keyward as
/// GitHub publishes its keys.
struct FakeGithub {
    signing: p256::ecdsa::SigningKey,
    id: &'static str,
}

impl FakeGithub {
    fn new() -> Self {
        let mut seed = [7u8; 32];
        seed[0] = 1;
        Self {
            signing: p256::ecdsa::SigningKey::from_slice(&seed).unwrap(),
            id: "f9525bf080f75b3506ca1ead061add62b8633a346606dc5fe544e29231c6ee0d",
        }
    }

    fn keys_document(&self) -> String {
        use p256::pkcs8::EncodePublicKey;
        let pem = self
            .signing
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        json!({"public_keys": [{"key_identifier": self.id, "key": pem, "is_current": true}]})
            .to_string()
    }

    fn sign(&self, body: &str) -> String {
        use base64::Engine;
        use p256::ecdsa::signature::Signer;
        let sig: p256::ecdsa::Signature = self.signing.sign(body.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }
}

#[tokio::test]
async fn github_reports_are_taken_only_with_a_valid_signature() {
    let github = FakeGithub::new();
    let settings = keyward_core::Settings {
        github_keys: keyward_core::leaks::GithubKeys::from_json(&github.keys_document()).unwrap(),
        ..keyward_core::Settings::default()
    };
    let app = app_with(settings).await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let tadmin = app.tenant_admin_of(t).await;
    let (_, verifier) = app.key_with(&tadmin, &["keyward:verify"]).await;
    let (_, leaked) = app.key_with(&member, &[]).await;
    let body = report(&[&leaked]);
    let send = |key_id: Option<&str>, sig: Option<String>, body: String| {
        let headers = [
            key_id.map(|id| ("Github-Public-Key-Identifier", id.to_owned())),
            sig.map(|sig| ("Github-Public-Key-Signature", sig)),
        ];
        app.send(report_request(
            "/api/v1/leaks/github",
            headers.into_iter().flatten(),
            body,
        ))
    };
    // No signature, a signature of another body, an unknown key id, garbage: 401, no revocation.
    send(None, None, body.clone())
        .await
        .expect(StatusCode::UNAUTHORIZED);
    send(Some(github.id), None, body.clone())
        .await
        .expect(StatusCode::UNAUTHORIZED);
    send(Some(github.id), Some(github.sign("[]")), body.clone())
        .await
        .expect(StatusCode::UNAUTHORIZED);
    send(Some("another-key"), Some(github.sign(&body)), body.clone())
        .await
        .expect(StatusCode::UNAUTHORIZED);
    send(Some(github.id), Some("not base64!".into()), body.clone())
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let tampered = body.replace("content", "commit");
    send(Some(github.id), Some(github.sign(&body)), tampered)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(app.verify(&verifier, &leaked).await.body["code"], "VALID");

    let r = send(Some(github.id), Some(github.sign(&body)), body.clone())
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        r.body,
        json!([{"token_hash": keyward_domain::KeyDigest::of(&leaked).to_hex(), "token_type": "keyward_api_key", "label": "true_positive"}])
    );
    assert_eq!(app.verify(&verifier, &leaked).await.body["code"], "REVOKED");
    let unknown = report(&["kw_unknown"]);
    let r = send(Some(github.id), Some(github.sign(&unknown)), unknown)
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body[0]["label"], "false_positive");
    let bad = "{\"token\": 1}".to_owned();
    send(Some(github.id), Some(github.sign(&bad)), bad)
        .await
        .expect(StatusCode::BAD_REQUEST);
    // Without configured keys, every report is refused.
    let plain = app_with(keyward_core::Settings::default()).await;
    let r = plain
        .send(report_request(
            "/api/v1/leaks/github",
            [
                ("Github-Public-Key-Identifier", github.id.to_owned()),
                ("Github-Public-Key-Signature", github.sign(&body)),
            ]
            .into_iter(),
            body.clone(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// The README's scanner rule finds keyward's keys (of any tenant prefix, with the general
/// pattern) and nothing of another shape, and its offline check is the key's own checksum.
#[test]
fn the_readmes_scanner_pattern_finds_keys() {
    use keyward_domain::{KeyPrefix, ParsedKey, PlainKey};
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let rule = readme
        .split("regex = '''")
        .nth(1)
        .and_then(|rest| rest.split("'''").next())
        .expect("the README's gitleaks rule");
    let general = readme
        .split("Pattern: `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .expect("the README's general pattern");
    let rule = regex::Regex::new(rule).unwrap();
    let general = regex::Regex::new(general).unwrap();
    for _ in 0..200 {
        let key = PlainKey::generate(&KeyPrefix::default_prefix()).unwrap();
        let text = format!("API_KEY={} # prod", key.expose());
        assert_eq!(rule.find(&text).unwrap().as_str(), key.expose());
        assert_eq!(general.find(&text).unwrap().as_str(), key.expose());
    }
    let tenant = PlainKey::generate(&KeyPrefix::parse("acme2").unwrap()).unwrap();
    assert_eq!(
        general.find(tenant.expose()).unwrap().as_str(),
        tenant.expose()
    );
    assert!(!rule.is_match(tenant.expose()));
    // One character off: the pattern may still match, the documented checksum does not.
    let key = PlainKey::generate(&KeyPrefix::default_prefix()).unwrap();
    let mut typo = key.expose().to_owned();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    assert!(rule.is_match(&typo));
    assert!(ParsedKey::parse(&typo).is_err());
    assert!(!rule.is_match(&key.expose()[..key.expose().len() - 1]));
}

#[tokio::test]
async fn keys_revoked_with_their_owner_or_tenant_each_send_key_revoked() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let admin = app.admin().await;
    let tadmin = app.tenant_admin_of(t).await;
    let (member, member_id) = app.user_in(t, Role::Member).await;
    let (other, _) = app.user_in(t, Role::Member).await;
    let (tenant_hook, _) = endpoint(&app, &tadmin, json!({"url": HOOK})).await;
    let (wide, _) = endpoint(
        &app,
        &admin,
        json!({"url": HOOK, "events": ["key.revoked"]}),
    )
    .await;

    let (live, _) = app.key_from(&member, json!({"name": "live"})).await;
    let (gone, _) = app.key_from(&member, json!({"name": "gone"})).await;
    app.delete(&format!("/api/v1/api-keys/{gone}"), As::Bearer(&member))
        .await
        .expect(StatusCode::NO_CONTENT);
    let (others, _) = app.key_from(&other, json!({"name": "others"})).await;
    let before = outbox(&app, &tadmin, &tenant_hook).await.len();

    // The owner deleted: one key.revoked for its live key (not for the one revoked before),
    // saying why and who.
    app.delete(&format!("/api/v1/users/{member_id}"), As::Bearer(&tadmin))
        .await
        .expect(StatusCode::NO_CONTENT);
    let events = outbox(&app, &tadmin, &tenant_hook).await;
    let new = &events[before..];
    assert_eq!(types(new), ["key.revoked"], "{new:?}");
    let data = &new[0].1["data"];
    assert_eq!(data["key"]["id"], live.as_str());
    assert_eq!(data["reason"], "owner_deleted");
    assert_eq!(data["actor"]["type"], "jwt");
    assert!(data["key"]["revoked_at"].is_string(), "{data}");
    let wide_before = outbox(&app, &admin, &wide).await;
    assert_eq!(wide_before.len(), 2, "gone's own revocation and live's");

    // The tenant deleted with force: its other member's key, heard by the installation-wide
    // endpoint (the tenant's own endpoints go with the tenant).
    app.delete(
        &format!("/api/v1/tenants/{t}?force=true"),
        As::Bearer(&admin),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let events = outbox(&app, &admin, &wide).await;
    let new = &events[wide_before.len()..];
    assert_eq!(types(new), ["key.revoked"], "{new:?}");
    assert_eq!(new[0].1["data"]["key"]["id"], others.as_str());
    assert_eq!(new[0].1["data"]["reason"], "tenant_deleted");
}
