//! The conformance suite: what every [`Store`] backend must do, written once.
//!
//! A backend runs it with [`conformance_tests!`](crate::conformance_tests), giving an async
//! factory that returns a fresh, empty store (`Box<dyn Store>`) for each case. Cases use fixed
//! times, never the wall clock, and panic with a message naming the broken rule.

// Test code (compiled into the library so that every backend's tests run it): a broken rule is a
// failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyward_domain::{
    Actor, ActorType, ApiKey, AuditAction, AuditEntry, ConsoleSession, Event, EventType, KeyPrefix,
    KeyStatus, PlainKey, Role, Scopes, Tenant, User, WebhookEndpoint, WebhookSecret,
};
use serde_json::json;
use std::sync::Arc;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{
    AuditQuery, CreditSpend, Cursor, EndSessions, KeyCounts, KeyQuery, KeyUse, KeysOf, Store,
    StoreError, UsageBatch, UsageCount, UserQuery,
};
use keyward_domain::ratelimit::KeyRateLimit;
use keyward_domain::VerifyCode;

/// Generates one `#[tokio::test]` per conformance case. `$factory` is an async fn (or closure)
/// returning a fresh `Box<dyn Store>`.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            tenant_round_trip_and_slug_conflicts,
            tenants_page_in_creation_order,
            tenant_delete_refuses_active_keys_unless_forced,
            users_round_trip_and_email_conflict,
            users_list_by_tenant_in_pages,
            console_sessions_round_trip_touch_and_end,
            key_round_trip_by_id_and_digest,
            duplicate_digest_writes_nothing,
            import_is_all_or_nothing,
            list_keys_filters_and_pages,
            update_key_only_while_not_revoked,
            revoke_with_grace_then_for_good,
            rotate_is_all_or_nothing,
            a_keys_end_of_life_only_moves_earlier,
            key_uses_only_move_forward,
            usage_counters_add_up_and_summarise,
            a_large_usage_batch_is_written_whole,
            a_usage_batch_sent_again_is_counted_once,
            credits_round_trip_and_spend_exactly,
            audit_filters_and_pages,
            events_reach_the_endpoints_that_hear_them,
            deliveries_are_leased_one_at_a_time,
            notices_are_sent_once_per_key_and_name,
            owner_limits_are_read_with_each_key_and_spent_with_its_credits,
            cluster_windows_never_lease_more_than_is_left,
            a_disabled_users_keys_say_so_and_its_sessions_end,
            deleting_a_user_revokes_its_keys_and_frees_its_email,
            the_last_active_admin_stays_one,
            users_list_by_role_status_and_email_prefix,
            api_sessions_round_trip_and_end_once,
            a_users_sessions_of_each_kind_are_capped_and_the_oldest_end_first,
            imports_skip_known_keys_and_shapes_are_kept_once,
            every_table_is_in_the_copy_list,
            rows_are_read_in_key_pages_and_written_whole,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = ($factory)().await;
                $crate::conformance::$case(&*store).await;
            }
        )*
    };
}

const T0: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

fn actor() -> Actor {
    Actor {
        id: "tester".into(),
        kind: ActorType::Jwt,
        user_id: Some(Uuid::from_u128(0xA11CE)),
        source_ip: Some("192.0.2.1".into()),
        request_id: Some("req-1".into()),
    }
}

fn audit(action: AuditAction, id: impl ToString, at: OffsetDateTime) -> AuditEntry {
    actor().entry(at, action, id)
}

fn tenant(n: u128, slug: &str, at: OffsetDateTime) -> Tenant {
    Tenant {
        id: Uuid::from_u128(0x7E00 + n),
        name: format!("Tenant {n}"),
        slug: slug.into(),
        key_prefix: None,
        metadata: json!({"n": n as u64}),
        policy: keyward_domain::TenantPolicy::default(),
        created_at: at,
        updated_at: at,
    }
}

fn user(n: u128, email: &str, tenant_id: Option<Uuid>) -> User {
    User {
        id: Uuid::from_u128(0x5E00 + n),
        email: email.into(),
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        role: Role::Member,
        tenant_id,
        created_at: T0,
        updated_at: T0,
        disabled_at: None,
    }
}

fn key(n: u8, tenant_id: Option<Uuid>, owner_id: Uuid, at: OffsetDateTime) -> ApiKey {
    let plain = PlainKey::from_secret_bytes(&KeyPrefix::default_prefix(), [n; 32]);
    ApiKey {
        id: Uuid::from_u128(0x4E00 + u128::from(n)),
        tenant_id,
        owner_id,
        name: Some(format!("key {n}")),
        prefix: "kw".into(),
        start: plain.start(),
        digest: plain.digest(),
        scopes: Scopes::parse(&["keyward:read", "orders:write"]).unwrap(),
        metadata: json!({"env": "test", "n": n}),
        rate_limit: Some(KeyRateLimit::stored(100, "1 minute").unwrap()),
        expires_at: None,
        created_at: at,
        updated_at: at,
        revoked_at: None,
        last_used_at: None,
        credits: None,
        enabled: true,
        // Half of them with an allowlist, so that every round trip of a key covers it.
        allowed_ips: if n % 2 == 1 {
            keyward_domain::IpAllowlist::parse(&["203.0.113.0/24", "2001:db8::/32"]).unwrap()
        } else {
            keyward_domain::IpAllowlist::anywhere()
        },
        shared: keyward_domain::SharedLimits::default(),
    }
}

async fn audit_actions(store: &dyn Store) -> Vec<String> {
    let q = AuditQuery {
        limit: 1000,
        ..AuditQuery::default()
    };
    store
        .list_audit(&q)
        .await
        .expect("list audit")
        .into_iter()
        .map(|e| e.action)
        .collect()
}

pub async fn tenant_round_trip_and_slug_conflicts(store: &dyn Store) {
    let a = tenant(1, "acme", T0);
    store
        .create_tenant(&a, &audit(AuditAction::TenantCreate, a.id, T0))
        .await
        .expect("create");
    assert_eq!(store.get_tenant(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.get_tenant_by_slug("acme").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.get_tenant(Uuid::from_u128(1)).await.unwrap(), None);

    let mut dup = tenant(2, "acme", T0);
    let err = store
        .create_tenant(&dup, &audit(AuditAction::TenantCreate, dup.id, T0))
        .await
        .expect_err("a taken slug must be refused");
    assert_eq!(err, StoreError::Conflict("slug".into()));

    dup.slug = "globex".into();
    store
        .create_tenant(&dup, &audit(AuditAction::TenantCreate, dup.id, T0))
        .await
        .unwrap();
    let mut renamed = a.clone();
    renamed.slug = "globex".into();
    assert_eq!(
        store
            .update_tenant(&renamed, &audit(AuditAction::TenantUpdate, a.id, T0))
            .await,
        Err(StoreError::Conflict("slug".into()))
    );

    renamed.slug = "acme-corp".into();
    renamed.name = "Acme Corp".into();
    renamed.key_prefix = Some("acme".into());
    renamed.updated_at = T0 + Duration::minutes(1);
    store
        .update_tenant(&renamed, &audit(AuditAction::TenantUpdate, a.id, T0))
        .await
        .unwrap();
    assert_eq!(store.get_tenant(a.id).await.unwrap(), Some(renamed));

    let ghost = tenant(9, "ghost", T0);
    assert_eq!(
        store
            .update_tenant(&ghost, &audit(AuditAction::TenantUpdate, ghost.id, T0))
            .await,
        Err(StoreError::NotFound)
    );
    // Only the writes that happened left an audit entry.
    assert_eq!(
        audit_actions(store).await,
        ["tenant.create", "tenant.create", "tenant.update"]
    );
}

pub async fn tenants_page_in_creation_order(store: &dyn Store) {
    // Two share a creation time, so the id breaks the tie.
    let times = [
        T0,
        T0 + Duration::seconds(1),
        T0 + Duration::seconds(1),
        T0 + Duration::seconds(2),
        T0 + Duration::seconds(3),
    ];
    for (i, at) in times.iter().enumerate() {
        let t = tenant(i as u128, &format!("t{i}"), *at);
        store
            .create_tenant(&t, &audit(AuditAction::TenantCreate, t.id, *at))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_tenants(after, 2).await.unwrap();
        assert!(page.len() <= 2, "limit is honoured");
        let Some(last) = page.last() else { break };
        after = Some(Cursor {
            created_at: last.created_at,
            id: last.id,
        });
        seen.extend(page.iter().map(|t| t.slug.clone()));
    }
    assert_eq!(seen, ["t0", "t1", "t2", "t3", "t4"]);
}

pub async fn tenant_delete_refuses_active_keys_unless_forced(store: &dyn Store) {
    let t = tenant(1, "acme", T0);
    store
        .create_tenant(&t, &audit(AuditAction::TenantCreate, t.id, T0))
        .await
        .unwrap();
    let u = user(1, "ann@example.com", Some(t.id));
    store
        .create_user(&u, &audit(AuditAction::UserCreate, u.id, T0))
        .await
        .unwrap();
    let live = key(1, Some(t.id), u.id, T0);
    let mut expired = key(2, Some(t.id), u.id, T0);
    expired.expires_at = Some(T0 + Duration::minutes(5));
    for k in [&live, &expired] {
        store
            .create_key(k, &audit(AuditAction::ApiKeyCreate, k.id, T0))
            .await
            .unwrap();
    }
    let now = T0 + Duration::hours(1);
    let refused = store
        .delete_tenant(
            t.id,
            false,
            now,
            &audit(AuditAction::TenantDelete, t.id, now),
        )
        .await;
    assert_eq!(refused, Err(StoreError::Conflict("active keys".into())));
    assert!(
        store.get_tenant(t.id).await.unwrap().is_some(),
        "nothing deleted"
    );
    assert_eq!(
        store.get_key(live.id).await.unwrap().unwrap().status(now),
        KeyStatus::Active
    );
    assert!(!audit_actions(store)
        .await
        .contains(&"tenant.delete".to_string()));

    let mut revoked = store
        .delete_tenant(
            t.id,
            true,
            now,
            &audit(AuditAction::TenantDelete, t.id, now),
        )
        .await
        .expect("forced delete");
    revoked.sort();
    assert_eq!(revoked, vec![live.id, expired.id]);
    assert_eq!(store.get_tenant(t.id).await.unwrap(), None);
    let k = store.get_key(live.id).await.unwrap().unwrap();
    assert_eq!(k.status(now), KeyStatus::Revoked);
    assert_eq!(k.tenant_id, Some(t.id), "keys keep their tenant as history");
    let u = store.get_user(u.id).await.unwrap().unwrap();
    assert_eq!(u.tenant_id, None, "users outlive their tenant");
    assert_eq!(
        store
            .delete_tenant(
                t.id,
                true,
                now,
                &audit(AuditAction::TenantDelete, t.id, now)
            )
            .await,
        Err(StoreError::NotFound)
    );

    // A tenant whose keys are all expired or revoked needs no force.
    let t2 = tenant(2, "globex", T0);
    store
        .create_tenant(&t2, &audit(AuditAction::TenantCreate, t2.id, T0))
        .await
        .unwrap();
    let mut old = key(3, Some(t2.id), u.id, T0);
    old.expires_at = Some(T0 + Duration::minutes(1));
    store
        .create_key(&old, &audit(AuditAction::ApiKeyCreate, old.id, T0))
        .await
        .unwrap();
    assert_eq!(
        store
            .delete_tenant(
                t2.id,
                false,
                now,
                &audit(AuditAction::TenantDelete, t2.id, now)
            )
            .await,
        Ok(vec![old.id])
    );
}

pub async fn users_round_trip_and_email_conflict(store: &dyn Store) {
    assert_eq!(store.count_users().await.unwrap(), 0);
    let t = tenant(1, "acme", T0);
    store
        .create_tenant(&t, &audit(AuditAction::TenantCreate, t.id, T0))
        .await
        .unwrap();
    let mut u = user(1, "ann@example.com", Some(t.id));
    u.role = Role::TenantAdmin;
    store
        .create_user(&u, &audit(AuditAction::UserCreate, u.id, T0))
        .await
        .unwrap();
    assert_eq!(store.get_user(u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(
        store.get_user_by_email("ann@example.com").await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(
        store.get_user_by_email("bob@example.com").await.unwrap(),
        None
    );
    let dup = user(2, "ann@example.com", None);
    assert_eq!(
        store
            .create_user(&dup, &audit(AuditAction::UserCreate, dup.id, T0))
            .await,
        Err(StoreError::Conflict("email".into()))
    );
    let admin = User {
        role: Role::Admin,
        ..user(3, "root@example.com", None)
    };
    store
        .create_user(&admin, &audit(AuditAction::UserCreate, admin.id, T0))
        .await
        .unwrap();
    assert_eq!(store.count_users().await.unwrap(), 2);
    assert_eq!(store.get_user(admin.id).await.unwrap(), Some(admin));
}

pub async fn users_list_by_tenant_in_pages(store: &dyn Store) {
    let acme = tenant(1, "acme", T0);
    let other = tenant(2, "other", T0);
    for t in [&acme, &other] {
        store
            .create_tenant(t, &audit(AuditAction::TenantCreate, t.id, T0))
            .await
            .unwrap();
    }
    // Created out of id order, so that the order proven is (created_at, id).
    let people = [
        (5, "e@example.com", Some(acme.id), 0),
        (1, "a@example.com", Some(acme.id), 1),
        (3, "c@example.com", None, 1),
        (2, "b@example.com", Some(other.id), 2),
        (4, "d@example.com", Some(acme.id), 2),
    ];
    for (n, email, tenant_id, secs) in people {
        let at = T0 + Duration::seconds(secs);
        let u = User {
            created_at: at,
            updated_at: at,
            ..user(n, email, tenant_id)
        };
        store
            .create_user(&u, &audit(AuditAction::UserCreate, u.id, at))
            .await
            .unwrap();
    }
    let all_pages = |tenant_id: Option<Uuid>| async move {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let query = crate::UserQuery {
                tenant_id,
                after,
                limit: 2,
                ..Default::default()
            };
            let page = store.list_users(&query).await.unwrap();
            assert!(page.len() <= 2, "limit is honoured");
            let Some(last) = page.last() else { break };
            after = Some(Cursor {
                created_at: last.created_at,
                id: last.id,
            });
            seen.extend(page.iter().map(|u| u.email.clone()));
        }
        seen
    };
    assert_eq!(
        all_pages(None).await,
        [
            "e@example.com",
            "a@example.com",
            "c@example.com",
            "b@example.com",
            "d@example.com"
        ]
    );
    assert_eq!(
        all_pages(Some(acme.id)).await,
        ["e@example.com", "a@example.com", "d@example.com"]
    );
    assert_eq!(
        all_pages(Some(Uuid::from_u128(0xDEAD))).await,
        Vec::<String>::new()
    );
}

pub async fn console_sessions_round_trip_touch_and_end(store: &dyn Store) {
    let u = user(1, "ann@example.com", None);
    store
        .create_user(&u, &audit(AuditAction::UserCreate, u.id, T0))
        .await
        .unwrap();
    let session = ConsoleSession {
        digest: [7; 32],
        user_id: u.id,
        csrf: "csrf-token".into(),
        created_at: T0,
        last_seen_at: T0,
        expires_at: T0 + Duration::hours(12),
    };
    store
        .create_session(&session, &audit(AuditAction::AuthLogin, u.id, T0))
        .await
        .unwrap();
    assert_eq!(
        store.get_session(&[7; 32]).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(store.get_session(&[8; 32]).await.unwrap(), None);
    store
        .touch_session(&[7; 32], T0 + Duration::minutes(5))
        .await
        .unwrap();
    store.touch_session(&[7; 32], T0).await.unwrap();
    let touched = store.get_session(&[7; 32]).await.unwrap().unwrap();
    assert_eq!(
        touched.last_seen_at,
        T0 + Duration::minutes(5),
        "last_seen_at never moves back"
    );
    let logout = audit(AuditAction::AuthLogout, u.id, T0 + Duration::minutes(6));
    store.delete_session(&[7; 32], Some(&logout)).await.unwrap();
    assert_eq!(store.get_session(&[7; 32]).await.unwrap(), None);
    assert_eq!(
        store.delete_session(&[7; 32], Some(&logout)).await,
        Err(StoreError::NotFound)
    );
    let actions = audit_actions(store).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "auth.logout").count(),
        1,
        "the sign-out is audited once: {actions:?}"
    );
}

pub async fn key_round_trip_by_id_and_digest(store: &dyn Store) {
    let owner = Uuid::from_u128(77);
    let mut k = key(1, Some(Uuid::from_u128(5)), owner, T0);
    k.expires_at = Some(T0 + Duration::days(30));
    k.metadata = json!({"nested": {"a": [1, 2, 3]}, "unicode": "é✓"});
    store
        .create_key(&k, &audit(AuditAction::ApiKeyCreate, k.id, T0))
        .await
        .unwrap();
    assert_eq!(store.get_key(k.id).await.unwrap(), Some(k.clone()));
    assert_eq!(
        store.get_key_by_digest(&k.digest).await.unwrap(),
        Some(k.clone())
    );
    let other = key(2, None, owner, T0);
    assert_eq!(store.get_key_by_digest(&other.digest).await.unwrap(), None);
    assert_eq!(store.get_key(other.id).await.unwrap(), None);

    // A key without tenant, name, limits or scopes survives too.
    let bare = ApiKey {
        tenant_id: None,
        name: None,
        scopes: Scopes::none(),
        metadata: json!({}),
        rate_limit: None,
        ..other
    };
    store
        .create_key(&bare, &audit(AuditAction::ApiKeyCreate, bare.id, T0))
        .await
        .unwrap();
    assert_eq!(store.get_key(bare.id).await.unwrap(), Some(bare));
}

pub async fn duplicate_digest_writes_nothing(store: &dyn Store) {
    let k = key(1, None, Uuid::from_u128(77), T0);
    store
        .create_key(&k, &audit(AuditAction::ApiKeyCreate, k.id, T0))
        .await
        .unwrap();
    let twin = ApiKey {
        id: Uuid::from_u128(999),
        ..k.clone()
    };
    let mut entry = audit(AuditAction::ApiKeyCreate, twin.id, T0);
    entry.action = "api_key.create.twin".into();
    assert_eq!(
        store.create_key(&twin, &entry).await,
        Err(StoreError::Conflict("digest".into()))
    );
    assert_eq!(store.get_key(twin.id).await.unwrap(), None);
    assert_eq!(
        audit_actions(store).await,
        ["api_key.create"],
        "a refused write leaves no audit entry"
    );
}

pub async fn import_is_all_or_nothing(store: &dyn Store) {
    let owner = Uuid::from_u128(7);
    let batch: Vec<ApiKey> = (1..=3).map(|n| key(n, None, owner, T0)).collect();
    let import = audit(AuditAction::ApiKeyImport, "3", T0);
    store.import_keys(&batch, &import).await.unwrap();
    for k in &batch {
        assert_eq!(
            store.get_key_by_digest(&k.digest).await.unwrap().as_ref(),
            Some(k)
        );
    }
    // A batch with one existing digest writes none of its keys and no audit entry.
    let mut clash: Vec<ApiKey> = (4..=5).map(|n| key(n, None, owner, T0)).collect();
    let mut dup = key(1, None, owner, T0);
    dup.id = Uuid::from_u128(0xD0);
    clash.push(dup);
    let err = store.import_keys(&clash, &import).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(store.get_key(clash[0].id).await.unwrap().is_none());
    assert_eq!(audit_actions(store).await, ["api_key.import"]);
}

pub async fn list_keys_filters_and_pages(store: &dyn Store) {
    let (ta, tb) = (Uuid::from_u128(0xA), Uuid::from_u128(0xB));
    let (ann, bob) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let now = T0 + Duration::days(100);
    let specs: [(u8, Uuid, Uuid); 6] = [
        (1, ta, ann),
        (2, ta, ann),
        (3, ta, bob),
        (4, tb, bob),
        (5, tb, bob),
        (6, ta, ann),
    ];
    for (i, (n, t, o)) in specs.iter().enumerate() {
        let mut k = key(*n, Some(*t), *o, T0 + Duration::minutes(i as i64));
        match n {
            2 => k.expires_at = Some(T0 + Duration::days(1)),
            3 => k.revoked_at = Some(T0 + Duration::days(2)),
            // Revoked, but only at the end of a grace period that has not passed yet.
            4 => k.revoked_at = Some(now + Duration::hours(1)),
            5 => k.last_used_at = Some(now - Duration::days(1)),
            6 => k.last_used_at = Some(now - Duration::days(95)),
            _ => {}
        }
        store
            .create_key(&k, &audit(AuditAction::ApiKeyCreate, k.id, k.created_at))
            .await
            .unwrap();
    }
    let ids = |keys: Vec<ApiKey>| -> Vec<u128> {
        keys.into_iter().map(|k| k.id.as_u128() - 0x4E00).collect()
    };
    let q = |f: &dyn Fn(&mut KeyQuery)| {
        let mut q = KeyQuery::new(now, 100);
        f(&mut q);
        q
    };
    let all = store.list_keys(&q(&|_| {})).await.unwrap();
    assert_eq!(ids(all), [1, 2, 3, 4, 5, 6], "creation order");
    let by_tenant = store
        .list_keys(&q(&|q| q.of.tenant_id = Some(ta)))
        .await
        .unwrap();
    assert_eq!(ids(by_tenant), [1, 2, 3, 6]);
    let by_owner = store
        .list_keys(&q(&|q| {
            q.of.tenant_id = Some(ta);
            q.of.owner_id = Some(bob)
        }))
        .await
        .unwrap();
    assert_eq!(ids(by_owner), [3]);
    let active = store
        .list_keys(&q(&|q| q.status = Some(KeyStatus::Active)))
        .await
        .unwrap();
    assert_eq!(ids(active), [1, 4, 5, 6]);
    let expired = store
        .list_keys(&q(&|q| q.status = Some(KeyStatus::Expired)))
        .await
        .unwrap();
    assert_eq!(ids(expired), [2]);
    let revoked = store
        .list_keys(&q(&|q| q.status = Some(KeyStatus::Revoked)))
        .await
        .unwrap();
    assert_eq!(ids(revoked), [3]);
    // Dormant for 90 days: never used and created 100 days ago, or last used 95 days ago.
    let dormant = store
        .list_keys(&q(&|q| q.dormant_before = Some(now - Duration::days(90))))
        .await
        .unwrap();
    assert_eq!(ids(dormant), [1, 2, 4, 6]);
    let live = store
        .list_keys(&q(&|q| q.exclude_revoked = true))
        .await
        .unwrap();
    assert_eq!(
        ids(live),
        [1, 2, 4, 5, 6],
        "a key in its grace period is live"
    );

    let cutoff = now - Duration::days(90);
    let everything = store
        .count_keys(KeysOf::default(), now, cutoff)
        .await
        .unwrap();
    assert_eq!(
        everything,
        KeyCounts {
            total: 6,
            active: 4,
            expired: 1,
            revoked: 1,
            dormant: 4
        }
    );
    let of_ta = KeysOf {
        tenant_id: Some(ta),
        owner_id: None,
    };
    let tenant_a = store.count_keys(of_ta, now, cutoff).await.unwrap();
    assert_eq!(
        tenant_a,
        KeyCounts {
            total: 4,
            active: 2,
            expired: 1,
            revoked: 1,
            dormant: 3
        }
    );
    let of_nobody = KeysOf {
        tenant_id: None,
        owner_id: Some(Uuid::from_u128(99)),
    };
    assert_eq!(
        store.count_keys(of_nobody, now, cutoff).await.unwrap(),
        KeyCounts::default()
    );

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_keys(&q(&|q| {
                q.limit = 4;
                q.after = after
            }))
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(Cursor {
            created_at: last.created_at,
            id: last.id,
        });
        seen.extend(ids(page));
    }
    assert_eq!(seen, [1, 2, 3, 4, 5, 6]);
}

pub async fn update_key_only_while_not_revoked(store: &dyn Store) {
    let k = key(1, None, Uuid::from_u128(7), T0);
    store
        .create_key(&k, &audit(AuditAction::ApiKeyCreate, k.id, T0))
        .await
        .unwrap();
    let now = T0 + Duration::hours(1);
    let changed = ApiKey {
        name: Some("renamed".into()),
        scopes: Scopes::parse(&["a"]).unwrap(),
        metadata: json!({"v": 2}),
        rate_limit: Some(KeyRateLimit::set(5, "10 seconds").unwrap()),
        expires_at: Some(now + Duration::days(1)),
        updated_at: now,
        // Fields update_key must not touch:
        prefix: "zz".into(),
        last_used_at: Some(now),
        ..k.clone()
    };
    store
        .update_key(&changed, now, &audit(AuditAction::ApiKeyUpdate, k.id, now))
        .await
        .unwrap();
    let stored = store.get_key(k.id).await.unwrap().unwrap();
    assert_eq!(
        stored,
        ApiKey {
            prefix: "kw".into(),
            last_used_at: None,
            credits: None,
            ..changed.clone()
        }
    );
    store
        .revoke_key(k.id, now, now, &audit(AuditAction::ApiKeyRevoke, k.id, now))
        .await
        .unwrap();
    assert_eq!(
        store
            .update_key(&changed, now, &audit(AuditAction::ApiKeyUpdate, k.id, now))
            .await,
        Err(StoreError::NotFound)
    );
    let ghost = key(2, None, Uuid::from_u128(7), T0);
    assert_eq!(
        store
            .update_key(
                &ghost,
                now,
                &audit(AuditAction::ApiKeyUpdate, ghost.id, now)
            )
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        audit_actions(store).await,
        ["api_key.create", "api_key.update", "api_key.revoke"]
    );
}

pub async fn revoke_with_grace_then_for_good(store: &dyn Store) {
    let k = key(1, None, Uuid::from_u128(7), T0);
    store
        .create_key(&k, &audit(AuditAction::ApiKeyCreate, k.id, T0))
        .await
        .unwrap();
    let grace_end = T0 + Duration::minutes(10);
    let r = store
        .revoke_key(
            k.id,
            grace_end,
            T0,
            &audit(AuditAction::ApiKeyRevoke, k.id, T0),
        )
        .await
        .unwrap();
    assert_eq!(r.revoked_at, Some(grace_end));
    assert_eq!(r.status(T0), KeyStatus::Active, "still valid during grace");
    assert_eq!(r.status(grace_end), KeyStatus::Revoked);

    // During the grace period the key can still be revoked at once.
    let later = T0 + Duration::minutes(1);
    let r = store
        .revoke_key(
            k.id,
            later,
            later,
            &audit(AuditAction::ApiKeyRevoke, k.id, later),
        )
        .await
        .unwrap();
    assert_eq!(r.revoked_at, Some(later));
    assert_eq!(r.updated_at, later);
    assert_eq!(
        store
            .revoke_key(
                k.id,
                later,
                later,
                &audit(AuditAction::ApiKeyRevoke, k.id, later)
            )
            .await,
        Err(StoreError::NotFound),
        "already revoked"
    );
    assert_eq!(
        store
            .revoke_key(
                Uuid::from_u128(1),
                later,
                later,
                &audit(AuditAction::ApiKeyRevoke, 1, later)
            )
            .await,
        Err(StoreError::NotFound),
        "unknown"
    );
}

pub async fn rotate_is_all_or_nothing(store: &dyn Store) {
    let old = key(1, None, Uuid::from_u128(7), T0);
    store
        .create_key(&old, &audit(AuditAction::ApiKeyCreate, old.id, T0))
        .await
        .unwrap();
    let now = T0 + Duration::hours(1);
    let new = key(2, None, Uuid::from_u128(7), now);
    store
        .rotate_key(
            old.id,
            now + Duration::minutes(5),
            &new,
            now,
            &audit(AuditAction::ApiKeyRotate, old.id, now),
        )
        .await
        .unwrap();
    let o = store.get_key(old.id).await.unwrap().unwrap();
    assert_eq!(o.revoked_at, Some(now + Duration::minutes(5)));
    assert_eq!(store.get_key(new.id).await.unwrap(), Some(new.clone()));

    // Rotating a revoked key fails and writes neither the new key nor an audit entry.
    let later = now + Duration::hours(1);
    let newer = key(3, None, Uuid::from_u128(7), later);
    assert_eq!(
        store
            .rotate_key(
                old.id,
                later,
                &newer,
                later,
                &audit(AuditAction::ApiKeyRotate, old.id, later)
            )
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.get_key(newer.id).await.unwrap(), None);
    // A new key whose digest exists rolls back the revocation of the old one.
    let clash = ApiKey {
        id: Uuid::from_u128(0xC1A5),
        ..key(2, None, Uuid::from_u128(7), later)
    };
    assert_eq!(
        store
            .rotate_key(
                new.id,
                later,
                &clash,
                later,
                &audit(AuditAction::ApiKeyRotate, new.id, later)
            )
            .await,
        Err(StoreError::Conflict("digest".into()))
    );
    assert_eq!(
        store.get_key(new.id).await.unwrap().unwrap().revoked_at,
        None
    );
    assert_eq!(
        audit_actions(store).await,
        ["api_key.create", "api_key.rotate"]
    );
}

/// However a key is revoked or rotated again, a `revoked_at` once set never moves later (a grace
/// period cannot be renewed by rotating the old key again).
pub async fn a_keys_end_of_life_only_moves_earlier(store: &dyn Store) {
    let old = key(1, None, Uuid::from_u128(7), T0);
    store
        .create_key(&old, &audit(AuditAction::ApiKeyCreate, old.id, T0))
        .await
        .unwrap();
    let first_end = T0 + Duration::minutes(1);
    let successor = key(2, None, Uuid::from_u128(7), T0);
    store
        .rotate_key(
            old.id,
            first_end,
            &successor,
            T0,
            &audit(AuditAction::ApiKeyRotate, old.id, T0),
        )
        .await
        .unwrap();
    let later = T0 + Duration::seconds(30);
    let second = key(3, None, Uuid::from_u128(7), later);
    store
        .rotate_key(
            old.id,
            later + Duration::days(7),
            &second,
            later,
            &audit(AuditAction::ApiKeyRotate, old.id, later),
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_key(old.id).await.unwrap().unwrap().revoked_at,
        Some(first_end),
        "a second rotation leaves the earlier end"
    );
    let r = store
        .revoke_key(
            old.id,
            later + Duration::hours(1),
            later,
            &audit(AuditAction::ApiKeyRevoke, old.id, later),
        )
        .await
        .unwrap();
    assert_eq!(
        r.revoked_at,
        Some(first_end),
        "a later revocation is no revocation"
    );
    let r = store
        .revoke_key(
            old.id,
            later,
            later,
            &audit(AuditAction::ApiKeyRevoke, old.id, later),
        )
        .await
        .unwrap();
    assert_eq!(r.revoked_at, Some(later), "an earlier one wins");
    // Two revocations racing: the one that writes second read the clock first. It finds the key
    // revoked, not in a grace period, and writes nothing.
    let raced = key(4, None, Uuid::from_u128(7), T0);
    store
        .create_key(&raced, &audit(AuditAction::ApiKeyCreate, raced.id, T0))
        .await
        .unwrap();
    let first = T0 + Duration::milliseconds(5);
    store
        .revoke_key(
            raced.id,
            first,
            first,
            &audit(AuditAction::ApiKeyRevoke, raced.id, first),
        )
        .await
        .unwrap();
    let second = T0 + Duration::milliseconds(2);
    assert_eq!(
        store
            .revoke_key(
                raced.id,
                second,
                second,
                &audit(AuditAction::ApiKeyRevoke, raced.id, second)
            )
            .await,
        Err(StoreError::NotFound)
    );
    // Two rotations racing without a grace period: likewise, one wins.
    let rotated = key(5, None, Uuid::from_u128(7), T0);
    store
        .create_key(&rotated, &audit(AuditAction::ApiKeyCreate, rotated.id, T0))
        .await
        .unwrap();
    let successor = key(6, None, Uuid::from_u128(7), first);
    store
        .rotate_key(
            rotated.id,
            first,
            &successor,
            first,
            &audit(AuditAction::ApiKeyRotate, rotated.id, first),
        )
        .await
        .unwrap();
    let other = key(7, None, Uuid::from_u128(7), second);
    assert_eq!(
        store
            .rotate_key(
                rotated.id,
                second,
                &other,
                second,
                &audit(AuditAction::ApiKeyRotate, rotated.id, second)
            )
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.get_key(other.id).await.unwrap(),
        None,
        "no second successor"
    );
    let revocations = audit_actions(store)
        .await
        .iter()
        .filter(|a| *a == "api_key.revoke")
        .count();
    assert_eq!(
        revocations, 3,
        "the racing second revocation wrote no audit entry"
    );
}

pub async fn key_uses_only_move_forward(store: &dyn Store) {
    let a = key(1, None, Uuid::from_u128(7), T0);
    let b = key(2, None, Uuid::from_u128(7), T0);
    for k in [&a, &b] {
        store
            .create_key(k, &audit(AuditAction::ApiKeyCreate, k.id, T0))
            .await
            .unwrap();
    }
    let t1 = T0 + Duration::minutes(1);
    let t2 = T0 + Duration::minutes(2);
    let uses = |list: &[(Uuid, OffsetDateTime)]| {
        Arc::new(UsageBatch {
            last_used: list
                .iter()
                .map(|&(key_id, at)| KeyUse { key_id, at })
                .collect(),
            ..UsageBatch::new(T0)
        })
    };
    store
        .record_usage(uses(&[(a.id, t2), (a.id, t1), (Uuid::from_u128(404), t2)]))
        .await
        .expect("unknown ids are ignored");
    store
        .record_usage(Arc::new(UsageBatch::new(T0)))
        .await
        .unwrap();
    assert_eq!(
        store.get_key(a.id).await.unwrap().unwrap().last_used_at,
        Some(t2)
    );
    assert_eq!(
        store.get_key(b.id).await.unwrap().unwrap().last_used_at,
        None
    );
    store.record_usage(uses(&[(a.id, t1)])).await.unwrap();
    assert_eq!(
        store.get_key(a.id).await.unwrap().unwrap().last_used_at,
        Some(t2),
        "an older use never moves last_used_at back"
    );
}

/// Key 1 of `owner`, stored at `T0` (a fixture, also for other crates' tests).
pub async fn created_key(store: &dyn Store, owner: Uuid) -> ApiKey {
    let k = key(1, None, owner, T0);
    store
        .create_key(&k, &audit(AuditAction::ApiKeyCreate, k.id, T0))
        .await
        .unwrap();
    k
}

/// A node whose write landed but whose answer was lost sends the same batch again: storage
/// knows its id and counts it once. Another batch with the same rows counts again, and so does
/// this one once storage has forgotten it, a day on (so that remembering costs a day of ids).
pub async fn a_usage_batch_sent_again_is_counted_once(store: &dyn Store) {
    let owner = Uuid::from_u128(7);
    let a = created_key(store, owner).await;
    let day = crate::usage_day(T0);
    let batch = Arc::new(UsageBatch {
        last_used: vec![KeyUse {
            key_id: a.id,
            at: T0,
        }],
        counts: vec![UsageCount {
            key_id: a.id,
            day,
            code: VerifyCode::Valid,
            count: 3,
        }],
        ..UsageBatch::new(T0)
    });
    let of_owner = KeysOf {
        tenant_id: None,
        owner_id: Some(owner),
    };
    let valid = || async { store.usage_by_code(of_owner, day).await.unwrap() };
    store.record_usage(Arc::clone(&batch)).await.unwrap();
    store.record_usage(Arc::clone(&batch)).await.unwrap();
    assert_eq!(
        valid().await,
        [(VerifyCode::Valid, 3)],
        "sent twice, counted once"
    );

    let same_rows = Arc::new(UsageBatch {
        id: Uuid::new_v4(),
        ..(*batch).clone()
    });
    store.record_usage(same_rows).await.unwrap();
    assert_eq!(
        valid().await,
        [(VerifyCode::Valid, 6)],
        "another batch adds up"
    );

    // A later batch (counting a day before `day`, outside the sums read here) makes storage
    // forget the first one.
    let a_day_on = Arc::new(UsageBatch {
        counts: vec![UsageCount {
            key_id: a.id,
            day: day - 1,
            code: VerifyCode::Valid,
            count: 1,
        }],
        ..UsageBatch::new(T0 + crate::USAGE_BATCH_MEMORY + Duration::seconds(1))
    });
    store.record_usage(a_day_on).await.unwrap();
    assert_eq!(valid().await, [(VerifyCode::Valid, 6)]);
    store.record_usage(Arc::clone(&batch)).await.unwrap();
    assert_eq!(
        valid().await,
        [(VerifyCode::Valid, 9)],
        "a batch older than the memory is no longer known"
    );

    // A count storage cannot hold refuses its batch whole: nothing of it is written, and the
    // batch is not remembered as written.
    let too_many = Arc::new(UsageBatch {
        counts: vec![
            UsageCount {
                key_id: a.id,
                day,
                code: VerifyCode::Valid,
                count: 1,
            },
            UsageCount {
                key_id: a.id,
                day,
                code: VerifyCode::NotFound,
                count: u64::MAX,
            },
        ],
        ..UsageBatch::new(T0)
    });
    assert!(store.record_usage(Arc::clone(&too_many)).await.is_err());
    assert_eq!(
        valid().await,
        [(VerifyCode::Valid, 9)],
        "nothing of it written"
    );
    let fixed = Arc::new(UsageBatch {
        counts: too_many.counts[..1].to_vec(),
        ..(*too_many).clone()
    });
    store.record_usage(fixed).await.unwrap();
    assert_eq!(
        valid().await,
        [(VerifyCode::Valid, 10)],
        "its id was not kept"
    );
}

/// A flush of a busy node carries far more rows than one statement takes: every row lands, and
/// `last_used_at` is the newest use even when it sits in another chunk than the rest.
pub async fn a_large_usage_batch_is_written_whole(store: &dyn Store) {
    let owner = Uuid::from_u128(7);
    let a = created_key(store, owner).await;
    let day = crate::usage_day(T0);
    const ROWS: i64 = 25_000;
    let t1 = T0 + Duration::minutes(1);
    let t2 = T0 + Duration::minutes(2);
    let mut last_used = vec![KeyUse {
        key_id: a.id,
        at: t2,
    }];
    last_used.extend((1..ROWS).map(|_| KeyUse {
        key_id: a.id,
        at: t1,
    }));
    let batch = UsageBatch {
        last_used,
        counts: (0..ROWS)
            .map(|i| UsageCount {
                key_id: a.id,
                day: day - i,
                code: VerifyCode::Valid,
                count: 2,
            })
            .collect(),
        ..UsageBatch::new(T0)
    };
    store.record_usage(Arc::new(batch)).await.unwrap();
    let of_owner = KeysOf {
        tenant_id: None,
        owner_id: Some(owner),
    };
    assert_eq!(
        store.usage_by_code(of_owner, day - ROWS).await.unwrap(),
        [(VerifyCode::Valid, 2 * ROWS as u64)]
    );
    assert_eq!(
        store.get_key(a.id).await.unwrap().unwrap().last_used_at,
        Some(t2)
    );
}

pub async fn credits_round_trip_and_spend_exactly(store: &dyn Store) {
    use keyward_domain::credits::{Credits, Refill, RefillInterval, Spend};
    let owner = Uuid::from_u128(7);
    let mut k = key(1, None, owner, T0);
    let daily = Refill {
        interval: RefillInterval::Daily,
        amount: 5,
        day: 1,
    };
    k.credits = Some(Credits {
        remaining: 3,
        refill: Some(daily),
        set_at: T0,
    });
    store
        .create_key(&k, &audit(AuditAction::ApiKeyCreate, k.id, T0))
        .await
        .unwrap();
    assert_eq!(
        store.get_key(k.id).await.unwrap().unwrap().credits,
        k.credits
    );
    let plain = key(2, None, owner, T0);
    store
        .create_key(&plain, &audit(AuditAction::ApiKeyCreate, plain.id, T0))
        .await
        .unwrap();
    assert_eq!(
        store
            .spend_credits(plain.id, 1, T0, &|_| None)
            .await
            .unwrap()
            .key,
        None
    );
    assert_eq!(
        store
            .spend_credits(Uuid::from_u128(404), 1, T0, &|_| None)
            .await
            .unwrap()
            .key,
        None
    );

    let now = T0 + Duration::hours(1);
    let spent = |remaining| {
        Some(Spend::Spent(Credits {
            remaining,
            refill: Some(daily),
            set_at: T0,
        }))
    };
    assert_eq!(
        store
            .spend_credits(k.id, 2, now, &|_| None)
            .await
            .unwrap()
            .key,
        spent(1)
    );
    assert_eq!(
        store
            .spend_credits(k.id, 2, now, &|_| None)
            .await
            .unwrap()
            .key,
        Some(Spend::Exhausted(Credits {
            remaining: 1,
            refill: Some(daily),
            set_at: T0
        }))
    );
    assert_eq!(
        store
            .spend_credits(k.id, 1, now, &|_| None)
            .await
            .unwrap()
            .key,
        spent(0)
    );
    // The next UTC day refills to the amount, then spends.
    let tomorrow = datetime!(2026-03-02 08:00 UTC);
    assert!(matches!(
        store.spend_credits(k.id, 1, tomorrow, &|_| None).await.unwrap().key,
        Some(Spend::Spent(c)) if c.remaining == 4
    ));
    // An edit replaces the credits; clearing them makes the key unlimited.
    let mut edited = store.get_key(k.id).await.unwrap().unwrap();
    edited.credits = None;
    store
        .update_key(
            &edited,
            tomorrow,
            &audit(AuditAction::ApiKeyUpdate, k.id, tomorrow),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .spend_credits(k.id, 1, tomorrow, &|_| None)
            .await
            .unwrap()
            .key,
        None
    );
}

pub async fn usage_counters_add_up_and_summarise(store: &dyn Store) {
    let (ta, tb) = (Uuid::from_u128(0xA), Uuid::from_u128(0xB));
    let (ann, bob) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let a = key(1, Some(ta), ann, T0);
    let b = key(2, Some(ta), bob, T0);
    let c = key(3, Some(tb), bob, T0);
    for k in [&a, &b, &c] {
        store
            .create_key(k, &audit(AuditAction::ApiKeyCreate, k.id, T0))
            .await
            .unwrap();
    }
    let day = crate::usage_day(T0);
    let count = |key_id: Uuid, day: i64, code: VerifyCode, count: u64| UsageCount {
        key_id,
        day,
        code,
        count,
    };
    let first = UsageBatch {
        last_used: vec![],
        counts: vec![
            count(a.id, day, VerifyCode::Valid, 5),
            count(a.id, day - 40, VerifyCode::Valid, 100),
            count(b.id, day, VerifyCode::Valid, 2),
            count(b.id, day - 1, VerifyCode::Expired, 1),
            count(c.id, day, VerifyCode::RateLimited, 7),
            count(Uuid::from_u128(404), day, VerifyCode::Valid, 1),
        ],
        ..UsageBatch::new(T0)
    };
    store.record_usage(Arc::new(first)).await.unwrap();
    // A second batch (another flush, or another node) adds to the same counters.
    let second = UsageBatch {
        last_used: vec![],
        counts: vec![
            count(a.id, day, VerifyCode::Valid, 3),
            count(b.id, day, VerifyCode::InsufficientScopes, 4),
        ],
        ..UsageBatch::new(T0)
    };
    store.record_usage(Arc::new(second)).await.unwrap();

    let all = KeysOf::default();
    let mut by_code = store.usage_by_code(all, day - 29).await.unwrap();
    by_code.sort_by_key(|(c, _)| c.as_str());
    assert_eq!(
        by_code,
        [
            (VerifyCode::Expired, 1),
            (VerifyCode::InsufficientScopes, 4),
            (VerifyCode::RateLimited, 7),
            (VerifyCode::Valid, 10),
        ]
    );
    let of_ann = KeysOf {
        tenant_id: None,
        owner_id: Some(ann),
    };
    assert_eq!(
        store.usage_by_code(of_ann, day - 100).await.unwrap(),
        [(VerifyCode::Valid, 108)]
    );
    assert_eq!(
        store.usage_by_code(of_ann, day + 1).await.unwrap(),
        [],
        "nothing from the future"
    );
    assert_eq!(
        store.usage_of_keys(&[b.id], day - 29).await.unwrap(),
        [
            count(b.id, day - 1, VerifyCode::Expired, 1),
            count(b.id, day, VerifyCode::InsufficientScopes, 4),
            count(b.id, day, VerifyCode::Valid, 2),
        ],
        "one key's counters by day, then code"
    );
    assert_eq!(store.usage_of_keys(&[a.id], day + 1).await.unwrap(), []);
    assert_eq!(
        store
            .usage_by_day(KeysOf::default(), day - 1)
            .await
            .unwrap(),
        [
            (day - 1, VerifyCode::Expired, 1),
            (day, VerifyCode::InsufficientScopes, 4),
            (day, VerifyCode::RateLimited, 7),
            (day, VerifyCode::Valid, 10),
        ],
        "by day, then code name"
    );
    assert_eq!(store.usage_of_keys(&[], day - 29).await.unwrap(), []);
    let both = store.usage_of_keys(&[c.id, a.id], day - 29).await.unwrap();
    let mut expected = vec![
        count(a.id, day, VerifyCode::Valid, 8),
        count(c.id, day, VerifyCode::RateLimited, 7),
    ];
    expected.sort_by_key(|u| u.key_id);
    assert_eq!(both, expected, "several keys, by key id");
    let of_ta = KeysOf {
        tenant_id: Some(ta),
        owner_id: None,
    };
    assert_eq!(
        store.top_keys(of_ta, day - 29, 10).await.unwrap(),
        [(a.id, 8), (b.id, 7)]
    );
    assert_eq!(
        store.top_keys(all, day - 29, 1).await.unwrap(),
        [(a.id, 8)],
        "most used first; ties broken by key id"
    );

    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_usage(of_ta, after, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.position());
        rows.extend(page);
    }
    let mut expected = vec![
        count(a.id, day - 40, VerifyCode::Valid, 100),
        count(a.id, day, VerifyCode::Valid, 8),
        count(b.id, day - 1, VerifyCode::Expired, 1),
        count(b.id, day, VerifyCode::InsufficientScopes, 4),
        count(b.id, day, VerifyCode::Valid, 2),
    ];
    expected.sort_by_key(|u| (u.key_id, u.day, u.code.as_str()));
    assert_eq!(rows, expected, "paged in (key, day, code) order");
}

pub async fn audit_filters_and_pages(store: &dyn Store) {
    let (ta, tb) = (Uuid::from_u128(0xA), Uuid::from_u128(0xB));
    let ann = Uuid::from_u128(1);
    let mut entries = Vec::new();
    for i in 0..6i64 {
        let at = T0 + Duration::minutes(i);
        let mut e = audit(
            if i % 2 == 0 {
                AuditAction::ApiKeyCreate
            } else {
                AuditAction::ApiKeyRevoke
            },
            format!("k{}", i / 2),
            at,
        )
        .tenant(Some(if i < 4 { ta } else { tb }));
        e.actor_user_id = None;
        if i == 1 {
            e = e.subject(ann);
        }
        if i == 5 {
            e.actor_user_id = Some(ann);
            e = e.changes(json!({"name": {"from": "a", "to": "b"}}));
        }
        store.append_audit(&e).await.unwrap();
        entries.push(e);
    }
    let run = |f: &dyn Fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        };
        f(&mut q);
        q
    };
    let all = store.list_audit(&run(&|_| {})).await.unwrap();
    assert_eq!(all, entries, "round trip, creation order");
    let idx = |v: Vec<AuditEntry>| -> Vec<usize> {
        v.iter()
            .map(|e| entries.iter().position(|x| x.id == e.id).unwrap())
            .collect()
    };
    assert_eq!(
        idx(store
            .list_audit(&run(&|q| q.tenant_id = Some(tb)))
            .await
            .unwrap()),
        [4, 5]
    );
    assert_eq!(
        idx(store
            .list_audit(&run(&|q| q.involving_user = Some(ann)))
            .await
            .unwrap()),
        [1, 5]
    );
    assert_eq!(
        idx(store
            .list_audit(&run(&|q| q.action = Some("api_key.revoke".into())))
            .await
            .unwrap()),
        [1, 3, 5]
    );
    assert_eq!(
        idx(store
            .list_audit(&run(&|q| q.actor_id = Some("tester".into())))
            .await
            .unwrap()),
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!(
        idx(store
            .list_audit(&run(&|q| q.actor_id = Some("someone-else".into())))
            .await
            .unwrap()),
        Vec::<usize>::new()
    );
    assert_eq!(
        idx(store
            .list_audit(&run(&|q| {
                q.resource_type = Some("api_key".into());
                q.resource_id = Some("k1".into())
            }))
            .await
            .unwrap()),
        [2, 3]
    );
    assert_eq!(
        idx(store
            .list_audit(&run(&|q| {
                q.since = Some(T0 + Duration::minutes(2));
                q.until = Some(T0 + Duration::minutes(4))
            }))
            .await
            .unwrap()),
        [2, 3],
        "since is inclusive, until exclusive"
    );
    let first = store.list_audit(&run(&|q| q.limit = 4)).await.unwrap();
    let last = first.last().unwrap();
    let cursor = Cursor {
        created_at: last.created_at,
        id: last.id,
    };
    let rest = store
        .list_audit(&run(&|q| {
            q.limit = 4;
            q.after = Some(cursor)
        }))
        .await
        .unwrap();
    assert_eq!(idx(first), [0, 1, 2, 3]);
    assert_eq!(idx(rest), [4, 5]);
}

// --- webhooks, the outbox, notices -----------------------------------------------------------

fn webhook(
    n: u128,
    tenant_id: Option<Uuid>,
    events: keyward_domain::EventFilter,
) -> WebhookEndpoint {
    WebhookEndpoint {
        id: Uuid::from_u128(0x3E00 + n),
        tenant_id,
        url: format!("https://hooks.example.com/{n}"),
        events,
        enabled: true,
        description: Some(format!("hook {n}")),
        secret: WebhookSecret::from_stored(format!("whsec_c2VjcmV0{n}")),
        created_at: T0 + Duration::seconds(n as i64),
        updated_at: T0 + Duration::seconds(n as i64),
    }
}

fn event_about(kind: EventType, key: &ApiKey, at: OffsetDateTime) -> Event {
    Event::about_key(kind, key, &actor(), at, serde_json::Value::Null)
}

/// The deliveries of an endpoint, oldest first, as (event type, event id).
async fn outbox_of(store: &dyn Store, endpoint: Uuid) -> Vec<(EventType, Uuid)> {
    let mut d = store.list_deliveries(endpoint, None, 1000).await.unwrap();
    d.reverse();
    d.into_iter().map(|d| (d.event_type, d.event_id)).collect()
}

/// Endpoints round-trip and page; a change's events become deliveries in its own transaction,
/// to each enabled endpoint of the key's tenant (and installation-wide ones) whose filter takes
/// them, and a change that fails writes none.
pub async fn events_reach_the_endpoints_that_hear_them(store: &dyn Store) {
    let t = tenant(1, "acme", T0);
    let other = tenant(2, "other", T0);
    for x in [&t, &other] {
        store
            .create_tenant(x, &audit(AuditAction::TenantCreate, x.id, T0))
            .await
            .unwrap();
    }
    let all = webhook(1, Some(t.id), keyward_domain::EventFilter::All);
    let revocations = webhook(
        2,
        Some(t.id),
        keyward_domain::EventFilter::only(vec![EventType::KeyRevoked]).unwrap(),
    );
    let wide = webhook(3, None, keyward_domain::EventFilter::All);
    let paused = WebhookEndpoint {
        enabled: false,
        ..webhook(4, Some(t.id), keyward_domain::EventFilter::All)
    };
    let elsewhere = webhook(5, Some(other.id), keyward_domain::EventFilter::All);
    for w in [&all, &revocations, &wide, &paused, &elsewhere] {
        store
            .create_webhook(w, &audit(AuditAction::WebhookCreate, w.id, T0))
            .await
            .unwrap();
    }
    assert_eq!(
        store.get_webhook(all.id).await.unwrap().as_ref(),
        Some(&all)
    );
    assert_eq!(
        store.get_webhook(revocations.id).await.unwrap().as_ref(),
        Some(&revocations)
    );
    let of_t = store
        .list_webhooks(crate::WebhooksOf::Tenant(t.id), None, 2)
        .await
        .unwrap();
    assert_eq!(of_t, vec![all.clone(), revocations.clone()]);
    let rest = store
        .list_webhooks(
            crate::WebhooksOf::Tenant(t.id),
            Some(Cursor {
                created_at: revocations.created_at,
                id: revocations.id,
            }),
            10,
        )
        .await
        .unwrap();
    assert_eq!(rest, vec![paused.clone()]);
    assert_eq!(
        store
            .list_webhooks(crate::WebhooksOf::All, None, 10)
            .await
            .unwrap()
            .len(),
        5
    );

    let k = key(1, Some(t.id), Uuid::from_u128(7), T0);
    let created = event_about(EventType::KeyCreated, &k, T0);
    store
        .create_key(
            &k,
            &audit(AuditAction::ApiKeyCreate, k.id, T0).event(created.clone()),
        )
        .await
        .unwrap();
    let revoked = event_about(EventType::KeyRevoked, &k, T0);
    store
        .revoke_key(
            k.id,
            T0,
            T0,
            &audit(AuditAction::ApiKeyRevoke, k.id, T0).event(revoked.clone()),
        )
        .await
        .unwrap();
    // Revoked already: the change fails, and its event goes nowhere.
    let again = event_about(EventType::KeyRevoked, &k, T0);
    assert_eq!(
        store
            .revoke_key(
                k.id,
                T0,
                T0,
                &audit(AuditAction::ApiKeyRevoke, k.id, T0).event(again)
            )
            .await
            .unwrap_err(),
        StoreError::NotFound
    );
    assert_eq!(
        outbox_of(store, all.id).await,
        vec![
            (EventType::KeyCreated, created.id),
            (EventType::KeyRevoked, revoked.id)
        ]
    );
    assert_eq!(
        outbox_of(store, revocations.id).await,
        vec![(EventType::KeyRevoked, revoked.id)]
    );
    assert_eq!(outbox_of(store, wide.id).await.len(), 2);
    assert_eq!(outbox_of(store, paused.id).await, vec![]);
    assert_eq!(outbox_of(store, elsewhere.id).await, vec![]);
    // A delivery carries the event's body whole, pending and due at the event.
    let d = &store.list_deliveries(all.id, None, 1).await.unwrap()[0];
    assert_eq!(d.body, revoked.body);
    assert_eq!(d.status, keyward_domain::DeliveryStatus::Pending);
    assert_eq!(d.next_attempt_at, Some(T0));
    assert_eq!(store.get_delivery(d.id).await.unwrap().as_ref(), Some(d));
    // An event for one endpoint goes to it alone, enabled or not, whatever it hears.
    let mut test = Event::new(EventType::WebhookTest, Some(t.id), json!({}), T0);
    test.only_endpoint = Some(paused.id);
    store
        .append_audit(&audit(AuditAction::WebhookTest, paused.id, T0).event(test.clone()))
        .await
        .unwrap();
    assert_eq!(
        outbox_of(store, paused.id).await,
        vec![(EventType::WebhookTest, test.id)]
    );
    assert_eq!(outbox_of(store, all.id).await.len(), 2);

    // Edits and deletion (with its deliveries).
    let edited = WebhookEndpoint {
        url: "https://hooks.example.com/moved".into(),
        enabled: false,
        description: None,
        ..all.clone()
    };
    store
        .update_webhook(&edited, &audit(AuditAction::WebhookUpdate, all.id, T0))
        .await
        .unwrap();
    assert_eq!(store.get_webhook(all.id).await.unwrap(), Some(edited));
    store
        .delete_webhook(all.id, &audit(AuditAction::WebhookDelete, all.id, T0))
        .await
        .unwrap();
    assert_eq!(store.get_webhook(all.id).await.unwrap(), None);
    assert_eq!(store.get_delivery(d.id).await.unwrap(), None);
    assert_eq!(
        store
            .delete_webhook(all.id, &audit(AuditAction::WebhookDelete, all.id, T0))
            .await
            .unwrap_err(),
        StoreError::NotFound
    );
}

/// A due delivery is leased by one caller at a time; an attempt counts only under the lease
/// that holds it; a lease that runs out lets another take it; failures wait for their next try,
/// and a manual retry makes any delivery due again.
pub async fn deliveries_are_leased_one_at_a_time(store: &dyn Store) {
    use keyward_domain::event::Attempt;
    use keyward_domain::DeliveryStatus;
    let t = tenant(1, "acme", T0);
    store
        .create_tenant(&t, &audit(AuditAction::TenantCreate, t.id, T0))
        .await
        .unwrap();
    let w = webhook(1, Some(t.id), keyward_domain::EventFilter::All);
    store
        .create_webhook(&w, &audit(AuditAction::WebhookCreate, w.id, T0))
        .await
        .unwrap();
    let k = key(1, Some(t.id), Uuid::from_u128(7), T0);
    store
        .create_key(
            &k,
            &audit(AuditAction::ApiKeyCreate, k.id, T0).event(event_about(
                EventType::KeyCreated,
                &k,
                T0,
            )),
        )
        .await
        .unwrap();
    let lease = Duration::seconds(60);
    // Not due before its time.
    let early = store
        .claim_deliveries(T0 - Duration::seconds(1), T0 + lease, 10)
        .await
        .unwrap();
    assert!(early.is_empty());
    let first = store.claim_deliveries(T0, T0 + lease, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].endpoint, w);
    let d = first[0].delivery.id;
    // Leased: nobody else takes it until the lease runs out.
    let t1 = T0 + Duration::seconds(30);
    assert!(store
        .claim_deliveries(t1, t1 + lease, 10)
        .await
        .unwrap()
        .is_empty());
    let t2 = T0 + lease;
    let second = store.claim_deliveries(t2, t2 + lease, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].lease_id, first[0].lease_id);
    let failed = Attempt {
        at: t2,
        response_status: Some(500),
        response_body: Some("no".into()),
        duration_ms: 12,
        error: None,
    };
    // The first holder's late answer is not recorded: its lease is gone.
    assert!(!store
        .record_attempt(d, first[0].lease_id, &failed, Some(t2))
        .await
        .unwrap());
    let next = t2 + Duration::seconds(5);
    assert!(store
        .record_attempt(d, second[0].lease_id, &failed, Some(next))
        .await
        .unwrap());
    let got = store.get_delivery(d).await.unwrap().unwrap();
    assert_eq!(
        (
            got.status,
            got.attempts,
            got.next_attempt_at,
            got.response_status,
            got.duration_ms
        ),
        (DeliveryStatus::Pending, 1, Some(next), Some(500), Some(12))
    );
    assert_eq!(got.last_attempt_at, Some(t2));
    // Due again at `next`, not before.
    assert!(store
        .claim_deliveries(next - Duration::seconds(1), next + lease, 10)
        .await
        .unwrap()
        .is_empty());
    let third = store
        .claim_deliveries(next, next + lease, 10)
        .await
        .unwrap();
    assert_eq!(third.len(), 1);
    // Out of tries: failed for good, and never claimed again.
    assert!(store
        .record_attempt(d, third[0].lease_id, &failed, None)
        .await
        .unwrap());
    let got = store.get_delivery(d).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.attempts, got.next_attempt_at),
        (DeliveryStatus::Failed, 2, None)
    );
    let later = next + Duration::days(2);
    assert!(store
        .claim_deliveries(later, later + lease, 10)
        .await
        .unwrap()
        .is_empty());
    // A manual retry: due at once; a success ends it.
    store
        .retry_delivery(d, later, &audit(AuditAction::WebhookRetry, w.id, later))
        .await
        .unwrap();
    let retried = store
        .claim_deliveries(later, later + lease, 10)
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    let ok = Attempt {
        at: later,
        response_status: Some(204),
        ..failed
    };
    assert!(store
        .record_attempt(d, retried[0].lease_id, &ok, None)
        .await
        .unwrap());
    let got = store.get_delivery(d).await.unwrap().unwrap();
    assert_eq!((got.status, got.attempts), (DeliveryStatus::Succeeded, 3));
    assert_eq!(
        store
            .retry_delivery(
                Uuid::from_u128(404),
                later,
                &audit(AuditAction::WebhookRetry, w.id, later)
            )
            .await
            .unwrap_err(),
        StoreError::NotFound
    );
    // Finished deliveries are pruned once old; pending ones never.
    assert_eq!(store.prune_deliveries(T0).await.unwrap(), 0);
    assert_eq!(store.prune_deliveries(later).await.unwrap(), 1);
    assert_eq!(store.get_delivery(d).await.unwrap(), None);
}

/// A notice is recorded once per key and name, with its events and audit entry; keys near
/// their expiry come with the notices they have; spending the last credit records its notice
/// in the spend's transaction, once per credit period.
pub async fn notices_are_sent_once_per_key_and_name(store: &dyn Store) {
    use keyward_domain::credits::{Credits, Spend};
    let t = tenant(1, "acme", T0);
    store
        .create_tenant(&t, &audit(AuditAction::TenantCreate, t.id, T0))
        .await
        .unwrap();
    let w = webhook(1, Some(t.id), keyward_domain::EventFilter::All);
    store
        .create_webhook(&w, &audit(AuditAction::WebhookCreate, w.id, T0))
        .await
        .unwrap();
    let owner = Uuid::from_u128(7);
    let soon = ApiKey {
        expires_at: Some(T0 + Duration::days(2)),
        ..key(1, Some(t.id), owner, T0)
    };
    let later = ApiKey {
        expires_at: Some(T0 + Duration::days(20)),
        ..key(2, Some(t.id), owner, T0)
    };
    let gone = ApiKey {
        expires_at: Some(T0 + Duration::days(1)),
        revoked_at: Some(T0),
        ..key(3, Some(t.id), owner, T0)
    };
    let credited = ApiKey {
        credits: Some(Credits {
            remaining: 2,
            refill: None,
            set_at: T0,
        }),
        ..key(4, Some(t.id), owner, T0)
    };
    for k in [&soon, &later, &gone, &credited] {
        store
            .create_key(k, &audit(AuditAction::ApiKeyCreate, k.id, T0))
            .await
            .unwrap();
    }
    let expiring = store
        .keys_expiring(T0, T0 + Duration::days(7), 10)
        .await
        .unwrap();
    assert_eq!(expiring.len(), 1, "revoked and far-off keys are left out");
    assert_eq!(expiring[0].key.id, soon.id);
    assert!(expiring[0].notices.is_empty());
    let reminder = event_about(EventType::KeyExpiring, &soon, T0);
    let entry = audit(AuditAction::ApiKeyUpdate, soon.id, T0);
    assert!(store
        .notify_once(
            soon.id,
            "expiring:604800",
            T0,
            Some(&entry),
            std::slice::from_ref(&reminder)
        )
        .await
        .unwrap());
    let twice = event_about(EventType::KeyExpiring, &soon, T0);
    assert!(!store
        .notify_once(soon.id, "expiring:604800", T0, Some(&entry), &[twice])
        .await
        .unwrap());
    assert!(store
        .notify_once(soon.id, "expiring:86400", T0, None, &[])
        .await
        .unwrap());
    let mut notices = store
        .keys_expiring(T0, T0 + Duration::days(7), 10)
        .await
        .unwrap()[0]
        .notices
        .clone();
    notices.sort();
    assert_eq!(notices, ["expiring:604800", "expiring:86400"]);
    assert_eq!(
        audit_actions(store)
            .await
            .iter()
            .filter(|a| *a == "api_key.update")
            .count(),
        1,
        "the audit entry is written with the notice, once"
    );
    // A range boundary: expiring exactly at `to` is in; exactly at `from` is out.
    assert_eq!(
        store
            .keys_expiring(T0, T0 + Duration::days(2), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .keys_expiring(T0 + Duration::days(2), T0 + Duration::days(3), 10)
        .await
        .unwrap()
        .is_empty());

    // The last credit: its notice comes with the spend that took it, once.
    let notice = |c: &Credits| {
        Some(crate::Notice {
            name: format!(
                "credits_exhausted:{}",
                keyward_domain::clock::to_millis(c.set_at)
            ),
            events: vec![event_about(EventType::KeyCreditsExhausted, &credited, T0)],
        })
    };
    assert!(matches!(
        store.spend_credits(credited.id, 1, T0, &notice).await.unwrap().key,
        Some(Spend::Spent(c)) if c.remaining == 1
    ));
    assert!(matches!(
        store.spend_credits(credited.id, 1, T0, &notice).await.unwrap().key,
        Some(Spend::Spent(c)) if c.remaining == 0
    ));
    // Refused spends, and free ones at zero, are not the last credit again.
    store
        .spend_credits(credited.id, 1, T0, &notice)
        .await
        .unwrap();
    store
        .spend_credits(credited.id, 0, T0, &notice)
        .await
        .unwrap();
    let kinds: Vec<EventType> = outbox_of(store, w.id)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        kinds,
        [EventType::KeyExpiring, EventType::KeyCreditsExhausted]
    );
}

/// An owner's shared limits come with each of its keys, and its shared credits are spent with a
/// key's own: both or neither.
pub async fn owner_limits_are_read_with_each_key_and_spent_with_its_credits(store: &dyn Store) {
    use keyward_domain::credits::{Credits, Spend};
    use keyward_domain::OwnerLimits;
    let u = user(1, "owner@example.com", None);
    store
        .create_user(&u, &audit(AuditAction::UserCreate, u.id, T0))
        .await
        .unwrap();
    let a = key(1, None, u.id, T0);
    let b = ApiKey {
        credits: Some(Credits {
            remaining: 5,
            refill: None,
            set_at: T0,
        }),
        ..key(2, None, u.id, T0)
    };
    let stranger = key(3, None, Uuid::from_u128(99), T0);
    for k in [&a, &b, &stranger] {
        store
            .create_key(k, &audit(AuditAction::ApiKeyCreate, k.id, T0))
            .await
            .unwrap();
    }
    let limits = OwnerLimits {
        user_id: u.id,
        rate_limit: Some(KeyRateLimit::set(10, "1 minute").unwrap()),
        credits: Some(Credits {
            remaining: 2,
            refill: None,
            set_at: T0,
        }),
        updated_at: T0,
    };
    let entry = audit(AuditAction::UserSetLimits, u.id, T0);
    let mut digests = store
        .set_owner_limits(u.id, Some(&limits), &entry)
        .await
        .unwrap();
    digests.sort_by_key(|d| *d.as_bytes());
    let mut expected = vec![a.digest, b.digest];
    expected.sort_by_key(|d| *d.as_bytes());
    assert_eq!(
        digests, expected,
        "every key of the owner is named, no other"
    );
    assert_eq!(
        store.get_owner_limits(u.id).await.unwrap(),
        Some(limits.clone())
    );
    assert!(audit_actions(store)
        .await
        .contains(&"user.set_limits".to_owned()));
    let shared = keyward_domain::SharedLimits {
        rate_limit: limits.rate_limit.clone(),
        credits: true,
        owner_disabled: false,
    };
    for k in [&a, &b] {
        assert_eq!(
            store
                .get_key_by_digest(&k.digest)
                .await
                .unwrap()
                .unwrap()
                .shared,
            shared
        );
        assert_eq!(store.get_key(k.id).await.unwrap().unwrap().shared, shared);
    }
    let listed = store.list_keys(&KeyQuery::new(T0, 10)).await.unwrap();
    assert!(listed
        .iter()
        .all(|k| (k.owner_id == u.id) == (k.shared == shared)));

    // Two credits shared by both keys; b's own five are spent only with them.
    let remaining = |s: Option<Spend>| s.map(|s| s.after().remaining);
    let first = store.spend_credits(a.id, 1, T0, &|_| None).await.unwrap();
    assert_eq!((first.key, remaining(first.owner)), (None, Some(1)));
    let second = store.spend_credits(b.id, 1, T0, &|_| None).await.unwrap();
    assert_eq!(
        (remaining(second.key), remaining(second.owner)),
        (Some(4), Some(0))
    );
    let refused = store.spend_credits(b.id, 1, T0, &|_| None).await.unwrap();
    assert!(
        matches!(refused.key, Some(Spend::Untouched(c)) if c.remaining == 4),
        "{refused:?}"
    );
    assert!(refused.owner.is_some_and(|s| s.is_exhausted()));
    assert_eq!(
        store
            .get_key(b.id)
            .await
            .unwrap()
            .unwrap()
            .credits
            .map(|c| c.remaining),
        Some(4),
        "nothing of the key's own was spent"
    );
    let other = store
        .spend_credits(stranger.id, 1, T0, &|_| None)
        .await
        .unwrap();
    assert_eq!(
        other,
        CreditSpend::default(),
        "another owner's key has no credits"
    );

    // Removed: the keys are unlimited again, and named as changed.
    let again = audit(AuditAction::UserSetLimits, u.id, T0);
    let removed = store.set_owner_limits(u.id, None, &again).await.unwrap();
    assert_eq!(removed.len(), 2);
    assert_eq!(store.get_owner_limits(u.id).await.unwrap(), None);
    let unlimited = store.get_key(a.id).await.unwrap().unwrap();
    assert_eq!(unlimited.shared, keyward_domain::SharedLimits::default());
    assert_eq!(
        store.spend_credits(a.id, 1, T0, &|_| None).await.unwrap(),
        CreditSpend::default()
    );
    assert!(matches!(
        store
            .set_owner_limits(Uuid::from_u128(404), Some(&limits), &entry)
            .await,
        Err(StoreError::NotFound)
    ));
}

/// A cluster-wide window hands out its budget in shrinking leases, never more than `max` in all,
/// and a newer window starts again; the key's stored scope round-trips.
pub async fn cluster_windows_never_lease_more_than_is_left(store: &dyn Store) {
    use keyward_domain::ratelimit::RateLimitScope;
    let k = ApiKey {
        rate_limit: Some(
            KeyRateLimit::set(10, "1 minute")
                .unwrap()
                .with_scope(RateLimitScope::Cluster),
        ),
        ..key(1, None, Uuid::from_u128(7), T0)
    };
    store
        .create_key(&k, &audit(AuditAction::ApiKeyCreate, k.id, T0))
        .await
        .unwrap();
    let stored = store.get_key(k.id).await.unwrap().unwrap();
    assert_eq!(
        stored.rate_limit.map(|r| r.scope()),
        Some(RateLimitScope::Cluster)
    );
    let mut grants = vec![];
    loop {
        let lease = store.lease_rate_budget(k.id, T0, 10, 100).await.unwrap();
        grants.push(lease.granted);
        if lease.granted == 0 {
            break;
        }
    }
    assert_eq!(
        grants,
        [3, 2, 2, 1, 1, 1, 0],
        "a quarter of what is left, at least 1"
    );
    let next = T0 + Duration::minutes(1);
    let lease = store.lease_rate_budget(k.id, next, 10, 2).await.unwrap();
    assert_eq!(
        (lease.granted, lease.used),
        (2, 2),
        "a new window counts again"
    );
    let back = store.lease_rate_budget(k.id, T0, 10, 2).await.unwrap();
    assert_eq!(back.granted, 0, "a lease of an older window gets nothing");
    let on = store.lease_rate_budget(k.id, next, 10, 1).await.unwrap();
    assert_eq!(on.used, 3, "and leaves the newer window's count as it was");
}

fn api_session(n: u128, user_id: Uuid, at: OffsetDateTime) -> keyward_domain::ApiSession {
    keyward_domain::ApiSession {
        id: Uuid::from_u128(0x5E55_0000 + n),
        user_id,
        created_at: at,
        expires_at: at + Duration::hours(1),
        source_ip: Some("192.0.2.7".into()),
    }
}

async fn owner_disabled(store: &dyn Store, k: &ApiKey) -> bool {
    store
        .get_key_by_digest(&k.digest)
        .await
        .unwrap()
        .unwrap()
        .shared
        .owner_disabled
}

pub async fn a_disabled_users_keys_say_so_and_its_sessions_end(store: &dyn Store) {
    let u = user(1, "ann@example.com", None);
    store
        .create_user(&u, &audit(AuditAction::UserCreate, u.id, T0))
        .await
        .unwrap();
    let k = key(1, None, u.id, T0);
    store
        .create_key(&k, &audit(AuditAction::ApiKeyCreate, k.id, T0))
        .await
        .unwrap();
    let (first, second) = (api_session(1, u.id, T0), api_session(2, u.id, T0));
    for s in [&first, &second] {
        store
            .create_api_session(
                s,
                &u.password_hash,
                &audit(AuditAction::AuthLogin, u.id, T0),
            )
            .await
            .unwrap();
    }
    let console = ConsoleSession {
        digest: [9; 32],
        user_id: u.id,
        csrf: "csrf".into(),
        created_at: T0,
        last_seen_at: T0,
        expires_at: T0 + Duration::hours(1),
    };
    store
        .create_session(&console, &audit(AuditAction::AuthLogin, u.id, T0))
        .await
        .unwrap();
    assert!(!owner_disabled(store, &k).await);

    // A password change that keeps the caller's session ends the others, keys untouched.
    let renamed = User {
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$b3RoZXJzYWx0$bmV3aGFzaG5ld2hhc2g".into(),
        updated_at: T0 + Duration::seconds(1),
        ..u.clone()
    };
    let changes = store
        .update_user(
            &renamed,
            T0,
            EndSessions::AllBut(first.id),
            &audit(AuditAction::UserSetPassword, u.id, T0),
        )
        .await
        .unwrap();
    assert_eq!(changes.sessions, vec![second.id]);
    assert!(changes.keys.is_empty(), "the keys did not change");
    assert_eq!(
        store.get_api_session(first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.get_session(&[9; 32]).await.unwrap(), None);
    assert_eq!(
        store.get_user(u.id).await.unwrap().unwrap().password_hash,
        renamed.password_hash
    );

    let disabled = User {
        disabled_at: Some(T0 + Duration::seconds(2)),
        updated_at: T0 + Duration::seconds(2),
        ..renamed.clone()
    };
    let changes = store
        .update_user(
            &disabled,
            renamed.updated_at,
            EndSessions::All,
            &audit(AuditAction::UserUpdate, u.id, T0),
        )
        .await
        .unwrap();
    assert_eq!(changes.keys, vec![k.digest], "the keys' answer changed");
    // A disabled user signs in to no session.
    assert_eq!(
        store
            .create_api_session(
                &api_session(3, u.id, T0),
                &disabled.password_hash,
                &audit(AuditAction::AuthLogin, u.id, T0),
            )
            .await,
        Err(StoreError::NotFound)
    );
    // A change made from a row read before this one is refused, and writes nothing.
    let from_old_read = User {
        role: Role::TenantAdmin,
        ..renamed.clone()
    };
    assert_eq!(
        store
            .update_user(
                &from_old_read,
                renamed.updated_at,
                EndSessions::None,
                &audit(AuditAction::UserUpdate, u.id, T0),
            )
            .await,
        Err(StoreError::Conflict("stale".into()))
    );
    assert_eq!(
        store
            .delete_user(
                u.id,
                renamed.updated_at,
                T0,
                &audit(AuditAction::UserDelete, u.id, T0)
            )
            .await,
        Err(StoreError::Conflict("stale".into()))
    );
    assert_eq!(changes.sessions, vec![first.id]);
    assert!(owner_disabled(store, &k).await);
    assert_eq!(store.get_api_session(first.id).await.unwrap(), None);
    assert_eq!(store.get_user(u.id).await.unwrap(), Some(disabled.clone()));

    let enabled = User {
        disabled_at: None,
        ..disabled
    };
    let changes = store
        .update_user(
            &enabled,
            disabled.updated_at,
            EndSessions::None,
            &audit(AuditAction::UserUpdate, u.id, T0),
        )
        .await
        .unwrap();
    assert_eq!(changes.keys, vec![k.digest]);
    assert!(!owner_disabled(store, &k).await);
    let nobody = user(9, "nobody@example.com", None);
    assert_eq!(
        store
            .update_user(
                &nobody,
                T0,
                EndSessions::All,
                &audit(AuditAction::UserUpdate, nobody.id, T0)
            )
            .await,
        Err(StoreError::NotFound)
    );
    let actions = audit_actions(store).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "user.update").count(),
        2,
        "{actions:?}"
    );
}

pub async fn deleting_a_user_revokes_its_keys_and_frees_its_email(store: &dyn Store) {
    let u = user(1, "ann@example.com", None);
    store
        .create_user(&u, &audit(AuditAction::UserCreate, u.id, T0))
        .await
        .unwrap();
    let (live, gone) = (key(1, None, u.id, T0), key(2, None, u.id, T0));
    for k in [&live, &gone] {
        store
            .create_key(k, &audit(AuditAction::ApiKeyCreate, k.id, T0))
            .await
            .unwrap();
    }
    store
        .revoke_key(
            gone.id,
            T0,
            T0,
            &audit(AuditAction::ApiKeyRevoke, gone.id, T0),
        )
        .await
        .unwrap();
    let s = api_session(1, u.id, T0);
    store
        .create_api_session(
            &s,
            &u.password_hash,
            &audit(AuditAction::AuthLogin, u.id, T0),
        )
        .await
        .unwrap();
    let at = T0 + Duration::minutes(1);
    let changes = store
        .delete_user(u.id, T0, at, &audit(AuditAction::UserDelete, u.id, at))
        .await
        .unwrap();
    assert_eq!(
        changes.revoked,
        vec![live.id],
        "only the live key is revoked"
    );
    assert_eq!(changes.sessions, vec![s.id]);
    let read = store.get_key(live.id).await.unwrap().unwrap();
    assert_eq!(read.revoked_at, Some(at));
    assert_eq!(
        store.get_key(gone.id).await.unwrap().unwrap().revoked_at,
        Some(T0),
        "an earlier revocation stands"
    );
    assert_eq!(store.get_user(u.id).await.unwrap(), None);
    assert_eq!(
        store.get_user_by_email("ann@example.com").await.unwrap(),
        None
    );
    assert!(store
        .list_users(&UserQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.count_users().await.unwrap(), 0);
    assert_eq!(
        store
            .delete_user(u.id, T0, at, &audit(AuditAction::UserDelete, u.id, at))
            .await,
        Err(StoreError::NotFound)
    );
    // The email is free again; the deleted user's audit entries stay.
    let again = user(2, "ann@example.com", None);
    store
        .create_user(&again, &audit(AuditAction::UserCreate, again.id, at))
        .await
        .unwrap();
    let actions = audit_actions(store).await;
    assert!(actions.contains(&"user.delete".to_owned()), "{actions:?}");
    assert!(
        actions.contains(&"api_key.create".to_owned()),
        "{actions:?}"
    );
}

pub async fn the_last_active_admin_stays_one(store: &dyn Store) {
    let first = User {
        role: Role::Admin,
        ..user(1, "first@example.com", None)
    };
    let second = User {
        role: Role::Admin,
        ..user(2, "second@example.com", None)
    };
    for u in [&first, &second] {
        store
            .create_user(u, &audit(AuditAction::UserCreate, u.id, T0))
            .await
            .unwrap();
    }
    let disable = |u: &User| User {
        disabled_at: Some(T0),
        ..u.clone()
    };
    let at = || audit(AuditAction::UserUpdate, first.id, T0);
    store
        .update_user(&disable(&second), T0, EndSessions::All, &at())
        .await
        .unwrap();
    let last = Err(StoreError::Conflict("last_admin".into()));
    assert_eq!(
        store
            .update_user(&disable(&first), T0, EndSessions::All, &at())
            .await,
        last
    );
    let demoted = User {
        role: Role::Member,
        ..first.clone()
    };
    assert_eq!(
        store
            .update_user(&demoted, T0, EndSessions::None, &at())
            .await,
        last
    );
    assert_eq!(store.delete_user(first.id, T0, T0, &at()).await, last);
    assert_eq!(
        store.get_user(first.id).await.unwrap(),
        Some(first.clone()),
        "nothing was written"
    );
    // A change that keeps it an active admin passes; a disabled admin may go.
    store
        .update_user(&first, T0, EndSessions::None, &at())
        .await
        .unwrap();
    store.delete_user(second.id, T0, T0, &at()).await.unwrap();
}

pub async fn users_list_by_role_status_and_email_prefix(store: &dyn Store) {
    let people = [
        User {
            role: Role::Admin,
            ..user(1, "root@example.com", None)
        },
        user(2, "a_b@example.com", None),
        user(3, "axb@example.com", None),
        User {
            disabled_at: Some(T0),
            ..user(4, "a%c@example.com", None)
        },
    ];
    for u in &people {
        store
            .create_user(u, &audit(AuditAction::UserCreate, u.id, T0))
            .await
            .unwrap();
    }
    let emails = |q: UserQuery| async move {
        let q = UserQuery { limit: 10, ..q };
        let mut found: Vec<String> = store
            .list_users(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.email)
            .collect();
        found.sort();
        found
    };
    assert_eq!(
        emails(UserQuery {
            role: Some(Role::Admin),
            ..Default::default()
        })
        .await,
        ["root@example.com"]
    );
    assert_eq!(
        emails(UserQuery {
            disabled: Some(true),
            ..Default::default()
        })
        .await,
        ["a%c@example.com"]
    );
    assert_eq!(
        emails(UserQuery {
            disabled: Some(false),
            role: Some(Role::Member),
            ..Default::default()
        })
        .await,
        ["a_b@example.com", "axb@example.com"]
    );
    // The prefix is text: `_` and `%` match themselves only.
    for (prefix, expected) in [
        ("a_", vec!["a_b@example.com"]),
        ("a%", vec!["a%c@example.com"]),
        (
            "a",
            vec!["a%c@example.com", "a_b@example.com", "axb@example.com"],
        ),
        (
            "",
            vec![
                "a%c@example.com",
                "a_b@example.com",
                "axb@example.com",
                "root@example.com",
            ],
        ),
        ("zz", vec![]),
    ] {
        let found = emails(UserQuery {
            email_prefix: Some(prefix.into()),
            ..Default::default()
        })
        .await;
        assert_eq!(found, expected, "prefix {prefix:?}");
    }
}

/// Two stored users of no tenant, ann and bob.
async fn ann_and_bob(store: &dyn Store) -> (User, User) {
    let (ann, bob) = (
        user(1, "ann@example.com", None),
        user(2, "bob@example.com", None),
    );
    for u in [&ann, &bob] {
        store
            .create_user(u, &audit(AuditAction::UserCreate, u.id, T0))
            .await
            .unwrap();
    }
    (ann, bob)
}

pub async fn a_users_sessions_of_each_kind_are_capped_and_the_oldest_end_first(store: &dyn Store) {
    let (ann, bob) = ann_and_bob(store).await;
    let sign_in = |u: &User, n: i64| {
        let s = api_session(n as u128, u.id, T0 + Duration::seconds(n));
        let hash = u.password_hash.clone();
        async move {
            let ended = store
                .create_api_session(
                    &s,
                    &hash,
                    &audit(AuditAction::AuthLogin, s.user_id, s.created_at),
                )
                .await
                .unwrap();
            (s.id, ended)
        }
    };
    let mut ids = Vec::new();
    for n in 0..crate::MAX_SESSIONS {
        let (id, ended) = sign_in(&ann, n).await;
        assert!(
            ended.is_empty(),
            "sign-in {n} of the first {}",
            crate::MAX_SESSIONS
        );
        ids.push(id);
    }
    let (bobs, _) = sign_in(&bob, 1000).await;
    // One more: the oldest ends, only that one, and only ann's.
    let (newest, ended) = sign_in(&ann, crate::MAX_SESSIONS).await;
    assert_eq!(ended, vec![ids[0]]);
    assert_eq!(store.get_api_session(ids[0]).await.unwrap(), None);
    for id in [ids[1], newest, bobs] {
        assert!(store.get_api_session(id).await.unwrap().is_some());
    }

    // Console sessions the same way, and an expired one is forgotten at the next sign-in.
    let console = |n: i64, lives: Duration| ConsoleSession {
        digest: keyward_domain::KeyDigest::of(&format!("console {n}")).0,
        user_id: ann.id,
        csrf: "csrf".into(),
        created_at: T0 + Duration::seconds(n),
        last_seen_at: T0 + Duration::seconds(n),
        expires_at: T0 + Duration::seconds(n) + lives,
    };
    let expired = console(-1, Duration::seconds(1));
    for s in std::iter::once(expired.clone())
        .chain((0..crate::MAX_SESSIONS).map(|n| console(n, Duration::hours(1))))
    {
        store
            .create_session(&s, &audit(AuditAction::AuthLogin, ann.id, s.created_at))
            .await
            .unwrap();
    }
    assert_eq!(store.get_session(&expired.digest).await.unwrap(), None);
    let first = console(0, Duration::hours(1));
    assert!(store.get_session(&first.digest).await.unwrap().is_some());
    let last = console(crate::MAX_SESSIONS, Duration::hours(1));
    store
        .create_session(
            &last,
            &audit(AuditAction::AuthLogin, ann.id, last.created_at),
        )
        .await
        .unwrap();
    assert_eq!(store.get_session(&first.digest).await.unwrap(), None);
    for s in [console(1, Duration::hours(1)), last.clone()] {
        assert!(store.get_session(&s.digest).await.unwrap().is_some());
    }
    // Listed per user, newest first.
    let listed = store.list_console_sessions(ann.id).await.unwrap();
    assert_eq!(listed.len(), crate::MAX_SESSIONS as usize);
    assert_eq!(listed[0], last, "newest first");
    assert_eq!(listed.last(), Some(&console(1, Duration::hours(1))));
    assert!(store
        .list_console_sessions(bob.id)
        .await
        .unwrap()
        .is_empty());
}

pub async fn api_sessions_round_trip_and_end_once(store: &dyn Store) {
    let (ann, bob) = ann_and_bob(store).await;
    let old = api_session(1, ann.id, T0);
    let newer = api_session(2, ann.id, T0 + Duration::minutes(30));
    for s in [&old, &newer] {
        store
            .create_api_session(
                s,
                &ann.password_hash,
                &audit(AuditAction::AuthLogin, ann.id, s.created_at),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        store.get_api_session(old.id).await.unwrap(),
        Some(old.clone())
    );
    assert_eq!(
        store.list_api_sessions(ann.id).await.unwrap(),
        vec![newer.clone(), old.clone()],
        "newest first"
    );
    assert!(store.list_api_sessions(bob.id).await.unwrap().is_empty());
    let end = audit(AuditAction::AuthLogout, ann.id, T0);
    assert_eq!(
        store.end_api_session(old.id, bob.id, &end).await,
        Err(StoreError::NotFound),
        "only its user ends a session"
    );
    store.end_api_session(old.id, ann.id, &end).await.unwrap();
    assert_eq!(
        store.end_api_session(old.id, ann.id, &end).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.get_api_session(old.id).await.unwrap(), None);
    // A sign-in after a session expired forgets it.
    let later = api_session(3, ann.id, newer.expires_at);
    store
        .create_api_session(
            &later,
            &ann.password_hash,
            &audit(AuditAction::AuthLogin, ann.id, later.created_at),
        )
        .await
        .unwrap();
    // A sign-in that proved a password the user no longer has makes no session.
    let stale = api_session(4, ann.id, later.created_at);
    assert_eq!(
        store
            .create_api_session(
                &stale,
                "$argon2id$v=19$m=8,t=1,p=1$b2xkc2FsdA$b2xkaGFzaA",
                &audit(AuditAction::AuthLogin, ann.id, later.created_at),
            )
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.get_api_session(stale.id).await.unwrap(), None);
    assert_eq!(
        store.list_api_sessions(ann.id).await.unwrap(),
        vec![later],
        "the expired one was forgotten"
    );
}

pub async fn imports_skip_known_keys_and_shapes_are_kept_once(store: &dyn Store) {
    use keyward_domain::import::{ImportFormat, KeyShape};
    let u = user(1, "ann@example.com", None);
    store
        .create_user(&u, &audit(AuditAction::UserCreate, u.id, T0))
        .await
        .unwrap();
    let used = ApiKey {
        last_used_at: Some(T0 + Duration::minutes(5)),
        ..key(1, None, u.id, T0)
    };
    let first = [used.clone(), key(2, None, u.id, T0)];
    let mut stored = store
        .import_new_keys(
            &[],
            &first,
            &audit(AuditAction::ApiKeyImport, "batch 1", T0),
        )
        .await
        .unwrap();
    stored.sort();
    let mut expected = vec![first[0].id, first[1].id];
    expected.sort();
    assert_eq!(stored, expected);
    // Again, with one new key and one of the same digest under another id: only the new one.
    let again = [
        ApiKey {
            id: Uuid::from_u128(0xD0D0),
            ..key(1, None, u.id, T0)
        },
        key(3, None, u.id, T0),
    ];
    let stored = store
        .import_new_keys(
            &[],
            &again,
            &audit(AuditAction::ApiKeyImport, "batch 2", T0),
        )
        .await
        .unwrap();
    assert_eq!(stored, vec![again[1].id]);
    assert_eq!(store.get_key(Uuid::from_u128(0xD0D0)).await.unwrap(), None);
    let read = store.get_key(used.id).await.unwrap().unwrap();
    assert_eq!(read.last_used_at, used.last_used_at, "last use is imported");
    // Nothing new: nothing written, not even an audit entry.
    let before = audit_actions(store).await.len();
    let none = store
        .import_new_keys(&[], &first, &audit(AuditAction::ApiKeyImport, "again", T0))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(audit_actions(store).await.len(), before);
    // Owners come with their keys, or neither does.
    let bob = user(2, "bob@example.com", None);
    let taken = user(3, "ann@example.com", None);
    let bobs = key(7, None, bob.id, T0);
    assert_eq!(
        store
            .import_new_keys(
                &[bob.clone(), taken],
                std::slice::from_ref(&bobs),
                &audit(AuditAction::ApiKeyImport, "owners", T0)
            )
            .await,
        Err(StoreError::Conflict("email".into()))
    );
    assert_eq!(store.get_user(bob.id).await.unwrap(), None);
    assert_eq!(store.get_key(bobs.id).await.unwrap(), None);
    let stored = store
        .import_new_keys(
            std::slice::from_ref(&bob),
            std::slice::from_ref(&bobs),
            &audit(AuditAction::ApiKeyImport, "owners", T0),
        )
        .await
        .unwrap();
    assert_eq!(stored, vec![bobs.id]);
    assert_eq!(store.get_user(bob.id).await.unwrap(), Some(bob));

    let plain = KeyShape::of(ImportFormat::Estuary, None, None, T0).unwrap();
    let mac = KeyShape::of(ImportFormat::Stratum, None, Some(vec![7; 32]), T0).unwrap();
    for shape in [&plain, &mac, &plain] {
        store
            .add_key_shape(shape, &audit(AuditAction::ApiKeyImport, "shape", T0))
            .await
            .unwrap();
    }
    assert_eq!(store.list_key_shapes().await.unwrap(), vec![plain, mac]);
}

pub async fn every_table_is_in_the_copy_list(store: &dyn Store) {
    let mut listed: Vec<&str> = crate::copy::TABLES.iter().map(|(t, _)| *t).collect();
    listed.sort_unstable();
    let tables = store.table_names().await.unwrap();
    assert_eq!(tables, listed, "copy::TABLES must name every table");
    for (table, key) in crate::copy::TABLES {
        let columns = store.table_columns(table).await.unwrap();
        for k in *key {
            assert!(
                columns.iter().any(|c| c.name == *k),
                "{table} has no key column {k}"
            );
        }
    }
}

/// Rows read from one store written into another and read back give the same cells, with
/// keyset pages that neither skip nor repeat a row.
pub async fn rows_are_read_in_key_pages_and_written_whole(store: &dyn Store) {
    use crate::copy::Cell;
    let u = user(1, "ann@example.com", None);
    store
        .create_user(&u, &audit(AuditAction::UserCreate, u.id, T0))
        .await
        .unwrap();
    let keys: Vec<ApiKey> = (1..=5).map(|n| key(n, None, u.id, T0)).collect();
    store
        .import_keys(&keys, &audit(AuditAction::ApiKeyImport, "seed", T0))
        .await
        .unwrap();
    let columns: Vec<String> = store
        .table_columns("api_keys")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    let id_at = columns.iter().position(|c| c == "id").unwrap();
    let mut seen = Vec::new();
    let mut after: Option<Vec<Cell>> = None;
    loop {
        let page = store
            .read_rows("api_keys", &columns, &["id"], after.as_deref(), 2)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(vec![last[id_at].clone()]);
        seen.extend(page);
    }
    assert_eq!(seen.len(), 5, "every row once");
    assert_eq!(store.count_rows("api_keys").await.unwrap(), 5);
    // A key of three columns pages as well: (key, day, code).
    let day = crate::usage_day(T0);
    let counts = [
        (0, VerifyCode::Valid),
        (0, VerifyCode::Expired),
        (1, VerifyCode::Valid),
    ]
    .into_iter()
    .flat_map(|(d, code)| {
        keys[..2].iter().map(move |k| UsageCount {
            key_id: k.id,
            day: day + d,
            code,
            count: 1,
        })
    })
    .collect();
    store
        .record_usage(Arc::new(UsageBatch {
            counts,
            ..UsageBatch::new(T0)
        }))
        .await
        .unwrap();
    let usage_columns: Vec<String> = ["key_id", "day", "code", "count"].map(String::from).into();
    let key = ["key_id", "day", "code"];
    let mut pages = 0;
    let mut rows = Vec::new();
    let mut after: Option<Vec<Cell>> = None;
    loop {
        let page = store
            .read_rows("key_usage", &usage_columns, &key, after.as_deref(), 2)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last[..3].to_vec());
        pages += 1;
        rows.extend(page);
    }
    assert_eq!(rows.len(), 6, "every (key, day, code) once: {rows:?}");
    assert!(pages >= 3);
    let mut distinct = rows.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 6);
    // Writing the rows again is refused (they exist), and writes nothing.
    assert!(store.write_rows("api_keys", &columns, &seen).await.is_err());
    assert_eq!(store.count_rows("api_keys").await.unwrap(), 5);
    assert!(store.count_rows("no_such_table").await.is_err());
    assert!(store
        .read_rows(
            "api_keys",
            &["id; DROP TABLE users".into()],
            &["id"],
            None,
            1
        )
        .await
        .is_err());
}
