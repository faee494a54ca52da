//! Richer decisions at verify: IP allowlists (verify's `ip`, forward auth's trusted client
//! address header) and permission expressions, on every surface that verifies.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::support::{app, app_served, As, Resp, TestApp};

/// Verifies `body` with `verifier`, expecting 200, and returns the verdict's code.
async fn code(app: &TestApp, verifier: &str, body: Value) -> String {
    let r = app
        .post("/api/v1/keys/verify", As::ApiKey(verifier), body.clone())
        .await
        .expect(StatusCode::OK);
    r.body["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}: {:?}", r.body))
        .to_owned()
}

/// A forwarded request with the client's key, `query`, and extra header fields.
async fn forward(
    app: &TestApp,
    verifier: &str,
    key: &str,
    query: &str,
    fields: &[(&str, &str)],
) -> Resp {
    let mut req = Request::builder()
        .uri(format!("/api/v1/auth/forward{query}"))
        .header("x-keyward-verifier", verifier)
        .header("x-api-key", key);
    for (name, value) in fields {
        req = req.header(*name, *value);
    }
    app.send(req.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn an_allowlist_admits_its_networks_to_their_boundaries_and_nothing_else() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let (id, key) = app
        .key_from(
            &member,
            json!({"allowed_ips": ["203.0.113.0/24", "2001:db8::/126", "198.51.100.7"]}),
        )
        .await;
    let shown = app
        .get(&format!("/api/v1/api-keys/{id}"), As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        shown.body["allowed_ips"],
        json!(["203.0.113.0/24", "2001:db8::/126", "198.51.100.7/32"])
    );

    for inside in [
        "203.0.113.0",
        "203.0.113.255",
        "2001:db8::",
        "2001:db8::3",
        "198.51.100.7",
        "::ffff:203.0.113.1",
    ] {
        assert_eq!(
            code(&app, &verifier, json!({"key": key, "ip": inside})).await,
            "VALID",
            "{inside}"
        );
    }
    for outside in [
        "203.0.112.255",
        "203.0.114.0",
        "2001:db8::4",
        "198.51.100.8",
        "127.0.0.1",
        "::1",
    ] {
        assert_eq!(
            code(&app, &verifier, json!({"key": key, "ip": outside})).await,
            "IP_NOT_ALLOWED",
            "{outside}"
        );
    }
    assert_eq!(
        code(&app, &verifier, json!({"key": key})).await,
        "IP_NOT_ALLOWED",
        "no address, no entry"
    );
    // A key without an allowlist takes any address, or none.
    let (_, open) = app.key_with(&member, &[]).await;
    assert_eq!(code(&app, &verifier, json!({"key": open})).await, "VALID");
    assert_eq!(
        code(&app, &verifier, json!({"key": open, "ip": "192.0.2.1"})).await,
        "VALID"
    );

    for bad in [
        "203.0.113.256",
        "example.com",
        "",
        "203.0.113.0/24",
        " 203.0.113.1",
        "203.0.113.1\n",
        "010.0.0.1",
    ] {
        let r = app
            .post(
                "/api/v1/keys/verify",
                As::ApiKey(&verifier),
                json!({"key": key, "ip": bad}),
            )
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("ip:"),
            "{bad}: {:?}",
            r.body
        );
    }
    for bad in [
        json!(["10.0.0.1/8"]),
        json!(["10.0.0.0/33"]),
        json!(["nope"]),
        json!(["10.0.0.0/8", "10.0.0.0/8"]),
        json!(["010.0.0.0/8"]),
        json!(["10.0.0.0/08"]),
        json!(["::ffff:10.0.0.0/104"]),
        json!(vec!["10.0.0.0/8"; 101]),
    ] {
        let r = app
            .post(
                "/api/v1/api-keys",
                As::Bearer(&member),
                json!({"allowed_ips": bad}),
            )
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("allowed_ips:"),
            "{bad}: {:?}",
            r.body
        );
        let r = app
            .patch(
                &format!("/api/v1/api-keys/{id}"),
                As::Bearer(&member),
                json!({"allowed_ips": bad}),
            )
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("allowed_ips:"),
            "{bad}: {:?}",
            r.body
        );
    }
    assert!(
        app.post(
            "/api/v1/api-keys",
            As::Bearer(&member),
            json!({"allowed_ips": ["10.0.0.1/8"]})
        )
        .await
        .body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("10.0.0.0/8"),
        "the message names the network meant"
    );

    // Narrowed, then lifted: the very next verification sees each change.
    app.patch(
        &format!("/api/v1/api-keys/{id}"),
        As::Bearer(&member),
        json!({"allowed_ips": ["2001:db8::2/128"]}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        code(&app, &verifier, json!({"key": key, "ip": "203.0.113.1"})).await,
        "IP_NOT_ALLOWED"
    );
    assert_eq!(
        code(&app, &verifier, json!({"key": key, "ip": "2001:db8::2"})).await,
        "VALID"
    );
    let lifted = app
        .patch(
            &format!("/api/v1/api-keys/{id}"),
            As::Bearer(&member),
            json!({"allowed_ips": null}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(lifted.body["allowed_ips"], json!([]));
    assert_eq!(code(&app, &verifier, json!({"key": key})).await, "VALID");
    let audit = app
        .get(
            &format!("/api/v1/audit-logs?resource_id={id}"),
            As::Bearer(&app.admin().await),
        )
        .await
        .expect(StatusCode::OK);
    assert!(
        audit.body.to_string().contains("2001:db8::2/128"),
        "the change is audited: {}",
        audit.body
    );
}

#[tokio::test]
async fn forward_auth_takes_the_client_address_only_from_the_header_the_operator_names() {
    let trusting = app_served(keyward_server::Settings {
        forward_client_ip_header: Some(axum::http::HeaderName::from_static("x-real-ip")),
        ..keyward_server::Settings::default()
    })
    .await;
    for app in [&trusting, &app().await] {
        let t = app.tenant("acme").await;
        let member = app.member_of(t).await;
        let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
        let (_, key) = app
            .key_from(
                &member,
                json!({"allowed_ips": ["2001:db8::/32", "192.0.2.0/24"]}),
            )
            .await;
        let trusted = std::ptr::eq(app, &trusting);
        let inside = forward(app, &verifier, &key, "", &[("x-real-ip", "192.0.2.10")]).await;
        let expected = if trusted {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(inside.status, expected, "trusting the header: {trusted}");
        forward(app, &verifier, &key, "", &[("x-real-ip", "2001:db8:1::1")])
            .await
            .expect(expected);
        let outside = forward(app, &verifier, &key, "", &[("x-real-ip", "192.0.3.1")])
            .await
            .expect(StatusCode::FORBIDDEN);
        assert!(
            outside.body.to_string().contains("address"),
            "{:?}",
            outside.body
        );
        forward(app, &verifier, &key, "", &[])
            .await
            .expect(StatusCode::FORBIDDEN);
        // A client's own X-Forwarded-For is never taken for the address.
        forward(
            app,
            &verifier,
            &key,
            "",
            &[("x-forwarded-for", "192.0.2.10")],
        )
        .await
        .expect(StatusCode::FORBIDDEN);
        let malformed = forward(app, &verifier, &key, "", &[("x-real-ip", "192.0.2.x")]).await;
        let expected = if trusted {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(malformed.status, expected, "{:?}", malformed.body);
        // X-Real-IP holds one address, sent once: a list, or two of it, is refused.
        for fields in [
            vec![("x-real-ip", "10.9.9.9, 192.0.2.10")],
            vec![("x-real-ip", "192.0.2.10"), ("x-real-ip", "192.0.2.11")],
        ] {
            let r = forward(app, &verifier, &key, "", &fields).await;
            assert_eq!(r.status, expected, "{fields:?}: {:?}", r.body);
        }
    }
    // A list in the named header: its last entry is the one the trusted proxy added.
    let xff = app_served(keyward_server::Settings {
        forward_client_ip_header: Some(axum::http::HeaderName::from_static("x-forwarded-for")),
        ..keyward_server::Settings::default()
    })
    .await;
    let t = xff.tenant("acme").await;
    let member = xff.member_of(t).await;
    let (_, verifier) = xff.key_with(&member, &["keyward:verify"]).await;
    let (_, key) = xff
        .key_from(&member, json!({"allowed_ips": ["192.0.2.0/24"]}))
        .await;
    forward(
        &xff,
        &verifier,
        &key,
        "",
        &[("x-forwarded-for", "10.9.9.9, 192.0.2.10")],
    )
    .await
    .expect(StatusCode::OK);
    forward(
        &xff,
        &verifier,
        &key,
        "",
        &[("x-forwarded-for", "192.0.2.10, 10.9.9.9")],
    )
    .await
    .expect(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn permission_expressions_combine_scopes_with_and_or_and_parentheses() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let (_, reader) = app.key_with(&member, &["orders:read"]).await;
    let (_, admin) = app.key_with(&member, &["orders:read", "admin"]).await;
    let (_, writer) = app.key_with(&member, &["orders:write"]).await;
    let expr = "orders:read AND (orders:write OR admin)";
    let cases = [
        (&reader, expr, "INSUFFICIENT_SCOPES"),
        (&admin, expr, "VALID"),
        (&writer, expr, "INSUFFICIENT_SCOPES"),
        (&reader, "orders:read OR orders:write", "VALID"),
        (&writer, "orders:read OR orders:write", "VALID"),
        (
            &reader,
            "orders:read and orders:write",
            "INSUFFICIENT_SCOPES",
        ),
        (&admin, "orders:read AND admin", "VALID"),
        // AND binds tighter than OR.
        (&writer, "orders:write OR orders:read AND admin", "VALID"),
        (
            &reader,
            "(orders:write OR orders:read) AND admin",
            "INSUFFICIENT_SCOPES",
        ),
        (&reader, "orders:read", "VALID"),
    ];
    for (key, expr, expected) in cases {
        assert_eq!(
            code(&app, &verifier, json!({"key": key, "scopes": expr})).await,
            expected,
            "{expr}"
        );
        let status = if expected == "VALID" {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        let query = format!("?scopes={}", urlencode(expr));
        assert_eq!(
            forward(&app, &verifier, key, &query, &[]).await.status,
            status,
            "forward auth: {expr}"
        );
    }
    // The plain list still means "all of these".
    assert_eq!(
        code(
            &app,
            &verifier,
            json!({"key": admin, "scopes": ["orders:read", "admin"]})
        )
        .await,
        "VALID"
    );
    assert_eq!(
        code(
            &app,
            &verifier,
            json!({"key": reader, "scopes": ["orders:read", "admin"]})
        )
        .await,
        "INSUFFICIENT_SCOPES"
    );

    let malformed = [
        ("", "position 1"),
        ("orders:read AND", "position 16"),
        ("orders:read OR OR admin", "position 16"),
        ("(orders:read OR admin", "position 22"),
        ("orders:read admin", "position 13"),
        ("orders:read)", "position 12"),
        ("orders:read AND bad!scope", "position 17"),
        ("()", "position 2"),
    ];
    for (expr, position) in malformed {
        let r = app
            .post(
                "/api/v1/keys/verify",
                As::ApiKey(&verifier),
                json!({"key": reader, "scopes": expr}),
            )
            .await
            .expect(StatusCode::BAD_REQUEST);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("scopes:") && message.contains(position),
            "{expr:?}: {message}"
        );
        if expr.contains([' ', '(', ')']) {
            let r = forward(
                &app,
                &verifier,
                &reader,
                &format!("?scopes={}", urlencode(expr)),
                &[],
            )
            .await
            .expect(StatusCode::BAD_REQUEST);
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(position),
                "forward auth: {expr:?}"
            );
        }
    }
    app.post(
        "/api/v1/keys/verify",
        As::ApiKey(&verifier),
        json!({"key": reader, "scopes": 7}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b':' | b'-' | b'_' | b'.' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A form-encoded `POST /api/apikey` (seed 003's surface).
async fn form_add(app: &TestApp, token: &str, body: &str) -> Resp {
    let req = Request::post("/api/apikey")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap();
    app.send(req).await
}

/// An Estuary `POST /user/api-keys` with its query.
async fn estuary_add(app: &TestApp, token: &str, query: &str) -> Resp {
    app.call(
        axum::http::Method::POST,
        &format!("/user/api-keys{query}"),
        As::Bearer(token),
        None,
    )
    .await
}

#[tokio::test]
async fn a_tenants_policy_binds_its_keys_on_every_surface() {
    let app = app().await;
    let admin = app.admin().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (old_id, _) = app
        .key_from(&member, json!({"scopes": ["orders:write"]}))
        .await;
    let tenant_path = format!("/api/v1/tenants/{t}");

    let policy = json!({"policy": {
        "max_key_lifetime": "90d", "require_expiry": true,
        "allowed_scopes": ["orders:read", "upload"],
        "default_rate_limit": {"max": 10, "window": "1 minute"},
    }});
    let r = app
        .patch(&tenant_path, As::Bearer(&admin), policy)
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["policy"]["max_key_lifetime"], "90d");
    assert_eq!(r.body["policy"]["require_expiry"], true);
    assert_eq!(
        r.body["policy"]["allowed_scopes"],
        json!(["orders:read", "upload"])
    );
    assert_eq!(
        r.body["policy"]["default_rate_limit"],
        json!({"max": 10, "window": "1 minute"})
    );
    let audit = app
        .get(
            &format!("/api/v1/audit-logs?resource_id={t}"),
            As::Bearer(&admin),
        )
        .await
        .expect(StatusCode::OK);
    assert!(
        audit.body.to_string().contains("max_key_lifetime"),
        "audited: {}",
        audit.body
    );

    // Native: no expiry, too long an expiry, a scope outside the list: 400 naming the rule.
    let refused = [
        (json!({}), "90d"),
        (json!({"expires_in": "91d"}), "90d"),
        (json!({"expires_at": "2099-01-01T00:00:00Z"}), "90d"),
        (
            json!({"expires_in": "30d", "scopes": ["orders:write"]}),
            "orders:write",
        ),
    ];
    for (body, says) in refused {
        let r = app
            .post("/api/v1/api-keys", As::Bearer(&member), body.clone())
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert_eq!(r.error_code(), "policy_violation", "{body}");
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(says),
            "{body}: {}",
            r.body
        );
    }
    let (id, _) = app
        .key_from(
            &member,
            json!({"expires_in": "90d", "scopes": ["orders:read"]}),
        )
        .await;
    let made = app
        .get(&format!("/api/v1/api-keys/{id}"), As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (
            made.body["rate_limit_max"].clone(),
            made.body["rate_limit_window"].clone()
        ),
        (json!(10), json!("1 minute")),
        "the default rate limit"
    );
    let (own_limit, _) = app
        .key_from(
            &member,
            json!({"expires_in": "1d", "rate_limit_max": 5, "rate_limit_window": "1 hour"}),
        )
        .await;
    let own = app
        .get(
            &format!("/api/v1/api-keys/{own_limit}"),
            As::Bearer(&member),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        own.body["rate_limit_max"], 5,
        "a key's own limit wins over the default"
    );
    // keyward's own scopes follow roles, not the list.
    app.key_from(
        &member,
        json!({"expires_in": "1d", "scopes": ["keyward:read"]}),
    )
    .await;

    // Extending, clearing, or widening a key's scopes is refused; other edits are not, even of
    // a key made before the policy.
    let key_path = format!("/api/v1/api-keys/{id}");
    for body in [
        json!({"expires_at": null}),
        json!({"expires_at": "2099-01-01T00:00:00Z"}),
        json!({"scopes": ["orders:read", "orders:write"]}),
    ] {
        let r = app
            .patch(&key_path, As::Bearer(&member), body.clone())
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert_eq!(r.error_code(), "policy_violation", "{body}");
    }
    app.patch(&key_path, As::Bearer(&member), json!({"name": "renamed"}))
        .await
        .expect(StatusCode::OK);
    app.patch(
        &format!("/api/v1/api-keys/{old_id}"),
        As::Bearer(&member),
        json!({"name": "older"}),
    )
    .await
    .expect(StatusCode::OK);
    // Its scopes sent back unchanged (orders:write, outside the list) change nothing: 200.
    app.patch(
        &format!("/api/v1/api-keys/{old_id}"),
        As::Bearer(&member),
        json!({"scopes": ["orders:write"]}),
    )
    .await
    .expect(StatusCode::OK);
    // And it can be rotated (it may have leaked): the successor keeps its scopes, and gets the
    // policy's longest lifetime.
    let successor = app
        .post(
            &format!("/api/v1/api-keys/{old_id}/rotate"),
            As::Bearer(&member),
            json!({}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(successor.body["scopes"], json!(["orders:write"]));
    assert_eq!(
        crate::support::rfc3339(&successor.body["expires_at"]),
        crate::support::start_time() + time::Duration::days(90)
    );

    // Rotation follows the policy as it is now: a lifetime cut to the new maximum.
    app.patch(
        &tenant_path,
        As::Bearer(&admin),
        json!({"policy": {"max_key_lifetime": "30d"}}),
    )
    .await
    .expect(StatusCode::OK);
    let rotated = app
        .post(
            &format!("{key_path}/rotate"),
            As::Bearer(&member),
            json!({}),
        )
        .await
        .expect(StatusCode::CREATED);
    let expires = crate::support::rfc3339(&rotated.body["expires_at"]);
    assert!(
        expires <= crate::support::start_time() + time::Duration::days(30),
        "cut to 30d: {expires}"
    );

    // Estuary: `expiry=false` and a default 30d under a 7d maximum are 400s in its own shape;
    // within the rules, keys are made.
    let r = estuary_add(&app, &member, "?expiry=false")
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["reason"], "ERR_INVALID_INPUT");
    assert!(
        r.body["error"]["details"].as_str().unwrap().contains("30d"),
        "{}",
        r.body
    );
    estuary_add(
        &app,
        &member,
        "?expiry=720h&perms=upload&label=estuary-upload",
    )
    .await
    .expect(StatusCode::OK);
    // Its application scope is the policy's too.
    let only_read = json!({"policy": {"allowed_scopes": ["orders:read"]}});
    app.patch(&tenant_path, As::Bearer(&admin), only_read)
        .await
        .expect(StatusCode::OK);
    let r = estuary_add(&app, &member, "?expiry=720h&perms=upload")
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(
        r.body["error"]["details"]
            .as_str()
            .unwrap()
            .contains("upload"),
        "{}",
        r.body
    );
    let both = json!({"policy": {"allowed_scopes": ["orders:read", "upload"]}});
    app.patch(&tenant_path, As::Bearer(&admin), both)
        .await
        .expect(StatusCode::OK);
    // The form surface: `Never` and `One Year` are 400s in its shape; `One Month` is made.
    for phrase in ["Never", "One%20Year"] {
        let r = form_add(&app, &member, &format!("label=x&expires={phrase}"))
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert_eq!(r.body["code"], "POLICY_VIOLATION", "{phrase}: {}", r.body);
        assert!(
            r.body["message"].as_str().unwrap().contains("30d"),
            "{}",
            r.body
        );
    }
    form_add(&app, &member, "label=form-week&expires=One%20Week")
        .await
        .expect(StatusCode::CREATED);
    // Keys made on either surface get the default rate limit.
    let listed = app
        .get("/api/v1/api-keys", As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    for name in ["estuary-upload", "form-week"] {
        let key = listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name);
        assert_eq!(
            key.map(|k| k["rate_limit_max"].clone()),
            Some(json!(10)),
            "{name}"
        );
    }

    // An expiry required, with no maximum: "never" is refused on each surface, a year is not.
    app.patch(
        &tenant_path,
        As::Bearer(&admin),
        json!({"policy": {"max_key_lifetime": null}}),
    )
    .await
    .expect(StatusCode::OK);
    let r = app
        .post("/api/v1/api-keys", As::Bearer(&member), json!({}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("requires every key to have an expiry"));
    estuary_add(&app, &member, "?expiry=false")
        .await
        .expect(StatusCode::BAD_REQUEST);
    let r = form_add(&app, &member, "label=x&expires=Never")
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.body["code"], "POLICY_VIOLATION");
    form_add(&app, &member, "label=y&expires=One%20Year")
        .await
        .expect(StatusCode::CREATED);
    app.post(
        "/api/v1/api-keys",
        As::Bearer(&member),
        json!({"expires_in": "3650d"}),
    )
    .await
    .expect(StatusCode::CREATED);

    // Lifted: anything goes again.
    app.patch(&tenant_path, As::Bearer(&admin), json!({"policy": {"require_expiry": false, "allowed_scopes": null, "default_rate_limit": null}})).await.expect(StatusCode::OK);
    let (free, _) = app
        .key_from(&member, json!({"scopes": ["orders:write"]}))
        .await;
    let free = app
        .get(&format!("/api/v1/api-keys/{free}"), As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert!(free.body["expires_at"].is_null() && free.body["rate_limit_max"].is_null());
}

#[tokio::test]
async fn malformed_policies_are_refused_with_the_field_named() {
    let app = app().await;
    let admin = app.admin().await;
    let t = app.tenant("acme").await;
    let cases = [
        (json!({"max_key_lifetime": "0d"}), "policy.max_key_lifetime"),
        (
            json!({"max_key_lifetime": "ninety days"}),
            "policy.max_key_lifetime",
        ),
        (
            json!({"max_key_lifetime": "40000d"}),
            "policy.max_key_lifetime",
        ),
        (
            json!({"allowed_scopes": ["keyward:read"]}),
            "policy.allowed_scopes",
        ),
        (json!({"allowed_scopes": ["a b"]}), "policy.allowed_scopes"),
        (
            json!({"allowed_scopes": ["a", "a"]}),
            "policy.allowed_scopes",
        ),
        (
            json!({"default_rate_limit": {"max": 0, "window": "1 minute"}}),
            "policy.default_rate_limit.max",
        ),
        (
            json!({"default_rate_limit": {"max": 5, "window": "1 fortnight"}}),
            "policy.default_rate_limit.window",
        ),
        (json!({"require_expiry": "yes"}), "expected a boolean"),
    ];
    for (policy, field) in cases {
        let r = app
            .patch(
                &format!("/api/v1/tenants/{t}"),
                As::Bearer(&admin),
                json!({"policy": policy}),
            )
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(field),
            "{policy}: {}",
            r.body
        );
    }
    let r = app
        .get(&format!("/api/v1/tenants/{t}"), As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert!(
        r.body["policy"]["max_key_lifetime"].is_null()
            && r.body["policy"]["allowed_scopes"].is_null(),
        "nothing half-written"
    );
}

#[tokio::test]
async fn an_owners_keys_share_one_quota_besides_their_own() {
    let app = app().await;
    let admin = app.admin().await;
    let t = app.tenant("acme").await;
    let other = app.tenant("other").await;
    let (member, member_id) = app.user_in(t, keyward_domain::Role::Member).await;
    let tenant_admin = app.tenant_admin_of(t).await;
    let strangers_admin = app.tenant_admin_of(other).await;
    let (_, verifier) = app.key_with(&tenant_admin, &["keyward:verify"]).await;
    let (_, first) = app.key_with(&member, &[]).await;
    let (_, second) = app.key_with(&member, &[]).await;
    let path = format!("/api/v1/users/{member_id}/limits");

    let none = app
        .get(&path, As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert!(none.body["rate_limit_max"].is_null() && none.body["remaining"].is_null());
    let set = app
        .call(
            axum::http::Method::PUT,
            &path,
            As::Bearer(&tenant_admin),
            Some(json!({"rate_limit_max": 3, "rate_limit_window": "1 minute", "remaining": 5})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (
            set.body["rate_limit_max"].clone(),
            set.body["remaining"].clone()
        ),
        (json!(3), json!(5))
    );
    // In the user's export, with its keys.
    let export = app
        .get("/api/v1/export", As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        export.body["limits"]["rate_limit_max"], 3,
        "{}",
        export.body
    );
    assert_eq!(export.body["limits"]["remaining"], 5);
    assert!(export.body["api_keys"][0]["allowed_ips"].is_array());
    // Who may read and set them.
    app.get(&path, As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    app.get(&path, As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    app.get(&path, As::Bearer(&strangers_admin))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.call(
        axum::http::Method::PUT,
        &path,
        As::Bearer(&member),
        Some(json!({})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    app.call(
        axum::http::Method::PUT,
        &path,
        As::Bearer(&strangers_admin),
        Some(json!({})),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    // A tenant admin sets its members' limits, not its own; everyone reads their own.
    let (ta_limits, _) = (
        format!(
            "/api/v1/users/{}/limits",
            app.get("/api/v1/users/me", As::Bearer(&tenant_admin))
                .await
                .body["id"]
                .as_str()
                .unwrap()
        ),
        (),
    );
    app.call(
        axum::http::Method::PUT,
        &ta_limits,
        As::Bearer(&tenant_admin),
        Some(json!({})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    let mine = app
        .get("/api/v1/users/me/limits", As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(mine.body["rate_limit_max"], 3);
    let (_, reader) = app.key_with(&tenant_admin, &["keyward:read"]).await;
    app.call(
        axum::http::Method::PUT,
        &path,
        As::ApiKey(&reader),
        Some(json!({})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    app.get(
        "/api/v1/users/00000000-0000-7000-8000-000000000000/limits",
        As::Bearer(&admin),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    app.get("/api/v1/users/nope/limits", As::Bearer(&admin))
        .await
        .expect(StatusCode::BAD_REQUEST);
    for bad in [
        json!({"rate_limit_max": 3}),
        json!({"remaining": -1}),
        json!({"refill": {"interval": "daily", "amount": 0}}),
        json!({"rate_limit_max": 3, "rate_limit_window": "1 fortnight"}),
        json!({"extra": 1}),
    ] {
        app.call(
            axum::http::Method::PUT,
            &path,
            As::Bearer(&admin),
            Some(bad.clone()),
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    }
    let audit = app
        .get(
            &format!("/api/v1/audit-logs?action=user.set_limits&resource_id={member_id}"),
            As::Bearer(&admin),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        audit.body.as_array().map(Vec::len),
        Some(1),
        "{}",
        audit.body
    );

    // Three per minute for both keys together: the second key does not double it.
    let verify = |key: &str| {
        app.post(
            "/api/v1/keys/verify",
            As::ApiKey(&verifier),
            json!({"key": key}),
        )
    };
    for key in [&first, &second, &first] {
        let r = verify(key).await.expect(StatusCode::OK);
        assert_eq!(r.body["code"], "VALID", "{}", r.body);
        assert!(r.body["owner_ratelimit"]["limit"] == 3);
    }
    let refused = verify(&second).await.expect(StatusCode::OK);
    assert_eq!(
        (
            refused.body["code"].clone(),
            refused.body["limited_by"].clone()
        ),
        (json!("RATE_LIMITED"), json!("owner")),
        "{}",
        refused.body
    );
    assert_eq!(refused.body["owner_ratelimit"]["remaining"], 0);
    let r = forward(&app, &verifier, &first, "", &[])
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert!(r
        .header("retry-after")
        .is_some_and(|s| s.parse::<u64>().unwrap() >= 1));

    // Five credits shared: three were spent above, two are left for either key.
    app.advance(time::Duration::minutes(1));
    assert_eq!(verify(&second).await.body["owner_remaining"], 1);
    assert_eq!(verify(&first).await.body["owner_remaining"], 0);
    // (A refused request still spends its rate-limit cell, so the window moves on first.)
    app.advance(time::Duration::minutes(1));
    let spent = verify(&second).await.expect(StatusCode::OK);
    assert_eq!(
        (spent.body["code"].clone(), spent.body["limited_by"].clone()),
        (json!("USAGE_EXCEEDED"), json!("owner")),
        "{}",
        spent.body
    );
    let f = forward(&app, &verifier, &first, "", &[])
        .await
        .expect(StatusCode::FORBIDDEN);
    assert!(
        f.body.to_string().contains("owner has no credits"),
        "{}",
        f.body
    );

    // A key's own limit still decides for itself, and says so.
    app.call(
        axum::http::Method::PUT,
        &path,
        As::Bearer(&admin),
        Some(json!({"rate_limit_max": 100, "rate_limit_window": "1 minute"})),
    )
    .await
    .expect(StatusCode::OK);
    let (_, own) = app
        .key_from(
            &member,
            json!({"rate_limit_max": 1, "rate_limit_window": "1 hour"}),
        )
        .await;
    assert_eq!(verify(&own).await.body["code"], "VALID");
    let r = verify(&own).await;
    assert_eq!(
        (r.body["code"].clone(), r.body["limited_by"].clone()),
        (json!("RATE_LIMITED"), json!("key")),
        "{}",
        r.body
    );

    // When the owner's limit refuses, the key's own limit did not count the request.
    app.call(
        axum::http::Method::PUT,
        &path,
        As::Bearer(&admin),
        Some(json!({"rate_limit_max": 1, "rate_limit_window": "1 hour"})),
    )
    .await
    .expect(StatusCode::OK);
    let (_, both) = app
        .key_from(
            &member,
            json!({"rate_limit_max": 10, "rate_limit_window": "1 minute"}),
        )
        .await;
    // (An hour on, the owner's new limit is whole.)
    app.advance(time::Duration::hours(1));
    let first_use = verify(&both).await;
    assert_eq!(
        first_use.body["ratelimit"]["remaining"], 9,
        "{}",
        first_use.body
    );
    for _ in 0..2 {
        let r = verify(&both).await;
        assert_eq!(r.body["limited_by"], "owner", "{}", r.body);
        assert_eq!(r.body["ratelimit"]["remaining"], 9, "uncounted: {}", r.body);
    }

    // Removed: the keys answer as before the limits.
    let removed = app
        .call(
            axum::http::Method::PUT,
            &path,
            As::Bearer(&admin),
            Some(json!({})),
        )
        .await
        .expect(StatusCode::OK);
    assert!(removed.body["rate_limit_max"].is_null() && removed.body["updated_at"].is_null());
    let r = verify(&first).await;
    assert_eq!(r.body["code"], "VALID");
    assert!(r.body.get("owner_ratelimit").is_none() && r.body.get("owner_remaining").is_none());
}

#[tokio::test]
async fn a_cluster_wide_limit_counts_fixed_windows_from_the_keys_creation() {
    let app = app().await;
    let admin = app.admin().await;
    let t = app.tenant("acme").await;
    let member = app.member_of(t).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let (id, key) = app
        .key_from(&member, json!({"rate_limit_max": 5, "rate_limit_window": "1 minute", "rate_limit_scope": "cluster"}))
        .await;
    let path = format!("/api/v1/api-keys/{id}");
    let shown = app
        .get(&path, As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown.body["rate_limit_scope"], "cluster");
    let created = crate::support::rfc3339(&shown.body["created_at"]);
    let verify = || {
        app.post(
            "/api/v1/keys/verify",
            As::ApiKey(&verifier),
            json!({"key": key}),
        )
    };
    for left in (0..5).rev() {
        let r = verify().await.expect(StatusCode::OK);
        assert_eq!(r.body["code"], "VALID");
        assert_eq!(r.body["ratelimit"]["remaining"], left, "{}", r.body);
    }
    let r = verify().await;
    assert_eq!(
        (r.body["code"].clone(), r.body["limited_by"].clone()),
        (json!("RATE_LIMITED"), json!("key"))
    );
    assert_eq!(
        crate::support::rfc3339(&r.body["ratelimit"]["reset"]),
        created + time::Duration::minutes(1),
        "the window's end"
    );
    let f = forward(&app, &verifier, &key, "", &[])
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(f.header("retry-after"), Some("60"));
    // Raised within the spent window: the node asks again, and the window has two more.
    app.patch(
        &path,
        As::Bearer(&member),
        json!({"rate_limit_max": 7, "rate_limit_window": "1 minute"}),
    )
    .await
    .expect(StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(verify().await.body["code"], "VALID", "a raised limit");
    }
    assert_eq!(verify().await.body["code"], "RATE_LIMITED");
    app.advance(time::Duration::minutes(1));
    assert_eq!(verify().await.body["code"], "VALID", "a new window");

    // The scope needs a limit, and is one of two words; it can be changed.
    for bad in [
        json!({"rate_limit_scope": "cluster"}),
        json!({"rate_limit_max": 5, "rate_limit_window": "1 minute", "rate_limit_scope": "planet"}),
    ] {
        let r = app
            .post("/api/v1/api-keys", As::Bearer(&member), bad.clone())
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("rate_limit_scope"),
            "{bad}: {}",
            r.body
        );
    }
    let node = app
        .patch(
            &path,
            As::Bearer(&member),
            json!({"rate_limit_scope": "node"}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(node.body["rate_limit_scope"], "node");
    let cleared = app
        .patch(
            &path,
            As::Bearer(&member),
            json!({"rate_limit_max": null, "rate_limit_window": null}),
        )
        .await
        .expect(StatusCode::OK);
    assert!(cleared.body["rate_limit_scope"].is_null());
    app.patch(
        &path,
        As::Bearer(&member),
        json!({"rate_limit_scope": "cluster"}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);

    // A tenant's default for new keys.
    let policy = app
        .patch(
            &format!("/api/v1/tenants/{t}"),
            As::Bearer(&admin),
            json!({"policy": {"rate_limit_scope": "cluster"}}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(policy.body["policy"]["rate_limit_scope"], "cluster");
    let (limited, _) = app
        .key_from(
            &member,
            json!({"rate_limit_max": 5, "rate_limit_window": "1 minute"}),
        )
        .await;
    let limited = app
        .get(&format!("/api/v1/api-keys/{limited}"), As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(limited.body["rate_limit_scope"], "cluster");
}
