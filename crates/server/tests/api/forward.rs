//! `/api/v1/auth/forward` and `/api/v1/auth/forward/{path}` in-process (every status), and
//! `/metrics`. The end-to-end runs behind real proxies are in `proxies`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::support::{app, Resp, TestApp};

/// A forwarded request: the client's key in `X-API-Key` (or `Authorization` when `bearer`), the
/// proxy's verifier credential in `X-Keyward-Verifier`.
async fn forward(
    app: &TestApp,
    query: &str,
    verifier: Option<&str>,
    key: Option<&str>,
    bearer: bool,
) -> Resp {
    forwarded(
        app,
        &format!("/api/v1/auth/forward{query}"),
        &[],
        verifier,
        key,
        bearer,
    )
    .await
}

/// As [`forward`], to `path`, with `extra` header fields.
async fn forwarded(
    app: &TestApp,
    path: &str,
    extra: &[(&str, &str)],
    verifier: Option<&str>,
    key: Option<&str>,
    bearer: bool,
) -> Resp {
    let mut req = Request::builder().uri(path);
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    if let Some(v) = verifier {
        req = req.header("x-keyward-verifier", v);
    }
    if let Some(k) = key {
        req = if bearer {
            req.header("authorization", format!("Bearer {k}"))
        } else {
            req.header("x-api-key", k)
        };
    }
    app.send(req.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn every_answer_of_forward_auth() {
    let app = app().await;
    let t = app.tenant("fwd").await;
    let (member, member_id) = app.user_in(t, keyward_domain::Role::Member).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let (_, reader) = app.key_with(&member, &["keyward:read"]).await;
    let (id, key) = app
        .key_from(&member, json!({"scopes": ["orders:read", "orders:list"], "rate_limit_max": 2, "rate_limit_window": "1 minute", "expires_in": "1h"}))
        .await;
    let v = Some(verifier.as_str());

    let ok = forward(&app, "?scopes=orders:read", v, Some(&key), false)
        .await
        .expect(StatusCode::OK);
    assert_eq!(ok.header("x-keyward-key-id"), Some(id.as_str()));
    assert_eq!(
        ok.header("x-keyward-tenant-id"),
        Some(t.to_string().as_str())
    );
    assert_eq!(
        ok.header("x-keyward-owner-id"),
        Some(member_id.to_string().as_str())
    );
    let mut scopes: Vec<&str> = ok.header("x-keyward-scopes").unwrap().split(',').collect();
    scopes.sort();
    assert_eq!(scopes, ["orders:list", "orders:read"]);
    forward(&app, "", v, Some(&key), true)
        .await
        .expect(StatusCode::OK);

    let r = forward(&app, "?scopes=orders:read", v, Some(&key), false)
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    app.advance(time::Duration::seconds(40));

    let r = forward(
        &app,
        "?scopes=orders:write,orders:read",
        v,
        Some(&key),
        false,
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "forbidden");
    let r = forward(&app, "", v, None, false)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert!(r.header("www-authenticate").is_some());
    forward(&app, "", v, Some("kw_nope"), false)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let r = forward(&app, "?scopes=a&scopes=b", v, Some(&key), false)
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "invalid_query");

    // The proxy's own credential: missing or unknown is 401, without keyward:verify 403.
    forward(&app, "", None, Some(&key), false)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    forward(&app, "", Some("kw_bogus"), Some(&key), false)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    forward(&app, "", Some(&reader), Some(&key), false)
        .await
        .expect(StatusCode::FORBIDDEN);

    app.advance(time::Duration::hours(2));
    let r = forward(&app, "", v, Some(&key), false)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "credential_expired");
    let (id2, key2) = app.key_with(&member, &[]).await;
    app.delete(
        &format!("/api/v1/api-keys/{id2}"),
        crate::support::As::Bearer(&member),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    forward(&app, "", v, Some(&key2), false)
        .await
        .expect(StatusCode::UNAUTHORIZED);

    // Every answer was counted, without a lock, and shows in /metrics.
    let r = app
        .get("/metrics", crate::support::As::Nobody)
        .await
        .expect(StatusCode::OK);
    let text = r.body.as_str().unwrap();
    for line in [
        "keyward_verifications_total{route=\"forward\",code=\"VALID\"} 2",
        "keyward_verifications_total{route=\"forward\",code=\"RATE_LIMITED\"} 1",
        "keyward_verifications_total{route=\"forward\",code=\"INSUFFICIENT_SCOPES\"} 1",
        "keyward_verifications_total{route=\"forward\",code=\"REVOKED\"} 1",
        "keyward_verifications_total{route=\"forward\",code=\"EXPIRED\"} 1",
        "keyward_rate_limited_total 1",
        "keyward_verify_duration_seconds_count{route=\"forward\"} 7",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(text.contains("# TYPE keyward_cache_hits_total counter"));
    assert!(text.contains("keyward_usage_pending "));
}

/// Envoy's form: the client's path and query appended to the address, the scopes in a header.
/// The client's query is never read (a `scopes` there requires nothing and refuses nothing).
#[tokio::test]
async fn every_answer_of_forward_auth_with_the_path_appended() {
    let app = app().await;
    let t = app.tenant("fwd").await;
    let (member, member_id) = app.user_in(t, keyward_domain::Role::Member).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let (_, key) = app
        .key_from(&member, json!({"scopes": ["orders:read"], "rate_limit_max": 3, "rate_limit_window": "1 minute"}))
        .await;
    let v = Some(verifier.as_str());
    let needs = |scopes| [("x-keyward-required-scopes", scopes)];
    // The member's key at `path`, with `scopes` required in the header.
    let with_key = |path: &'static str, scopes: &'static str| {
        let (app, key) = (&app, &key);
        async move { forwarded(app, path, &needs(scopes), v, Some(key), false).await }
    };
    let ok = with_key(
        "/api/v1/auth/forward/orders/7?scopes=admin&x=%2F",
        "orders:read",
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        ok.header("x-keyward-owner-id"),
        Some(member_id.to_string().as_str())
    );
    let r = forwarded(
        &app,
        "/api/v1/auth/forward/orders",
        &needs("orders:read AND orders:write"),
        v,
        Some(&key),
        true,
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "forbidden");
    // The header on the plain route, as an alternative to the query.
    with_key("/api/v1/auth/forward", "orders:read")
        .await
        .expect(StatusCode::OK);
    // Three a minute: the refused scope above spent none of them.
    with_key("/api/v1/auth/forward/b", "orders:read")
        .await
        .expect(StatusCode::OK);
    let r = with_key("/api/v1/auth/forward/a", "orders:read")
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
    forwarded(&app, "/api/v1/auth/forward/a", &[], v, None, false)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    forwarded(&app, "/api/v1/auth/forward/a", &[], None, Some(&key), false)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    // The client asked for the API's root: nothing appended but `/`.
    app.advance(time::Duration::minutes(2));
    let ok = with_key("/api/v1/auth/forward/", "orders:read")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        ok.header("x-keyward-owner-id"),
        Some(member_id.to_string().as_str())
    );
    // Refused, each for its own reason, in the header's name.
    for (path, headers, why) in [
        (
            "/api/v1/auth/forward?scopes=a",
            vec![("x-keyward-required-scopes", "a")],
            "x-keyward-required-scopes: and the scopes parameter are alternatives",
        ),
        (
            "/api/v1/auth/forward/a",
            vec![
                ("x-keyward-required-scopes", "a"),
                ("x-keyward-required-scopes", "b"),
            ],
            "x-keyward-required-scopes: is sent once",
        ),
        (
            "/api/v1/auth/forward/a",
            vec![("x-keyward-required-scopes", "")],
            "scopes",
        ),
        (
            "/api/v1/auth/forward/a",
            vec![("x-keyward-required-scopes", "a,,b")],
            "scopes",
        ),
    ] {
        let r = forwarded(&app, path, &headers, v, Some(&key), false)
            .await
            .expect(StatusCode::BAD_REQUEST);
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{path} {headers:?}: {}", r.body);
        eprintln!("{path} {headers:?}: {message}");
    }
}

#[tokio::test]
async fn metrics_count_verify_and_flushes() {
    let app = app().await;
    let t = app.tenant("m").await;
    let member = app.member_of(t).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let (_, key) = app.key_with(&member, &[]).await;
    for _ in 0..3 {
        app.post(
            "/api/v1/keys/verify",
            crate::support::As::ApiKey(&verifier),
            json!({"key": key}),
        )
        .await
        .expect(StatusCode::OK);
    }
    app.state
        .usage
        .flush(app.state.store.as_ref(), app.state.now())
        .await;
    let r = app
        .get("/metrics", crate::support::As::Nobody)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.body.as_str().unwrap();
    assert!(
        text.contains("keyward_verifications_total{route=\"verify\",code=\"VALID\"} 3"),
        "{text}"
    );
    assert!(text.contains("keyward_verify_duration_seconds_bucket{route=\"verify\",le=\"+Inf\"} 3"));
    assert!(text.contains("keyward_usage_flushes_total 1"));
    assert!(text.contains("keyward_usage_pending 0"));
    assert!(text.contains("keyward_cache_coherent 1"), "{text}");
    assert!(text.contains("keyward_storage_down 0"), "{text}");
    let hits: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("keyward_cache_hits_total "))
        .unwrap()
        .parse()
        .unwrap();
    // The key's second and third verifies (the verifier, after the first, is remembered).
    assert!(hits >= 2, "{hits}");
}

/// A cached key is answered as edited: an edit of the key (name, scopes, metadata, expiry) shows
/// in the very next verify answer and forward-auth answer after answers from the cache.
#[tokio::test]
async fn an_edited_key_is_answered_as_edited_at_once() {
    let app = app().await;
    let t = app.tenant("edited").await;
    let (member, _) = app.user_in(t, keyward_domain::Role::Member).await;
    let (_, verifier) = app
        .key_with(&member, &["keyward:verify", "orders:read", "orders:write"])
        .await;
    let (id, key) = app
        .key_from(
            &member,
            json!({"name": "before", "scopes": ["orders:read"]}),
        )
        .await;
    let v = Some(verifier.as_str());
    // Twice each, so that the second answer comes from the cache.
    for _ in 0..2 {
        let r = app.verify(&verifier, &key).await.expect(StatusCode::OK);
        assert_eq!(r.body["name"], "before");
        assert_eq!(r.body["scopes"], json!(["orders:read"]));
        assert_eq!(r.body["key_id"], id.as_str());
        let ok = forward(&app, "", v, Some(&key), false)
            .await
            .expect(StatusCode::OK);
        assert_eq!(ok.header("x-keyward-scopes"), Some("orders:read"));
    }
    app.patch(
        &format!("/api/v1/api-keys/{id}"),
        crate::support::As::Bearer(&member),
        json!({"name": "after", "scopes": ["orders:read", "orders:write"], "metadata": {"plan": "pro"}, "expires_at": "2099-01-01T00:00:00Z"}),
    )
    .await
    .expect(StatusCode::OK);
    let r = app.verify(&verifier, &key).await.expect(StatusCode::OK);
    assert_eq!(r.body["valid"], true);
    assert_eq!(r.body["code"], "VALID");
    assert_eq!(r.body["name"], "after");
    assert_eq!(r.body["scopes"], json!(["orders:read", "orders:write"]));
    assert_eq!(r.body["metadata"], json!({"plan": "pro"}));
    assert_eq!(r.body["expires_at"], "2099-01-01T00:00:00Z");
    let ok = forward(&app, "", v, Some(&key), false)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        ok.header("x-keyward-scopes"),
        Some("orders:read,orders:write")
    );
    assert_eq!(ok.header("x-keyward-key-id"), Some(id.as_str()));
}

/// A proxy forwards whatever method its client used, body and all (nginx `auth_request` drops
/// the body, Traefik and Envoy may not): every method, with or without a body, on both paths,
/// is answered by the key alone, the body unread.
#[tokio::test]
async fn forward_auth_answers_every_method_and_ignores_the_body() {
    let app = app().await;
    let t = app.tenant("methods").await;
    let (member, member_id) = app.user_in(t, keyward_domain::Role::Member).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let (id, key) = app.key_with(&member, &["orders:read"]).await;
    for path in [
        "/api/v1/auth/forward?scopes=orders:read",
        "/api/v1/auth/forward/orders/7?x=1",
    ] {
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            for body in ["", r#"{"not":"keyward's"}"#] {
                let send = |key: &str| {
                    Request::builder()
                        .method(method)
                        .uri(path)
                        .header("x-keyward-verifier", &verifier)
                        .header("x-api-key", key)
                        .header("content-type", "application/json")
                        .body(Body::from(body.to_owned()))
                        .unwrap()
                };
                let ok = app.send(send(&key)).await.expect(StatusCode::OK);
                assert_eq!(
                    ok.header("x-keyward-key-id"),
                    Some(id.as_str()),
                    "{method} {path}"
                );
                assert_eq!(
                    ok.header("x-keyward-owner-id"),
                    Some(member_id.to_string().as_str())
                );
                assert_eq!(ok.header("x-keyward-scopes"), Some("orders:read"));
                app.send(send("kw_not-a-key"))
                    .await
                    .expect(StatusCode::UNAUTHORIZED);
            }
        }
    }
}
