//! Hostile input, kind by kind (issue 14): every case here was an example of a fault class and
//! failed before its fix. Each answer is a clear 4xx in the surface's own shape, the same on both
//! backends (the suite runs on SQLite and again on PostgreSQL), and nothing is half-written.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use keyward_domain::Role;
use serde_json::json;

use crate::support::{app, rfc3339, As};

/// Kind 1: a key's end of life only ever moves earlier. A second rotation of a key in its grace
/// period makes another successor and leaves the old key's earlier end.
#[tokio::test]
async fn a_second_rotation_never_moves_the_old_keys_end_later() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let (id, old) = app.key_with(&member, &[]).await;
    let rotate = |grace: &'static str| {
        let (app, member, id) = (&app, member.clone(), id.clone());
        async move {
            app.post(
                &format!("/api/v1/api-keys/{id}/rotate"),
                As::Bearer(&member),
                json!({ "grace_period": grace }),
            )
            .await
            .expect(StatusCode::CREATED)
        }
    };
    let first = rotate("1m").await;
    let second = rotate("7d").await;
    assert_ne!(first.body["id"], second.body["id"], "a second successor");
    let end = || {
        let (app, member, id) = (&app, member.clone(), id.clone());
        async move {
            let r = app
                .get(&format!("/api/v1/api-keys/{id}"), As::Bearer(&member))
                .await
                .expect(StatusCode::OK);
            rfc3339(&r.body["revoked_at"])
        }
    };
    let first_end = crate::support::start_time() + time::Duration::minutes(1);
    assert_eq!(end().await, first_end);
    app.advance(time::Duration::minutes(1));
    assert_eq!(app.verify(&verifier, &old).await.body["code"], "REVOKED");
    for successor in [&first, &second] {
        let key = successor.body["key"].as_str().unwrap();
        assert_eq!(app.verify(&verifier, key).await.body["code"], "VALID");
    }
}

/// Kind 8: every verify outcome maps explicitly on every surface that reports one. Each code of
/// `VerifyCode::ALL` is made to happen for real, then read from verify's body and from forward
/// auth's status (a proxy passes on 401 and 403 only, 429 with `Retry-After`, and 503).
#[tokio::test]
async fn every_verify_outcome_has_its_answer_on_every_surface() {
    use keyward_domain::{KeyPrefix, PlainKey, VerifyCode};
    let app = crate::support::app_with(keyward_core::Settings {
        public_verify: true,
        ..keyward_core::Settings::default()
    })
    .await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let key = |body: serde_json::Value| app.key_from(&member, body);
    let valid = key(json!({})).await.1;
    let expired = key(json!({"expires_in": "1m"})).await.1;
    let (revoked_id, revoked) = key(json!({})).await;
    app.delete(
        &format!("/api/v1/api-keys/{revoked_id}"),
        As::Bearer(&member),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let unscoped = key(json!({})).await.1;
    let limited = key(json!({"rate_limit_max": 1, "rate_limit_window": "1 hour"}))
        .await
        .1;
    let spent = key(json!({"remaining": 0})).await.1;
    let (paused_id, paused) = key(json!({})).await;
    app.patch(
        &format!("/api/v1/api-keys/{paused_id}"),
        As::Bearer(&member),
        json!({"enabled": false}),
    )
    .await
    .expect(StatusCode::OK);
    // Forward auth here trusts no client address header, and verify is sent none.
    let fenced = key(json!({"allowed_ips": ["192.0.2.0/24"]})).await.1;
    // A key of a user an admin then disabled.
    let (leaver, leaver_id) = app.user_in(t, keyward_domain::Role::Member).await;
    let orphaned = app.key_from(&leaver, json!({})).await.1;
    app.patch(
        &format!("/api/v1/users/{leaver_id}"),
        As::Bearer(&app.admin().await),
        json!({"disabled": true}),
    )
    .await
    .expect(StatusCode::OK);
    let unknown = PlainKey::generate(&KeyPrefix::default_prefix()).unwrap();
    app.advance(time::Duration::minutes(2));
    // The first use of the limited key passes; verify and forward auth each meet the limit.
    let r = app
        .post("/api/v1/keys/verify", As::Nobody, json!({"key": limited}))
        .await;
    assert_eq!(r.body["code"], "VALID");
    let limited_once_more = key(json!({"rate_limit_max": 1, "rate_limit_window": "1 hour"}))
        .await
        .1;
    app.post(
        "/api/v1/keys/verify",
        As::Nobody,
        json!({"key": limited_once_more}),
    )
    .await
    .expect(StatusCode::OK);

    for code in VerifyCode::ALL {
        // (key for verify, key for forward auth, scopes both require)
        let (for_verify, for_forward, scopes): (&str, &str, &[&str]) = match code {
            VerifyCode::Valid => (&valid, &valid, &[]),
            VerifyCode::NotFound => ("kw_not-a-key", "kw_not-a-key", &[]),
            VerifyCode::Expired => (&expired, &expired, &[]),
            VerifyCode::Revoked => (&revoked, &revoked, &[]),
            VerifyCode::InsufficientScopes => (&unscoped, &unscoped, &["orders:read"]),
            VerifyCode::RateLimited => (&limited, &limited_once_more, &[]),
            VerifyCode::UsageExceeded => (&spent, &spent, &[]),
            VerifyCode::Disabled => (&paused, &paused, &[]),
            VerifyCode::IpNotAllowed => (&fenced, &fenced, &[]),
            VerifyCode::OwnerDisabled => (&orphaned, &orphaned, &[]),
            // Last: storage goes away, and a key never seen before cannot be answered.
            VerifyCode::Unavailable => {
                app.state.store.close().await;
                (unknown.expose(), unknown.expose(), &[])
            }
        };
        let r = app
            .post(
                "/api/v1/keys/verify",
                As::Nobody,
                json!({"key": for_verify, "scopes": scopes}),
            )
            .await;
        assert_eq!(r.body["code"], code.as_str(), "verify: {}", r.body);
        let verify_status = if code == VerifyCode::Unavailable {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        assert_eq!(r.status, verify_status, "verify of {code:?}");
        let query = if scopes.is_empty() {
            String::new()
        } else {
            format!("?scopes={}", scopes.join(","))
        };
        let req = Request::get(format!("/api/v1/auth/forward{query}"))
            .header("x-api-key", for_forward)
            .body(Body::empty())
            .unwrap();
        let r = app.send(req).await;
        let (status, native_code) = match code {
            VerifyCode::Valid => (StatusCode::OK, None),
            VerifyCode::NotFound | VerifyCode::Revoked | VerifyCode::OwnerDisabled => {
                (StatusCode::UNAUTHORIZED, Some("invalid_credential"))
            }
            VerifyCode::Expired => (StatusCode::UNAUTHORIZED, Some("credential_expired")),
            VerifyCode::InsufficientScopes
            | VerifyCode::UsageExceeded
            | VerifyCode::Disabled
            | VerifyCode::IpNotAllowed => (StatusCode::FORBIDDEN, Some("forbidden")),
            VerifyCode::RateLimited => (StatusCode::TOO_MANY_REQUESTS, Some("too_many_requests")),
            VerifyCode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")),
        };
        assert_eq!(r.status, status, "forward auth of {code:?}: {}", r.body);
        if let Some(native_code) = native_code {
            assert_eq!(r.error_code(), native_code, "forward auth of {code:?}");
        }
        if matches!(code, VerifyCode::RateLimited | VerifyCode::Unavailable) {
            assert!(
                r.header("retry-after").is_some(),
                "{code:?} says when to retry"
            );
        }
    }
}

/// Kinds 4 and 7: an empty credential header is no credential, and two different credentials
/// are refused (RFC 6750: 400 `invalid_request`), on every surface that authenticates, and by
/// forward auth (as 401, which proxies pass on).
#[tokio::test]
async fn empty_and_ambiguous_credentials() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (_, verifier) = app
        .key_with(&member, &["keyward:verify", "keyward:read"])
        .await;
    let (_, other) = app.key_with(&member, &["keyward:read"]).await;
    let send = |path: &'static str, headers: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let mut req = Request::get(path);
            for (name, value) in headers {
                req = req.header(name, value);
            }
            app.send(req.body(Body::empty()).unwrap()).await
        }
    };
    for path in ["/api/v1/users/me", "/user/api-keys", "/api/apikey"] {
        // Two Authorization values, whatever their schemes.
        send(
            path,
            vec![
                ("authorization", "Basic Zm9vOmJhcg==".into()),
                ("authorization", format!("Bearer {member}")),
            ],
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
        // An empty X-API-Key beside a valid bearer credential: the bearer one is the credential.
        send(
            path,
            vec![
                ("authorization", format!("Bearer {member}")),
                ("x-api-key", String::new()),
            ],
        )
        .await
        .expect(StatusCode::OK);
        send(
            path,
            vec![("x-api-key", " ".into()), ("authorization", String::new())],
        )
        .await
        .expect(StatusCode::UNAUTHORIZED);
        // Two keys, valid first: refused, never the first one silently.
        let r = send(
            path,
            vec![
                ("x-api-key", verifier.clone()),
                ("x-api-key", "kw_bogus".into()),
            ],
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
        assert!(
            r.body.to_string().contains("more than one credential"),
            "{}",
            r.body
        );
        send(
            path,
            vec![
                ("x-api-key", verifier.clone()),
                ("authorization", format!("Bearer {other}")),
            ],
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
        // The same credential twice is one credential.
        send(
            path,
            vec![
                ("x-api-key", verifier.clone()),
                ("authorization", format!("Bearer {verifier}")),
            ],
        )
        .await
        .expect(StatusCode::OK);
    }
    let valid = app.key_with(&member, &[]).await.1;
    let forward = |headers: Vec<(&'static str, String)>| send("/api/v1/auth/forward", headers);
    forward(vec![
        ("x-keyward-verifier", verifier.clone()),
        ("x-api-key", valid.clone()),
    ])
    .await
    .expect(StatusCode::OK);
    forward(vec![
        ("x-keyward-verifier", verifier.clone()),
        ("x-api-key", valid.clone()),
        ("x-api-key", "kw_bogus".into()),
    ])
    .await
    .expect(StatusCode::UNAUTHORIZED);
    forward(vec![
        ("x-keyward-verifier", verifier.clone()),
        ("x-keyward-verifier", other.clone()),
        ("x-api-key", valid.clone()),
    ])
    .await
    .expect(StatusCode::UNAUTHORIZED);
    forward(vec![
        ("x-keyward-verifier", String::new()),
        ("x-api-key", valid.clone()),
    ])
    .await
    .expect(StatusCode::UNAUTHORIZED);
    // Verify's own verifier credential follows the same rule.
    let r = app
        .send(
            Request::post("/api/v1/keys/verify")
                .header("content-type", "application/json")
                .header("x-api-key", &verifier)
                .header("authorization", format!("Bearer {other}"))
                .body(Body::from(json!({"key": valid}).to_string()))
                .unwrap(),
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "ambiguous_credential");
    let _ = (Method::GET, Role::Member);
}

/// Kind 3: text that the strictest backend cannot store (PostgreSQL refuses U+0000 in `text`) is
/// refused at the edge with a 400 in each surface's shape, on both backends, and nothing is
/// written, including in fields a caller sends without signing in.
#[tokio::test]
async fn control_characters_are_refused_in_every_free_text_field() {
    let app = app().await;
    let admin = app.admin().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let bearer = |token: &str| format!("Bearer {token}");
    let requests: Vec<(Request<Body>, &str)> = vec![
        (
            Request::post("/api/v1/api-keys")
                .header("authorization", bearer(&member))
                .header("content-type", "application/json")
                .body(Body::from(json!({"name": "a\u{0}b"}).to_string()))
                .unwrap(),
            "native",
        ),
        (
            Request::post("/api/v1/tenants")
                .header("authorization", bearer(&admin))
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"name": "x\u{1b}[2J", "slug": "ctl"}).to_string(),
                ))
                .unwrap(),
            "native",
        ),
        (
            Request::post("/user/api-keys?label=a%00b")
                .header("authorization", bearer(&member))
                .body(Body::empty())
                .unwrap(),
            "estuary",
        ),
        (
            Request::post("/api/apikey")
                .header("authorization", bearer(&member))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("label=a%00b&expires=Never"))
                .unwrap(),
            "form",
        ),
        (
            Request::post("/api/v1/auth/login")
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"email": "a\u{0}@example.com", "password": "whatever it is"})
                        .to_string(),
                ))
                .unwrap(),
            "native",
        ),
        (
            Request::get("/api/v1/audit-logs?action=a%00b")
                .header("authorization", bearer(&admin))
                .body(Body::empty())
                .unwrap(),
            "native",
        ),
    ];
    for (req, shape) in requests {
        let what = format!("{} {}", req.method(), req.uri());
        let r = app.send(req).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
        match shape {
            "native" => assert_eq!(r.error_code(), "invalid_field", "{what}"),
            "estuary" => assert_eq!(r.body["error"]["reason"], "ERR_INVALID_INPUT", "{what}"),
            _ => assert_eq!(r.body["code"], "INVALID_FIELD", "{what}"),
        }
    }
    let keys = app.get("/api/v1/api-keys", As::Bearer(&member)).await;
    assert_eq!(keys.body.as_array().unwrap().len(), 0, "no key was written");
    let tenants = app.get("/api/v1/tenants", As::Bearer(&admin)).await;
    assert_eq!(
        tenants.body.as_array().unwrap().len(),
        1,
        "no tenant was written"
    );
}

/// Kind 6: a value the caller chooses is bounded before it is echoed, logged or stored. A long
/// or odd `X-Request-Id` is replaced by a new one, in the answer and in the audit log.
#[tokio::test]
async fn a_callers_request_id_is_kept_only_when_short_and_visible() {
    let app = app().await;
    let admin = app.admin().await;
    let login = |request_id: Vec<String>| {
        let app = &app;
        async move {
            let mut req =
                Request::post("/api/v1/auth/login").header("content-type", "application/json");
            for id in request_id {
                req = req.header("x-request-id", id);
            }
            app.send(
                req.body(Body::from(
                    json!({"email": "nobody@example.com", "password": "not the password"})
                        .to_string(),
                ))
                .unwrap(),
            )
            .await
            .expect(StatusCode::UNAUTHORIZED)
        }
    };
    // Past the header limit, the request is refused whole (431), under an id of keyward's.
    let r = app
        .send(raw(
            Method::POST,
            "/api/v1/auth/login",
            &[
                ("x-request-id", &"x".repeat(100_000)),
                ("content-type", "application/json"),
            ],
            json!({"email": "nobody@example.com", "password": "not the password"}).to_string(),
        ))
        .await
        .expect(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(r.header("x-request-id").unwrap().len(), 36);
    let long = "x".repeat(1_000);
    for ids in [
        vec![long.clone()],
        vec!["has space".into()],
        vec!["a".into(), "b".into()],
    ] {
        let r = login(ids.clone()).await;
        let echoed = r.header("x-request-id").unwrap();
        assert_eq!(
            echoed.len(),
            36,
            "a new id instead of {:?}",
            &ids[0][..ids[0].len().min(20)]
        );
    }
    let r = login(vec!["trace-123".into()]).await;
    assert_eq!(r.header("x-request-id"), Some("trace-123"));
    let audit = app
        .get(
            "/api/v1/audit-logs?action=auth.login_failed",
            As::Bearer(&admin),
        )
        .await
        .expect(StatusCode::OK);
    let ids: Vec<&str> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
    assert!(ids.iter().take(3).all(|id| id.len() == 36), "{ids:?}");
    assert_eq!(ids[3], "trace-123");
}

fn raw(
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(body.into()).unwrap()
}

/// Kind 2: media types are parsed (RFC 9110: case-insensitive type and subtype, parameters
/// allowed), the same way on every surface.
#[tokio::test]
async fn media_types_are_parsed_on_every_surface() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let auth = format!("Bearer {member}");
    for content_type in ["Application/JSON", "application/json; charset=UTF-8"] {
        app.send(raw(
            Method::POST,
            "/api/apikey",
            &[("authorization", &auth), ("content-type", content_type)],
            json!({"label": "x", "expires": "Never"}).to_string(),
        ))
        .await
        .expect(StatusCode::CREATED);
        app.send(raw(
            Method::POST,
            "/api/v1/api-keys",
            &[("authorization", &auth), ("content-type", content_type)],
            json!({"name": "x"}).to_string(),
        ))
        .await
        .expect(StatusCode::CREATED);
    }
    app.send(raw(
        Method::POST,
        "/api/apikey",
        &[
            ("authorization", &auth),
            (
                "content-type",
                "APPLICATION/X-WWW-FORM-URLENCODED; charset=utf-8",
            ),
        ],
        "label=y&expires=Never",
    ))
    .await
    .expect(StatusCode::CREATED);
    let r = app
        .send(raw(
            Method::POST,
            "/api/apikey",
            &[("authorization", &auth), ("content-type", "text/plain")],
            "label=y&expires=Never",
        ))
        .await
        .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.body["code"], "UNSUPPORTED_MEDIA_TYPE");
    let r = app
        .send(raw(
            Method::POST,
            "/api/v1/api-keys",
            &[
                ("authorization", &auth),
                ("content-type", "application/json; charset=latin1"),
            ],
            json!({"name": "x"}).to_string(),
        ))
        .await
        .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.error_code(), "unsupported_media_type");
    let keys = app.get("/api/v1/api-keys", As::Bearer(&member)).await;
    assert_eq!(keys.body.as_array().unwrap().len(), 5);
}

/// Kind 5: a request body is never silently dropped: a body the route cannot read as what it
/// takes is a 415 or a 400, and nothing changes.
#[tokio::test]
async fn a_request_body_is_never_ignored() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let auth = format!("Bearer {member}");
    let (id, _) = app.key_with(&member, &[]).await;
    let rotate = format!("/api/v1/api-keys/{id}/rotate");
    let body = json!({"grace_period": "10m", "name": "renamed"}).to_string();
    app.send(raw(
        Method::POST,
        &rotate,
        &[("authorization", &auth)],
        body.clone(),
    ))
    .await
    .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A misspelt field is not a default.
    let r = app
        .send(raw(
            Method::POST,
            &rotate,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            json!({"grace": "10m"}).to_string(),
        ))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("grace"),
        "{}",
        r.body
    );
    // Routes that take no body refuse one, in their surface's shape.
    let r = app
        .send(raw(
            Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            json!({"reason": "leaked"}).to_string(),
        ))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "unexpected_body");
    let r = app
        .send(raw(
            Method::POST,
            "/user/api-keys?label=x",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            json!({"expiry": "false"}).to_string(),
        ))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["reason"], "ERR_INVALID_INPUT");
    let r = app
        .send(raw(
            Method::GET,
            "/api/apikey",
            &[
                ("authorization", &auth),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "label=x",
        ))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.body["code"], "UNEXPECTED_BODY");
    let key = app
        .get(&format!("/api/v1/api-keys/{id}"), As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        key.body["revoked_at"],
        serde_json::Value::Null,
        "nothing was rotated or revoked"
    );
    let keys = app.get("/api/v1/api-keys", As::Bearer(&member)).await;
    assert_eq!(keys.body.as_array().unwrap().len(), 1, "no key was made");
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/health"] {
        let r = app.send(raw(Method::GET, path, &[], "hello")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
    }
    // What clients send by habit still works: `{}` with a DELETE, no body with a rotation.
    app.send(raw(
        Method::POST,
        &rotate,
        &[("authorization", &auth)],
        Body::empty(),
    ))
    .await
    .expect(StatusCode::CREATED);
}

/// Kind 12: input is never silently altered: URL-encoded text that is not UTF-8 is refused,
/// not replaced with U+FFFD, and a compressed body is refused, not read as plain text.
#[tokio::test]
async fn input_is_never_silently_altered() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let auth = format!("Bearer {member}");
    let r = app
        .send(raw(
            Method::POST,
            "/api/apikey",
            &[
                ("authorization", &auth),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "label=caf%E9&expires=Never",
        ))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.body["code"], "INVALID_FORM");
    let r = app
        .send(raw(
            Method::POST,
            "/user/api-keys?label=caf%E9",
            &[("authorization", &auth)],
            Body::empty(),
        ))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["reason"], "ERR_INVALID_INPUT");
    let r = app
        .send(raw(
            Method::GET,
            "/api/v1/api-keys?status=%FF",
            &[("authorization", &auth)],
            Body::empty(),
        ))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "invalid_query");
    // A gzip body (these bytes are gzip's magic number and more) is refused whatever it holds.
    let gzip: &[u8] = &[0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03];
    for (path, content_type) in [
        ("/api/v1/api-keys", "application/json"),
        ("/api/apikey", "application/x-www-form-urlencoded"),
        ("/api/v1/keys/verify", "application/json"),
    ] {
        let r = app
            .send(raw(
                Method::POST,
                path,
                &[
                    ("authorization", &auth),
                    ("content-type", content_type),
                    ("content-encoding", "gzip"),
                ],
                gzip.to_vec(),
            ))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{path}: {}",
            r.body
        );
    }
    let keys = app.get("/api/v1/api-keys", As::Bearer(&member)).await;
    assert_eq!(keys.body.as_array().unwrap().len(), 0, "no key was made");
}

/// Kind 13: every answer is in the surface's own shape, also those made before any handler:
/// unknown subpaths, trailing slashes, methods a route does not take, OPTIONS, and the limits on
/// the request's target and header fields.
#[tokio::test]
async fn every_answer_speaks_its_surface() {
    let app = app().await;
    let estuary = |r: &crate::support::Resp| r.body["error"]["reason"].as_str().map(str::to_owned);
    let form = |r: &crate::support::Resp| r.body["code"].as_str().map(str::to_owned);
    let long = format!("/user/api-keys?label={}", "x".repeat(9000));
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            raw(Method::GET, "/user/nope", &[], Body::empty()),
            StatusCode::NOT_FOUND,
            "estuary",
        ),
        (
            raw(Method::GET, "/user/api-keys/", &[], Body::empty()),
            StatusCode::NOT_FOUND,
            "estuary",
        ),
        (
            raw(Method::PUT, "/user/api-keys", &[], Body::empty()),
            StatusCode::METHOD_NOT_ALLOWED,
            "estuary",
        ),
        (
            raw(Method::OPTIONS, "/user/stats", &[], Body::empty()),
            StatusCode::METHOD_NOT_ALLOWED,
            "estuary",
        ),
        (
            raw(Method::GET, &long, &[], Body::empty()),
            StatusCode::URI_TOO_LONG,
            "estuary",
        ),
        (
            raw(Method::GET, "/api/apikey/x/y", &[], Body::empty()),
            StatusCode::NOT_FOUND,
            "form",
        ),
        (
            raw(Method::GET, "/api/apikey/", &[], Body::empty()),
            StatusCode::NOT_FOUND,
            "form",
        ),
        (
            raw(Method::PUT, "/api/apikey", &[], Body::empty()),
            StatusCode::METHOD_NOT_ALLOWED,
            "form",
        ),
        (
            raw(Method::OPTIONS, "/api/apikey", &[], Body::empty()),
            StatusCode::METHOD_NOT_ALLOWED,
            "form",
        ),
        (
            raw(Method::PUT, "/api/v1/api-keys", &[], Body::empty()),
            StatusCode::METHOD_NOT_ALLOWED,
            "native",
        ),
        (
            raw(Method::GET, "/api/v1/nope/", &[], Body::empty()),
            StatusCode::NOT_FOUND,
            "native",
        ),
        (
            raw(Method::GET, "//user/api-keys", &[], Body::empty()),
            StatusCode::NOT_FOUND,
            "estuary",
        ),
    ];
    for (req, status, shape) in cases {
        let what = format!(
            "{} {}",
            req.method(),
            &req.uri().to_string()[..req.uri().to_string().len().min(40)]
        );
        let r = app.send(req).await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        match shape {
            "estuary" => {
                assert!(estuary(&r).is_some(), "{what}: {}", r.body);
                assert_eq!(r.body["error"]["code"], status.as_u16(), "{what}");
            }
            "form" => assert!(
                form(&r).is_some_and(|c| c == c.to_ascii_uppercase()),
                "{what}: {}",
                r.body
            ),
            _ => {
                r.error_code();
            }
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(
                r.header("allow").is_some(),
                "{what}: a 405 says what is allowed"
            );
        }
    }
    let mut req = Request::get("/api/apikey");
    for i in 0..70 {
        req = req.header(format!("x-filler-{i}"), "1");
    }
    let r = app.send(req.body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(r.body["code"], "HEADERS_TOO_LARGE");
}

/// Kind 13 (HEAD): `HEAD /api/v1/export` answers the export's headers and does none of its work:
/// with storage gone it still answers, where GET cannot.
#[tokio::test]
async fn head_of_the_export_does_not_run_it() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    app.get("/api/v1/users/me", As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    app.state.store.close().await;
    for path in ["/api/v1/export", "/user/export"] {
        let r = app
            .call(Method::HEAD, path, As::Bearer(&member), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r
            .header("content-disposition")
            .unwrap()
            .starts_with("attachment"));
        app.get(path, As::Bearer(&member))
            .await
            .expect(StatusCode::SERVICE_UNAVAILABLE);
    }
}

/// Kind 14 (unknown keys): an address that keeps presenting credentials that fail is answered
/// 429 before each guess costs a lookup, on every surface.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_credentials_is_bounded_per_address() {
    let app = crate::support::app_with(keyward_core::Settings {
        auth_failures_per_address: keyward_domain::ratelimit::Limit {
            max: 5,
            window: time::Duration::minutes(1),
        },
        ..keyward_core::Settings::default()
    })
    .await;
    let live = app.live().await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let paths = [
        "/api/v1/users/me",
        "/user/api-keys",
        "/api/apikey",
        "/api/v1/keys/verify",
        "/api/v1/auth/forward",
    ];
    for (i, path) in paths.iter().cycle().take(10).enumerate() {
        let guess =
            keyward_domain::PlainKey::generate(&keyward_domain::KeyPrefix::default_prefix())
                .unwrap();
        let url = format!("{}{path}", live.base);
        let request = match *path {
            // The verifier's credential is what is guessed on verify and forward auth.
            "/api/v1/keys/verify" => client
                .post(url)
                .header("x-api-key", guess.expose())
                .json(&json!({"key": "kw_x"})),
            "/api/v1/auth/forward" => client
                .get(url)
                .header("x-keyward-verifier", guess.expose())
                .header("x-api-key", "kw_x"),
            _ => client.get(url).header("x-api-key", guess.expose()),
        };
        let r = request.send().await.unwrap();
        statuses.push((
            i,
            r.status().as_u16(),
            r.headers().contains_key("retry-after"),
        ));
    }
    assert!(
        statuses[..5].iter().all(|(_, s, _)| *s == 401),
        "{statuses:?}"
    );
    assert!(
        statuses[5..]
            .iter()
            .all(|(_, s, retry)| *s == 429 && *retry),
        "{statuses:?}"
    );
}

/// Kind 5 (queries): a query parameter a route does not take is refused, never dropped: a
/// misspelt `scopes` on forward auth would otherwise require no scope at all.
#[tokio::test]
async fn unknown_query_parameters_are_refused() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (_, key) = app
        .key_with(&member, &["keyward:verify", "keyward:read"])
        .await;
    let auth = format!("Bearer {member}");
    let r = app
        .send(raw(
            Method::GET,
            "/api/v1/auth/forward?scope=admin:all",
            &[("x-keyward-verifier", &key), ("x-api-key", &key)],
            Body::empty(),
        ))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(r.body.to_string().contains("scope"), "{}", r.body);
    let cases = [
        (Method::GET, "/api/v1/api-keys?statu=revoked", "native"),
        (Method::GET, "/api/v1/users/me?x=1", "native"),
        (Method::GET, "/api/v1/stats?days=1", "native"),
        (Method::POST, "/user/api-keys?expiry=1h&bogus=1", "estuary"),
        (Method::GET, "/user/api-keys?page=2", "estuary"),
        (Method::GET, "/api/apikey?label=x", "form"),
    ];
    for (method, path, shape) in cases {
        let r = app
            .send(raw(
                method,
                path,
                &[("authorization", &auth)],
                Body::empty(),
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        match shape {
            "estuary" => assert_eq!(r.body["error"]["reason"], "ERR_INVALID_INPUT", "{path}"),
            "form" => assert!(r.body["code"].is_string(), "{path}: {}", r.body),
            _ => {
                r.error_code();
            }
        }
    }
    let keys = app
        .get("/api/v1/api-keys", As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        keys.body.as_array().unwrap().len(),
        1,
        "the Estuary POST made no key"
    );
    // An empty scope list or item on forward auth (an unset variable in a proxy's configuration)
    // is no "no scope required".
    for query in [
        "?scopes=",
        "?scopes=orders:read,,orders:read",
        "?scopes=a%00b",
    ] {
        let r = app
            .send(raw(
                Method::GET,
                &format!("/api/v1/auth/forward{query}"),
                &[("x-keyward-verifier", &key), ("x-api-key", &key)],
                Body::empty(),
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
    }
}

/// Kind 12 (more): a scope listed twice, a time written with a space or a leap second, an id in
/// a non-standard form, a transfer coding hyper does not decode: each refused, never read as
/// something near it.
#[tokio::test]
async fn near_misses_are_refused_not_read_as_something_near() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let auth = format!("Bearer {member}");
    for body in [
        json!({"scopes": ["a", "a"]}),
        json!({"expires_at": "2030-01-01 00:00:00Z"}),
        json!({"expires_at": "2030-06-30T23:59:60Z"}),
        json!({"tenant_id": format!("{{{t}}}")}),
    ] {
        let r = app
            .post("/api/v1/api-keys", As::Bearer(&member), body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
    }
    let r = app
        .send(raw(
            Method::GET,
            &format!("/api/v1/api-keys?tenant_id=urn:uuid:{t}"),
            &[("authorization", &auth)],
            Body::empty(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = app
        .send(raw(
            Method::POST,
            "/api/v1/auth/login",
            &[
                ("content-type", "application/json"),
                ("transfer-encoding", "gzip, chunked"),
            ],
            json!({"email": "a@b.c", "password": "x"}).to_string(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.body);
    let keys = app
        .get("/api/v1/api-keys", As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(keys.body.as_array().unwrap().len(), 0, "no key was made");
    // An out-of-range limit is named as such, before the rule that pairs it with a window.
    let (id, _) = app.key_with(&member, &[]).await;
    let r = app
        .patch(
            &format!("/api/v1/api-keys/{id}"),
            As::Bearer(&member),
            json!({"rate_limit_max": 100_001}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("between 1 and 100000"),
        "{}",
        r.body
    );
}

/// Kind 10/12: an id in a path is a UUID in its standard form (what the document's `format:
/// uuid` says), not any form a parser could read (braced, URN, hyphenless).
#[tokio::test]
async fn ids_in_paths_are_uuids_in_their_standard_form() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (id, _) = app.key_with(&member, &[]).await;
    let uuid: uuid::Uuid = id.parse().unwrap();
    app.get(
        &format!("/api/v1/api-keys/{}", id.to_uppercase()),
        As::Bearer(&member),
    )
    .await
    .expect(StatusCode::OK);
    for other in [
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
        uuid.simple().to_string(),
    ] {
        let r = app
            .get(&format!("/api/v1/api-keys/{other}"), As::Bearer(&member))
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert_eq!(r.error_code(), "invalid_id");
        let r = app
            .get(&format!("/api/apikey/{other}"), As::Bearer(&member))
            .await
            .expect(StatusCode::NOT_FOUND);
        assert_eq!(r.body["code"], "NOT_FOUND");
    }
}
