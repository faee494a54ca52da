//! Bad input always gets a clear 4xx in the native error shape; request ids on every response.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::support::{app, As};

#[tokio::test]
async fn malformed_bodies_get_4xx_in_the_error_shape() {
    let app = app().await;
    let admin = app.admin().await;
    let send = |content_type: Option<&'static str>, body: Vec<u8>| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let mut req =
                Request::post("/api/v1/tenants").header("authorization", format!("Bearer {admin}"));
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            app.send(req.body(Body::from(body)).unwrap()).await
        }
    };
    let r = send(Some("application/json"), b"{not json".to_vec())
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "malformed_json");
    let r = send(
        Some("application/json"),
        br#"{"name": 5, "slug": "x"}"#.to_vec(),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "invalid_body");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("name"));
    let r = send(
        Some("text/plain"),
        br#"{"name": "x", "slug": "x"}"#.to_vec(),
    )
    .await
    .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.error_code(), "unsupported_media_type");
    send(None, br#"{"name": "x", "slug": "x"}"#.to_vec())
        .await
        .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = serde_json::to_vec(
        &json!({"name": "x", "slug": "x", "metadata": {"blob": "x".repeat(70 * 1024)}}),
    )
    .unwrap();
    let r = send(Some("application/json"), big)
        .await
        .expect(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error_code(), "payload_too_large");
    let r = send(Some("application/json"), vec![0xff, 0xfe, 0x00]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let listed = app
        .get("/api/v1/tenants", As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        listed.body.as_array().unwrap().len(),
        0,
        "nothing was written"
    );
}

/// serde's derived structs take a JSON array of their fields in order; no body (nor a nested
/// object) of any surface does.
#[tokio::test]
async fn a_body_is_an_object_never_an_array_of_its_fields() {
    let app = app().await;
    let admin = app.admin().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (key_id, _) = app.key_with(&member, &[]).await;
    let json = |method: &str, path: String, token: &str, body: &str| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    for (req, what) in [
        (
            json(
                "POST",
                "/api/v1/tenants".into(),
                &admin,
                r#"["n", "s", null, null, null]"#,
            ),
            "tenant",
        ),
        (
            json(
                "PATCH",
                format!("/api/v1/tenants/{t}"),
                &admin,
                "[null, null, null, null, null]",
            ),
            "tenant edit",
        ),
        (
            json(
                "PATCH",
                format!("/api/v1/tenants/{t}"),
                &admin,
                r#"{"policy": [true, ["1d"]]}"#,
            ),
            "policy",
        ),
        (
            json("POST", "/api/v1/api-keys".into(), &member, r#" ["x"]"#),
            "key",
        ),
        (
            json(
                "POST",
                "/api/v1/api-keys".into(),
                &member,
                r#"{"remaining": 5, "refill": ["daily", 5, null]}"#,
            ),
            "refill",
        ),
        (
            json(
                "PATCH",
                format!("/api/v1/api-keys/{key_id}"),
                &member,
                r#"{"refill": ["daily", 5, 1]}"#,
            ),
            "refill edit",
        ),
        (
            json(
                "POST",
                format!("/api/v1/api-keys/{key_id}/rotate"),
                &member,
                "[null, null]",
            ),
            "rotate",
        ),
        (
            json(
                "POST",
                "/api/v1/webhooks".into(),
                &admin,
                r#"["https://93.184.216.34/", null, null, null, null]"#,
            ),
            "webhook",
        ),
    ] {
        let r = app.send(req).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
        assert_eq!(r.error_code(), "invalid_body", "{what}");
    }
    // The form surface, in JSON: its own error shape.
    let r = app
        .send(json(
            "POST",
            "/api/apikey".into(),
            &member,
            r#"["label", null]"#,
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = app
        .send(json(
            "PATCH",
            format!("/api/apikey/{key_id}"),
            &member,
            r#"["label"]"#,
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // Nothing was written.
    let r = app
        .get(&format!("/api/v1/api-keys/{key_id}"), As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["name"], "test");
    assert!(r.body.get("refill").is_none());
    let r = app
        .get("/api/v1/tenants", As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = app().await;
    let r = app
        .get("/api/v1/nope", As::Nobody)
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "not_found");
    let r = app
        .call(
            axum::http::Method::PUT,
            "/api/v1/api-keys",
            As::Nobody,
            None,
        )
        .await
        .expect(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.error_code(), "method_not_allowed");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = app().await;
    let r = app.get("/healthz", As::Nobody).await;
    let id = r.header("x-request-id").expect("generated request id");
    assert_eq!(id.len(), 36);
    let req = Request::get("/api/v1/nope")
        .header("x-request-id", "trace-123")
        .body(Body::empty())
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.header("x-request-id"), Some("trace-123"));
}
