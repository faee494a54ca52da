//! Login, JWT rejection, credential failures and login throttling.

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use keyward_core::jwt::{AUDIENCE, ISSUER};
use keyward_core::Settings;
use keyward_domain::ratelimit::Limit;
use keyward_domain::Role;
use serde_json::json;

use crate::support::{app, app_with, As, JWT_SECRET, PASSWORD, SESSION_TTL};

#[tokio::test]
async fn login_returns_a_bearer_token() {
    let app = app().await;
    app.user("ann@example.com", Role::Admin, None).await;
    let r = app
        .post(
            "/api/v1/auth/login",
            As::Nobody,
            json!({"email": "Ann@Example.com", "password": PASSWORD}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], SESSION_TTL.whole_seconds());
    let token = r.body["access_token"].as_str().unwrap();
    let me = app
        .get("/api/v1/users/me", As::Bearer(token))
        .await
        .expect(StatusCode::OK);
    assert_eq!(me.body["email"], "ann@example.com");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = app().await;
    app.user("ann@example.com", Role::Member, None).await;
    let wrong = app
        .post(
            "/api/v1/auth/login",
            As::Nobody,
            json!({"email": "ann@example.com", "password": "not the password"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/v1/auth/login",
            As::Nobody,
            json!({"email": "who@example.com", "password": "not the password"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.body, unknown.body);
    app.post(
        "/api/v1/auth/login",
        As::Nobody,
        json!({"email": "ann@example.com"}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
}

/// Any header and claims, signed with HMAC-SHA256 (RFC 7515 appendix A.1) by hand: the tokens
/// keyward must refuse, which no JWT library makes.
fn forge(secret: &[u8], header: &serde_json::Value, claims: &serde_json::Value) -> String {
    use hmac::Mac;
    let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    token
}

fn claims(exp_offset: i64) -> serde_json::Value {
    let now = crate::support::start_time().unix_timestamp();
    json!({"sub": uuid::Uuid::nil().to_string(), "iat": now, "exp": now + exp_offset, "iss": ISSUER, "aud": AUDIENCE, "jti": "x"})
}

#[tokio::test]
async fn forged_and_stale_tokens_get_401() {
    let app = app().await;
    let user = app.user("ann@example.com", Role::Member, None).await;
    // The session a sign-in stored: a token is good only while its `jti` names one.
    let signed_in = app.login("ann@example.com").await;
    let payload = signed_in.split('.').nth(1).unwrap();
    let payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let session = payload["jti"].clone();
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let with_sub = |mut c: serde_json::Value| {
        c["sub"] = json!(user.to_string());
        c["jti"] = session.clone();
        c
    };
    let good = forge(JWT_SECRET, &hs256, &with_sub(claims(60)));
    app.get("/api/v1/users/me", As::Bearer(&good))
        .await
        .expect(StatusCode::OK);
    // Signed with the right secret, but naming no session (or a session of someone else).
    let mut no_session = with_sub(claims(60));
    no_session["jti"] = json!(uuid::Uuid::new_v4().to_string());
    let someone_else = app.user("bob@example.com", Role::Member, None).await;
    let mut not_theirs = with_sub(claims(60));
    not_theirs["sub"] = json!(someone_else.to_string());
    for claims in [no_session, not_theirs] {
        let token = forge(JWT_SECRET, &hs256, &claims);
        app.get("/api/v1/users/me", As::Bearer(&token))
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }

    let mut no_exp = with_sub(claims(60));
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut bad_iss = with_sub(claims(60));
    bad_iss["iss"] = json!("evil");
    let mut bad_aud = with_sub(claims(60));
    bad_aud["aud"] = json!("evil");
    let none = {
        let t = forge(
            JWT_SECRET,
            &json!({"alg": "none", "typ": "JWT"}),
            &with_sub(claims(60)),
        );
        format!("{}.", &t[..t.rfind('.').unwrap()])
    };
    let cases = [
        ("alg none", none),
        (
            "alg HS512",
            forge(JWT_SECRET, &json!({"alg": "HS512"}), &with_sub(claims(60))),
        ),
        ("no exp", forge(JWT_SECRET, &hs256, &no_exp)),
        ("wrong iss", forge(JWT_SECRET, &hs256, &bad_iss)),
        ("wrong aud", forge(JWT_SECRET, &hs256, &bad_aud)),
        (
            "bad signature",
            forge(
                b"another-secret-another-secret-12345",
                &hs256,
                &with_sub(claims(60)),
            ),
        ),
        ("unknown user", forge(JWT_SECRET, &hs256, &claims(60))),
    ];
    for (what, token) in cases {
        let r = app.get("/api/v1/users/me", As::Bearer(&token)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(r.error_code(), "invalid_credential", "{what}");
        assert!(r.header("www-authenticate").is_some());
    }
    let past = forge(JWT_SECRET, &hs256, &with_sub(claims(-1)));
    let r = app
        .get("/api/v1/users/me", As::Bearer(&past))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "credential_expired");
    // And a real session expires when its lifetime is over.
    let session = app.login("ann@example.com").await;
    app.advance(SESSION_TTL - time::Duration::seconds(1));
    app.get("/api/v1/users/me", As::Bearer(&session))
        .await
        .expect(StatusCode::OK);
    app.advance(time::Duration::seconds(1));
    app.get("/api/v1/users/me", As::Bearer(&session))
        .await
        .expect(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn credential_failures() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (id, key) = app
        .key_from(
            &member,
            json!({"scopes": ["keyward:read"], "expires_in": "1h"}),
        )
        .await;
    let r = app
        .get("/api/v1/users/me", As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "unauthenticated");
    let req = axum::http::Request::get("/api/v1/users/me")
        .header("authorization", "Basic abc")
        .body(axum::body::Body::empty())
        .unwrap();
    app.send(req).await.expect(StatusCode::UNAUTHORIZED);
    app.get("/api/v1/users/me", As::ApiKey("kw_not_a_key"))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.get("/api/v1/users/me", As::ApiKey(&key))
        .await
        .expect(StatusCode::OK);
    app.advance(time::Duration::hours(1));
    let r = app
        .get("/api/v1/users/me", As::ApiKey(&key))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "credential_expired");
    let (id2, key2) = app.key_with(&member, &["keyward:read"]).await;
    app.delete(&format!("/api/v1/api-keys/{id2}"), As::Bearer(&member))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get("/api/v1/users/me", As::ApiKey(&key2))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let _ = id;
}

#[tokio::test]
async fn failed_logins_are_throttled_per_email_and_per_address() {
    let settings = Settings {
        login_failures_per_email: Limit {
            max: 3,
            window: time::Duration::minutes(15),
        },
        login_failures_per_address: Limit {
            max: 5,
            window: time::Duration::minutes(15),
        },
        ..Settings::default()
    };
    let app = app_with(settings).await;
    app.user("ann@example.com", Role::Member, None).await;
    let attempt = |email: &'static str, password: &'static str| {
        let app = &app;
        async move {
            app.post(
                "/api/v1/auth/login",
                As::Nobody,
                json!({"email": email, "password": password}),
            )
            .await
        }
    };
    for _ in 0..3 {
        attempt("ann@example.com", "wrong password!")
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }
    let r = attempt("ann@example.com", PASSWORD)
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.error_code(), "too_many_requests");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 300, "{retry}");
    // The per-address limit trips for other emails from the same address.
    attempt("x@example.com", "wrong password!")
        .await
        .expect(StatusCode::UNAUTHORIZED);
    attempt("y@example.com", "wrong password!")
        .await
        .expect(StatusCode::UNAUTHORIZED);
    attempt("z@example.com", "wrong password!")
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    app.advance(time::Duration::minutes(15));
    attempt("ann@example.com", PASSWORD)
        .await
        .expect(StatusCode::OK);
}
