//! The store conformance suite on PostgreSQL, plus what only a shared database has to prove.
//!
//! Runs on one throwaway cluster per test binary (`keyward_pg_testkit::shared`), each case on a
//! new database of its own. It must never skip: without the PostgreSQL binaries every case
//! fails, saying how to install them.

// Test code: a failed step is a failed test, and waits on real processes and sockets are timed
// by the real clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyward_domain::credits::{Credits, Spend};
use keyward_domain::{Actor, ActorType, ApiKey, AuditAction, AuditEntry, KeyPrefix, PlainKey};
use keyward_pg_testkit::free_port;
use keyward_store::{Store, StoreError};
use keyward_store_postgres::PgStore;
use sqlx::Connection;
use time::macros::datetime;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

/// A fresh, empty, migrated store on a database of its own.
async fn fresh() -> Box<dyn Store> {
    Box::new(open_fresh().await.0)
}

/// A fresh store and the URL of its database, for cases that open it a second time.
async fn open_fresh() -> (PgStore, String) {
    let url = keyward_pg_testkit::shared()
        .fresh_database("conformance")
        .await;
    let store = PgStore::open(&url).await.expect("open the case's database");
    (store, url)
}

keyward_store::conformance_tests!(fresh);

// --- what only a shared database has to prove ------------------------------------------------

const T0: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

/// A fresh key (id `id`, secret bytes all `secret`), with `credits` when given, and its plaintext.
fn test_key(id: u128, secret: u8, credits: Option<i64>) -> (PlainKey, ApiKey) {
    let plain = PlainKey::from_secret_bytes(&KeyPrefix::default_prefix(), [secret; 32]);
    let key = ApiKey {
        credits: credits.map(|remaining| Credits {
            remaining,
            refill: None,
            set_at: T0,
        }),
        ..ApiKey::issued(
            Uuid::from_u128(id),
            &plain,
            &KeyPrefix::default_prefix(),
            Uuid::from_u128(7),
            None,
            keyward_domain::Scopes::none(),
            T0,
        )
    };
    (plain, key)
}

fn audit(action: AuditAction, id: Uuid) -> AuditEntry {
    Actor {
        id: "tester".into(),
        kind: ActorType::Jwt,
        user_id: None,
        source_ip: None,
        request_id: None,
    }
    .entry(T0, action, id)
}

/// Two nodes (two stores, two pools, one database) spending one key's credits at once never
/// spend more than there was, and the database ends at exactly zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_spends_on_two_nodes_spend_exactly() {
    let (first, url) = open_fresh().await;
    // Opening an up-to-date database again runs no migration twice.
    let second = PgStore::open(&url).await.expect("a second node opens it");
    let nodes: [Arc<dyn Store>; 2] = [Arc::new(first), Arc::new(second)];

    let (_, key) = test_key(0x4E07, 7, Some(20));
    nodes[0]
        .create_key(&key, &audit(AuditAction::ApiKeyCreate, key.id))
        .await
        .unwrap();

    // 8 workers x 5 spends of 1 against 20 credits: exactly 20 succeed.
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let node = Arc::clone(&nodes[w % 2]);
            tokio::spawn(async move {
                let mut spent = 0;
                for _ in 0..5 {
                    match node
                        .spend_credits(key.id, 1, T0, &|_| None)
                        .await
                        .unwrap()
                        .key
                    {
                        Some(Spend::Spent(_)) => spent += 1,
                        Some(Spend::Exhausted(_)) => {}
                        other => panic!("the key has credits, and no owner's: {other:?}"),
                    }
                }
                spent
            })
        })
        .collect();
    let mut spent = 0;
    for w in workers {
        spent += w.await.unwrap();
    }
    assert_eq!(spent, 20, "every credit spent once, none twice");
    let left = nodes[1].get_key(key.id).await.unwrap().unwrap().credits;
    assert_eq!(left.map(|c| c.remaining), Some(0));
    for node in nodes {
        node.close().await;
    }
}

/// Two nodes leasing a cluster-wide window at once, from its very first lease (no row yet),
/// never lease more than the window's limit in all, and lease all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_leases_on_two_nodes_never_exceed_the_limit() {
    let (first, url) = open_fresh().await;
    let second = PgStore::open(&url).await.expect("a second node opens it");
    let nodes: [Arc<dyn Store>; 2] = [Arc::new(first), Arc::new(second)];
    for round in 0..5u128 {
        let key_id = Uuid::from_u128(0x1EA5E + round);
        let workers: Vec<_> = (0..16)
            .map(|w| {
                let node = Arc::clone(&nodes[w % 2]);
                tokio::spawn(async move {
                    let mut granted = 0;
                    loop {
                        let lease = node.lease_rate_budget(key_id, T0, 100, 8).await.unwrap();
                        if lease.granted == 0 {
                            return granted;
                        }
                        granted += lease.granted;
                    }
                })
            })
            .collect();
        let mut granted = 0;
        for w in workers {
            granted += w.await.unwrap();
        }
        assert_eq!(granted, 100, "round {round}: the whole window, never more");
    }
    for node in nodes {
        node.close().await;
    }
}

/// A server that is not there is `Unavailable` (not `Other`), and no error repeats the URL's
/// password.
#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_the_password_stays_secret() {
    let port = free_port().unwrap();
    let err = PgStore::open_with(
        &format!("postgres://keyward:s3cret-pw@127.0.0.1:{port}/keyward"),
        keyward_store_postgres::PgSettings {
            acquire_timeout: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await
    .expect_err("nothing listens there");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");

    let err = PgStore::open("postgres://keyward:s3cret-pw@127.0.0.1:notaport/keyward")
        .await
        .expect_err("not a URL");
    assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");
}

/// What a node's cache would be told, in order.
#[derive(Default)]
struct Recorder {
    heard: Mutex<Vec<String>>,
}

impl keyward_store::ChangeSink for Recorder {
    fn changed(&self, change: keyward_store::Change) {
        let text = match change {
            keyward_store::Change::Key(d) => format!("key {}", d.to_base64url()),
            keyward_store::Change::User(id) => format!("user {id}"),
            keyward_store::Change::Session(id) => format!("session {id}"),
            keyward_store::Change::Shapes => "shapes".into(),
            keyward_store::Change::NewKeys => "new keys".into(),
            keyward_store::Change::All => "all".into(),
        };
        self.heard.lock().unwrap().push(text);
    }
    fn lost(&self) {
        self.heard.lock().unwrap().push("lost".into());
    }
    fn resumed(&self) {
        self.heard.lock().unwrap().push("resumed".into());
    }
}

impl Recorder {
    async fn wait_for(&self, what: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let heard = self.heard.lock().unwrap().clone();
            if heard.iter().any(|h| h == what) {
                return heard;
            }
            assert!(
                Instant::now() < deadline,
                "never heard {what:?}; heard {heard:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn clear(&self) {
        self.heard.lock().unwrap().clear();
    }
}

/// Starts `store` watching the change feed; returns what it hears once it listens.
async fn watching(store: &Arc<PgStore>) -> (Arc<Recorder>, tokio::task::JoinHandle<()>) {
    let recorder = Arc::new(Recorder::default());
    let task = {
        let (store, sink) = (Arc::clone(store), Arc::clone(&recorder));
        tokio::spawn(async move { store.watch(sink).await })
    };
    assert_eq!(recorder.wait_for("resumed").await, ["resumed"]);
    recorder.clear();
    (recorder, task)
}

/// Creates a key (from `id` and `secret`) and edits it through `writer`; returns how a watcher
/// hears the edit.
async fn create_and_edit(writer: &PgStore, id: u128, secret: u8) -> (ApiKey, String) {
    let (plain, key) = test_key(id, secret, None);
    writer
        .create_key(&key, &audit(AuditAction::ApiKeyCreate, key.id))
        .await
        .unwrap();
    writer
        .update_key(&key, T0, &audit(AuditAction::ApiKeyUpdate, key.id))
        .await
        .unwrap();
    (key, format!("key {}", plain.digest().to_base64url()))
}

/// An edit, a revoke or a rotation on one node is announced to another node's watcher when it
/// commits; a failed change announces nothing; a tenant delete says "all"; a killed listening
/// connection is reported lost, then resumed once the watcher is listening again; a node does not
/// hear its own changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_every_watcher_and_a_lost_feed_is_reported() {
    let (writer, url) = open_fresh().await;
    let watcher = Arc::new(PgStore::open(&url).await.unwrap());
    let (recorder, task) = watching(&watcher).await;

    let (key, said) = create_and_edit(&writer, 0xFEED, 9).await;
    recorder.wait_for(&said).await;
    recorder.clear();
    writer
        .revoke_key(key.id, T0, T0, &audit(AuditAction::ApiKeyRevoke, key.id))
        .await
        .unwrap();
    recorder.wait_for(&said).await;
    recorder.clear();
    // Revoking it again fails and rolls back: nothing is announced.
    let again = writer
        .revoke_key(key.id, T0, T0, &audit(AuditAction::ApiKeyRevoke, key.id))
        .await;
    assert_eq!(again.unwrap_err(), StoreError::NotFound);
    let tenant = keyward_domain::Tenant {
        id: Uuid::from_u128(0x7E),
        name: "Gone".into(),
        slug: "gone".into(),
        key_prefix: None,
        metadata: serde_json::json!({}),
        policy: keyward_domain::TenantPolicy::default(),
        created_at: T0,
        updated_at: T0,
    };
    writer
        .create_tenant(&tenant, &audit(AuditAction::TenantCreate, tenant.id))
        .await
        .unwrap();
    writer
        .delete_tenant(
            tenant.id,
            true,
            T0,
            &audit(AuditAction::TenantDelete, tenant.id),
        )
        .await
        .unwrap();
    assert_eq!(
        recorder.wait_for("all").await,
        ["all"],
        "the failed revoke and the tenant's creation announced nothing"
    );
    recorder.clear();

    // Kill the watcher's listening connection, as an operator or a network might.
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name LIKE 'keyward-listener-%' AND datname = current_database()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, [true], "one listener, killed");
    let heard = recorder.wait_for("resumed").await;
    assert_eq!(heard, ["lost", "resumed"], "no change was made meanwhile");
    admin.close().await.unwrap();
    recorder.clear();

    // A node's own changes are not echoed back to it (it applied them before answering);
    // announcements arrive in commit order, so hearing the writer's later one proves the skip.
    let (plain, second) = test_key(0xFEEE, 10, None);
    writer
        .create_key(&second, &audit(AuditAction::ApiKeyCreate, second.id))
        .await
        .unwrap();
    watcher
        .update_key(&second, T0, &audit(AuditAction::ApiKeyUpdate, second.id))
        .await
        .unwrap();
    writer
        .update_key(&second, T0, &audit(AuditAction::ApiKeyUpdate, second.id))
        .await
        .unwrap();
    let said = format!("key {}", plain.digest().to_base64url());
    assert_eq!(recorder.wait_for(&said).await, std::slice::from_ref(&said));
    recorder.clear();

    // A rotation announces the key it retires.
    let (_, third) = test_key(0xFEEF, 12, None);
    writer
        .rotate_key(
            second.id,
            T0,
            &third,
            T0,
            &audit(AuditAction::ApiKeyRotate, second.id),
        )
        .await
        .unwrap();
    assert_eq!(recorder.wait_for(&said).await, [said]);

    task.abort();
    writer.close().await;
    watcher.close().await;
}

/// A TCP proxy whose connections can be frozen: bytes stop flowing both ways and nothing is
/// closed, as when a server or a network vanishes without a word (no FIN, no RST).
struct FreezingProxy {
    port: u16,
    opened: Arc<AtomicUsize>,
    /// Connections numbered below this are frozen.
    frozen_below: Arc<AtomicUsize>,
}

impl FreezingProxy {
    async fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let opened = Arc::new(AtomicUsize::new(0));
        let frozen_below = Arc::new(AtomicUsize::new(0));
        let (count, frozen) = (Arc::clone(&opened), Arc::clone(&frozen_below));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pipe(client_read, server_write, n, Arc::clone(&frozen)));
                tokio::spawn(pipe(server_read, client_write, n, Arc::clone(&frozen)));
            }
        });
        Self {
            port,
            opened,
            frozen_below,
        }
    }

    /// Freezes every connection open now; later ones flow.
    fn freeze_open_connections(&self) {
        self.frozen_below
            .store(self.opened.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, n: usize, frozen: Arc<AtomicUsize>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if n < frozen.load(Ordering::SeqCst) {
            // Hold both sockets open and silent for good.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..read]).await.is_err() {
            return;
        }
    }
}

/// A listening connection that goes silent without closing (a vanished server or network) is
/// noticed by the heartbeat within about two seconds, reported lost, and replaced; changes then
/// reach the watcher again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_listener_is_noticed_and_replaced() {
    let (writer, url) = open_fresh().await;
    let (_, rest) = url.split_once("@127.0.0.1:").unwrap();
    let (port, _) = rest.split_once('/').unwrap();
    let proxy = FreezingProxy::start(port.parse().unwrap()).await;
    let proxied = url.replace(
        &format!("@127.0.0.1:{port}/"),
        &format!("@127.0.0.1:{}/", proxy.port),
    );
    let watcher = Arc::new(PgStore::open(&proxied).await.unwrap());
    let (recorder, task) = watching(&watcher).await;

    proxy.freeze_open_connections();
    let frozen_at = Instant::now();
    recorder.wait_for("lost").await;
    let noticed = frozen_at.elapsed();
    assert!(
        noticed < Duration::from_secs(4),
        "the silent listener was noticed only after {noticed:?}"
    );
    assert_eq!(recorder.wait_for("resumed").await, ["lost", "resumed"]);
    recorder.clear();

    // The new listening connection hears the next change.
    let (_, said) = create_and_edit(&writer, 0xDEAD, 13).await;
    assert_eq!(recorder.wait_for(&said).await, [said]);

    task.abort();
    writer.close().await;
    // The watcher's frozen connections would never answer a goodbye: it is dropped, not closed.
}

/// `sslmode` in the URL is honoured: with `verify-full` against the cluster's authority the
/// store's connections are encrypted; against the public roots the same server is refused.
#[tokio::test]
async fn tls_is_chosen_in_the_url_and_verified() {
    let cluster = keyward_pg_testkit::shared();
    let plain_url = cluster.fresh_database("tls").await;
    let store = PgStore::open(&cluster.tls_url(&plain_url))
        .await
        .expect("TLS with the cluster's authority");
    store.ping().await.unwrap();
    let mut admin = sqlx::PgConnection::connect(&plain_url).await.unwrap();
    let (encrypted, plain): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'keyward' AND a.datname = current_database()",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(encrypted >= 1, "the store holds TLS connections");
    assert_eq!(plain, 0, "and no plain ones");
    store.close().await;

    let untrusted = cluster
        .tls_url(&plain_url)
        .split("&sslrootcert")
        .next()
        .unwrap()
        .to_owned();
    let refused = PgStore::open_with(
        &untrusted,
        keyward_store_postgres::PgSettings {
            acquire_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    )
    .await;
    assert!(
        refused.is_err(),
        "a certificate no trusted root signed is refused"
    );
    admin.close().await.unwrap();
}

/// A fresh store holding one key with 5 credits, the URL of its database, and the key.
async fn credited_key(id: u128, secret: u8) -> (PgStore, String, ApiKey) {
    let (store, url) = open_fresh().await;
    let (_, key) = test_key(id, secret, Some(5));
    store
        .create_key(&key, &audit(AuditAction::ApiKeyCreate, key.id))
        .await
        .unwrap();
    (store, url, key)
}

/// Another session that holds the key's row lock until it rolls back.
async fn lock_key_row(url: &str, key_id: Uuid) -> sqlx::PgConnection {
    let mut locker = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE")
        .bind(key_id)
        .execute(&mut locker)
        .await
        .unwrap();
    locker
}

/// `pool_size` (`--db-pool-size`) caps the connections a node holds: six spends stuck behind a
/// row lock occupy two connections and wait for them, never open a third, and all finish
/// (exactly, 5 credits for 6 spends) once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_size_caps_the_connections_a_node_holds() {
    let (first, url, key) = credited_key(0x9001, 14).await;
    // Connections of keyward's pools in this database that wait on the lock (idle ones, such as
    // a closed store's that the server has not reaped yet, do not count).
    let held = || async {
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'keyward' \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        admin.close().await.unwrap();
        n
    };
    first.close().await;
    let small = Arc::new(
        PgStore::open_with(
            &url,
            keyward_store_postgres::PgSettings {
                pool_size: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap(),
    );

    let mut locker = lock_key_row(&url, key.id).await;
    let spends: Vec<_> = (0..6)
        .map(|_| {
            let small = Arc::clone(&small);
            tokio::spawn(async move { small.spend_credits(key.id, 1, T0, &|_| None).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(2);
    while held().await < 2 {
        assert!(
            Instant::now() < deadline,
            "the spends never took two connections"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(held().await, 2, "no more connections than the pool size");
    assert!(
        spends.iter().all(|s| !s.is_finished()),
        "all wait on the lock"
    );

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut locker)
        .await
        .unwrap();
    let mut spent = 0;
    let mut exhausted = 0;
    for s in spends {
        match s.await.unwrap().unwrap().key {
            Some(Spend::Spent(_)) => spent += 1,
            Some(Spend::Exhausted(_)) => exhausted += 1,
            other => panic!("the key has credits, and no owner's: {other:?}"),
        }
    }
    assert_eq!((spent, exhausted), (5, 1));
    small.close().await;
}

/// `statement_timeout` bounds every statement of the store: a spend stuck behind another
/// session's row lock gives up after the timeout, as `Unavailable` (a 503, not a 500).
#[tokio::test]
async fn the_statement_timeout_bounds_a_statement_stuck_on_a_lock() {
    let (first, url, key) = credited_key(0x10C, 11).await;
    let impatient = PgStore::open_with(
        &url,
        keyward_store_postgres::PgSettings {
            statement_timeout: Some(Duration::from_millis(300)),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let mut locker = lock_key_row(&url, key.id).await;
    let started = Instant::now();
    let stuck = tokio::time::timeout(
        Duration::from_secs(5),
        impatient.spend_credits(key.id, 1, T0, &|_| None),
    )
    .await
    .expect("the statement timeout ended the wait");
    let waited = started.elapsed();
    assert!(
        matches!(stuck, Err(StoreError::Unavailable(_))),
        "{stuck:?}"
    );
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "gave up after {waited:?}"
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut locker)
        .await
        .unwrap();
    assert!(matches!(
        first
            .spend_credits(key.id, 1, T0, &|_| None)
            .await
            .map(|s| s.key),
        Ok(Some(Spend::Spent(_)))
    ));
    impatient.close().await;
    first.close().await;
}
