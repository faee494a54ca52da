//! Many keyward nodes (real processes) on one PostgreSQL cluster that the test starts itself:
//! a revocation on one node reaches the others within a second (also while a node's listening
//! connection is killed), credits are exact across nodes, usage counters add up, and a node rides
//! out a database restart: fail closed past the cache TTL, 503s in the error shape, recovery on
//! its own, nothing acknowledged lost.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection;

use crate::process::{keyward, start_with, Server, ADMIN_EMAIL, ADMIN_PASSWORD};

/// Shared by every node: sessions made on one node are valid on all.
const JWT_SECRET: &str = "nodes-test-secret-nodes-test-secret-0123";
/// The nodes' cache TTL: the bound on staleness when a node's change feed is down.
const CACHE_TTL_SECS: u64 = 5;

async fn node(dir: &Path, url: &str, extra: &[&str]) -> Server {
    node_with_ttl(dir, url, CACHE_TTL_SECS, extra).await
}

async fn node_with_ttl(dir: &Path, url: &str, ttl_secs: u64, extra: &[&str]) -> Server {
    let ttl = format!("{ttl_secs}s");
    let mut args = vec!["--cache-ttl", ttl.as_str()];
    args.extend_from_slice(extra);
    start_with(
        dir,
        true,
        &[
            ("KEYWARD_DATABASE_URL", url),
            ("KEYWARD_JWT_SECRET", JWT_SECRET),
        ],
        &args,
    )
    .await
}

/// A tenant, and in it a verifier key (`keyward:verify`) made by the admin on `node`.
async fn verifier_on(node: &Server, admin: &str) -> (String, String) {
    let (status, tenant) = node
        .call(
            Method::POST,
            "/api/v1/tenants",
            Some(admin),
            Some(json!({"name": "Nodes", "slug": "nodes"})),
        )
        .await;
    assert_eq!(status, 201, "{tenant}");
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let (_, key) = create_key(
        node,
        admin,
        &tenant_id,
        json!({"scopes": ["keyward:verify"]}),
    )
    .await;
    (tenant_id, key)
}

async fn create_key(node: &Server, admin: &str, tenant_id: &str, extra: Value) -> (String, String) {
    let mut body = json!({"name": "k", "tenant_id": tenant_id});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, key) = node
        .call(Method::POST, "/api/v1/api-keys", Some(admin), Some(body))
        .await;
    assert_eq!(status, 201, "{key}");
    (
        key["id"].as_str().unwrap().to_owned(),
        key["key"].as_str().unwrap().to_owned(),
    )
}

/// One verification over `client` (kept alive between calls): status and code.
async fn verify(
    client: &reqwest::Client,
    node: &Server,
    verifier: &str,
    key: &str,
) -> (u16, String) {
    let res = client
        .post(format!("{}/api/v1/keys/verify", node.base))
        .bearer_auth(verifier)
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or("").to_owned())
}

/// Polls `node` until it answers REVOKED; how long that took after `since`.
async fn until_revoked(node: &Server, verifier: &str, key: &str, since: Instant) -> Duration {
    let client = reqwest::Client::new();
    loop {
        let (status, code) = verify(&client, node, verifier, key).await;
        match code.as_str() {
            "REVOKED" => return since.elapsed(),
            "VALID" => {}
            other => panic!("unexpected answer {status} {other}"),
        }
        assert!(
            since.elapsed() < Duration::from_secs(CACHE_TTL_SECS),
            "a revoked key still VALID past the safety TTL"
        );
    }
}

/// The value of an unlabelled metric in `node`'s `/metrics`.
async fn metric(node: &Server, name: &str) -> String {
    let text = reqwest::get(format!("{}/metrics", node.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .to_owned()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Kills node `pid`'s listening connection; returns how many backends were terminated.
async fn kill_listener(url: &str, pid: u32) -> usize {
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1",
    )
    .bind(format!("keyward-listener-{pid}-%"))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    killed.into_iter().filter(|k| *k).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_on_one_node_is_rejected_by_every_node_within_a_second() {
    let url = keyward_pg_testkit::shared().fresh_database("nodes").await;
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), &url, &[]).await;
    let (b, c) = (
        node(dir.path(), &url, &[]).await,
        node(dir.path(), &url, &[]).await,
    );
    let admin = a.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (tenant_id, verifier) = verifier_on(&a, &admin).await;
    let client = reqwest::Client::new();

    let mut worst = Vec::new();
    let mut killed = 0;
    for trial in 0..100 {
        let (id, key) = create_key(&a, &admin, &tenant_id, json!({})).await;
        // B and C learn the key (and cache it) before it is revoked.
        for n in [&b, &c] {
            assert_eq!(verify(&client, n, &verifier, &key).await.1, "VALID");
            assert_eq!(verify(&client, n, &verifier, &key).await.1, "VALID");
        }
        if trial % 25 == 10 {
            // B's change feed dies just before the revoke: its notification may be lost.
            killed += kill_listener(&url, b.pid()).await;
        }
        // Every other trial retires the key by rotating it (no grace period) instead.
        let (status, _) = if trial % 2 == 0 {
            let path = format!("/api/v1/api-keys/{id}");
            a.call(Method::DELETE, &path, Some(&admin), None).await
        } else {
            let path = format!("/api/v1/api-keys/{id}/rotate");
            a.call(Method::POST, &path, Some(&admin), Some(json!({})))
                .await
        };
        assert!(matches!(status, 201 | 204), "{status}");
        let revoked = Instant::now();
        let (on_b, on_c) = tokio::join!(
            until_revoked(&b, &verifier, &key, revoked),
            until_revoked(&c, &verifier, &key, revoked)
        );
        worst.push(on_b.max(on_c));
    }
    assert_eq!(
        killed, 4,
        "B's listener was killed four times during the trials"
    );
    worst.sort();
    let (p50, p99, max) = (
        percentile(&worst, 0.5),
        percentile(&worst, 0.99),
        worst[worst.len() - 1],
    );
    eprintln!(
        "revocation delay over {} trials (A's 2xx to REVOKED on both B and C): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        worst.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    assert!(max < Duration::from_secs(1), "worst delay {max:?}");

    // B listens again by itself.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut pg = sqlx::PgConnection::connect(&url).await.unwrap();
    loop {
        let listening: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1",
        )
        .bind(format!("keyward-listener-{}-%", b.pid()))
        .fetch_one(&mut pg)
        .await
        .unwrap();
        if listening == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "B did not listen again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in [a, b, c] {
        assert!(n.terminate().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_are_exact_across_three_nodes_and_usage_adds_up() {
    let url = keyward_pg_testkit::shared().fresh_database("credits").await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = Arc::new([
        node(dir.path(), &url, &[]).await,
        node(dir.path(), &url, &[]).await,
        node(dir.path(), &url, &[]).await,
    ]);
    let admin = nodes[0].login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (tenant_id, verifier) = verifier_on(&nodes[0], &admin).await;
    let (key_id, key) = create_key(&nodes[0], &admin, &tenant_id, json!({"remaining": 1000})).await;

    // 3 nodes x 32 connections, each verifying until the credits are gone.
    let workers: Vec<_> = (0..96)
        .map(|w| {
            let (nodes, verifier, key) = (Arc::clone(&nodes), verifier.clone(), key.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let (mut valid, mut exceeded) = (0u64, 0u64);
                loop {
                    let (status, code) = verify(&client, &nodes[w % 3], &verifier, &key).await;
                    match (status, code.as_str()) {
                        (200, "VALID") => valid += 1,
                        (200, "USAGE_EXCEEDED") => {
                            exceeded += 1;
                            return (valid, exceeded);
                        }
                        other => panic!("unexpected answer {other:?}"),
                    }
                }
            })
        })
        .collect();
    let (mut valid, mut exceeded) = (0, 0);
    for w in workers {
        let (v, e) = w.await.unwrap();
        valid += v;
        exceeded += e;
    }
    assert_eq!(
        valid, 1000,
        "exactly as many VALID answers as there were credits"
    );
    assert_eq!(exceeded, 96);

    // Every node flushes its counters at shutdown; the sums must match the answers exactly.
    let nodes = Arc::into_inner(nodes).expect("workers are done");
    for n in nodes {
        assert!(n.terminate().success());
    }
    let mut pg = sqlx::PgConnection::connect(&url).await.unwrap();
    let counted: Vec<(String, i64)> = sqlx::query_as(
        "SELECT code, SUM(count)::BIGINT FROM key_usage WHERE key_id = $1::uuid \
         GROUP BY code ORDER BY code",
    )
    .bind(&key_id)
    .fetch_all(&mut pg)
    .await
    .unwrap();
    assert_eq!(
        counted,
        [
            ("USAGE_EXCEEDED".to_owned(), 96),
            ("VALID".to_owned(), 1000)
        ]
    );
    let remaining: i64 = sqlx::query_scalar("SELECT remaining FROM api_keys WHERE id = $1::uuid")
        .bind(&key_id)
        .fetch_one(&mut pg)
        .await
        .unwrap();
    assert_eq!(remaining, 0);
}

/// Owner limits and allowlists set through one node govern verification on another within the
/// usual second: both travel with the cached key, and their changes are announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_limits_and_allowlists_reach_every_node_within_a_second() {
    let url = keyward_pg_testkit::shared()
        .fresh_database("policies")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        node(dir.path(), &url, &[]).await,
        node(dir.path(), &url, &[]).await,
    );
    let admin = a.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (tenant_id, verifier) = verifier_on(&a, &admin).await;
    let (key_id, key) = create_key(&a, &admin, &tenant_id, json!({})).await;
    let (_, me) = a
        .call(Method::GET, "/api/v1/users/me", Some(&admin), None)
        .await;
    let owner = me["id"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    // B caches the key first.
    assert_eq!(verify(&client, &b, &verifier, &key).await.1, "VALID");
    assert_eq!(verify(&client, &b, &verifier, &key).await.1, "VALID");

    // Until B answers `expected` for `body`: how long after `since`.
    let until = |body: Value, expected: &'static str, since: Instant| {
        let (client, b, verifier) = (&client, &b, &verifier);
        async move {
            loop {
                let res = client
                    .post(format!("{}/api/v1/keys/verify", b.base))
                    .bearer_auth(verifier)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let answer: Value = res.json().await.unwrap();
                if answer["code"] == expected {
                    return (since.elapsed(), answer);
                }
                assert!(since.elapsed() < Duration::from_secs(5), "{answer}");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    let limits = json!({"rate_limit_max": 1, "rate_limit_window": "1 hour"});
    let path = format!("/api/v1/users/{owner}/limits");
    let (status, _) = a.call(Method::PUT, &path, Some(&admin), Some(limits)).await;
    assert_eq!(status, 200);
    let (took, answer) = until(json!({"key": key}), "RATE_LIMITED", Instant::now()).await;
    assert_eq!(answer["limited_by"], "owner", "{answer}");
    assert!(
        took < Duration::from_secs(1),
        "owner limits reached B after {took:?}"
    );
    let (status, _) = a
        .call(Method::PUT, &path, Some(&admin), Some(json!({})))
        .await;
    assert_eq!(status, 200);
    until(json!({"key": key}), "VALID", Instant::now()).await;

    let fence = json!({"allowed_ips": ["192.0.2.0/24"]});
    let (status, _) = a
        .call(
            Method::PATCH,
            &format!("/api/v1/api-keys/{key_id}"),
            Some(&admin),
            Some(fence),
        )
        .await;
    assert_eq!(status, 200);
    let (took, _) = until(
        json!({"key": key, "ip": "198.51.100.1"}),
        "IP_NOT_ALLOWED",
        Instant::now(),
    )
    .await;
    assert!(
        took < Duration::from_secs(1),
        "the allowlist reached B after {took:?}"
    );
    assert_eq!(
        until(
            json!({"key": key, "ip": "192.0.2.1"}),
            "VALID",
            Instant::now()
        )
        .await
        .1["code"],
        "VALID"
    );
    for n in [a, b] {
        assert!(n.terminate().success());
    }
}

/// The bound the README states for a cluster-wide limit: never more than `max` VALID answers in
/// a window across the cluster (leases never exceed what is left), and no fewer once every node
/// has drained the budget it leased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_wide_limit_holds_across_three_nodes() {
    let url = keyward_pg_testkit::shared()
        .fresh_database("cluster_limit")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = Arc::new([
        node(dir.path(), &url, &[]).await,
        node(dir.path(), &url, &[]).await,
        node(dir.path(), &url, &[]).await,
    ]);
    let admin = nodes[0].login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (tenant_id, verifier) = verifier_on(&nodes[0], &admin).await;
    let limit = json!({"rate_limit_max": 1000, "rate_limit_window": "1 minute", "rate_limit_scope": "cluster"});
    let (_, key) = create_key(&nodes[0], &admin, &tenant_id, limit).await;
    let started = Instant::now();

    // 3 nodes x 32 connections, each verifying until its node refuses: a node refuses only once
    // the database says the window is spent, and after that for the rest of the window.
    let workers: Vec<_> = (0..96)
        .map(|w| {
            let (nodes, verifier, key) = (Arc::clone(&nodes), verifier.clone(), key.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut valid = 0u64;
                loop {
                    let (status, code) = verify(&client, &nodes[w % 3], &verifier, &key).await;
                    match (status, code.as_str()) {
                        (200, "VALID") => valid += 1,
                        (200, "RATE_LIMITED") => return valid,
                        other => panic!("unexpected answer {other:?}"),
                    }
                }
            })
        })
        .collect();
    let mut valid = 0;
    for w in workers {
        valid += w.await.unwrap();
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(50),
        "the run must fit in the key's first window (it took {took:?})"
    );
    let mut leases = 0;
    for n in nodes.iter() {
        let text = metric(n, "keyward_cluster_rate_limit_leases_total").await;
        leases += text
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{text:?}"));
    }
    println!(
        "cluster-wide limit of 1000 per minute, 3 nodes x 32 connections: {valid} VALID \
         (bound: 1000..=1000), {leases} leases of the database in {took:?}"
    );
    assert_eq!(valid, 1000, "exactly the window's limit across the cluster");
    assert!(
        leases < 200,
        "{leases} database leases for 1000 verifications: no write per request"
    );
}

/// Keeps creating keys through `node` until `stop`; returns the ids it was given a 201 for, and
/// how many 503s it saw. Any other answer fails the test.
async fn keep_writing(
    node: Arc<Server>,
    admin: String,
    tenant_id: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<String>, usize) {
    let client = reqwest::Client::new();
    let (mut acknowledged, mut unavailable) = (Vec::new(), 0);
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let res = client
            .post(format!("{}/api/v1/api-keys", node.base))
            .bearer_auth(&admin)
            .json(&json!({"tenant_id": tenant_id, "name": "under load"}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        match status {
            201 => acknowledged.push(body["id"].as_str().unwrap().to_owned()),
            503 => {
                assert_eq!(body["error"]["code"], "unavailable", "{body}");
                unavailable += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    (acknowledged, unavailable)
}

/// PostgreSQL stops under load and comes back: while it is gone `/readyz` is 503, management
/// calls on every surface are 503 in that surface's error shape, verify answers a cached key until
/// its TTL is over and then fails closed (503 `UNAVAILABLE`), like a key it never cached, and so
/// does forward auth; within 5 s of the database's
/// return the node serves again by itself, and every write it acknowledged is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_rides_out_a_database_restart() {
    const TTL: Duration = Duration::from_secs(8);
    let cluster = tokio::task::spawn_blocking(keyward_pg_testkit::Cluster::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let cluster = Arc::new(cluster);
    let url = cluster.fresh_database("outage").await;
    let dir = tempfile::tempdir().unwrap();
    let n = Arc::new(
        node_with_ttl(
            dir.path(),
            &url,
            TTL.as_secs(),
            &["--db-acquire-timeout", "1s"],
        )
        .await,
    );
    let admin = n.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (tenant_id, verifier) = verifier_on(&n, &admin).await;
    let client = reqwest::Client::new();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn(keep_writing(
        Arc::clone(&n),
        admin.clone(),
        tenant_id.clone(),
        Arc::clone(&stop),
    ));
    let (_, cached) = create_key(&n, &admin, &tenant_id, json!({})).await;
    let (_, uncached) = create_key(&n, &admin, &tenant_id, json!({})).await;
    assert_eq!(
        verify(&client, &n, &verifier, &cached).await,
        (200, "VALID".into())
    );
    let filled = Instant::now();

    let c = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || c.stop_server())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        verify(&client, &n, &verifier, &cached).await,
        (200, "VALID".into()),
        "inside its TTL a cached key is still answered"
    );
    assert!(
        filled.elapsed() < TTL,
        "the test was too slow to check the cached answer"
    );
    assert_eq!(
        verify(&client, &n, &verifier, &uncached).await,
        (503, "UNAVAILABLE".into()),
        "a key that cannot be read fails closed"
    );
    let (status, body) = n.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("unavailable"))
    );
    // Management calls answer 503 in each surface's own error shape.
    for (path, pointer, expected) in [
        ("/api/v1/api-keys", "/error/code", "unavailable"),
        ("/user/api-keys", "/error/reason", "ERR_SERVICE_UNAVAILABLE"),
        ("/api/apikey", "/code", "UNAVAILABLE"),
    ] {
        let (status, body) = n.call(Method::GET, path, Some(&admin), None).await;
        assert_eq!(
            (status, body.pointer(pointer).and_then(Value::as_str)),
            (503, Some(expected)),
            "{path}: {body}"
        );
    }
    // Each such 503 is logged with the request it answers (its cause, and the failed answer),
    // so that an operator can find it.
    let res = client
        .get(format!("{}/api/v1/api-keys", n.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let logs = n.logs();
    for event in ["storage unavailable", "response failed"] {
        let line = logs
            .lines()
            .find(|l| l.contains(&id) && l.contains(event))
            .unwrap_or_else(|| panic!("no {event:?} line names request {id}:\n{logs}"));
        for part in ["GET", "/api/v1/api-keys"] {
            assert!(line.contains(part), "{part} missing from {line}");
        }
    }
    // Forward auth fails closed too, and says when to try again (in both its forms).
    for path in ["/api/v1/auth/forward", "/api/v1/auth/forward/orders/1?x=1"] {
        let res = client
            .get(format!("{}{path}", n.base))
            .header("x-keyward-verifier", &verifier)
            .header("x-api-key", &uncached)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 503, "{path}");
        assert_eq!(res.headers()["retry-after"], "1", "{path}");
    }

    tokio::time::sleep((TTL + Duration::from_millis(500)).saturating_sub(filled.elapsed())).await;
    assert_eq!(
        verify(&client, &n, &verifier, &cached).await,
        (503, "UNAVAILABLE".into()),
        "past its TTL a cached key fails closed too"
    );

    let c = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || c.start_server())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let back = Instant::now();
    loop {
        let ready = n.call(Method::GET, "/readyz", None, None).await.0 == 200;
        let verified = verify(&client, &n, &verifier, &uncached).await;
        if ready && verified == (200, "VALID".to_owned()) {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "not recovered 5 s after the database came back: {verified:?}\n{}",
            n.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "recovered {:.0} ms after the database came back",
        back.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(metric(&n, "keyward_storage_down").await, "0");
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&n, "keyward_cache_coherent").await != "1" {
        assert!(
            Instant::now() < deadline,
            "the change feed did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acknowledged, unavailable) = writer.await.unwrap();
    assert!(unavailable > 0, "the writer saw the outage");
    assert!(acknowledged.len() > 2, "the writer wrote before and after");
    for id in &acknowledged {
        let (status, _) = n
            .call(
                Method::GET,
                &format!("/api/v1/api-keys/{id}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, 200, "acknowledged key {id} lost");
    }
    let n = Arc::into_inner(n).expect("the writer is done");
    assert!(n.terminate().success());
}

/// Nodes on a shared database must share the session secret: without one, `serve` refuses to
/// start (and says how to fix it) rather than make sessions that other nodes reject.
#[tokio::test]
async fn a_shared_database_needs_a_shared_session_secret() {
    let url = keyward_pg_testkit::shared().fresh_database("secret").await;
    let dir = tempfile::tempdir().unwrap();
    let out = keyward(dir.path())
        .env("KEYWARD_DATABASE_URL", &url)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("KEYWARD_JWT_SECRET"), "{stderr}");
}

/// Until `check` is true of what B answers, at most five seconds: how long it took.
async fn within<F, Fut>(mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let since = Instant::now();
    while !check().await {
        assert!(since.elapsed() < Duration::from_secs(5), "never happened");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    since.elapsed()
}

/// A user disabled on one node is refused on another (its session and its key) within a
/// second, a session signed out on one node is refused on another as quickly, and a key
/// imported on one node verifies on another as quickly, though that node had found it unknown.
#[tokio::test]
async fn disabled_users_and_signed_out_sessions_are_refused_on_every_node_within_a_second() {
    let url = keyward_pg_testkit::shared()
        .fresh_database("lifecycle")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        node(dir.path(), &url, &[]).await,
        node(dir.path(), &url, &[]).await,
    );
    let admin = a.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (tenant_id, verifier) = verifier_on(&a, &admin).await;
    let (status, user) = a
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"email": "leaver@example.com", "password": ADMIN_PASSWORD, "tenant_id": tenant_id})),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let user_path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());
    let session = a.login("leaver@example.com", ADMIN_PASSWORD).await;
    let (status, created) = a
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&session),
            Some(json!({"name": "theirs"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    // B knows the key and the session first.
    assert_eq!(verify(&client, &b, &verifier, &key).await.1, "VALID");
    let me_on_b = |token: String| {
        let b = &b;
        async move {
            b.call(Method::GET, "/api/v1/users/me", Some(&token), None)
                .await
                .0
        }
    };
    assert_eq!(me_on_b(session.clone()).await, 200);

    let (status, _) = a
        .call(
            Method::PATCH,
            &user_path,
            Some(&admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, 200);
    let took =
        within(|| async { verify(&client, &b, &verifier, &key).await.1 == "OWNER_DISABLED" }).await;
    assert!(
        took < Duration::from_secs(1),
        "B verified the key {took:?} on"
    );
    let took = within(|| async { me_on_b(session.clone()).await == 401 }).await;
    assert!(
        took < Duration::from_secs(1),
        "B took the session {took:?} on"
    );

    let (status, _) = a
        .call(
            Method::PATCH,
            &user_path,
            Some(&admin),
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(status, 200);
    within(|| async { verify(&client, &b, &verifier, &key).await.1 == "VALID" }).await;
    let again = a.login("leaver@example.com", ADMIN_PASSWORD).await;
    assert_eq!(me_on_b(again.clone()).await, 200);
    let (status, _) = a
        .call(Method::POST, "/api/v1/auth/logout", Some(&again), None)
        .await;
    assert_eq!(status, 204);
    let took = within(|| async { me_on_b(again.clone()).await == 401 }).await;
    assert!(
        took < Duration::from_secs(1),
        "B took a signed-out session {took:?} on"
    );

    // A session ended by the cap (a sign-in on A past MAX_SESSIONS ends the user's oldest) is
    // refused on B as quickly. The rest of the cap is filled straight through the store: a
    // sign-in each would cost the node 99 more password hashes.
    let oldest = a.login("leaver@example.com", ADMIN_PASSWORD).await;
    assert_eq!(me_on_b(oldest.clone()).await, 200);
    use keyward_store::Store as _;
    let store = keyward_store_postgres::PgStore::open(&url).await.unwrap();
    let user_id: uuid::Uuid = user["id"].as_str().unwrap().parse().unwrap();
    let stored = store.get_user(user_id).await.unwrap().unwrap();
    let now = time::OffsetDateTime::now_utc();
    for n in 1..keyward_store::MAX_SESSIONS {
        let session = keyward_domain::ApiSession {
            id: uuid::Uuid::new_v4(),
            user_id,
            created_at: now + time::Duration::milliseconds(n),
            expires_at: now + time::Duration::hours(1),
            source_ip: None,
        };
        let audit = keyward_domain::Actor::system().entry(
            now,
            keyward_domain::AuditAction::AuthLogin,
            user_id,
        );
        let ended = store
            .create_api_session(&session, &stored.password_hash, &audit)
            .await
            .unwrap();
        assert!(ended.is_empty(), "ended {ended:?} before the cap");
    }
    assert_eq!(me_on_b(oldest.clone()).await, 200, "within the cap");
    // Past the sessions just stored: the new one is never the oldest.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let newest = a.login("leaver@example.com", ADMIN_PASSWORD).await;
    let took = within(|| async { me_on_b(oldest.clone()).await == 401 }).await;
    assert!(
        took < Duration::from_secs(1),
        "B took a session ended by the cap {took:?} on"
    );
    assert_eq!(me_on_b(newest).await, 200);
    store.close().await;

    // A client presents an old service's token before its import: B remembers it as unknown
    // (for 2 s). Imported on A, it verifies on B within a second. (A first import teaches both
    // nodes Estuary's shape: tokens of an unknown shape never reach storage or the cache.)
    let import_on_a = |token: String| {
        let (a, client, admin) = (&a, &client, &admin);
        async move {
            let row =
                json!({"token": token, "owner_email": "leaver@example.com", "tenant": "nodes"});
            let r = client
                .post(format!("{}/api/v1/api-keys/import?format=estuary", a.base))
                .bearer_auth(admin)
                .header("content-type", "application/jsonl")
                .body(format!("{row}\n"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{:?}", r.text().await);
        }
    };
    let (first, token) = (
        format!("EST{}ARY", uuid::Uuid::new_v4()),
        format!("EST{}ARY", uuid::Uuid::new_v4()),
    );
    import_on_a(first.clone()).await;
    within(|| async { verify(&client, &b, &verifier, &first).await.1 == "VALID" }).await;
    assert_eq!(verify(&client, &b, &verifier, &token).await.1, "NOT_FOUND");
    import_on_a(token.clone()).await;
    let took = within(|| async { verify(&client, &b, &verifier, &token).await.1 == "VALID" }).await;
    assert!(
        took < Duration::from_secs(1),
        "B verified the imported key {took:?} on"
    );
    for n in [a, b] {
        assert!(n.terminate().success());
    }
}
