//! The form-encoded `/api/apikey` surface in-process: every status each route can return, in
//! its `{code, message}` error shape. (The seed's curl examples run in `compat`.)

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use crate::support::{app, As, Resp, TestApp};

/// Sends `body` with `content_type` (form-encoded unless said otherwise) as `token`.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> Resp {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if !content_type.is_empty() {
        req = req.header("content-type", content_type);
    }
    app.send(req.body(Body::from(body.to_owned())).unwrap())
        .await
}

const FORM: &str = "application/x-www-form-urlencoded";

async fn add(app: &TestApp, token: &str, body: &str) -> Resp {
    send(app, Method::POST, "/api/apikey", Some(token), FORM, body).await
}

/// Asserts the surface's error shape and returns its code.
#[track_caller]
fn code(r: &Resp) -> &str {
    assert!(r.body["message"].is_string(), "{}", r.body);
    r.body["code"].as_str().unwrap()
}

/// The id of the caller's only key named `label`.
async fn id_of(app: &TestApp, token: &str, label: &str) -> String {
    let r = app
        .get("/api/apikey", As::Bearer(token))
        .await
        .expect(StatusCode::OK);
    let keys = r.body["apiKeys"].as_array().unwrap();
    let key = keys.iter().find(|k| k["label"] == label).unwrap();
    key["_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn lifecycle_in_the_seed_shapes() {
    let app = app().await;
    let t = app.tenant("form").await;
    let (jwt, user) = app.user_in(t, keyward_domain::Role::Member).await;
    let r = add(&app, &jwt, "label=Test%20123&expires=One%20Week")
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(r.body["code"], "ADDED");
    assert_eq!(r.body["message"], "Added new API Key");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let plaintext = r.body["api_key"].as_str().unwrap().to_owned();
    // JSON bodies are accepted too, and the new key authenticates here as its owner.
    let r = send(
        &app,
        Method::POST,
        "/api/apikey",
        Some(&plaintext),
        "application/json",
        r#"{"label":"forever","expires":"never"}"#,
    )
    .await;
    r.expect(StatusCode::CREATED);

    let list = app
        .get("/api/apikey", As::Bearer(&jwt))
        .await
        .expect(StatusCode::OK);
    assert_eq!(list.body["total"], 2);
    let week = &list.body["apiKeys"][0];
    assert_eq!(week["label"], "Test 123");
    assert_eq!(week["isNever"], false);
    assert_eq!(week["user"], user.to_string());
    assert_eq!(week["__v"], 0);
    assert_eq!(
        week["hash"],
        keyward_domain::KeyDigest::of(&plaintext).to_hex()
    );
    assert_eq!(week["expireAt"], "2026-03-08T12:00:00Z");
    let never = &list.body["apiKeys"][1];
    assert_eq!(
        (never["isNever"].clone(), never["expireAt"].clone()),
        (json!(true), json!(null))
    );

    let id = id_of(&app, &jwt, "Test 123").await;
    let one = app
        .get(&format!("/api/apikey/{id}"), As::Bearer(&jwt))
        .await
        .expect(StatusCode::OK);
    assert_eq!(one.body["apiKey"]["_id"], id.as_str());
    let r = send(
        &app,
        Method::PATCH,
        &format!("/api/apikey/{id}"),
        Some(&jwt),
        FORM,
        "label=renamed",
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        r.body,
        json!({"code": "UPDATED", "message": "APIKey has been updated"})
    );
    let one = app
        .get(&format!("/api/apikey/{id}"), As::Bearer(&jwt))
        .await
        .expect(StatusCode::OK);
    assert_eq!(one.body["apiKey"]["label"], "renamed");
    let r = app
        .delete(&format!("/api/apikey/{id}"), As::Bearer(&jwt))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        r.body,
        json!({"code": "REMOVED", "message": "APIKey has been removed"})
    );
    let r = app.get("/api/v1/users/me", As::ApiKey(&plaintext)).await;
    r.expect(StatusCode::UNAUTHORIZED);
    for (method, expected) in [
        (Method::GET, "NOT_FOUND"),
        (Method::DELETE, "NOT_FOUND"),
        (Method::PATCH, "NOT_FOUND"),
    ] {
        // GET and DELETE take no body (one would be refused: see `hostile`).
        let body = if method == Method::PATCH {
            "label=x"
        } else {
            ""
        };
        let r = send(
            &app,
            method,
            &format!("/api/apikey/{id}"),
            Some(&jwt),
            FORM,
            body,
        )
        .await
        .expect(StatusCode::NOT_FOUND);
        assert_eq!(code(&r), expected);
    }
    let list = app
        .get("/api/apikey", As::Bearer(&jwt))
        .await
        .expect(StatusCode::OK);
    assert_eq!(list.body["total"], 1, "a removed key is not listed");
    let audit = app
        .get("/api/v1/audit-logs", As::Bearer(&jwt))
        .await
        .expect(StatusCode::OK);
    let actions: Vec<&str> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in ["api_key.create", "api_key.update", "api_key.revoke"] {
        assert!(actions.contains(&a), "{a} audited: {actions:?}");
    }
}

#[tokio::test]
async fn expires_accepts_the_documented_phrases_and_nothing_else() {
    let app = app().await;
    let t = app.tenant("form").await;
    let jwt = app.member_of(t).await;
    for (phrase, expire_at) in [
        ("One%20Day", json!("2026-03-02T12:00:00Z")),
        ("one%20month", json!("2026-04-01T12:00:00Z")),
        ("ONE%20YEAR", json!("2027-03-01T12:00:00Z")),
        ("M", json!("2026-04-01T12:00:00Z")),
        ("week", json!("2026-03-08T12:00:00Z")),
        ("Never", json!(null)),
    ] {
        add(&app, &jwt, &format!("label={phrase}&expires={phrase}"))
            .await
            .expect(StatusCode::CREATED);
        let label = phrase.replace("%20", " ");
        let id = id_of(&app, &jwt, &label).await;
        let one = app
            .get(&format!("/api/apikey/{id}"), As::Bearer(&jwt))
            .await;
        assert_eq!(one.body["apiKey"]["expireAt"], expire_at, "{phrase}");
        assert_eq!(
            one.body["apiKey"]["isNever"],
            expire_at.is_null(),
            "{phrase}"
        );
    }
    for bad in [
        "label=x&expires=Two%20Days",
        "label=x&expires=m",
        "label=x&expires=",
        "label=x",
    ] {
        let r = add(&app, &jwt, bad).await.expect(StatusCode::BAD_REQUEST);
        assert_eq!(code(&r), "INVALID_FIELD", "{bad}");
        let msg = r.body["message"].as_str().unwrap();
        assert!(msg.contains("One Month") && msg.contains("Never"), "{msg}");
    }
    let long = "x".repeat(300);
    let r = add(&app, &jwt, &format!("label={long}&expires=day"))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(r.body["message"].as_str().unwrap().starts_with("name"));
    let list = app
        .get("/api/apikey", As::Bearer(&jwt))
        .await
        .expect(StatusCode::OK);
    assert_eq!(list.body["total"], 6, "no key was made by a bad request");
}

#[tokio::test]
async fn malformed_bodies_and_auth_get_the_surface_shape() {
    let app = app().await;
    let t = app.tenant("form").await;
    let jwt = app.member_of(t).await;
    add(&app, &jwt, "label=mine&expires=day")
        .await
        .expect(StatusCode::CREATED);
    let id = id_of(&app, &jwt, "mine").await;
    let path = format!("/api/apikey/{id}");

    let r = send(
        &app,
        Method::POST,
        "/api/apikey",
        Some(&jwt),
        "text/plain",
        "label=x",
    )
    .await
    .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(code(&r), "UNSUPPORTED_MEDIA_TYPE");
    let r = send(
        &app,
        Method::POST,
        "/api/apikey",
        Some(&jwt),
        "application/json",
        "{not json",
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    assert_eq!(code(&r), "MALFORMED_JSON");
    let r = send(
        &app,
        Method::PATCH,
        &path,
        Some(&jwt),
        "application/json",
        r#"{"label": 5}"#,
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    assert_eq!(code(&r), "INVALID_BODY");
    let r = send(&app, Method::PATCH, &path, Some(&jwt), FORM, "")
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.body["message"], "label: is required");
    let big = format!("label={}&expires=day", "x".repeat(70 * 1024));
    let r = add(&app, &jwt, &big)
        .await
        .expect(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&r), "PAYLOAD_TOO_LARGE");
    for unknown in [
        "/api/apikey/not-a-uuid",
        "/api/apikey/00000000-0000-0000-0000-000000000000",
    ] {
        let r = app
            .get(unknown, As::Bearer(&jwt))
            .await
            .expect(StatusCode::NOT_FOUND);
        assert_eq!(code(&r), "NOT_FOUND");
    }

    // Another user's key, even a tenant admin's view of it, is not found here.
    let other = app.tenant_admin_of(t).await;
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let body = if method == Method::PATCH {
            "label=stolen"
        } else {
            ""
        };
        let r = send(&app, method, &path, Some(&other), FORM, body)
            .await
            .expect(StatusCode::NOT_FOUND);
        assert_eq!(code(&r), "NOT_FOUND");
    }
    let theirs = app
        .get("/api/apikey", As::Bearer(&other))
        .await
        .expect(StatusCode::OK);
    assert_eq!(theirs.body, json!({"apiKeys": [], "total": 0}));

    // No credential, a bad one, and a key without keyward's own scopes.
    let (_, app_only) = app.key_with(&jwt, &["orders:read"]).await;
    for (method, p) in [
        (Method::GET, "/api/apikey"),
        (Method::POST, "/api/apikey"),
        (Method::GET, path.as_str()),
        (Method::PATCH, path.as_str()),
        (Method::DELETE, path.as_str()),
    ] {
        let body = match method {
            Method::GET | Method::DELETE => "",
            Method::PATCH => "label=x",
            _ => "label=x&expires=day",
        };
        let r = send(&app, method.clone(), p, None, FORM, body)
            .await
            .expect(StatusCode::UNAUTHORIZED);
        assert_eq!(code(&r), "UNAUTHENTICATED", "{p}");
        let r = send(&app, method.clone(), p, Some("kw_bogus"), FORM, body)
            .await
            .expect(StatusCode::UNAUTHORIZED);
        assert_eq!(code(&r), "INVALID_CREDENTIAL", "{p}");
        let r = send(&app, method.clone(), p, Some(&app_only), FORM, body)
            .await
            .expect(StatusCode::FORBIDDEN);
        assert_eq!(code(&r), "FORBIDDEN", "{p}");
    }
    let one = app
        .get(&path, As::Bearer(&jwt))
        .await
        .expect(StatusCode::OK);
    assert_eq!(one.body["apiKey"]["label"], "mine", "nothing changed");
}
