//! The Estuary `/user/*` surface in-process: every status each route can return, in
//! Estuary's error shape. (The published client's run is in `compat`.)

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;

use crate::support::{app, As, Resp, TestApp};

/// Asserts Estuary's error shape and returns its reason.
#[track_caller]
fn reason(r: &Resp) -> &str {
    let e = &r.body["error"];
    assert_eq!(
        e["code"],
        r.status.as_u16(),
        "code is the status: {}",
        r.body
    );
    assert!(e["details"].is_string(), "details: {}", r.body);
    e["reason"].as_str().unwrap()
}

async fn raw(app: &TestApp, method: Method, path: &str, authorization: Option<&str>) -> Resp {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    app.send(req.body(Body::empty()).unwrap()).await
}

async fn create(app: &TestApp, token: &str, query: &str) -> Value {
    app.call(
        Method::POST,
        &format!("/user/api-keys{query}"),
        As::Bearer(token),
        None,
    )
    .await
    .expect(StatusCode::OK)
    .body
}

#[tokio::test]
async fn create_list_delete_with_estuary_shapes() {
    let app = app().await;
    let t = app.tenant("est").await;
    let jwt = app.member_of(t).await;
    let a = create(&app, &jwt, "?expiry=90m&perms=all&label=ci").await;
    let r = app
        .call(
            Method::POST,
            "/user/api-keys?expiry=90m",
            As::Bearer(&jwt),
            None,
        )
        .await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let token = a["token"].as_str().unwrap();
    assert_eq!(a["label"], "ci");
    assert_eq!(a["isSession"], false);
    let expiry = crate::support::rfc3339(&a["expiry"]);
    assert_eq!(
        expiry,
        crate::support::start_time() + time::Duration::minutes(90)
    );
    let hash = keyward_domain::KeyDigest::of(token).to_base64url();
    assert_eq!(a["tokenHash"], hash.as_str());

    let listed = app
        .get("/user/api-keys", As::Bearer(token))
        .await
        .expect(StatusCode::OK);
    let items = listed.body.as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|k| k["token"] == ""));
    assert!(items.iter().any(|k| k["tokenHash"] == hash.as_str()));

    // The same key seen natively: Estuary's perms=all is keyward:read + keyward:write.
    let native = app
        .get("/api/v1/api-keys", As::Bearer(&jwt))
        .await
        .expect(StatusCode::OK);
    let scopes: Vec<&Value> = native
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["scopes"])
        .collect();
    assert!(scopes
        .iter()
        .all(|s| **s == serde_json::json!(["keyward:read", "keyward:write"])));

    let gone = app
        .delete(&format!("/user/api-keys/{hash}"), As::Bearer(&jwt))
        .await
        .expect(StatusCode::OK);
    assert_eq!(gone.body["revoked"], true);
    let r = app
        .delete(&format!("/user/api-keys/{hash}"), As::Bearer(&jwt))
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(reason(&r), "ERR_RECORD_NOT_FOUND");
    let r = app
        .get("/user/api-keys", As::Bearer(token))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&r), "ERR_INVALID_TOKEN");
    // The revocation is in the shared audit trail.
    let audit = app
        .get("/api/v1/audit-logs?action=api_key.revoke", As::Bearer(&jwt))
        .await
        .expect(StatusCode::OK);
    assert_eq!(audit.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_expiry_and_perms_are_400_saying_what_is_accepted() {
    let app = app().await;
    let t = app.tenant("est").await;
    let jwt = app.member_of(t).await;
    for query in [
        "?expiry=soon",
        "?expiry=-5m",
        "?expiry=0",
        "?expiry=10d",
        "?expiry=900000h",
        "?perms=root",
        "?perms=ALL",
    ] {
        let r = app
            .call(
                Method::POST,
                &format!("/user/api-keys{query}"),
                As::Bearer(&jwt),
                None,
            )
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert_eq!(reason(&r), "ERR_INVALID_INPUT", "{query}");
    }
    let r = app
        .call(
            Method::POST,
            "/user/api-keys?expiry=soon",
            As::Bearer(&jwt),
            None,
        )
        .await;
    let details = r.body["error"]["details"].as_str().unwrap();
    assert!(
        details.contains("300h") && details.contains("false"),
        "{details}"
    );
    let never = create(&app, &jwt, "?expiry=false").await;
    assert!(never["expiry"].is_null());
    let listed = app
        .get("/user/api-keys", As::Bearer(&jwt))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        listed.body.as_array().unwrap().len(),
        1,
        "no key was made by a bad request"
    );
}

#[tokio::test]
async fn auth_failures_use_estuary_reasons() {
    let app = app().await;
    let t = app.tenant("est").await;
    let jwt = app.member_of(t).await;
    let short = create(&app, &jwt, "?expiry=1h").await;
    let upload = create(&app, &jwt, "?perms=upload").await;
    let upload = upload["token"].as_str().unwrap();
    for (method, path) in [
        (Method::GET, "/user/api-keys"),
        (Method::POST, "/user/api-keys"),
        (Method::DELETE, "/user/api-keys/abc"),
        (Method::GET, "/user/stats"),
        (Method::GET, "/user/export"),
    ] {
        let r = raw(&app, method.clone(), path, None)
            .await
            .expect(StatusCode::UNAUTHORIZED);
        assert_eq!(reason(&r), "ERR_AUTH_MISSING", "{path}");
        assert!(r.header("www-authenticate").is_some());
        let r = raw(&app, method.clone(), path, Some("Basic Zm9vOmJhcg=="))
            .await
            .expect(StatusCode::UNAUTHORIZED);
        assert_eq!(reason(&r), "ERR_AUTH_MISSING_BEARER", "{path}");
        let r = raw(&app, method.clone(), path, Some("Bearer kw_nope"))
            .await
            .expect(StatusCode::UNAUTHORIZED);
        assert_eq!(reason(&r), "ERR_INVALID_TOKEN", "{path}");
        let r = raw(
            &app,
            method.clone(),
            path,
            Some("Bearer eyJhbGciOiJub25lIn0.e30."),
        )
        .await
        .expect(StatusCode::UNAUTHORIZED);
        assert_eq!(reason(&r), "ERR_INVALID_TOKEN", "{path}");
        // perms=upload is an application scope: no access to keyward's own API.
        let r = app
            .call(method.clone(), path, As::Bearer(upload), None)
            .await
            .expect(StatusCode::FORBIDDEN);
        assert_eq!(reason(&r), "ERR_NOT_AUTHORIZED", "{path}");
    }
    app.advance(time::Duration::hours(2));
    let r = app
        .get(
            "/user/api-keys",
            As::Bearer(short["token"].as_str().unwrap()),
        )
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&r), "ERR_TOKEN_EXPIRED");
}

#[tokio::test]
async fn delete_takes_key_or_hash_and_never_another_users_key() {
    let app = app().await;
    let t = app.tenant("est").await;
    let ann = app.member_of(t).await;
    let admin_of_t = app.tenant_admin_of(t).await;
    let admin = app.admin().await;
    let anns = create(&app, &ann, "").await;
    let token = anns["token"].as_str().unwrap().to_owned();
    let hash = anns["tokenHash"].as_str().unwrap().to_owned();
    // Not even a tenant admin or an admin deletes someone else's key through this surface,
    // which speaks only of the caller's own keys.
    for other in [&admin_of_t, &admin] {
        for r in [&token, &hash] {
            let resp = app
                .delete(&format!("/user/api-keys/{r}"), As::Bearer(other))
                .await
                .expect(StatusCode::NOT_FOUND);
            assert_eq!(reason(&resp), "ERR_RECORD_NOT_FOUND");
        }
        let theirs = app
            .get("/user/api-keys", As::Bearer(other))
            .await
            .expect(StatusCode::OK);
        assert_eq!(theirs.body, serde_json::json!([]));
    }
    for garbage in [
        "abc",
        "kw_AAAA",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        app.delete(&format!("/user/api-keys/{garbage}"), As::Bearer(&ann))
            .await
            .expect(StatusCode::NOT_FOUND);
    }
    let r = app
        .delete(&format!("/user/api-keys/{token}"), As::Bearer(&ann))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["tokenHash"], hash.as_str());
    // Admins without a tenant get keys without one.
    let admins = create(&app, &admin, "?perms=all").await;
    let listed = app
        .get("/user/api-keys", As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed.body[0]["tokenHash"], admins["tokenHash"]);
}
