//! The web console over HTTP, in process: its locks (session cookie, CSRF, headers, sign-in's
//! throttle and origin check), its sessions' ends (sign-out, idle, lifetime), the one answer that
//! holds a plaintext key, and each status its routes answer. The browser flows are in `browser`.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use keyward_domain::Role;
use uuid::Uuid;

use crate::support::{app, app_with, As, TestApp, PASSWORD};

/// A signed-in browser: its session cookie, and the CSRF token its pages carry.
struct Browser {
    cookie: String,
    csrf: String,
}

fn html(r: &crate::support::Resp) -> &str {
    r.body.as_str().unwrap_or_default()
}

fn form_request(method: Method, path: &str, cookie: Option<&str>, form: &str) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.body(Body::from(form.to_owned())).unwrap()
}

async fn page(app: &TestApp, path: &str, cookie: &str) -> crate::support::Resp {
    let req = Request::builder()
        .uri(path)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap();
    app.send(req).await
}

async fn post(app: &TestApp, path: &str, cookie: &str, form: &str) -> crate::support::Resp {
    app.send(form_request(Method::POST, path, Some(cookie), form))
        .await
}

fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

async fn sign_in(app: &TestApp, email: &str) -> Browser {
    let form = format!(
        "email={}&password={}",
        urlencode(email),
        urlencode(PASSWORD)
    );
    let r = app
        .send(form_request(Method::POST, "/sign-in", None, &form))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    assert_eq!(r.header("location"), Some("/keys"));
    let set = r.header("set-cookie").expect("a session cookie");
    let cookie = set.split(';').next().unwrap().to_owned();
    let keys = page(app, "/keys", &cookie).await.expect(StatusCode::OK);
    Browser {
        csrf: csrf_of(html(&keys)),
        cookie,
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Creates a key through the console's form; its id and plaintext.
async fn create_key(app: &TestApp, b: &Browser, fields: &str) -> (String, String) {
    let r = post(
        app,
        "/keys",
        &b.cookie,
        &format!("csrf={}&{fields}", b.csrf),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", html(&r));
    let page = html(&r);
    let start = page.find("<code id=\"plaintext\">").unwrap() + "<code id=\"plaintext\">".len();
    let plaintext = page[start..start + page[start..].find('<').unwrap()].to_owned();
    let link =
        page.find("id=\"key-link\" href=\"/keys/").unwrap() + "id=\"key-link\" href=\"/keys/".len();
    let id = page[link..link + 36].to_owned();
    assert_eq!(r.header("cache-control"), Some("no-store"));
    (id, plaintext)
}

#[tokio::test]
async fn every_page_is_locked_down() {
    let app = app().await;
    app.user("ann@example.com", Role::Member, None).await;
    let r = app.get("/sign-in", As::Nobody).await.expect(StatusCode::OK);
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(csp.contains("form-action 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // Signed out: every page sends the visitor to sign in.
    for path in [
        "/",
        "/keys",
        "/keys/new",
        "/stats",
        "/audit",
        "/users",
        "/sessions",
        "/tenants",
    ] {
        let r = app
            .get(path, As::Nobody)
            .await
            .expect(StatusCode::SEE_OTHER);
        assert_eq!(r.header("location"), Some("/sign-in"), "{path}");
    }
    // The cookie: HttpOnly, SameSite=Strict, Path=/, no Secure over plain HTTP.
    let form = format!("email=ann%40example.com&password={}", urlencode(PASSWORD));
    let r = app
        .send(form_request(Method::POST, "/sign-in", None, &form))
        .await;
    let set = r.header("set-cookie").unwrap();
    assert!(set.starts_with("keyward_session="), "{set}");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    let b = sign_in(&app, "ann@example.com").await;
    let r = page(&app, "/", &b.cookie)
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/keys"));
    // An unknown console page is a page, not JSON.
    let r = page(&app, "/keys/not-a-key", &b.cookie)
        .await
        .expect(StatusCode::NOT_FOUND);
    assert!(html(&r).contains("<h1>Not found</h1>"));
}

#[tokio::test]
async fn behind_https_the_cookie_is_secure_and_host_bound() {
    let app = crate::support::app_with_http(true).await;
    app.user("ann@example.com", Role::Member, None).await;
    let form = format!("email=ann%40example.com&password={}", urlencode(PASSWORD));
    let r = app
        .send(form_request(Method::POST, "/sign-in", None, &form))
        .await
        .expect(StatusCode::SEE_OTHER);
    let set = r.header("set-cookie").unwrap();
    assert!(set.starts_with("__Host-keyward_session="), "{set}");
    assert!(set.contains("Secure") && set.contains("Path=/"), "{set}");
    let cookie = set.split(';').next().unwrap();
    page(&app, "/keys", cookie).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn sign_in_refuses_wrong_passwords_foreign_origins_and_floods() {
    let app = app_with(keyward_core::Settings {
        login_failures_per_email: keyward_domain::ratelimit::Limit {
            max: 2,
            window: time::Duration::minutes(15),
        },
        ..keyward_core::Settings::default()
    })
    .await;
    app.user("ann@example.com", Role::Member, None).await;
    let wrong = "email=ann%40example.com&password=nope";
    let r = app
        .send(form_request(Method::POST, "/sign-in", None, wrong))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert!(html(&r).contains("Wrong email or password"));
    assert!(r.header("set-cookie").is_none());
    // Another site's form (login CSRF): refused before the password is looked at.
    let mut req = form_request(Method::POST, "/sign-in", None, wrong);
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    req.headers_mut()
        .insert("host", "keyward.example".parse().unwrap());
    let r = app.send(req).await.expect(StatusCode::FORBIDDEN);
    assert!(html(&r).contains("<h1>Forbidden</h1>"));
    let mut req = form_request(Method::POST, "/sign-in", None, wrong);
    req.headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    app.send(req).await.expect(StatusCode::FORBIDDEN);
    // This site's own form, as a browser sends it under `no-referrer`: `Origin: null`.
    let mut req = form_request(Method::POST, "/sign-in", None, wrong);
    req.headers_mut().insert("origin", "null".parse().unwrap());
    req.headers_mut()
        .insert("sec-fetch-site", "same-origin".parse().unwrap());
    app.send(req).await.expect(StatusCode::UNAUTHORIZED);
    let r = app
        .send(form_request(Method::POST, "/sign-in", None, wrong))
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
    // Every attempt is in the audit log, as the API's are.
    let admin = app.admin().await;
    let log = app
        .get(
            "/api/v1/audit-logs?action=auth.login_failed",
            As::Bearer(&admin),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(log.body.as_array().unwrap().len(), 2, "{}", log.body);
}

/// A disabled user's console session ends with its API sessions, and the users page says so.
#[tokio::test]
async fn a_disabled_users_console_session_ends_and_the_users_page_shows_it() {
    let app = app().await;
    let ann_id = app.user("ann@example.com", Role::Member, None).await;
    let ann = sign_in(&app, "ann@example.com").await;
    page(&app, "/keys", &ann.cookie)
        .await
        .expect(StatusCode::OK);
    let admin = app.admin().await;
    app.patch(
        &format!("/api/v1/users/{ann_id}"),
        As::Bearer(&admin),
        serde_json::json!({"disabled": true}),
    )
    .await
    .expect(StatusCode::OK);
    let r = page(&app, "/keys", &ann.cookie)
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/sign-in"));
    app.user("root@example.com", Role::Admin, None).await;
    let root = sign_in(&app, "root@example.com").await;
    let users = page(&app, "/users", &root.cookie)
        .await
        .expect(StatusCode::OK);
    assert!(
        html(&users).contains("<td>ann@example.com</td><td>member</td><td>disabled</td>"),
        "{}",
        html(&users)
    );
}

/// The users page disables, enables and deletes the users its viewer manages, through the
/// same operations as the API: a disabled user's key stops verifying, a deleted one's is
/// revoked, and the last admin stays (409 on the page).
#[tokio::test]
async fn the_users_page_disables_enables_and_deletes_users() {
    let app = app().await;
    let t = app.tenant("acme").await;
    let root_id = app.user("root@example.com", Role::Admin, None).await;
    let (ann_token, ann_id) = app.user_in(t, Role::Member).await;
    let (_, key) = app.key_with(&ann_token, &[]).await;
    let (_, verifier) = app
        .key_from(
            &app.login("root@example.com").await,
            serde_json::json!({"tenant_id": t, "scopes": ["keyward:verify"]}),
        )
        .await;
    let root = sign_in(&app, "root@example.com").await;
    let users = page(&app, "/users", &root.cookie)
        .await
        .expect(StatusCode::OK);
    assert!(html(&users).contains(&format!("action=\"/users/{ann_id}/status\"")));
    assert!(
        !html(&users).contains(&format!("action=\"/users/{root_id}/status\"")),
        "no button to disable oneself"
    );
    let status = |id: Uuid, disabled: &'static str| {
        let (app, root) = (&app, &root);
        async move {
            post(
                app,
                &format!("/users/{id}/status"),
                &root.cookie,
                &format!("csrf={}&disabled={disabled}", root.csrf),
            )
            .await
        }
    };
    let code = || async { app.verify(&verifier, &key).await.body["code"].clone() };

    let r = status(ann_id, "true").await.expect(StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/users"));
    assert_eq!(code().await, "OWNER_DISABLED");
    app.get("/api/v1/users/me", As::Bearer(&ann_token))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    status(ann_id, "false").await.expect(StatusCode::SEE_OTHER);
    assert_eq!(code().await, "VALID");
    status(ann_id, "maybe")
        .await
        .expect(StatusCode::BAD_REQUEST);
    status(Uuid::new_v4(), "true")
        .await
        .expect(StatusCode::NOT_FOUND);

    // The only other admins were made by the API and are disabled here first, so root is the
    // last: disabling itself is refused on the page, which says why.
    let admins = app
        .state
        .store
        .list_users(&keyward_store::UserQuery {
            role: Some(Role::Admin),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    for other in admins.iter().filter(|u| u.id != root_id) {
        status(other.id, "true").await.expect(StatusCode::SEE_OTHER);
    }
    let r = status(root_id, "true").await.expect(StatusCode::CONFLICT);
    assert!(html(&r).contains("last active admin"), "{}", html(&r));
    let r = post(
        &app,
        &format!("/users/{root_id}/delete"),
        &root.cookie,
        &format!("csrf={}&confirm=yes", root.csrf),
    )
    .await
    .expect(StatusCode::CONFLICT);
    assert!(html(&r).contains("last active admin"), "{}", html(&r));

    // Deleting asks for the box to be ticked, then revokes the user's keys.
    let delete = |form: String| {
        let (app, root) = (&app, &root);
        async move { post(app, &format!("/users/{ann_id}/delete"), &root.cookie, &form).await }
    };
    for unticked in ["", "&confirm=", "&confirm=no", "&confirm=false"] {
        delete(format!("csrf={}{unticked}", root.csrf))
            .await
            .expect(StatusCode::BAD_REQUEST);
    }
    assert_eq!(code().await, "VALID");
    delete(format!("csrf={}&confirm=yes", root.csrf))
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(code().await, "REVOKED");
    let users = page(&app, "/users", &root.cookie)
        .await
        .expect(StatusCode::OK);
    assert!(!html(&users).contains(&ann_id.to_string()));

    // A member's console has no say over others.
    let (_, bob_id) = app.user_in(t, Role::Member).await;
    app.user("carl@example.com", Role::Member, Some(t)).await;
    let carl = sign_in(&app, "carl@example.com").await;
    post(
        &app,
        &format!("/users/{bob_id}/status"),
        &carl.cookie,
        &format!("csrf={}&disabled=true", carl.csrf),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let app = app().await;
    app.user("ann@example.com", Role::Member, None).await;
    let b = sign_in(&app, "ann@example.com").await;
    for form in ["name=x", "csrf=&name=x", "csrf=forged&name=x"] {
        let r = post(&app, "/keys", &b.cookie, form)
            .await
            .expect(StatusCode::FORBIDDEN);
        assert!(html(&r).contains("<h1>Forbidden</h1>"), "{form}");
    }
    // Another session's token is not this one's.
    app.user("bob@example.com", Role::Member, None).await;
    let bob = sign_in(&app, "bob@example.com").await;
    post(
        &app,
        "/keys",
        &b.cookie,
        &format!("csrf={}&name=x", bob.csrf),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    let keys = page(&app, "/keys", &b.cookie).await;
    assert!(!html(&keys).contains("data-key-id"), "nothing was made");
}

#[tokio::test]
async fn a_plaintext_is_shown_once_and_a_key_lives_its_life_in_the_console() {
    let app = app().await;
    app.user("ann@example.com", Role::Member, None).await;
    let b = sign_in(&app, "ann@example.com").await;
    let (id, plaintext) = create_key(
        &app,
        &b,
        "name=%3Cscript%3Eci%3C%2Fscript%3E&scopes=orders%3Aread&expires=30d&rate_limit_max=5&rate_limit_window=1+minute",
    )
    .await;
    assert!(plaintext.starts_with("kw_"));
    // It verifies.
    let (_, verifier) = app
        .key_with(&app.login("ann@example.com").await, &["keyward:verify"])
        .await;
    let v = app.verify(&verifier, &plaintext).await;
    assert_eq!(v.body["code"], "VALID");
    // Its page and the listing never show the plaintext again; names are escaped.
    for path in [
        format!("/keys/{id}"),
        "/keys".into(),
        "/keys?q=script".into(),
    ] {
        let r = page(&app, &path, &b.cookie).await.expect(StatusCode::OK);
        assert!(!html(&r).contains(&plaintext), "{path}");
        assert!(!html(&r).contains("<script>ci"), "{path}: escaped");
        let escaped = ["&lt;script&gt;ci", "&#60;script&#62;ci"];
        assert!(escaped.iter().any(|e| html(&r).contains(e)), "{path}");
    }
    let listed = page(&app, "/keys?q=nothing-like-it", &b.cookie).await;
    assert!(!html(&listed).contains(&id), "search by name");
    // Paused and resumed: verify refuses it meanwhile, and the pages say so.
    post(
        &app,
        &format!("/keys/{id}"),
        &b.cookie,
        &format!("csrf={}&enabled=false", b.csrf),
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    assert_eq!(
        app.verify(&verifier, &plaintext).await.body["code"],
        "DISABLED"
    );
    for path in [format!("/keys/{id}"), "/keys".into()] {
        let r = page(&app, &path, &b.cookie).await.expect(StatusCode::OK);
        assert!(html(&r).contains("status-paused"), "{path}");
    }
    let r = page(&app, &format!("/keys/{id}"), &b.cookie).await;
    assert!(
        html(&r).contains("name=\"enabled\" value=\"true\""),
        "a resume button"
    );
    post(
        &app,
        &format!("/keys/{id}"),
        &b.cookie,
        &format!("csrf={}&enabled=maybe", b.csrf),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    post(
        &app,
        &format!("/keys/{id}"),
        &b.cookie,
        &format!("csrf={}&enabled=true", b.csrf),
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    assert_eq!(
        app.verify(&verifier, &plaintext).await.body["code"],
        "VALID"
    );
    let r = page(&app, &format!("/keys/{id}"), &b.cookie).await;
    assert!(html(&r).contains("status-active"));
    // Rename, rotate with grace, revoke (confirmed).
    post(
        &app,
        &format!("/keys/{id}"),
        &b.cookie,
        &format!("csrf={}&name=renamed", b.csrf),
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    let r = post(
        &app,
        &format!("/keys/{id}/rotate"),
        &b.cookie,
        &format!("csrf={}&grace_period=10m", b.csrf),
    )
    .await
    .expect(StatusCode::OK);
    assert!(html(&r).contains("id=\"plaintext\""));
    assert_eq!(
        app.verify(&verifier, &plaintext).await.body["code"],
        "VALID",
        "in its grace"
    );
    // A revocation needs its confirmation.
    let r = post(
        &app,
        &format!("/keys/{id}/revoke"),
        &b.cookie,
        &format!("csrf={}", b.csrf),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("confirm"));
    post(
        &app,
        &format!("/keys/{id}/revoke"),
        &b.cookie,
        &format!("csrf={}&confirm=yes", b.csrf),
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    assert_eq!(
        app.verify(&verifier, &plaintext).await.body["code"],
        "REVOKED"
    );
    let r = page(&app, &format!("/keys/{id}"), &b.cookie)
        .await
        .expect(StatusCode::OK);
    assert!(html(&r).contains("<dd id=\"status\" class=\"status-revoked\">revoked</dd>"));
    // Bad input is told on the form, in the surface's page.
    let r = post(
        &app,
        "/keys",
        &b.cookie,
        &format!("csrf={}&scopes=bad%24scope", b.csrf),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("role=\"alert\"") && html(&r).contains("scopes"));
    let r = post(
        &app,
        "/keys",
        &b.cookie,
        &format!("csrf={}&metadata=%5B1%5D", b.csrf),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("metadata"));
}

#[tokio::test]
async fn another_users_key_is_not_found() {
    let app = app().await;
    app.user("ann@example.com", Role::Member, None).await;
    app.user("bob@example.com", Role::Member, None).await;
    let ann = sign_in(&app, "ann@example.com").await;
    let bob = sign_in(&app, "bob@example.com").await;
    let (id, _) = create_key(&app, &ann, "name=mine").await;
    let r = page(&app, &format!("/keys/{id}"), &bob.cookie)
        .await
        .expect(StatusCode::NOT_FOUND);
    assert!(html(&r).contains("<h1>Not found</h1>"));
    post(
        &app,
        &format!("/keys/{id}/revoke"),
        &bob.cookie,
        &format!("csrf={}&confirm=yes", bob.csrf),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    // A member may not see the admins' pages.
    for path in ["/tenants", "/users"] {
        page(&app, path, &bob.cookie)
            .await
            .expect(StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn sessions_end_at_sign_out_when_idle_and_at_their_lifetime() {
    let app = app().await;
    app.user("ann@example.com", Role::Member, None).await;
    // Sign-out ends the session everywhere: the old cookie is refused.
    let b = sign_in(&app, "ann@example.com").await;
    let r = post(&app, "/sign-out", &b.cookie, &format!("csrf={}", b.csrf))
        .await
        .expect(StatusCode::SEE_OTHER);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = page(&app, "/keys", &b.cookie)
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/sign-in"));
    // Idle past 30 minutes.
    let b = sign_in(&app, "ann@example.com").await;
    app.advance(time::Duration::minutes(29));
    page(&app, "/keys", &b.cookie).await.expect(StatusCode::OK);
    app.advance(time::Duration::minutes(29));
    page(&app, "/keys", &b.cookie).await.expect(StatusCode::OK);
    app.advance(time::Duration::minutes(31));
    page(&app, "/keys", &b.cookie)
        .await
        .expect(StatusCode::SEE_OTHER);
    // Busy, but past 12 hours.
    let b = sign_in(&app, "ann@example.com").await;
    for _ in 0..25 {
        app.advance(time::Duration::minutes(29));
        let r = page(&app, "/keys", &b.cookie).await;
        if r.status == StatusCode::SEE_OTHER {
            break;
        }
    }
    page(&app, "/keys", &b.cookie)
        .await
        .expect(StatusCode::SEE_OTHER);
    // Sign-ins and sign-outs are audited.
    let admin = app.admin().await;
    for action in ["auth.login", "auth.logout"] {
        let log = app
            .get(
                &format!("/api/v1/audit-logs?action={action}"),
                As::Bearer(&admin),
            )
            .await
            .expect(StatusCode::OK);
        assert!(!log.body.as_array().unwrap().is_empty(), "{action}");
    }
}

/// The API's session list shows the user's console sessions beside its API ones, and ends them:
/// the cookie is refused on its next request.
#[tokio::test]
async fn console_sessions_are_listed_and_ended_through_the_api() {
    let app = app().await;
    app.user("ann@example.com", Role::Member, None).await;
    app.user("bob@example.com", Role::Member, None).await;
    let b = sign_in(&app, "ann@example.com").await;
    let bob = sign_in(&app, "bob@example.com").await;
    let token = app.login("ann@example.com").await;
    let listed = |r: &crate::support::Resp, kind: &str| -> Vec<serde_json::Value> {
        r.body
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["kind"] == kind)
            .cloned()
            .collect()
    };
    let r = app
        .get("/api/v1/users/me/sessions", As::Bearer(&token))
        .await
        .expect(StatusCode::OK);
    let (api, console) = (listed(&r, "api"), listed(&r, "console"));
    assert_eq!((api.len(), console.len()), (1, 1), "{}", r.body);
    assert_eq!(api[0]["current"], true);
    assert!(api[0].get("last_seen_at").is_none(), "{}", r.body);
    assert_eq!(console[0]["current"], false);
    assert!(console[0]["last_seen_at"].is_string(), "{}", r.body);
    let id = console[0]["id"].as_str().unwrap().to_owned();

    // The id is made from the cookie's token, as documented.
    assert_eq!(id, console_id(&b.cookie).to_string());
    // A credential that only reads cannot end it.
    let (_, read_only) = app.key_with(&token, &["keyward:read"]).await;
    app.delete(
        &format!("/api/v1/users/me/sessions/{id}"),
        As::ApiKey(&read_only),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    page(&app, "/keys", &b.cookie).await.expect(StatusCode::OK);

    // Another user's console session is not bob's to end, nor is ann's his.
    let bobs = app.login("bob@example.com").await;
    app.delete(
        &format!("/api/v1/users/me/sessions/{id}"),
        As::Bearer(&bobs),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    page(&app, "/keys", &b.cookie).await.expect(StatusCode::OK);

    app.delete(
        &format!("/api/v1/users/me/sessions/{id}"),
        As::Bearer(&token),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let r = page(&app, "/keys", &b.cookie)
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/sign-in"));
    page(&app, "/keys", &bob.cookie)
        .await
        .expect(StatusCode::OK);
    app.delete(
        &format!("/api/v1/users/me/sessions/{id}"),
        As::Bearer(&token),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    let admin = app.admin().await;
    let log = app
        .get("/api/v1/audit-logs?action=session.end", As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert!(
        log.body
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["changes"]["session_id"] == id.as_str() && e["changes"]["kind"] == "console"),
        "{}",
        log.body
    );

    // A console session past its idle timeout is gone: not listed, not ended.
    let idle = sign_in(&app, "ann@example.com").await;
    app.advance(time::Duration::minutes(31));
    let token = app.login("ann@example.com").await;
    let r = app
        .get("/api/v1/users/me/sessions", As::Bearer(&token))
        .await
        .expect(StatusCode::OK);
    assert!(listed(&r, "console").is_empty(), "{}", r.body);
    app.delete(
        &format!("/api/v1/users/me/sessions/{}", console_id(&idle.cookie)),
        As::Bearer(&token),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    page(&app, "/keys", &idle.cookie)
        .await
        .expect(StatusCode::SEE_OTHER);
}

/// The console's own sessions page lists the viewer's sessions of both kinds, marks this
/// browser's, and ends one (another browser's, or its own: signed out).
#[tokio::test]
async fn the_sessions_page_lists_and_ends_the_viewers_sessions() {
    let app = app().await;
    app.user("ann@example.com", Role::Member, None).await;
    app.user("bob@example.com", Role::Member, None).await;
    let here = sign_in(&app, "ann@example.com").await;
    let there = sign_in(&app, "ann@example.com").await;
    let bob = sign_in(&app, "bob@example.com").await;
    let token = app.login("ann@example.com").await;
    let r = page(&app, "/sessions", &here.cookie)
        .await
        .expect(StatusCode::OK);
    let body = html(&r);
    let (mine, theirs) = (console_id(&here.cookie), console_id(&there.cookie));
    for id in [mine, theirs] {
        assert!(body.contains(&format!("/sessions/{id}/end")), "{body}");
    }
    assert!(
        !body.contains(&console_id(&bob.cookie).to_string()),
        "{body}"
    );
    assert_eq!(body.matches("(this browser)").count(), 1, "{body}");
    assert_eq!(body.matches("<td>api").count(), 1, "{body}");

    // A form without its CSRF token, an id that is no session of ann's, a path that is no id.
    post(&app, &format!("/sessions/{theirs}/end"), &here.cookie, "")
        .await
        .expect(StatusCode::FORBIDDEN);
    let bobs = console_id(&bob.cookie);
    let csrf = format!("csrf={}", here.csrf);
    post(&app, &format!("/sessions/{bobs}/end"), &here.cookie, &csrf)
        .await
        .expect(StatusCode::NOT_FOUND);
    post(&app, "/sessions/nope/end", &here.cookie, &csrf)
        .await
        .expect(StatusCode::NOT_FOUND);
    page(&app, "/keys", &bob.cookie)
        .await
        .expect(StatusCode::OK);

    let r = post(
        &app,
        &format!("/sessions/{theirs}/end"),
        &here.cookie,
        &csrf,
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/sessions"));
    page(&app, "/keys", &there.cookie)
        .await
        .expect(StatusCode::SEE_OTHER);
    page(&app, "/keys", &here.cookie)
        .await
        .expect(StatusCode::OK);
    app.get("/api/v1/users/me", As::Bearer(&token))
        .await
        .expect(StatusCode::OK);

    // Its own row signs this browser out.
    let r = post(&app, &format!("/sessions/{mine}/end"), &here.cookie, &csrf)
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/sign-in"));
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    page(&app, "/keys", &here.cookie)
        .await
        .expect(StatusCode::SEE_OTHER);
    // Signed out, the page sends the visitor to sign in.
    let r = app
        .get("/sessions", As::Nobody)
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/sign-in"));
}

/// A console session's public id: a version 8 UUID of the first 16 bytes of the SHA-256 of
/// the cookie's token.
fn console_id(cookie: &str) -> Uuid {
    use sha2::Digest;
    let token = cookie.split_once('=').unwrap().1;
    let digest = sha2::Sha256::digest(token.as_bytes());
    Uuid::new_v8(digest[..16].try_into().unwrap())
}

#[tokio::test]
async fn an_admin_makes_a_tenant_and_a_member_who_can_sign_in() {
    let app = app().await;
    app.user("root@example.com", Role::Admin, None).await;
    let root = sign_in(&app, "root@example.com").await;
    post(
        &app,
        "/tenants",
        &root.cookie,
        &format!("csrf={}&name=Acme&slug=acme", root.csrf),
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    let r = post(
        &app,
        "/tenants",
        &root.cookie,
        &format!("csrf={}&name=Acme&slug=acme", root.csrf),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    assert!(
        html(&r).contains("role=\"alert\""),
        "a taken slug is told on the page"
    );
    let form = format!(
        "csrf={}&email=ann%40example.com&password={}&role=member&tenant=acme",
        root.csrf,
        urlencode(PASSWORD)
    );
    post(&app, "/users", &root.cookie, &form)
        .await
        .expect(StatusCode::SEE_OTHER);
    let users = page(&app, "/users", &root.cookie)
        .await
        .expect(StatusCode::OK);
    assert!(html(&users).contains("ann@example.com"));
    assert!(
        html(&users).contains("<td>member</td><td>active</td><td>acme</td>"),
        "the tenant by its slug: {}",
        html(&users)
    );
    let ann = sign_in(&app, "ann@example.com").await;
    for path in [
        "/keys",
        "/keys/new",
        "/keys/dormant?days=30",
        "/stats",
        "/audit",
    ] {
        page(&app, path, &ann.cookie).await.expect(StatusCode::OK);
    }
    page(&app, "/keys/dormant?days=0", &ann.cookie)
        .await
        .expect(StatusCode::BAD_REQUEST);
    page(&app, "/keys?status=lost", &ann.cookie)
        .await
        .expect(StatusCode::BAD_REQUEST);
    for path in ["/tenants", "/audit?since=2026-01-01", "/stats"] {
        page(&app, path, &root.cookie).await.expect(StatusCode::OK);
    }
}

#[tokio::test]
async fn a_keys_edit_form_changes_what_the_api_changes() {
    let app = app().await;
    app.user("ann@example.com", Role::Member, None).await;
    let b = sign_in(&app, "ann@example.com").await;
    let (id, _) = create_key(&app, &b, "name=ci&scopes=orders%3Aread").await;
    let edit = format!(
        "csrf={}&scopes=orders%3Aread+orders%3Awrite&expires=date&expires_on=2030-01-02&rate_limit_max=5&rate_limit_window=1+minute&remaining=7&metadata=%7B%22team%22%3A%22a%22%7D&allowed_ips=203.0.113.0%2F24+2001%3Adb8%3A%3A%2F32",
        b.csrf
    );
    post(&app, &format!("/keys/{id}"), &b.cookie, &edit)
        .await
        .expect(StatusCode::SEE_OTHER);
    let token = app.login("ann@example.com").await;
    let key = app
        .get(&format!("/api/v1/api-keys/{id}"), As::Bearer(&token))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        key["scopes"],
        serde_json::json!(["orders:read", "orders:write"])
    );
    assert_eq!(key["rate_limit_max"], 5);
    assert_eq!(key["remaining"], 7);
    assert_eq!(key["metadata"]["team"], "a");
    assert_eq!(
        key["allowed_ips"],
        serde_json::json!(["203.0.113.0/24", "2001:db8::/32"])
    );
    let shown = page(&app, &format!("/keys/{id}"), &b.cookie)
        .await
        .expect(StatusCode::OK);
    assert!(
        html(&shown).contains("203.0.113.0/24 2001:db8::/32"),
        "the page shows the allowlist"
    );
    assert!(
        html(&shown).contains("(on each node)"),
        "and where the rate limit holds"
    );
    let bad = format!("csrf={}&allowed_ips=10.0.0.1%2F8", b.csrf);
    post(&app, &format!("/keys/{id}"), &b.cookie, &bad)
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(key["expires_at"]
        .as_str()
        .unwrap()
        .starts_with("2030-01-02T00:00:00"));
    assert_eq!(key["name"], "ci", "a field the form leaves out is kept");
    // Empty fields clear; one half of a rate limit alone is refused.
    let clear = format!(
        "csrf={}&expires=never&rate_limit_max=&rate_limit_window=&remaining=&allowed_ips=",
        b.csrf
    );
    post(&app, &format!("/keys/{id}"), &b.cookie, &clear)
        .await
        .expect(StatusCode::SEE_OTHER);
    let key = app
        .get(&format!("/api/v1/api-keys/{id}"), As::Bearer(&token))
        .await
        .body;
    assert!(
        key["expires_at"].is_null() && key["rate_limit_max"].is_null(),
        "{key}"
    );
    assert!(key.get("remaining").is_none(), "{key}");
    assert_eq!(
        key["allowed_ips"],
        serde_json::json!([]),
        "an empty field lifts the allowlist"
    );
    let half = format!("csrf={}&rate_limit_max=5", b.csrf);
    post(&app, &format!("/keys/{id}"), &b.cookie, &half)
        .await
        .expect(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_admin_edits_and_deletes_a_tenant_revoking_its_keys_only_when_told() {
    let app = app().await;
    app.user("root@example.com", Role::Admin, None).await;
    let root = sign_in(&app, "root@example.com").await;
    let acme = app.tenant("acme").await;
    let member = app.member_of(acme).await;
    let (_, key) = app.key_with(&member, &["orders:read"]).await;
    let path = format!("/tenants/{acme}");
    let r = page(&app, &path, &root.cookie).await.expect(StatusCode::OK);
    assert!(html(&r).contains("1 active keys"));
    post(
        &app,
        &path,
        &root.cookie,
        &format!("csrf={}&name=Acme+Inc&slug=acme&key_prefix=", root.csrf),
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    let delete = format!("{path}/delete");
    post(&app, &delete, &root.cookie, &format!("csrf={}", root.csrf))
        .await
        .expect(StatusCode::BAD_REQUEST);
    let r = post(
        &app,
        &delete,
        &root.cookie,
        &format!("csrf={}&confirm=yes", root.csrf),
    )
    .await
    .expect(StatusCode::CONFLICT);
    assert!(html(&r).contains("role=\"alert\""));
    let admin = app.admin().await;
    let ops = app.tenant("ops").await;
    let (_, verifier) = app
        .key_from(
            &admin,
            serde_json::json!({"scopes": ["keyward:verify"], "tenant_id": ops}),
        )
        .await;
    assert_eq!(app.verify(&verifier, &key).await.body["code"], "VALID");
    post(
        &app,
        &delete,
        &root.cookie,
        &format!("csrf={}&confirm=yes&revoke_keys=yes", root.csrf),
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    assert_eq!(app.verify(&verifier, &key).await.body["code"], "REVOKED");
    page(&app, &path, &root.cookie)
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_consoles_refusals_before_a_page_are_pages_too() {
    let app = app().await;
    app.user("ann@example.com", Role::Member, None).await;
    let b = sign_in(&app, "ann@example.com").await;
    // A method a page does not take.
    let r = app
        .send(form_request(Method::PUT, "/keys", Some(&b.cookie), "x=1"))
        .await
        .expect(StatusCode::METHOD_NOT_ALLOWED);
    assert!(html(&r).contains("<h1>"), "a page: {}", html(&r));
    assert!(
        r.header("content-security-policy").is_some(),
        "with the console's headers, though refused before its routes"
    );
    // A body over the limit.
    let big = format!("csrf={}&metadata={}", b.csrf, "a".repeat(70 * 1024));
    let r = post(&app, "/keys", &b.cookie, &big)
        .await
        .expect(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(html(&r).contains("<h1>"), "a page: {}", html(&r));
}

#[tokio::test]
async fn a_person_exports_their_data_from_the_console() {
    let app = app().await;
    app.user("ann@example.com", Role::Member, None).await;
    let b = sign_in(&app, "ann@example.com").await;
    let (id, plaintext) = create_key(&app, &b, "name=ci").await;
    let r = page(&app, "/export", &b.cookie)
        .await
        .expect(StatusCode::OK);
    assert!(r
        .header("content-disposition")
        .is_some_and(|d| d.starts_with("attachment")));
    assert_eq!(r.body["user"]["email"], "ann@example.com");
    assert_eq!(r.body["api_keys"][0]["id"], id.as_str());
    assert!(!r.body.to_string().contains(&plaintext));
    let r = app
        .get("/export", As::Nobody)
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/sign-in"));
}

/// What an attack on the console found, each kept fixed.
#[tokio::test]
async fn bad_queries_and_paths_are_answered_with_pages() {
    let app = app().await;
    app.user("ann@example.com", Role::Member, None).await;
    let b = sign_in(&app, "ann@example.com").await;
    for path in [
        "/audit?until=9999-12-31",
        "/keys/dormant?days=abc",
        "/keys?q=%FF",
        "/keys?status=active&status=revoked",
        "/users?cursor=x&cursor=y",
    ] {
        let r = page(&app, path, &b.cookie)
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert!(
            html(&r).contains("<h1>"),
            "{path}: a page, got {}",
            html(&r)
        );
        assert!(r.header("content-security-policy").is_some(), "{path}");
    }
    for path in ["/keys/%FF", "/tenants/%FF", "/export/x"] {
        let r = page(&app, path, &b.cookie)
            .await
            .expect(StatusCode::NOT_FOUND);
        assert!(
            html(&r).contains("<h1>Not found</h1>"),
            "{path}: {}",
            html(&r)
        );
    }
}

#[tokio::test]
async fn behind_https_only_the_host_bound_cookie_counts() {
    let app = crate::support::app_with_http(true).await;
    app.user("ann@example.com", Role::Member, None).await;
    let form = format!("email=ann%40example.com&password={}", urlencode(PASSWORD));
    let r = app
        .send(form_request(Method::POST, "/sign-in", None, &form))
        .await;
    let set = r.header("set-cookie").unwrap();
    let token = set.split(';').next().unwrap().split_once('=').unwrap().1;
    // The same token under the unprefixed name (which a sibling host could plant) is no session.
    page(&app, "/keys", &format!("keyward_session={token}"))
        .await
        .expect(StatusCode::SEE_OTHER);
    // And a planted unprefixed cookie does not hide the real one.
    page(
        &app,
        "/keys",
        &format!("keyward_session=planted; __Host-keyward_session={token}"),
    )
    .await
    .expect(StatusCode::OK);
}

#[tokio::test]
async fn a_stale_edit_page_puts_back_nothing_that_changed_since() {
    let app = app().await;
    app.user("ann@example.com", Role::Member, None).await;
    let b = sign_in(&app, "ann@example.com").await;
    let (id, key) = create_key(&app, &b, "name=credits&remaining=10").await;
    // The edit form as loaded now: remaining 10.
    let loaded = page(&app, &format!("/keys/{id}"), &b.cookie).await;
    assert!(html(&loaded).contains("name=\"remaining_was\" value=\"10\""));
    let (_, verifier) = app
        .key_with(&app.login("ann@example.com").await, &["keyward:verify"])
        .await;
    for _ in 0..4 {
        app.verify(&verifier, &key).await;
    }
    // Sent back with only the metadata changed.
    let form = format!(
        "csrf={}&scopes=&scopes_was=&remaining=10&remaining_was=10&rate_limit_max=&rate_limit_max_was=&rate_limit_window=&rate_limit_window_was=&metadata=%7B%22team%22%3A%22x%22%7D&metadata_was=%7B%7D&expires=keep",
        b.csrf
    );
    post(&app, &format!("/keys/{id}"), &b.cookie, &form)
        .await
        .expect(StatusCode::SEE_OTHER);
    let token = app.login("ann@example.com").await;
    let got = app
        .get(&format!("/api/v1/api-keys/{id}"), As::Bearer(&token))
        .await
        .body;
    assert_eq!(
        got["remaining"], 6,
        "the credits spent meanwhile stay spent: {got}"
    );
    assert_eq!(got["metadata"]["team"], "x");
    assert_eq!(
        got["scopes"],
        serde_json::json!([]),
        "unchanged scopes kept"
    );
}

#[tokio::test]
async fn the_console_asks_an_admin_for_a_tenant_as_the_api_does() {
    let app = app().await;
    app.user("root@example.com", Role::Admin, None).await;
    let root = sign_in(&app, "root@example.com").await;
    let r = post(
        &app,
        "/keys",
        &root.cookie,
        &format!("csrf={}&name=x", root.csrf),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("tenant_id"), "{}", html(&r));
    app.tenant("acme").await;
    let form = page(&app, "/keys/new", &root.cookie).await;
    assert!(html(&form).contains("<option value=\"acme\""));
    create_key(&app, &root, "name=x&tenant=acme").await;
    post(
        &app,
        "/keys",
        &root.cookie,
        &format!("csrf={}&name=x&tenant=nosuch", root.csrf),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    // Nobody but an admin learns whether a slug exists: another tenant is 403 either way.
    let beta = app.tenant("beta").await;
    app.user("bob@example.com", Role::TenantAdmin, Some(beta))
        .await;
    let bob = sign_in(&app, "bob@example.com").await;
    for slug in ["acme", "nosuch"] {
        let form = format!(
            "csrf={}&email=new%40example.com&password={}&role=member&tenant={slug}",
            bob.csrf,
            urlencode(PASSWORD)
        );
        post(&app, "/users", &bob.cookie, &form)
            .await
            .expect(StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn signing_in_again_replaces_the_browsers_session() {
    let app = app().await;
    app.user("ann@example.com", Role::Member, None).await;
    let first = sign_in(&app, "ann@example.com").await;
    let form = format!("email=ann%40example.com&password={}", urlencode(PASSWORD));
    app.send(form_request(
        Method::POST,
        "/sign-in",
        Some(&first.cookie),
        &form,
    ))
    .await
    .expect(StatusCode::SEE_OTHER);
    page(&app, "/keys", &first.cookie)
        .await
        .expect(StatusCode::SEE_OTHER);
}
