//! keyward's operations through `keyward-core` alone, with no HTTP: tenants and users, the key
//! lifecycle, verify, authentication and the audit log, on an in-memory SQLite store and a
//! manual clock (time is a parameter: nothing here sleeps). The HTTP suite
//! (`crates/server/tests/api`) covers the wire; these tests pin what the operations decide, as
//! `keyward_core::Error` variants, which carry no status codes.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;

use keyward_core::auth::{self, Caller, RequestMeta};
use keyward_core::jwt::JwtKeys;
use keyward_core::keys::{self, IssuedKey, KeyExpiry, KeyPatch, KeyTenant, NewKey, Reach};
use keyward_core::password::Passwords;
use keyward_core::tenants::{self, TenantChanges};
use keyward_core::users::{self, NewUser, UserFilter};
use keyward_core::{audit, login, verify, webhooks, AuthFailure, Error, Keyward, Settings};
use keyward_domain::ratelimit::{KeyRateLimit, Limit};
use keyward_domain::{
    Actor, ActorType, AuditAction, AuditEntry, Credential, KeyDigest, KeyPrefix, KeyStatus,
    ManualClock, ParsedKey, Patch, PlainKey, Principal, Role, Tenant, User, VerifyCode,
};
use keyward_store::{AuditQuery, KeyQuery, Store};
use keyward_store_sqlite::SqliteStore;
use secrecy::ExposeSecret;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";
const SESSION_TTL: Duration = Duration::hours(1);

fn start_time() -> OffsetDateTime {
    time::macros::datetime!(2026-03-01 12:00 UTC)
}

/// A fresh keyward on an empty in-memory store, and the clock it reads "now" from.
async fn kw_with(settings: Settings) -> (Keyward, Arc<ManualClock>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
    let clock = Arc::new(ManualClock::new(start_time()));
    let kw = Keyward::new(
        store,
        clock.clone(),
        Some(JwtKeys::new(vec![7; 32], SESSION_TTL).unwrap()),
        Passwords::fast_insecure_for_tests().unwrap(),
        settings,
    );
    (kw, clock)
}

async fn kw() -> (Keyward, Arc<ManualClock>) {
    kw_with(Settings::default()).await
}

/// `user` signed in: a session carries all of its user's rights.
fn session_of(user: &User) -> Caller {
    Caller::new(
        Principal {
            user_id: user.id,
            role: user.role,
            tenant_id: user.tenant_id,
            credential: Credential::Session { id: None },
        },
        RequestMeta::default(),
    )
}

/// A user with a fresh email and [`PASSWORD`], made by the operator.
async fn user(kw: &Keyward, role: Role, tenant: Option<&Tenant>) -> User {
    users::create_as(
        kw,
        &Actor::system(),
        NewUser {
            email: format!("{}@example.com", Uuid::new_v4()),
            password: PASSWORD.into(),
            role,
            tenant_id: tenant.map(|t| t.id),
        },
    )
    .await
    .unwrap()
}

async fn admin(kw: &Keyward) -> Caller {
    session_of(&user(kw, Role::Admin, None).await)
}

async fn tenant_admin_of(kw: &Keyward, tenant: &Tenant) -> Caller {
    session_of(&user(kw, Role::TenantAdmin, Some(tenant)).await)
}

async fn member_of(kw: &Keyward, tenant: &Tenant) -> Caller {
    session_of(&user(kw, Role::Member, Some(tenant)).await)
}

/// A tenant named and slugged `slug`, made by the operator.
async fn new_tenant(kw: &Keyward, slug: &str) -> Tenant {
    tenants::create_as(kw, &Actor::system(), tenant_named(slug))
        .await
        .unwrap()
}

fn tenant_named(slug: &str) -> TenantChanges {
    TenantChanges {
        name: Some(slug.into()),
        slug: Some(slug.into()),
        ..TenantChanges::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn new_user(email: &str, role: Role, tenant_id: Option<Uuid>) -> NewUser {
    NewUser {
        email: email.into(),
        password: PASSWORD.into(),
        role,
        tenant_id,
    }
}

/// Verifies `key` requiring every one of `scopes`, spending `cost`, from no known address.
async fn verify_listing(
    kw: &Keyward,
    verifier: Option<&keyward_domain::Principal>,
    key: &str,
    scopes: &[String],
    cost: i64,
) -> keyward_core::Result<verify::Verdict> {
    let permission = keyward_domain::Permission::All(scopes.to_vec());
    let request = verify::VerifyRequest {
        cost,
        ..verify::VerifyRequest::new(key, &permission)
    };
    verify::verify(kw, verifier, &request).await
}

/// A key request with `scopes` and nothing else, in the caller's own tenant (none for an admin).
fn new_key(scopes: &[&str]) -> NewKey {
    NewKey {
        allowed_ips: Vec::new(),
        rate_limit_scope: None,
        tenant: KeyTenant::CallersOwn,
        name: None,
        scopes: strings(scopes),
        metadata: None,
        rate_limit_max: None,
        rate_limit_window: None,
        expiry: KeyExpiry::Never,
        remaining: None,
        refill: None,
    }
}

async fn key_with(kw: &Keyward, caller: &Caller, scopes: &[&str]) -> IssuedKey {
    keys::create(kw, caller, new_key(scopes)).await.unwrap()
}

/// The caller that presents `key`.
async fn as_key(kw: &Keyward, key: &IssuedKey) -> Caller {
    let principal = auth::authenticate(kw, key.plaintext.expose())
        .await
        .unwrap();
    Caller::new(principal, RequestMeta::default())
}

/// A verifier speaking for `caller`: a key of its with `keyward:verify`, through
/// `auth::verifier` as the verify surfaces call it.
async fn verifier_of(kw: &Keyward, caller: &Caller) -> Principal {
    let key = key_with(kw, caller, &["keyward:verify"]).await;
    auth::verifier(kw, Ok(key.plaintext.expose()), None)
        .await
        .unwrap()
        .map(|p| (*p).clone())
        .expect("verify is not public")
}

async fn verify_code(kw: &Keyward, verifier: &Principal, key: &str, scopes: &[&str]) -> VerifyCode {
    verify_listing(kw, Some(verifier), key, &strings(scopes), 1)
        .await
        .unwrap()
        .code
}

/// What verifying `key`, asking for no scope, answers.
async fn code_of(kw: &Keyward, verifier: &Principal, key: &IssuedKey) -> VerifyCode {
    verify_code(kw, verifier, key.plaintext.expose(), &[]).await
}

fn patch() -> KeyPatch {
    KeyPatch::default()
}

/// The ids of the keys `caller` lists within `reach`, narrowed to `tenant` when given.
async fn listed(
    kw: &Keyward,
    caller: &Caller,
    reach: Reach,
    tenant: Option<&Tenant>,
) -> BTreeSet<Uuid> {
    let mut query = KeyQuery::new(kw.now(), 100);
    query.of.tenant_id = tenant.map(|t| t.id);
    let page = keys::list(kw, caller, reach, query).await.unwrap();
    assert!(page.next.is_none());
    page.items.iter().map(|k| k.id).collect()
}

fn ids<'a>(keys: impl IntoIterator<Item = &'a IssuedKey>) -> BTreeSet<Uuid> {
    keys.into_iter().map(|k| k.key.id).collect()
}

/// The audit entries of `action` on the resource with `id`.
async fn audit_of(kw: &Keyward, action: AuditAction, id: impl ToString) -> Vec<AuditEntry> {
    kw.store
        .list_audit(&AuditQuery {
            action: Some(action.as_str().into()),
            resource_id: Some(id.to_string()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

/// The one audit entry of `action` on the resource with `id`.
async fn entry_of(kw: &Keyward, action: AuditAction, id: impl ToString) -> AuditEntry {
    let mut entries = audit_of(kw, action, id).await;
    assert_eq!(entries.len(), 1, "{}: {entries:?}", action.as_str());
    entries.remove(0)
}

async fn audit_count(kw: &Keyward) -> usize {
    let all = AuditQuery {
        limit: 10_000,
        ..AuditQuery::default()
    };
    kw.store.list_audit(&all).await.unwrap().len()
}

/// `result` is an `Error::Invalid` whose message names `field` first.
#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, Error>, field: &str) {
    match result {
        Err(Error::Invalid { code, message }) => {
            assert_eq!(code, "invalid_field");
            assert!(
                message.starts_with(&format!("{field}: ")),
                "expected the message to name {field}: {message}"
            );
        }
        other => panic!("expected Invalid naming {field}, got {other:?}"),
    }
}

#[track_caller]
fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, Error>) {
    assert!(matches!(result, Err(Error::Forbidden(_))), "{result:?}");
}

// ---- Tenants and users ----

#[tokio::test]
async fn admin_creates_tenants_and_users_in_any_tenant() {
    let (kw, _) = kw().await;
    let admin = admin(&kw).await;
    let acme = tenants::create(&kw, &admin, tenant_named("acme"))
        .await
        .unwrap();
    assert_eq!(tenants::get(&kw, &admin, acme.id).await.unwrap(), acme);
    let taken = tenants::create(
        &kw,
        &admin,
        TenantChanges {
            name: Some("Another Acme".into()),
            ..tenant_named("acme")
        },
    )
    .await;
    assert!(
        matches!(
            taken,
            Err(Error::Conflict {
                code: "slug_taken",
                ..
            })
        ),
        "{taken:?}"
    );

    for (email, role) in [
        ("boss@acme.test", Role::TenantAdmin),
        ("dev@acme.test", Role::Member),
    ] {
        let made = users::create(&kw, &admin, new_user(email, role, Some(acme.id)))
            .await
            .unwrap();
        assert_eq!((made.role, made.tenant_id), (role, Some(acme.id)));
    }
    let second_admin = users::create(&kw, &admin, new_user("root@x.test", Role::Admin, None))
        .await
        .unwrap();
    assert_eq!(
        (second_admin.role, second_admin.tenant_id),
        (Role::Admin, None)
    );

    assert_invalid(
        users::create(&kw, &admin, new_user("ta@x.test", Role::TenantAdmin, None)).await,
        "tenant_id",
    );
    let nowhere = users::create(
        &kw,
        &admin,
        new_user("lost@x.test", Role::Member, Some(Uuid::now_v7())),
    )
    .await;
    assert!(
        matches!(nowhere, Err(Error::NotFound("tenant"))),
        "{nowhere:?}"
    );

    // Tenants are the installation's business: a member neither makes nor reads them.
    let member = member_of(&kw, &acme).await;
    assert_forbidden(tenants::create(&kw, &member, tenant_named("mine")).await);
    assert_forbidden(tenants::list(&kw, &member, 10, None).await);
    assert_forbidden(tenants::get(&kw, &member, acme.id).await);
    assert_eq!(
        users::me(&kw, &member).await.unwrap().id,
        member.principal.user_id
    );
}

#[tokio::test]
async fn tenant_admin_creates_users_only_in_its_own_tenant() {
    let (kw, _) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let globex = new_tenant(&kw, "globex").await;
    let boss = tenant_admin_of(&kw, &acme).await;

    // Naming no tenant means its own.
    let dev = users::create(&kw, &boss, new_user("dev@acme.test", Role::Member, None))
        .await
        .unwrap();
    assert_eq!(dev.tenant_id, Some(acme.id));
    let deputy = users::create(
        &kw,
        &boss,
        new_user("deputy@acme.test", Role::TenantAdmin, Some(acme.id)),
    )
    .await
    .unwrap();
    assert_eq!(
        (deputy.role, deputy.tenant_id),
        (Role::TenantAdmin, Some(acme.id))
    );

    // Another tenant is Forbidden whether it exists or not, so the answer tells nothing.
    for elsewhere in [globex.id, Uuid::now_v7()] {
        assert_forbidden(
            users::create(
                &kw,
                &boss,
                new_user("spy@acme.test", Role::Member, Some(elsewhere)),
            )
            .await,
        );
    }
    // Never an admin, in its tenant or none.
    for tenant in [Some(acme.id), None] {
        assert_forbidden(
            users::create(&kw, &boss, new_user("root@acme.test", Role::Admin, tenant)).await,
        );
    }
    // A member makes nobody, not even in its own tenant.
    assert_forbidden(
        users::create(
            &kw,
            &session_of(&dev),
            new_user("friend@acme.test", Role::Member, Some(acme.id)),
        )
        .await,
    );

    let admin = admin(&kw).await;
    let in_globex = users::list(
        &kw,
        &admin,
        UserFilter {
            tenant_id: Some(globex.id),
            ..Default::default()
        },
        100,
        None,
    )
    .await
    .unwrap();
    assert!(
        in_globex.items.is_empty(),
        "refused calls made nobody: {:?}",
        in_globex.items
    );
}

#[tokio::test]
async fn users_are_listed_within_the_callers_role() {
    let (kw, _) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let globex = new_tenant(&kw, "globex").await;
    let admin = admin(&kw).await;
    let boss = tenant_admin_of(&kw, &acme).await;
    let dev = member_of(&kw, &acme).await;
    let outsider = member_of(&kw, &globex).await;
    let listed = |caller: Caller, tenant: Option<Uuid>| {
        let kw = &kw;
        async move {
            let page = users::list(
                kw,
                &caller,
                UserFilter {
                    tenant_id: tenant,
                    ..Default::default()
                },
                100,
                None,
            )
            .await
            .unwrap();
            assert!(page.next.is_none());
            page.items.iter().map(|u| u.id).collect::<BTreeSet<_>>()
        }
    };
    let of = |callers: &[&Caller]| {
        callers
            .iter()
            .map(|c| c.principal.user_id)
            .collect::<BTreeSet<_>>()
    };

    assert_eq!(
        listed(admin.clone(), None).await,
        of(&[&admin, &boss, &dev, &outsider])
    );
    assert_eq!(
        listed(admin.clone(), Some(acme.id)).await,
        of(&[&boss, &dev])
    );
    assert_eq!(
        listed(admin.clone(), Some(globex.id)).await,
        of(&[&outsider])
    );
    assert_eq!(listed(boss.clone(), None).await, of(&[&boss, &dev]));
    assert_eq!(
        listed(boss.clone(), Some(acme.id)).await,
        of(&[&boss, &dev])
    );
    assert_eq!(listed(boss.clone(), Some(globex.id)).await, of(&[]));
    assert_forbidden(users::list(&kw, &dev, UserFilter::default(), 100, None).await);
    assert_forbidden(
        users::list(
            &kw,
            &dev,
            UserFilter {
                tenant_id: Some(acme.id),
                ..Default::default()
            },
            100,
            None,
        )
        .await,
    );

    // Pages: two, then the other two, then no more.
    let first = users::list(&kw, &admin, UserFilter::default(), 2, None)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let second = users::list(&kw, &admin, UserFilter::default(), 2, first.next)
        .await
        .unwrap();
    assert_eq!(second.items.len(), 2);
    assert!(second.next.is_none());
    let both: BTreeSet<_> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|u| u.id)
        .collect();
    assert_eq!(both, of(&[&admin, &boss, &dev, &outsider]));
}

#[tokio::test]
async fn a_taken_email_is_a_conflict() {
    let (kw, _) = kw().await;
    let system = Actor::system();
    let ann = users::create_as(&kw, &system, new_user("Ann@Example.com", Role::Admin, None))
        .await
        .unwrap();
    assert_eq!(ann.email, "ann@example.com");
    for again in ["ann@example.com", "ANN@EXAMPLE.COM"] {
        let taken = users::create_as(&kw, &system, new_user(again, Role::Admin, None)).await;
        assert!(
            matches!(
                taken,
                Err(Error::Conflict {
                    code: "email_taken",
                    ..
                })
            ),
            "{again}: {taken:?}"
        );
    }
    assert_invalid(
        users::create_as(&kw, &system, new_user("no-at-sign", Role::Admin, None)).await,
        "email",
    );
    assert_invalid(
        users::create_as(
            &kw,
            &system,
            NewUser {
                password: "too short".into(),
                ..new_user("bob@example.com", Role::Admin, None)
            },
        )
        .await,
        "password",
    );
}

// ---- The key lifecycle ----

#[tokio::test]
async fn a_member_creates_a_key_and_reads_it_back() {
    let (kw, _) = kw().await;
    let acme = tenants::create_as(
        &kw,
        &Actor::system(),
        TenantChanges {
            key_prefix: Patch::Set("acme".into()),
            ..tenant_named("acme")
        },
    )
    .await
    .unwrap();
    let globex = new_tenant(&kw, "globex").await;
    let dev = member_of(&kw, &acme).await;

    let issued = keys::create(
        &kw,
        &dev,
        NewKey {
            allowed_ips: Vec::new(),
            rate_limit_scope: None,
            tenant: KeyTenant::Requested(None),
            name: Some("ci".into()),
            metadata: Some(json!({"team": "payments"})),
            ..new_key(&["orders:read", "keyward:read"])
        },
    )
    .await
    .unwrap();
    let plaintext = issued.plaintext.expose();
    let parsed = ParsedKey::parse(plaintext).unwrap();
    assert_eq!(parsed.prefix(), "acme");
    assert_eq!(parsed.digest(), issued.key.digest);
    assert_eq!(KeyDigest::of(plaintext), issued.key.digest);
    assert!(plaintext.starts_with(&issued.key.start));
    assert_eq!(
        issued.key.scopes.as_slice(),
        ["keyward:read", "orders:read"]
    );
    assert_eq!(issued.key.tenant_id, Some(acme.id));
    assert_eq!(issued.key.owner_id, dev.principal.user_id);
    assert_eq!(issued.key.status(kw.now()), KeyStatus::Active);

    let read = keys::get(&kw, &dev, Reach::Role, issued.key.id)
        .await
        .unwrap();
    assert_eq!(read, issued.key);
    let by_digest = kw.store.get_key_by_digest(&parsed.digest()).await.unwrap();
    assert_eq!(by_digest.map(|k| k.id), Some(issued.key.id));

    // Its tenant's admin sees it; another member and another tenant's admin are told it does
    // not exist (not that it is forbidden).
    let boss = tenant_admin_of(&kw, &acme).await;
    assert_eq!(
        keys::get(&kw, &boss, Reach::Role, issued.key.id)
            .await
            .unwrap()
            .id,
        issued.key.id
    );
    for stranger in [
        member_of(&kw, &acme).await,
        tenant_admin_of(&kw, &globex).await,
    ] {
        let unseen = keys::get(&kw, &stranger, Reach::Role, issued.key.id).await;
        assert!(
            matches!(unseen, Err(Error::NotFound("api key"))),
            "{unseen:?}"
        );
    }
    // Its tenant's admin reaches it by role, not as its own.
    let own_only = keys::get(&kw, &boss, Reach::Own, issued.key.id).await;
    assert!(
        matches!(own_only, Err(Error::NotFound("api key"))),
        "{own_only:?}"
    );

    // A member names only its own tenant; an admin must name one.
    let elsewhere = keys::create(
        &kw,
        &dev,
        NewKey {
            allowed_ips: Vec::new(),
            rate_limit_scope: None,
            tenant: KeyTenant::Requested(Some(globex.id)),
            ..new_key(&[])
        },
    )
    .await;
    assert!(
        matches!(elsewhere, Err(Error::NotFound("tenant"))),
        "{elsewhere:?}"
    );
    let admin = admin(&kw).await;
    assert_invalid(
        keys::create(
            &kw,
            &admin,
            NewKey {
                allowed_ips: Vec::new(),
                rate_limit_scope: None,
                tenant: KeyTenant::Requested(None),
                ..new_key(&[])
            },
        )
        .await,
        "tenant_id",
    );
    let for_globex = keys::create(
        &kw,
        &admin,
        NewKey {
            allowed_ips: Vec::new(),
            rate_limit_scope: None,
            tenant: KeyTenant::Requested(Some(globex.id)),
            ..new_key(&[])
        },
    )
    .await
    .unwrap();
    assert_eq!(for_globex.key.tenant_id, Some(globex.id));
    assert!(for_globex.plaintext.expose().starts_with("kw_"));
}

#[tokio::test]
async fn a_key_never_grants_what_its_caller_lacks() {
    let (kw, _) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let dev = member_of(&kw, &acme).await;
    let manager = key_with(&kw, &dev, &["keyward:read", "keyward:write", "orders:read"]).await;
    let by_key = as_key(&kw, &manager).await;

    for beyond in [&["billing"][..], &["orders:read", "keyward:admin"]] {
        assert_forbidden(keys::create(&kw, &by_key, new_key(beyond)).await);
    }
    let narrower = keys::create(&kw, &by_key, new_key(&["orders:read"]))
        .await
        .unwrap();
    assert_forbidden(
        keys::update(
            &kw,
            &by_key,
            Reach::Role,
            narrower.key.id,
            KeyPatch {
                scopes: Some(strings(&["orders:read", "orders:write"])),
                ..patch()
            },
        )
        .await,
    );
    assert_eq!(
        keys::get(&kw, &dev, Reach::Role, narrower.key.id)
            .await
            .unwrap()
            .scopes
            .as_slice(),
        ["orders:read"]
    );

    // Without keyward:write a key changes nothing; without keyward:read it reads nothing.
    let reader = as_key(&kw, &key_with(&kw, &dev, &["keyward:read"]).await).await;
    assert_forbidden(keys::create(&kw, &reader, new_key(&[])).await);
    assert_forbidden(keys::revoke(&kw, &reader, Reach::Role, narrower.key.id).await);
    let writer = as_key(&kw, &key_with(&kw, &dev, &["keyward:write"]).await).await;
    assert_forbidden(keys::get(&kw, &writer, Reach::Role, narrower.key.id).await);
}

#[tokio::test]
async fn bad_scopes_limits_and_expiries_are_invalid_naming_the_field() {
    let (kw, _) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let dev = member_of(&kw, &acme).await;
    let before = audit_count(&kw).await;

    for scopes in [
        &["has space"][..],
        &[""],
        &["orders:read", "orders:read"],
        &["keyward:everything"],
    ] {
        assert_invalid(keys::create(&kw, &dev, new_key(scopes)).await, "scopes");
    }
    let too_many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
    assert_invalid(
        keys::create(
            &kw,
            &dev,
            NewKey {
                allowed_ips: Vec::new(),
                rate_limit_scope: None,
                scopes: too_many,
                ..new_key(&[])
            },
        )
        .await,
        "scopes",
    );

    let limited = |max: Option<i64>, window: Option<&str>| NewKey {
        allowed_ips: Vec::new(),
        rate_limit_scope: None,
        rate_limit_max: max,
        rate_limit_window: window.map(Into::into),
        ..new_key(&[])
    };
    for (max, window, field) in [
        (Some(10), None, "rate_limit_max"),
        (None, Some("1 minute"), "rate_limit_max"),
        (Some(0), Some("1 minute"), "rate_limit_max"),
        (Some(100_001), Some("1 minute"), "rate_limit_max"),
        (Some(10), Some("1 fortnight"), "rate_limit_window"),
        (Some(10), Some("0 seconds"), "rate_limit_window"),
    ] {
        assert_invalid(keys::create(&kw, &dev, limited(max, window)).await, field);
    }

    for (expiry, field) in [
        (KeyExpiry::At(start_time()), "expires_at"),
        (
            KeyExpiry::At(start_time() - Duration::days(1)),
            "expires_at",
        ),
        (KeyExpiry::After(Duration::ZERO), "expires_in"),
    ] {
        assert_invalid(
            keys::create(
                &kw,
                &dev,
                NewKey {
                    allowed_ips: Vec::new(),
                    rate_limit_scope: None,
                    expiry,
                    ..new_key(&[])
                },
            )
            .await,
            field,
        );
    }
    assert_eq!(audit_count(&kw).await, before, "refusals leave no trace");
}

#[tokio::test]
async fn update_keeps_clears_and_sets_each_field() {
    let (kw, _) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let dev = member_of(&kw, &acme).await;
    let month = start_time() + Duration::days(30);
    let key = keys::create(
        &kw,
        &dev,
        NewKey {
            allowed_ips: Vec::new(),
            rate_limit_scope: None,
            name: Some("first".into()),
            expiry: KeyExpiry::At(month),
            rate_limit_max: Some(10),
            rate_limit_window: Some("1 minute".into()),
            ..new_key(&["orders:read"])
        },
    )
    .await
    .unwrap()
    .key;
    let id = key.id;
    let update = |p: KeyPatch| {
        let (kw, dev) = (&kw, &dev);
        async move { keys::update(kw, dev, Reach::Role, id, p).await }
    };
    let limit_of = |k: &keyward_domain::ApiKey| {
        k.rate_limit
            .as_ref()
            .map(|r| (r.max(), r.window().to_owned()))
    };
    let ten_a_minute = Some((10, "1 minute".to_owned()));

    // Set one field; the others are kept.
    let k = update(KeyPatch {
        name: Patch::Set("second".into()),
        ..patch()
    })
    .await
    .unwrap();
    assert_eq!(k.name.as_deref(), Some("second"));
    assert_eq!(k.expires_at, Some(month));
    assert_eq!(limit_of(&k), ten_a_minute);
    assert_eq!(k.scopes, key.scopes);

    let later = start_time() + Duration::days(60);
    let k = update(KeyPatch {
        expires_at: Patch::Set(later),
        ..patch()
    })
    .await
    .unwrap();
    assert_eq!(
        (k.name.as_deref(), k.expires_at),
        (Some("second"), Some(later))
    );

    // Clear: no name, never expires.
    let k = update(KeyPatch {
        name: Patch::Clear,
        expires_at: Patch::Clear,
        ..patch()
    })
    .await
    .unwrap();
    assert_eq!((k.name.as_deref(), k.expires_at), (None, None));
    assert_invalid(
        update(KeyPatch {
            expires_at: Patch::Set(start_time() - Duration::minutes(1)),
            ..patch()
        })
        .await,
        "expires_at",
    );

    // The rate limit is a pair: one half set keeps the other...
    let k = update(KeyPatch {
        rate_limit_max: Patch::Set(20),
        ..patch()
    })
    .await
    .unwrap();
    assert_eq!(limit_of(&k), Some((20, "1 minute".to_owned())));
    // ...one half cleared alone is refused, and changes nothing...
    for half in [
        KeyPatch {
            rate_limit_max: Patch::Clear,
            ..patch()
        },
        KeyPatch {
            rate_limit_window: Patch::Clear,
            ..patch()
        },
    ] {
        assert_invalid(update(half).await, "rate_limit_max");
    }
    let stored = keys::get(&kw, &dev, Reach::Role, id).await.unwrap();
    assert_eq!(limit_of(&stored), Some((20, "1 minute".to_owned())));
    // ...both cleared together make the key unlimited, and both set make a new limit.
    let k = update(KeyPatch {
        rate_limit_max: Patch::Clear,
        rate_limit_window: Patch::Clear,
        ..patch()
    })
    .await
    .unwrap();
    assert_eq!(k.rate_limit, None);
    let k = update(KeyPatch {
        rate_limit_max: Patch::Set(5),
        rate_limit_window: Patch::Set("2 hours".into()),
        ..patch()
    })
    .await
    .unwrap();
    let limit = k.rate_limit.as_ref().unwrap().limit();
    assert_eq!(
        limit,
        Limit {
            max: 5,
            window: Duration::hours(2)
        }
    );
    // What the answer says is what storage holds.
    assert_eq!(keys::get(&kw, &dev, Reach::Role, id).await.unwrap(), k);
}

#[tokio::test]
async fn listing_is_narrowed_to_the_callers_reach() {
    let (kw, _) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let globex = new_tenant(&kw, "globex").await;
    let admin = admin(&kw).await;
    let boss = tenant_admin_of(&kw, &acme).await;
    let dev = member_of(&kw, &acme).await;
    let colleague = member_of(&kw, &acme).await;
    let outsider = member_of(&kw, &globex).await;
    let admins = key_with(&kw, &admin, &[]).await;
    let devs = key_with(&kw, &dev, &[]).await;
    let colleagues = key_with(&kw, &colleague, &[]).await;
    let outsiders = key_with(&kw, &outsider, &[]).await;
    assert_eq!(admins.key.tenant_id, None);

    assert_eq!(listed(&kw, &dev, Reach::Role, None).await, ids([&devs]));
    assert_eq!(
        listed(&kw, &dev, Reach::Role, Some(&acme)).await,
        ids([&devs])
    );
    assert_eq!(listed(&kw, &dev, Reach::Role, Some(&globex)).await, ids([]));
    assert_eq!(
        listed(&kw, &admin, Reach::Role, None).await,
        ids([&admins, &devs, &colleagues, &outsiders])
    );
    assert_eq!(
        listed(&kw, &admin, Reach::Role, Some(&acme)).await,
        ids([&devs, &colleagues])
    );
    assert_eq!(
        listed(&kw, &admin, Reach::Role, Some(&globex)).await,
        ids([&outsiders])
    );
    assert_eq!(listed(&kw, &admin, Reach::Own, None).await, ids([&admins]));
    assert_eq!(
        listed(&kw, &boss, Reach::Role, None).await,
        ids([&devs, &colleagues])
    );
    assert_eq!(
        listed(&kw, &boss, Reach::Role, Some(&globex)).await,
        ids([])
    );
    assert_eq!(listed(&kw, &boss, Reach::Own, None).await, ids([]));

    // Another owner asked for by a member matches nothing.
    let mut theirs = KeyQuery::new(kw.now(), 100);
    theirs.of.owner_id = Some(colleague.principal.user_id);
    let page = keys::list(&kw, &dev, Reach::Role, theirs).await.unwrap();
    assert!(page.items.is_empty(), "{:?}", page.items);

    // Pages.
    let first = keys::list(&kw, &admin, Reach::Role, KeyQuery::new(kw.now(), 3))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 3);
    let mut rest = KeyQuery::new(kw.now(), 3);
    rest.after = first.next;
    let second = keys::list(&kw, &admin, Reach::Role, rest).await.unwrap();
    assert_eq!(second.items.len(), 1);
    assert!(second.next.is_none());

    // Revoked keys, left out or asked for.
    keys::revoke(&kw, &colleague, Reach::Role, colleagues.key.id)
        .await
        .unwrap();
    let mut live = KeyQuery::new(kw.now(), 100);
    live.exclude_revoked = true;
    let page = keys::list(&kw, &boss, Reach::Role, live).await.unwrap();
    assert_eq!(ids_of(&page.items), ids([&devs]));
    let mut revoked = KeyQuery::new(kw.now(), 100);
    revoked.status = Some(KeyStatus::Revoked);
    let page = keys::list(&kw, &boss, Reach::Role, revoked).await.unwrap();
    assert_eq!(ids_of(&page.items), ids([&colleagues]));
}

fn ids_of(keys: &[keyward_domain::ApiKey]) -> BTreeSet<Uuid> {
    keys.iter().map(|k| k.id).collect()
}

#[tokio::test]
async fn rotation_keeps_the_old_key_until_its_grace_ends() {
    let (kw, clock) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let dev = member_of(&kw, &acme).await;
    let verifier = verifier_of(&kw, &dev).await;
    let old = keys::create(
        &kw,
        &dev,
        NewKey {
            allowed_ips: Vec::new(),
            rate_limit_scope: None,
            name: Some("v1".into()),
            ..new_key(&["orders:read"])
        },
    )
    .await
    .unwrap();

    let new = keys::rotate(&kw, &dev, old.key.id, None, Some(Duration::minutes(10)))
        .await
        .unwrap();
    assert_ne!(new.key.id, old.key.id);
    assert_ne!(new.key.digest, old.key.digest);
    assert_eq!(new.key.name.as_deref(), Some("v1"));
    assert_eq!(new.key.scopes, old.key.scopes);
    assert_eq!(
        (new.key.tenant_id, new.key.owner_id),
        (old.key.tenant_id, old.key.owner_id)
    );
    let ends = keys::get(&kw, &dev, Reach::Role, old.key.id)
        .await
        .unwrap()
        .revoked_at;
    assert_eq!(ends, Some(start_time() + Duration::minutes(10)));

    assert_eq!(code_of(&kw, &verifier, &old).await, VerifyCode::Valid);
    assert_eq!(code_of(&kw, &verifier, &new).await, VerifyCode::Valid);
    clock.advance(Duration::minutes(9));
    assert_eq!(
        code_of(&kw, &verifier, &old).await,
        VerifyCode::Valid,
        "within the grace"
    );
    clock.advance(Duration::minutes(1));
    assert_eq!(
        code_of(&kw, &verifier, &old).await,
        VerifyCode::Revoked,
        "the grace has ended"
    );
    assert_eq!(code_of(&kw, &verifier, &new).await, VerifyCode::Valid);

    // Without a grace the old key stops at once.
    let newer = keys::rotate(&kw, &dev, new.key.id, Some("v3".into()), None)
        .await
        .unwrap();
    assert_eq!(newer.key.name.as_deref(), Some("v3"));
    assert_eq!(code_of(&kw, &verifier, &new).await, VerifyCode::Revoked);
    assert_eq!(code_of(&kw, &verifier, &newer).await, VerifyCode::Valid);

    // A revoked key is not there to rotate; a grace is at most 7 days, and not negative.
    let gone = keys::rotate(&kw, &dev, old.key.id, None, None).await;
    assert!(matches!(gone, Err(Error::NotFound("api key"))), "{gone:?}");
    for grace in [
        Duration::days(7) + Duration::seconds(1),
        Duration::seconds(-1),
    ] {
        assert_invalid(
            keys::rotate(&kw, &dev, newer.key.id, None, Some(grace)).await,
            "grace_period",
        );
    }
    // Nobody else's key is there to rotate either.
    let stranger = member_of(&kw, &acme).await;
    let unseen = keys::rotate(&kw, &stranger, newer.key.id, None, None).await;
    assert!(
        matches!(unseen, Err(Error::NotFound("api key"))),
        "{unseen:?}"
    );
}

#[tokio::test]
async fn revoke_stops_a_key_at_once() {
    let (kw, _) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let dev = member_of(&kw, &acme).await;
    let verifier = verifier_of(&kw, &dev).await;
    let key = key_with(&kw, &dev, &["keyward:read"]).await;
    // Used once, so that the verify path has it in memory when it is revoked.
    assert_eq!(
        verify_code(&kw, &verifier, key.plaintext.expose(), &[]).await,
        VerifyCode::Valid
    );

    let stranger = member_of(&kw, &acme).await;
    let unseen = keys::revoke(&kw, &stranger, Reach::Role, key.key.id).await;
    assert!(
        matches!(unseen, Err(Error::NotFound("api key"))),
        "{unseen:?}"
    );

    let revoked = keys::revoke(&kw, &dev, Reach::Role, key.key.id)
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(start_time()));
    assert_eq!(revoked.status(kw.now()), KeyStatus::Revoked);
    assert_eq!(
        verify_code(&kw, &verifier, key.plaintext.expose(), &[]).await,
        VerifyCode::Revoked
    );
    let refused = auth::authenticate(&kw, key.plaintext.expose()).await;
    assert!(
        matches!(refused, Err(Error::Unauthenticated(AuthFailure::Invalid))),
        "{refused:?}"
    );
    // Once revoked it is neither revoked again nor changed.
    let again = keys::revoke(&kw, &dev, Reach::Role, key.key.id).await;
    assert!(
        matches!(again, Err(Error::NotFound("api key"))),
        "{again:?}"
    );
    let edited = keys::update(
        &kw,
        &dev,
        Reach::Role,
        key.key.id,
        KeyPatch {
            name: Patch::Set("revived".into()),
            ..patch()
        },
    )
    .await;
    assert!(
        matches!(edited, Err(Error::NotFound("api key"))),
        "{edited:?}"
    );
}

// ---- Verify ----

#[tokio::test]
async fn verify_answers_each_code() {
    let (kw, clock) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let dev = member_of(&kw, &acme).await;
    let admin = admin(&kw).await;
    let verifier = verifier_of(&kw, &admin).await;
    let hour = keys::create(
        &kw,
        &dev,
        NewKey {
            allowed_ips: Vec::new(),
            rate_limit_scope: None,
            expiry: KeyExpiry::After(Duration::hours(1)),
            ..new_key(&["orders:read", "orders:write"])
        },
    )
    .await
    .unwrap();
    let plaintext = hour.plaintext.expose();

    let verdict = verify_listing(
        &kw,
        Some(&verifier),
        plaintext,
        &strings(&["orders:read"]),
        1,
    )
    .await
    .unwrap();
    assert_eq!(verdict.code, VerifyCode::Valid);
    assert_eq!(verdict.key.as_ref().map(|k| k.id), Some(hour.key.id));
    assert!(verdict.ratelimit.is_none() && verdict.remaining.is_none());
    for scopes in [&[][..], &["orders:write", "orders:read"]] {
        assert_eq!(
            verify_code(&kw, &verifier, plaintext, scopes).await,
            VerifyCode::Valid
        );
    }
    assert_eq!(
        verify_code(&kw, &verifier, plaintext, &["orders:read", "billing"]).await,
        VerifyCode::InsufficientScopes
    );

    // Garbage, a bad checksum, and a well-formed key nobody issued.
    let unknown = PlainKey::generate(&KeyPrefix::default_prefix()).unwrap();
    let mut bad_checksum = plaintext.to_owned();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'a' { 'b' } else { 'a' });
    for garbage in ["not-a-key", "", bad_checksum.as_str(), unknown.expose()] {
        let verdict = verify_listing(&kw, Some(&verifier), garbage, &[], 1)
            .await
            .unwrap();
        assert_eq!(verdict.code, VerifyCode::NotFound, "{garbage:?}");
        assert!(verdict.key.is_none());
    }

    // A verifier sees only the keys its role covers: another member's is not found.
    let stranger = member_of(&kw, &acme).await;
    let strangers_verifier = verifier_of(&kw, &stranger).await;
    let verdict = verify_listing(&kw, Some(&strangers_verifier), plaintext, &[], 1)
        .await
        .unwrap();
    assert_eq!(verdict.code, VerifyCode::NotFound);
    assert!(verdict.key.is_none(), "nothing about the key leaks");

    let revoked = key_with(&kw, &dev, &[]).await;
    keys::revoke(&kw, &dev, Reach::Role, revoked.key.id)
        .await
        .unwrap();
    assert_eq!(
        verify_code(&kw, &verifier, revoked.plaintext.expose(), &[]).await,
        VerifyCode::Revoked
    );

    clock.advance(Duration::minutes(59));
    assert_eq!(
        verify_code(&kw, &verifier, plaintext, &[]).await,
        VerifyCode::Valid
    );
    clock.advance(Duration::minutes(1));
    assert_eq!(
        verify_code(&kw, &verifier, plaintext, &[]).await,
        VerifyCode::Expired
    );
    // Expired is decided before scopes.
    assert_eq!(
        verify_code(&kw, &verifier, plaintext, &["billing"]).await,
        VerifyCode::Expired
    );
}

#[tokio::test]
async fn verify_enforces_the_keys_rate_limit() {
    let (kw, clock) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let dev = member_of(&kw, &acme).await;
    let verifier = verifier_of(&kw, &dev).await;
    let key = keys::create(
        &kw,
        &dev,
        NewKey {
            allowed_ips: Vec::new(),
            rate_limit_scope: None,
            rate_limit_max: Some(3),
            rate_limit_window: Some("1 minute".into()),
            ..new_key(&["orders:read"])
        },
    )
    .await
    .unwrap();
    // The limit is parsed once, when set: 3 per 60 s, one back every 20 s.
    let limit = key.key.rate_limit.as_ref().unwrap().limit();
    assert_eq!(
        limit,
        Limit {
            max: 3,
            window: Duration::minutes(1)
        }
    );
    let verify_once = |scopes: &'static [&'static str]| {
        let (kw, verifier, plaintext) = (&kw, &verifier, key.plaintext.expose());
        async move {
            verify_listing(kw, Some(verifier), plaintext, &strings(scopes), 1)
                .await
                .unwrap()
        }
    };

    // A verification that fails otherwise spends nothing.
    for _ in 0..5 {
        let verdict = verify_once(&["orders:write"]).await;
        assert_eq!(verdict.code, VerifyCode::InsufficientScopes);
        assert!(verdict.ratelimit.is_none());
    }
    for left in [2, 1, 0] {
        let verdict = verify_once(&["orders:read"]).await;
        assert_eq!(verdict.code, VerifyCode::Valid);
        let (used, decision) = verdict.ratelimit.unwrap();
        assert_eq!(used, limit);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, left);
    }
    let verdict = verify_once(&["orders:read"]).await;
    assert_eq!(verdict.code, VerifyCode::RateLimited);
    let (_, decision) = verdict.ratelimit.unwrap();
    assert!(!decision.allowed);
    assert_eq!(decision.retry_after_secs(kw.now()), 20);

    clock.advance(Duration::seconds(19));
    assert_eq!(verify_once(&[]).await.code, VerifyCode::RateLimited);
    clock.advance(Duration::seconds(1));
    assert_eq!(verify_once(&[]).await.code, VerifyCode::Valid);
    assert_eq!(verify_once(&[]).await.code, VerifyCode::RateLimited);
    // Past the whole window the key has its full burst again.
    clock.advance(Duration::minutes(1));
    for _ in 0..3 {
        assert_eq!(verify_once(&[]).await.code, VerifyCode::Valid);
    }
    assert_eq!(verify_once(&[]).await.code, VerifyCode::RateLimited);
}

#[tokio::test]
async fn a_verifier_needs_the_verify_scope_unless_verify_is_public() {
    let (kw, _) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let dev = member_of(&kw, &acme).await;
    let reader = key_with(&kw, &dev, &["keyward:read"]).await;
    assert_forbidden(auth::verifier(&kw, Ok(reader.plaintext.expose()), None).await);
    let missing = auth::verifier(&kw, Err(AuthFailure::Missing), None).await;
    assert!(
        matches!(missing, Err(Error::Unauthenticated(AuthFailure::Missing))),
        "{missing:?}"
    );
    let garbage = auth::verifier(&kw, Ok("kw_nope"), None).await;
    assert!(
        matches!(garbage, Err(Error::Unauthenticated(AuthFailure::Invalid))),
        "{garbage:?}"
    );

    let (public, _) = kw_with(Settings {
        public_verify: true,
        ..Settings::default()
    })
    .await;
    let acme = new_tenant(&public, "acme").await;
    let dev = member_of(&public, &acme).await;
    let key = key_with(&public, &dev, &[]).await;
    assert_eq!(
        auth::verifier(&public, Err(AuthFailure::Missing), None)
            .await
            .unwrap(),
        None
    );
    let verdict = verify_listing(&public, None, key.plaintext.expose(), &[], 1)
        .await
        .unwrap();
    assert_eq!(verdict.code, VerifyCode::Valid);
}

// ---- Authentication ----

/// Whether verifier `token`, checked twice, is answered from memory the second time (the cache
/// is not read for it).
async fn is_remembered(kw: &Keyward, token: &str) -> bool {
    auth::verifier(kw, Ok(token), None).await.unwrap();
    let read = (kw.cache.hits(), kw.cache.misses());
    auth::verifier(kw, Ok(token), None).await.unwrap();
    (kw.cache.hits(), kw.cache.misses()) == read
}

/// A verifier is remembered between requests (the cache is not read again for it), and every
/// change to its key or its owner is seen on the very next request all the same: scopes, pause
/// aside, revocation, the owner disabled, the key's expiry, and the cache's TTL.
#[tokio::test]
async fn a_remembered_verifier_follows_every_change_to_its_key_and_owner() {
    let (kw, clock) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let root = admin(&kw).await;
    let dev = member_of(&kw, &acme).await;
    let check = |token: String| {
        let kw = &kw;
        async move { auth::verifier(kw, Ok(&token), None).await }
    };
    let verifier = || key_with(&kw, &dev, &["keyward:verify"]);

    let v = verifier().await;
    let token = v.plaintext.expose().to_owned();
    assert!(is_remembered(&kw, &token).await, "answered from memory");
    clock.advance(Duration::seconds(31));
    let read = kw.cache.misses();
    check(token.clone()).await.unwrap();
    assert!(
        kw.cache.misses() > read,
        "past the cache's TTL it is read again"
    );

    let narrowed = KeyPatch {
        scopes: Some(strings(&["keyward:read"])),
        ..patch()
    };
    keys::update(&kw, &dev, Reach::Role, v.key.id, narrowed)
        .await
        .unwrap();
    assert_forbidden(check(token).await);

    let v = verifier().await;
    let token = v.plaintext.expose().to_owned();
    assert!(is_remembered(&kw, &token).await);
    keys::revoke(&kw, &dev, Reach::Role, v.key.id)
        .await
        .unwrap();
    let revoked = check(token).await;
    assert!(
        matches!(revoked, Err(Error::Unauthenticated(AuthFailure::Invalid))),
        "{revoked:?}"
    );

    let v = verifier().await;
    let token = v.plaintext.expose().to_owned();
    assert!(is_remembered(&kw, &token).await);
    let disable = |disabled| users::UserPatch {
        role: None,
        disabled: Some(disabled),
    };
    users::update(&kw, &root, dev.principal.user_id, disable(true))
        .await
        .unwrap();
    let disabled = check(token.clone()).await;
    assert!(
        matches!(disabled, Err(Error::Unauthenticated(AuthFailure::Invalid))),
        "{disabled:?}"
    );
    users::update(&kw, &root, dev.principal.user_id, disable(false))
        .await
        .unwrap();
    check(token).await.unwrap();

    let v = verifier().await;
    let token = v.plaintext.expose().to_owned();
    let soon = KeyPatch {
        expires_at: Patch::Set(kw.now() + Duration::seconds(10)),
        ..patch()
    };
    keys::update(&kw, &dev, Reach::Role, v.key.id, soon)
        .await
        .unwrap();
    assert!(is_remembered(&kw, &token).await);
    clock.advance(Duration::seconds(11));
    let expired = check(token).await;
    assert!(
        matches!(expired, Err(Error::Unauthenticated(AuthFailure::Expired))),
        "{expired:?}"
    );
}

#[tokio::test]
async fn a_key_authenticates_as_its_owner_with_its_scopes() {
    let (kw, clock) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let boss = tenant_admin_of(&kw, &acme).await;
    let key = key_with(&kw, &boss, &["orders:read", "keyward:read"]).await;
    let principal = auth::authenticate(&kw, key.plaintext.expose())
        .await
        .unwrap();
    assert_eq!(
        principal,
        Principal {
            user_id: boss.principal.user_id,
            role: Role::TenantAdmin,
            tenant_id: Some(acme.id),
            credential: Credential::ApiKey {
                key_id: key.key.id,
                scopes: key.key.scopes.clone(),
            },
        }
    );

    for garbage in ["kw_nope", "", "a.b"] {
        let refused = auth::authenticate(&kw, garbage).await;
        assert!(
            matches!(refused, Err(Error::Unauthenticated(AuthFailure::Invalid))),
            "{garbage:?}: {refused:?}"
        );
    }
    let unknown = PlainKey::generate(&KeyPrefix::default_prefix()).unwrap();
    let refused = auth::authenticate(&kw, unknown.expose()).await;
    assert!(
        matches!(refused, Err(Error::Unauthenticated(AuthFailure::Invalid))),
        "{refused:?}"
    );

    let brief = keys::create(
        &kw,
        &boss,
        NewKey {
            allowed_ips: Vec::new(),
            rate_limit_scope: None,
            expiry: KeyExpiry::After(Duration::minutes(5)),
            ..new_key(&[])
        },
    )
    .await
    .unwrap();
    clock.advance(Duration::minutes(5));
    let expired = auth::authenticate(&kw, brief.plaintext.expose()).await;
    assert!(
        matches!(expired, Err(Error::Unauthenticated(AuthFailure::Expired))),
        "{expired:?}"
    );
}

#[tokio::test]
async fn a_session_from_login_authenticates_as_its_user() {
    let (kw, clock) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let ann = users::create_as(
        &kw,
        &Actor::system(),
        new_user("ann@acme.test", Role::Member, Some(acme.id)),
    )
    .await
    .unwrap();
    let session = login::login(
        &kw,
        &RequestMeta::default(),
        "Ann@Acme.test",
        PASSWORD.into(),
    )
    .await
    .unwrap();
    assert_eq!(session.expires_in, SESSION_TTL.whole_seconds());
    let token = session.access_token.expose_secret();

    // Signed with the context's secret, and no other.
    let sessions = kw.sessions.as_ref().unwrap();
    let claims = sessions.verify(token, kw.now()).unwrap();
    assert_eq!(claims.user_id, ann.id);
    let other = JwtKeys::new(vec![8; 32], SESSION_TTL).unwrap();
    assert_eq!(other.verify(token, kw.now()), Err(AuthFailure::Invalid));

    let principal = auth::authenticate(&kw, token).await.unwrap();
    assert_eq!(
        principal,
        Principal {
            user_id: ann.id,
            role: Role::Member,
            tenant_id: Some(acme.id),
            credential: Credential::Session {
                id: Some(claims.session_id)
            },
        }
    );

    // A token signed with another secret, or with its signature changed, is refused.
    let forged = other.issue(ann.id, claims.session_id, kw.now()).unwrap();
    let (unsigned, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{unsigned}.{flipped}{}", &signature[1..]);
    for bad in [forged, tampered] {
        let refused = auth::authenticate(&kw, &bad).await;
        assert!(
            matches!(refused, Err(Error::Unauthenticated(AuthFailure::Invalid))),
            "{refused:?}"
        );
    }

    clock.advance(SESSION_TTL);
    let expired = auth::authenticate(&kw, token).await;
    assert!(
        matches!(expired, Err(Error::Unauthenticated(AuthFailure::Expired))),
        "{expired:?}"
    );

    // A context that signs nobody in has no session to give, nor to accept.
    let offline = Keyward::new(
        Arc::clone(&kw.store),
        clock.clone(),
        None,
        Passwords::fast_insecure_for_tests().unwrap(),
        Settings::default(),
    );
    let refused = login::login(
        &offline,
        &RequestMeta::default(),
        "ann@acme.test",
        PASSWORD.into(),
    )
    .await;
    assert!(matches!(refused, Err(Error::Internal(_))), "{refused:?}");
}

#[tokio::test]
async fn a_wrong_password_is_unauthenticated_and_throttled() {
    let (kw, clock) = kw_with(Settings {
        login_failures_per_email: Limit {
            max: 2,
            window: Duration::minutes(10),
        },
        ..Settings::default()
    })
    .await;
    users::create_as(
        &kw,
        &Actor::system(),
        new_user("ann@x.test", Role::Admin, None),
    )
    .await
    .unwrap();
    let meta = RequestMeta::default();
    let attempt = |email: &'static str, password: &'static str| {
        let (kw, meta) = (&kw, &meta);
        async move { login::login(kw, meta, email, password.into()).await }
    };

    // A right password is not a failure: it never counts towards the limit.
    for _ in 0..3 {
        attempt("ann@x.test", PASSWORD).await.unwrap();
    }
    for (email, password) in [
        ("ann@x.test", "not the password at all"),
        ("nobody@x.test", PASSWORD),
    ] {
        let refused = attempt(email, password).await;
        assert!(
            matches!(refused, Err(Error::Unauthenticated(AuthFailure::Invalid))),
            "{email}: {refused:?}"
        );
    }
    let refused = attempt("ann@x.test", "wrong again, twelve+").await;
    assert!(
        matches!(refused, Err(Error::Unauthenticated(AuthFailure::Invalid))),
        "{refused:?}"
    );
    // Two failures for this email: now even the right password waits.
    let throttled = attempt("ann@x.test", PASSWORD).await;
    assert!(
        matches!(throttled, Err(Error::Throttled { retry_after_secs }) if retry_after_secs > 0),
        "{throttled:?}"
    );
    clock.advance(Duration::minutes(10));
    attempt("ann@x.test", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn failing_credentials_throttle_their_address() {
    let (kw, clock) = kw_with(Settings {
        auth_failures_per_address: Limit {
            max: 3,
            window: Duration::minutes(1),
        },
        ..Settings::default()
    })
    .await;
    let acme = new_tenant(&kw, "acme").await;
    let dev = member_of(&kw, &acme).await;
    let good = key_with(&kw, &dev, &[]).await;
    let good = good.plaintext.expose();
    let guesser = Some("203.0.113.9");

    // Successes are not failures.
    for _ in 0..5 {
        auth::authenticate_from(&kw, good, guesser).await.unwrap();
    }
    for _ in 0..3 {
        let refused = auth::authenticate_from(&kw, "kw_guess", guesser).await;
        assert!(
            matches!(refused, Err(Error::Unauthenticated(AuthFailure::Invalid))),
            "{refused:?}"
        );
    }
    // Out of failures: refused before any lookup, even with a good key.
    let throttled = auth::authenticate_from(&kw, good, guesser).await;
    assert!(
        matches!(throttled, Err(Error::Throttled { retry_after_secs }) if (1..=60).contains(&retry_after_secs)),
        "{throttled:?}"
    );
    // Only that address.
    auth::authenticate_from(&kw, good, Some("198.51.100.1"))
        .await
        .unwrap();
    auth::authenticate_from(&kw, good, None).await.unwrap();

    clock.advance(Duration::minutes(1));
    auth::authenticate_from(&kw, good, guesser).await.unwrap();
}

// ---- The audit log ----

#[tokio::test]
async fn every_change_is_audited_with_its_action() {
    let (kw, _) = kw().await;
    let admin = admin(&kw).await;
    let admin_id = admin.principal.user_id;
    let by_session = |entry: &AuditEntry, user: Uuid| {
        assert_eq!(entry.actor_type, ActorType::Jwt, "{entry:?}");
        assert_eq!(entry.actor_id, user.to_string());
        assert_eq!(entry.actor_user_id, Some(user));
    };

    let acme = tenants::create(&kw, &admin, tenant_named("acme"))
        .await
        .unwrap();
    let e = entry_of(&kw, AuditAction::TenantCreate, acme.id).await;
    by_session(&e, admin_id);
    assert_eq!(
        (e.tenant_id, e.resource_type.as_str()),
        (Some(acme.id), "tenant")
    );

    tenants::update(
        &kw,
        &admin,
        acme.id,
        TenantChanges {
            name: Some("Acme Corp".into()),
            ..TenantChanges::default()
        },
    )
    .await
    .unwrap();
    by_session(
        &entry_of(&kw, AuditAction::TenantUpdate, acme.id).await,
        admin_id,
    );

    let ann = users::create(
        &kw,
        &admin,
        new_user("ann@acme.test", Role::Member, Some(acme.id)),
    )
    .await
    .unwrap();
    let e = entry_of(&kw, AuditAction::UserCreate, ann.id).await;
    by_session(&e, admin_id);
    assert_eq!(
        (e.tenant_id, e.subject_user_id),
        (Some(acme.id), Some(ann.id))
    );
    assert_eq!(e.changes.as_ref().unwrap()["email"], "ann@acme.test");

    let meta = RequestMeta {
        source_ip: Some("192.0.2.7".into()),
        request_id: Some("req-1".into()),
    };
    login::login(&kw, &meta, "ann@acme.test", PASSWORD.into())
        .await
        .unwrap();
    let e = entry_of(&kw, AuditAction::AuthLogin, ann.id).await;
    by_session(&e, ann.id);
    assert_eq!(
        (e.source_ip.as_deref(), e.request_id.as_deref()),
        (Some("192.0.2.7"), Some("req-1"))
    );
    let wrong = login::login(&kw, &meta, "ann@acme.test", "not the password".into()).await;
    assert!(wrong.is_err());
    let e = entry_of(&kw, AuditAction::AuthLoginFailed, ann.id).await;
    assert_eq!(
        (e.actor_type, e.actor_id.as_str()),
        (ActorType::Anonymous, "anonymous")
    );
    assert_eq!(e.subject_user_id, Some(ann.id));

    // Keys: by a session, then by a key (audited as the key, on behalf of its owner).
    let ann_session = session_of(&ann);
    let manager = key_with(&kw, &ann_session, &["keyward:write", "keyward:read"]).await;
    let e = entry_of(&kw, AuditAction::ApiKeyCreate, manager.key.id).await;
    by_session(&e, ann.id);
    assert_eq!(
        (e.tenant_id, e.subject_user_id),
        (Some(acme.id), Some(ann.id))
    );

    let by_key = as_key(&kw, &manager).await;
    let key = key_with(&kw, &by_key, &[]).await;
    let as_manager = |entry: &AuditEntry| {
        assert_eq!(entry.actor_type, ActorType::ApiKey, "{entry:?}");
        assert_eq!(entry.actor_id, manager.key.id.to_string());
        assert_eq!(entry.actor_user_id, Some(ann.id));
    };
    as_manager(&entry_of(&kw, AuditAction::ApiKeyCreate, key.key.id).await);
    keys::update(
        &kw,
        &by_key,
        Reach::Role,
        key.key.id,
        KeyPatch {
            name: Patch::Set("renamed".into()),
            ..patch()
        },
    )
    .await
    .unwrap();
    let e = entry_of(&kw, AuditAction::ApiKeyUpdate, key.key.id).await;
    as_manager(&e);
    assert_eq!(e.changes, Some(json!({"name": "renamed"})));
    let successor = keys::rotate(&kw, &by_key, key.key.id, None, None)
        .await
        .unwrap();
    let e = entry_of(&kw, AuditAction::ApiKeyRotate, key.key.id).await;
    as_manager(&e);
    assert_eq!(
        e.changes.as_ref().unwrap()["new_key_id"],
        successor.key.id.to_string()
    );
    keys::revoke(&kw, &by_key, Reach::Role, successor.key.id)
        .await
        .unwrap();
    as_manager(&entry_of(&kw, AuditAction::ApiKeyRevoke, successor.key.id).await);

    // A refused change leaves no entry.
    let before = audit_count(&kw).await;
    assert_forbidden(keys::create(&kw, &by_key, new_key(&["billing"])).await);
    assert_invalid(
        keys::update(
            &kw,
            &by_key,
            Reach::Role,
            manager.key.id,
            KeyPatch {
                rate_limit_max: Patch::Set(1),
                ..patch()
            },
        )
        .await,
        "rate_limit_max",
    );
    assert_eq!(audit_count(&kw).await, before);

    tenants::delete(&kw, &admin, acme.id, true).await.unwrap();
    by_session(
        &entry_of(&kw, AuditAction::TenantDelete, acme.id).await,
        admin_id,
    );
}

#[tokio::test]
async fn operator_changes_are_audited_as_the_system() {
    let (kw, _) = kw().await;
    let root = user(&kw, Role::Admin, None).await;
    let operator = Caller::operator(session_of(&root).principal);
    let as_system = |entry: &AuditEntry| {
        assert_eq!(entry.actor_type, ActorType::System, "{entry:?}");
        assert_eq!(entry.actor_id, "cli");
        assert_eq!(entry.actor_user_id, None);
    };

    let acme = tenants::create(&kw, &operator, tenant_named("acme"))
        .await
        .unwrap();
    as_system(&entry_of(&kw, AuditAction::TenantCreate, acme.id).await);
    let ann = users::create(
        &kw,
        &operator,
        new_user("ann@acme.test", Role::Member, Some(acme.id)),
    )
    .await
    .unwrap();
    as_system(&entry_of(&kw, AuditAction::UserCreate, ann.id).await);
    let key = keys::create(
        &kw,
        &operator,
        NewKey {
            allowed_ips: Vec::new(),
            rate_limit_scope: None,
            tenant: KeyTenant::Requested(Some(acme.id)),
            ..new_key(&["orders:read"])
        },
    )
    .await
    .unwrap();
    // The operator acts with the principal's rights: the key is the principal's.
    assert_eq!(key.key.owner_id, root.id);
    as_system(&entry_of(&kw, AuditAction::ApiKeyCreate, key.key.id).await);
    keys::update(
        &kw,
        &operator,
        Reach::Role,
        key.key.id,
        KeyPatch {
            name: Patch::Set("ops".into()),
            ..patch()
        },
    )
    .await
    .unwrap();
    as_system(&entry_of(&kw, AuditAction::ApiKeyUpdate, key.key.id).await);
    let successor = keys::rotate(&kw, &operator, key.key.id, None, Some(Duration::hours(1)))
        .await
        .unwrap();
    as_system(&entry_of(&kw, AuditAction::ApiKeyRotate, key.key.id).await);
    keys::revoke(&kw, &operator, Reach::Role, successor.key.id)
        .await
        .unwrap();
    as_system(&entry_of(&kw, AuditAction::ApiKeyRevoke, successor.key.id).await);
    // The helpers' own users were made by the operator too.
    as_system(&entry_of(&kw, AuditAction::UserCreate, root.id).await);
}

#[tokio::test]
async fn the_audit_log_shows_each_role_what_it_covers() {
    let (kw, _) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let globex = new_tenant(&kw, "globex").await;
    let admin = admin(&kw).await;
    let boss = tenant_admin_of(&kw, &acme).await;
    let dev = member_of(&kw, &acme).await;
    let colleague = member_of(&kw, &acme).await;
    let outsider = member_of(&kw, &globex).await;
    let devs = key_with(&kw, &dev, &[]).await;
    let colleagues = key_with(&kw, &colleague, &[]).await;
    let outsiders = key_with(&kw, &outsider, &[]).await;
    let query = |tenant: Option<&Tenant>| AuditQuery {
        tenant_id: tenant.map(|t| t.id),
        action: Some(AuditAction::ApiKeyCreate.as_str().into()),
        limit: 100,
        ..AuditQuery::default()
    };
    let list = |caller: &Caller, tenant: Option<&Tenant>| {
        let (kw, q) = (&kw, query(tenant));
        let caller = caller.clone();
        async move {
            audit::list(kw, &caller, q)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|e| e.resource_id.parse::<Uuid>().unwrap())
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(
        list(&admin, None).await,
        ids([&devs, &colleagues, &outsiders])
    );
    assert_eq!(list(&admin, Some(&globex)).await, ids([&outsiders]));
    assert_eq!(list(&boss, None).await, ids([&devs, &colleagues]));
    assert_eq!(list(&boss, Some(&globex)).await, ids([]));
    assert_eq!(list(&dev, None).await, ids([&devs]));
    assert_eq!(list(&dev, Some(&globex)).await, ids([]));
}

/// The core checks what every caller sends, whichever surface (or the CLI) it comes through:
/// required scopes, a verification's cost and a page's size.
#[tokio::test]
async fn the_core_refuses_what_no_surface_may_pass_on() {
    let (kw, _) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let ann = member_of(&kw, &acme).await;
    let verifier = verifier_of(&kw, &ann).await;
    let key = key_with(&kw, &ann, &["orders:read"]).await;
    let plaintext = key.plaintext.expose();
    for scopes in [&["has space"][..], &["keyward:bogus"][..]] {
        assert_invalid(
            verify_listing(&kw, Some(&verifier), plaintext, &strings(scopes), 1).await,
            "scopes",
        );
    }
    for cost in [-1, i64::MIN, verify::MAX_COST + 1] {
        assert_invalid(
            verify_listing(&kw, Some(&verifier), plaintext, &[], cost).await,
            "cost",
        );
    }
    for limit in [0, keyward_core::page::MAX_PAGE + 1, u32::MAX] {
        let query = KeyQuery::new(kw.now(), limit);
        assert_invalid(keys::list(&kw, &ann, Reach::Role, query).await, "limit");
        let admin = admin(&kw).await;
        assert_invalid(tenants::list(&kw, &admin, limit, None).await, "limit");
        assert_invalid(
            users::list(&kw, &admin, UserFilter::default(), limit, None).await,
            "limit",
        );
    }
}

/// A change that leaves a key's rate limit alone keeps it as stored, even a window only the
/// older, lenient grammar takes; a change to it is checked whole.
#[tokio::test]
async fn an_edit_leaves_a_stored_rate_limit_it_does_not_touch() {
    let (kw, _) = kw().await;
    let acme = new_tenant(&kw, "acme").await;
    let ann = member_of(&kw, &acme).await;
    let key = key_with(&kw, &ann, &["orders:read"]).await;
    let mut stored = kw.store.get_key(key.key.id).await.unwrap().unwrap();
    stored.rate_limit = Some(KeyRateLimit::stored(5, "01 minute").unwrap());
    let audit = Actor::system().entry(kw.now(), AuditAction::ApiKeyUpdate, stored.id);
    kw.store
        .update_key(&stored, kw.now(), &audit)
        .await
        .unwrap();
    let renamed = keys::update(
        &kw,
        &ann,
        Reach::Role,
        key.key.id,
        KeyPatch {
            name: Patch::Set("renamed".into()),
            ..patch()
        },
    )
    .await
    .unwrap();
    assert_eq!(renamed.rate_limit, stored.rate_limit);
    let raised = KeyPatch {
        rate_limit_max: Patch::Set(6),
        ..patch()
    };
    assert_invalid(
        keys::update(&kw, &ann, Reach::Role, key.key.id, raised).await,
        "rate_limit_window",
    );
}

/// A [`webhooks::Sender`] that answers from a script and records what it was asked to send.
struct ScriptedSender {
    answers: std::sync::Mutex<Vec<Option<u16>>>,
    sent: std::sync::Mutex<Vec<(Uuid, keyward_domain::EventType)>>,
    clock: Arc<ManualClock>,
}

#[async_trait::async_trait]
impl webhooks::Sender for ScriptedSender {
    async fn send(
        &self,
        endpoint: &keyward_domain::WebhookEndpoint,
        delivery: &keyward_domain::Delivery,
    ) -> keyward_domain::event::Attempt {
        self.sent
            .lock()
            .unwrap()
            .push((endpoint.id, delivery.event_type));
        let status = self.answers.lock().unwrap().pop().flatten();
        keyward_domain::event::Attempt {
            at: keyward_domain::Clock::now(&*self.clock),
            response_status: status,
            response_body: None,
            duration_ms: 3,
            error: status.is_none().then(|| "refused".to_owned()),
        }
    }
}

/// The delivery loop's decisions: a failure waits for the schedule's next try, a success ends
/// the delivery, the last failure fails it; a disabled endpoint is sent nothing (its deliveries
/// fail), except a test event, which is sent because someone asked for it.
#[tokio::test]
async fn deliveries_follow_the_schedule_and_skip_disabled_endpoints() {
    use keyward_domain::{Clock as _, DeliveryStatus, EventType};
    let mut settings = Settings::default();
    settings.webhooks.allow_private = true;
    settings.webhooks.retry_schedule = vec![Duration::seconds(10), Duration::seconds(20)];
    let (kw, clock) = kw_with(settings).await;
    let t = new_tenant(&kw, "acme").await;
    let tadmin = tenant_admin_of(&kw, &t).await;
    let hook = |enabled| webhooks::NewWebhook {
        tenant_id: None,
        url: "http://127.0.0.1:9/hook".into(),
        events: Some(strings(&["key.created"])),
        enabled: Some(enabled),
        description: None,
    };
    let on = webhooks::create(&kw, &tadmin, hook(true)).await.unwrap();
    let off = webhooks::create(&kw, &tadmin, hook(false)).await.unwrap();
    let sender = ScriptedSender {
        // Popped from the end: refused, 500, then 200.
        answers: std::sync::Mutex::new(vec![Some(200), Some(500), None]),
        sent: Default::default(),
        clock: clock.clone(),
    };
    key_with(&kw, &tadmin, &[]).await;
    let deliveries = |id| {
        let kw = &kw;
        let caller = &tadmin;
        async move {
            webhooks::deliveries(kw, caller, id, 10, None)
                .await
                .unwrap()
                .items
        }
    };
    // The disabled endpoint got nothing queued; the enabled one a pending delivery.
    assert!(deliveries(off.id).await.is_empty());
    assert_eq!(webhooks::deliver_due(&kw, &sender).await.unwrap(), 1);
    let d = &deliveries(on.id).await[0];
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Pending, 1));
    assert_eq!(d.error.as_deref(), Some("refused"));
    let wait = d.next_attempt_at.unwrap() - clock.now();
    assert!(
        wait >= Duration::seconds(8) && wait <= Duration::seconds(12),
        "{wait}"
    );
    // Not before its time.
    assert_eq!(webhooks::deliver_due(&kw, &sender).await.unwrap(), 0);
    clock.advance(Duration::seconds(13));
    webhooks::deliver_due(&kw, &sender).await.unwrap();
    let d = &deliveries(on.id).await[0];
    assert_eq!(
        (d.status, d.attempts, d.response_status),
        (DeliveryStatus::Pending, 2, Some(500))
    );
    clock.advance(Duration::seconds(25));
    webhooks::deliver_due(&kw, &sender).await.unwrap();
    let d = &deliveries(on.id).await[0];
    assert_eq!(
        (d.status, d.attempts, d.next_attempt_at),
        (DeliveryStatus::Succeeded, 3, None)
    );
    // A test event to the disabled endpoint is sent all the same.
    webhooks::send_test(&kw, &tadmin, off.id).await.unwrap();
    sender.answers.lock().unwrap().push(Some(204));
    assert_eq!(webhooks::deliver_due(&kw, &sender).await.unwrap(), 1);
    assert_eq!(
        deliveries(off.id).await[0].status,
        DeliveryStatus::Succeeded
    );
    let sent = sender.sent.lock().unwrap().clone();
    assert_eq!(
        sent,
        [
            (on.id, EventType::KeyCreated),
            (on.id, EventType::KeyCreated),
            (on.id, EventType::KeyCreated),
            (off.id, EventType::WebhookTest)
        ]
    );
    // Disabled after the event was queued: the delivery fails without a send.
    let again = webhooks::create(&kw, &tadmin, hook(true)).await.unwrap();
    key_with(&kw, &tadmin, &[]).await;
    let patch = webhooks::WebhookPatch {
        enabled: Some(false),
        ..Default::default()
    };
    webhooks::update(&kw, &tadmin, again.id, patch)
        .await
        .unwrap();
    webhooks::deliver_due(&kw, &sender).await.unwrap();
    let d = &deliveries(again.id).await[0];
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(d.error.as_deref(), Some("the endpoint is disabled"));
    let sent = sender.sent.lock().unwrap().clone();
    assert!(
        !sent.iter().any(|(id, _)| *id == again.id),
        "nothing was sent to the disabled endpoint: {sent:?}"
    );
    assert_eq!(
        sent.last(),
        Some(&(on.id, EventType::KeyCreated)),
        "the enabled one heard it"
    );
}
