//! User lifecycle: listing, reading, disabling, deleting users, passwords and sessions
//! (`/api/v1/users…`, `/api/v1/auth/logout`), and what each does to the user's keys and
//! sign-ins on every surface.

use axum::http::StatusCode;
use keyward_domain::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{app, As, TestApp, PASSWORD};

const NEW_PASSWORD: &str = "a new password, long enough";

fn emails(body: &Value) -> Vec<String> {
    body.as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect()
}

/// The email of the user signed in as `token`.
async fn email_of(app: &TestApp, token: &str) -> String {
    app.get("/api/v1/users/me", As::Bearer(token)).await.body["email"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// How many audit entries of `action` the log holds.
async fn audited(app: &TestApp, action: &str) -> usize {
    let r = app
        .get(
            &format!("/api/v1/audit-logs?action={action}"),
            As::Bearer(&app.admin().await),
        )
        .await
        .expect(StatusCode::OK);
    r.body.as_array().unwrap().len()
}

/// Disables every active admin but the one signed in as `keep`, so that `keep` is the last.
async fn leave_one_admin(app: &TestApp, keep: &str) -> String {
    let me = app.get("/api/v1/users/me", As::Bearer(keep)).await;
    let me = me.body["id"].as_str().unwrap().to_owned();
    let admins = app
        .get(
            "/api/v1/users?role=admin&status=active&limit=1000",
            As::Bearer(keep),
        )
        .await
        .expect(StatusCode::OK);
    for admin in admins.body.as_array().unwrap() {
        let id = admin["id"].as_str().unwrap();
        if id != me {
            app.patch(
                &format!("/api/v1/users/{id}"),
                As::Bearer(keep),
                json!({"disabled": true}),
            )
            .await
            .expect(StatusCode::OK);
        }
    }
    me
}

#[tokio::test]
async fn users_are_listed_by_role_status_and_email_in_pages_within_the_callers_reach() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    let admin = app.admin().await;
    for (email, role, tenant) in [
        ("ann@acme.test", Role::Member, acme),
        ("abe@acme.test", Role::Member, acme),
        ("boss@acme.test", Role::TenantAdmin, acme),
        ("gus@globex.test", Role::Member, globex),
    ] {
        app.user(email, role, Some(tenant)).await;
    }
    let abe = app
        .get("/api/v1/users?email_prefix=ABE", As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert_eq!(emails(&abe.body), ["abe@acme.test"]);
    let abe_id = abe.body[0]["id"].as_str().unwrap().to_owned();
    app.patch(
        &format!("/api/v1/users/{abe_id}"),
        As::Bearer(&admin),
        json!({"disabled": true}),
    )
    .await
    .expect(StatusCode::OK);

    let r = app
        .get(
            &format!("/api/v1/users?tenant_id={acme}&role=member&status=active"),
            As::Bearer(&admin),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(emails(&r.body), ["ann@acme.test"]);
    let r = app
        .get("/api/v1/users?status=disabled", As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert_eq!(emails(&r.body), ["abe@acme.test"]);
    assert_eq!(r.body[0]["disabled"], true);
    assert!(r.body[0]["disabled_at"].is_string());

    // Pages of one, in creation order, follow the cursor to the end.
    let mut seen = vec![];
    let mut path = format!("/api/v1/users?tenant_id={acme}&limit=1");
    loop {
        let r = app
            .get(&path, As::Bearer(&admin))
            .await
            .expect(StatusCode::OK);
        seen.extend(emails(&r.body));
        match r.header("x-next-cursor") {
            Some(cursor) => {
                path = format!("/api/v1/users?tenant_id={acme}&limit=1&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(seen, ["ann@acme.test", "abe@acme.test", "boss@acme.test"]);

    // A tenant admin lists its own tenant only; asking for another is an empty list.
    let boss = app.login("boss@acme.test").await;
    let r = app
        .get("/api/v1/users", As::Bearer(&boss))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        emails(&r.body),
        ["ann@acme.test", "abe@acme.test", "boss@acme.test"]
    );
    let r = app
        .get(
            &format!("/api/v1/users?tenant_id={globex}"),
            As::Bearer(&boss),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body, json!([]));

    let ann = app.login("ann@acme.test").await;
    app.get("/api/v1/users", As::Bearer(&ann))
        .await
        .expect(StatusCode::FORBIDDEN);
    app.get("/api/v1/users", As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    for bad in [
        "status=gone",
        "role=owner",
        "limit=0",
        "cursor=nonsense",
        "tenant_id=x",
    ] {
        let r = app
            .get(&format!("/api/v1/users?{bad}"), As::Bearer(&admin))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    let long = "a".repeat(255);
    app.get(
        &format!("/api/v1/users?email_prefix={long}"),
        As::Bearer(&admin),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_user_is_read_by_itself_its_tenant_admin_and_admins_and_is_404_to_anyone_else() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    let (ann, ann_id) = app.user_in(acme, Role::Member).await;
    let (boss, _) = app.user_in(acme, Role::TenantAdmin).await;
    let (gus, gus_id) = app.user_in(globex, Role::Member).await;
    let (other_boss, _) = app.user_in(globex, Role::TenantAdmin).await;
    let path = format!("/api/v1/users/{ann_id}");
    for who in [&ann, &boss, &app.admin().await] {
        let r = app.get(&path, As::Bearer(who)).await.expect(StatusCode::OK);
        assert_eq!(r.body["id"], ann_id.to_string());
        assert_eq!(r.body["disabled"], false);
    }
    for who in [&gus, &other_boss] {
        app.get(&path, As::Bearer(who))
            .await
            .expect(StatusCode::NOT_FOUND);
    }
    app.get(&format!("/api/v1/users/{gus_id}"), As::Bearer(&ann))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.get(
        &format!("/api/v1/users/{}", Uuid::new_v4()),
        As::Bearer(&ann),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    app.get("/api/v1/users/not-a-uuid", As::Bearer(&ann))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.get(&path, As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let (_, unscoped) = app.key_with(&ann, &["keyward:verify"]).await;
    app.get(&path, As::ApiKey(&unscoped))
        .await
        .expect(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_disabled_user_cannot_sign_in_and_its_keys_and_sessions_stop_until_it_is_enabled() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    let (ann, ann_id) = app.user_in(acme, Role::Member).await;
    let (_, key) = app.key_with(&ann, &["keyward:read"]).await;
    let boss = app.tenant_admin_of(acme).await;
    let (_, verifier) = app.key_with(&boss, &["keyward:verify"]).await;
    let path = format!("/api/v1/users/{ann_id}");
    let ann_email = email_of(&app, &ann).await;

    let r = app
        .patch(&path, As::Bearer(&boss), json!({"disabled": true}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["disabled"], true);

    // At once, on every surface: the key answers OWNER_DISABLED at verify and authenticates
    // nobody; the session is over; the password signs nobody in.
    assert_eq!(
        app.verify(&verifier, &key).await.body["code"],
        "OWNER_DISABLED"
    );
    app.get("/api/v1/api-keys", As::ApiKey(&key))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.get("/user/api-keys", As::Bearer(&key))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.get("/api/v1/auth/forward", As::ApiKey(&key))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.get("/api/v1/users/me", As::Bearer(&ann))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.post(
        "/api/v1/auth/login",
        As::Nobody,
        json!({"email": ann_email, "password": PASSWORD}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);

    // Enabled again: the key verifies and the password signs in; the old session stays over.
    let r = app
        .patch(&path, As::Bearer(&boss), json!({"disabled": false}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["disabled"], false);
    assert_eq!(app.verify(&verifier, &key).await.body["code"], "VALID");
    app.get("/api/v1/users/me", As::Bearer(&ann))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let again = app.login(&ann_email).await;
    app.get("/api/v1/users/me", As::Bearer(&again))
        .await
        .expect(StatusCode::OK);

    assert_eq!(audited(&app, "user.update").await, 2);
}

#[tokio::test]
async fn who_may_change_a_user_and_to_what() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    let (_, ann_id) = app.user_in(acme, Role::Member).await;
    let (boss, boss_id) = app.user_in(acme, Role::TenantAdmin).await;
    let (_, peer_id) = app.user_in(acme, Role::TenantAdmin).await;
    let (_, gus_id) = app.user_in(globex, Role::Member).await;
    let (member, _) = app.user_in(acme, Role::Member).await;
    let admin = app.admin().await;
    let ann = format!("/api/v1/users/{ann_id}");

    // A tenant admin promotes its member up to its own role, never above.
    let r = app
        .patch(&ann, As::Bearer(&boss), json!({"role": "tenant_admin"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["role"], "tenant_admin");
    app.patch(&ann, As::Bearer(&admin), json!({"role": "member"}))
        .await
        .expect(StatusCode::OK);
    app.patch(&ann, As::Bearer(&boss), json!({"role": "admin"}))
        .await
        .expect(StatusCode::FORBIDDEN);
    // Not its peers, not itself, not another tenant's users (404: unseen), not as a member.
    for id in [peer_id, boss_id] {
        app.patch(
            &format!("/api/v1/users/{id}"),
            As::Bearer(&boss),
            json!({"disabled": true}),
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    }
    app.patch(
        &format!("/api/v1/users/{gus_id}"),
        As::Bearer(&boss),
        json!({"disabled": true}),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    // A member sees only itself (another member is unseen: 404) and manages nobody.
    app.patch(&ann, As::Bearer(&member), json!({"disabled": true}))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.patch("/api/v1/users/me", As::Bearer(&member), json!({}))
        .await
        .expect(StatusCode::METHOD_NOT_ALLOWED);
    let me = app.get("/api/v1/users/me", As::Bearer(&member)).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.patch(
        &format!("/api/v1/users/{me}"),
        As::Bearer(&member),
        json!({"disabled": true}),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    let (_, read_write) = app
        .key_with(&boss, &["keyward:read", "keyward:write"])
        .await;
    app.patch(&ann, As::ApiKey(&read_write), json!({"disabled": true}))
        .await
        .expect(StatusCode::FORBIDDEN);
    app.patch(&ann, As::Nobody, json!({"disabled": true}))
        .await
        .expect(StatusCode::UNAUTHORIZED);

    // Bad input, each with the field named.
    for (body, field) in [
        (json!({"role": "owner"}), "role"),
        (json!({"disabled": "yes"}), "disabled"),
        (json!({"nickname": "x"}), "nickname"),
    ] {
        let r = app
            .patch(&ann, As::Bearer(&admin), body)
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert!(r.body.to_string().contains(field), "{}", r.body);
    }
    // A user with no tenant cannot be a tenant admin.
    let loner = app.user("loner@example.com", Role::Member, None).await;
    let r = app
        .patch(
            &format!("/api/v1/users/{loner}"),
            As::Bearer(&admin),
            json!({"role": "tenant_admin"}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(r.body.to_string().contains("role"), "{}", r.body);
    app.patch("/api/v1/users/nope", As::Bearer(&admin), json!({}))
        .await
        .expect(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_last_active_admin_can_be_neither_disabled_demoted_nor_deleted() {
    let app = app().await;
    let admin = app.admin().await;
    let me = leave_one_admin(&app, &admin).await;
    let path = format!("/api/v1/users/{me}");
    for body in [json!({"disabled": true}), json!({"role": "member"})] {
        let r = app
            .patch(&path, As::Bearer(&admin), body)
            .await
            .expect(StatusCode::CONFLICT);
        assert_eq!(r.error_code(), "last_admin");
    }
    let r = app
        .delete(&path, As::Bearer(&admin))
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(r.error_code(), "last_admin");
    // With a second admin, the first may step down.
    let second = app.user("second@example.com", Role::Admin, None).await;
    app.patch(&path, As::Bearer(&admin), json!({"role": "member"}))
        .await
        .expect(StatusCode::OK);
    let second_path = format!("/api/v1/users/{second}");
    let second_token = app.login("second@example.com").await;
    app.delete(&second_path, As::Bearer(&second_token))
        .await
        .expect(StatusCode::CONFLICT);
}

#[tokio::test]
async fn deleting_a_user_revokes_its_keys_at_once_and_keeps_its_history() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    let globex = app.tenant("globex").await;
    let (ann, ann_id) = app.user_in(acme, Role::Member).await;
    let (key_id, key) = app.key_with(&ann, &["keyward:read"]).await;
    let boss = app.tenant_admin_of(acme).await;
    let (_, verifier) = app.key_with(&boss, &["keyward:verify"]).await;
    let other_boss = app.tenant_admin_of(globex).await;
    let member = app.member_of(acme).await;
    let admin = app.admin().await;
    let path = format!("/api/v1/users/{ann_id}");
    let email = email_of(&app, &ann).await;

    app.delete(&path, As::Bearer(&other_boss))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.delete(&path, As::Bearer(&member))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.delete(&path, As::Bearer(&ann))
        .await
        .expect(StatusCode::FORBIDDEN);
    app.delete(&path, As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.delete("/api/v1/users/nope", As::Bearer(&boss))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.delete(&path, As::Bearer(&boss))
        .await
        .expect(StatusCode::NO_CONTENT);

    assert_eq!(app.verify(&verifier, &key).await.body["code"], "REVOKED");
    let r = app
        .get(&format!("/api/v1/api-keys/{key_id}"), As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert!(r.body["revoked_at"].is_string(), "{}", r.body);
    app.get(&path, As::Bearer(&admin))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.get("/api/v1/users/me", As::Bearer(&ann))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.delete(&path, As::Bearer(&admin))
        .await
        .expect(StatusCode::NOT_FOUND);
    let r = app
        .get("/api/v1/audit-logs?action=user.delete", As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body[0]["resource_id"], ann_id.to_string(), "{}", r.body);
    assert!(r.body.to_string().contains(&email), "{}", r.body);
    // The audit history of the deleted user stays readable.
    let r = app
        .get(
            &format!("/api/v1/audit-logs?resource_id={key_id}"),
            As::Bearer(&admin),
        )
        .await
        .expect(StatusCode::OK);
    assert!(!r.body.as_array().unwrap().is_empty(), "{}", r.body);
    // The email is free for a new user.
    app.post(
        "/api/v1/users",
        As::Bearer(&admin),
        json!({"email": email, "password": PASSWORD, "tenant_id": acme}),
    )
    .await
    .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn changing_a_password_ends_the_other_sessions_and_setting_one_ends_them_all() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    let (ann, ann_id) = app.user_in(acme, Role::Member).await;
    let email = email_of(&app, &ann).await;
    let elsewhere = app.login(&email).await;
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    let r = app
        .post(
            "/api/v1/users/me/password",
            As::Bearer(&ann),
            change("not my password at all", NEW_PASSWORD),
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    assert!(
        r.body.to_string().contains("current_password"),
        "{}",
        r.body
    );
    let r = app
        .post(
            "/api/v1/users/me/password",
            As::Bearer(&ann),
            change(PASSWORD, "short"),
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(r.body.to_string().contains("new_password"), "{}", r.body);
    app.post(
        "/api/v1/users/me/password",
        As::Nobody,
        change(PASSWORD, NEW_PASSWORD),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    let (_, read_only) = app.key_with(&ann, &["keyward:read"]).await;
    app.post(
        "/api/v1/users/me/password",
        As::ApiKey(&read_only),
        change(PASSWORD, NEW_PASSWORD),
    )
    .await
    .expect(StatusCode::FORBIDDEN);

    app.post(
        "/api/v1/users/me/password",
        As::Bearer(&ann),
        change(PASSWORD, NEW_PASSWORD),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    app.get("/api/v1/users/me", As::Bearer(&ann))
        .await
        .expect(StatusCode::OK);
    app.get("/api/v1/users/me", As::Bearer(&elsewhere))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let login = |password: &str| json!({"email": email, "password": password});
    app.post("/api/v1/auth/login", As::Nobody, login(PASSWORD))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.post("/api/v1/auth/login", As::Nobody, login(NEW_PASSWORD))
        .await
        .expect(StatusCode::OK);

    // Set by a tenant admin: every session of the user ends.
    let boss = app.tenant_admin_of(acme).await;
    let path = format!("/api/v1/users/{ann_id}/password");
    let set = json!({"new_password": PASSWORD});
    app.post(&path, As::Bearer(&app.member_of(acme).await), set.clone())
        .await
        .expect(StatusCode::NOT_FOUND);
    // Members change their own password with the current one, never by setting it.
    app.post(&path, As::Bearer(&ann), set.clone())
        .await
        .expect(StatusCode::FORBIDDEN);
    app.post(
        &path,
        As::Bearer(&app.tenant_admin_of(app.tenant("globex").await).await),
        set.clone(),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    app.post(&path, As::Bearer(&boss), json!({"new_password": "short"}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.post(&path, As::Nobody, set.clone())
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.post(
        "/api/v1/users/nope/password",
        As::Bearer(&boss),
        set.clone(),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    app.post(&path, As::Bearer(&boss), set)
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get("/api/v1/users/me", As::Bearer(&ann))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.login(&email).await;
}

/// Guessing the current password is throttled like signing in.
#[tokio::test]
async fn guessing_the_current_password_is_throttled() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    let (ann, _) = app.user_in(acme, Role::Member).await;
    let guess =
        json!({"current_password": "a wrong guess, long enough", "new_password": NEW_PASSWORD});
    let mut refused = 0;
    loop {
        let r = app
            .post("/api/v1/users/me/password", As::Bearer(&ann), guess.clone())
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.header("retry-after").is_some());
            break;
        }
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        refused += 1;
        assert!(refused < 50, "never throttled");
    }
    assert!(refused >= 3, "throttled after {refused} guesses only");
}

#[tokio::test]
async fn sessions_are_listed_ended_one_by_one_and_signed_out() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    let (first, _) = app.user_in(acme, Role::Member).await;
    let email = email_of(&app, &first).await;
    let second = app.login(&email).await;
    let r = app
        .get("/api/v1/users/me/sessions", As::Bearer(&first))
        .await
        .expect(StatusCode::OK);
    let sessions = r.body.as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{}", r.body);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Ending another's session, or one that is not there, is a 404.
    let stranger = app.member_of(acme).await;
    app.delete(
        &format!("/api/v1/users/me/sessions/{other}"),
        As::Bearer(&stranger),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    app.delete("/api/v1/users/me/sessions/nope", As::Bearer(&first))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.delete(&format!("/api/v1/users/me/sessions/{other}"), As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let (_, read_only) = app.key_with(&first, &["keyward:read"]).await;
    app.delete(
        &format!("/api/v1/users/me/sessions/{other}"),
        As::ApiKey(&read_only),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    app.delete(
        &format!("/api/v1/users/me/sessions/{other}"),
        As::Bearer(&first),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    app.get("/api/v1/users/me", As::Bearer(&second))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.delete(
        &format!("/api/v1/users/me/sessions/{other}"),
        As::Bearer(&first),
    )
    .await
    .expect(StatusCode::NOT_FOUND);

    // Signing out needs a session; a key is revoked instead.
    let (_, key) = app.key_with(&first, &["keyward:read"]).await;
    app.post("/api/v1/auth/logout", As::ApiKey(&key), json!({}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.get("/api/v1/users/me/sessions", As::Nobody)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let (_, verify_only) = app.key_with(&first, &["keyward:verify"]).await;
    app.get("/api/v1/users/me/sessions", As::ApiKey(&verify_only))
        .await
        .expect(StatusCode::FORBIDDEN);
    app.call(
        axum::http::Method::POST,
        "/api/v1/auth/logout",
        As::Bearer(&first),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    app.get("/api/v1/users/me", As::Bearer(&first))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.call(
        axum::http::Method::POST,
        "/api/v1/auth/logout",
        As::Bearer(&first),
        None,
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(audited(&app, "auth.logout").await, 1);
}

#[tokio::test]
async fn deleting_a_tenant_disables_and_signs_out_its_users() {
    let app = app().await;
    let acme = app.tenant("acme").await;
    let (ann, ann_id) = app.user_in(acme, Role::Member).await;
    let (_, key) = app.key_with(&ann, &["keyward:read"]).await;
    let admin = app.admin().await;
    app.delete(
        &format!("/api/v1/tenants/{acme}?force=true"),
        As::Bearer(&admin),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    app.get("/api/v1/users/me", As::Bearer(&ann))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.get("/api/v1/api-keys", As::ApiKey(&key))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let r = app
        .get(&format!("/api/v1/users/{ann_id}"), As::Bearer(&admin))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["disabled"], true);
    assert_eq!(r.body["tenant_id"], Value::Null);
    let email = r.body["email"].as_str().unwrap().to_owned();
    app.post(
        "/api/v1/auth/login",
        As::Nobody,
        json!({"email": email, "password": PASSWORD}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
}

/// A user keeps at most `MAX_SESSIONS` sessions: a sign-in beyond ends the oldest, whose
/// token is refused at once; the others stay.
#[tokio::test]
async fn a_sign_in_past_the_session_cap_ends_the_oldest_session() {
    use keyward_domain::clock::Clock;
    let app = app().await;
    let t = app.tenant("acme").await;
    let id = app.user("busy@example.com", Role::Member, Some(t)).await;
    let oldest = app.login("busy@example.com").await;
    let user = app.state.store.get_user(id).await.unwrap().unwrap();
    let now = app.clock.now();
    for n in 1..keyward_store::MAX_SESSIONS {
        let session = keyward_domain::ApiSession {
            id: Uuid::new_v4(),
            user_id: id,
            created_at: now + time::Duration::milliseconds(n),
            expires_at: now + time::Duration::hours(1),
            source_ip: None,
        };
        let ended = app
            .state
            .store
            .create_api_session(
                &session,
                &user.password_hash,
                &keyward_domain::Actor::system().entry(
                    now,
                    keyward_domain::AuditAction::AuthLogin,
                    id,
                ),
            )
            .await
            .unwrap();
        assert!(ended.is_empty());
    }
    let me = |token: String| {
        let app = &app;
        async move { app.get("/api/v1/users/me", As::Bearer(&token)).await.status }
    };
    assert_eq!(me(oldest.clone()).await, StatusCode::OK, "cached as live");

    app.advance(time::Duration::seconds(1));
    let newest = app.login("busy@example.com").await;
    assert_eq!(me(oldest).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(newest).await, StatusCode::OK);
    let listed = app
        .get(
            "/api/v1/users/me/sessions",
            As::Bearer(&app.login("busy@example.com").await),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        listed.body.as_array().map(Vec::len),
        Some(keyward_store::MAX_SESSIONS as usize),
        "{}",
        listed.body
    );
}
