//! The verify hot path without HTTP: parse a presented key (shape and checksum), digest it, and
//! look it up in a warm cache of 100,000 keys; a cache miss's read of a key from a SQLite file
//! of 100,000 (`keyward bench-seed`), on the calling thread; and the richer decisions' pieces (a
//! permission expression, a client address against an allowlist), and counting a verification
//! in the usage buffer. Run:
//! `cargo bench -p keyward-server`.

// Test code: a failed step is a failed test, and waits on real processes and sockets are timed
// by the real clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use keyward_core::cache::{CacheSettings, KeyCache, Lookup};
use keyward_domain::permission::Expr;
use keyward_domain::{ApiKey, IpAllowlist, KeyPrefix, ParsedKey, PlainKey};
use time::macros::datetime;
use uuid::Uuid;

// The server's allocator (`src/bin/keyward/main.rs`), so that allocations cost what they do there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn verify_path(c: &mut Criterion) {
    let now = datetime!(2026-03-01 12:00 UTC);
    let cache = KeyCache::new(CacheSettings::default(), true);
    let prefix = KeyPrefix::default_prefix();
    let mut plaintexts = Vec::new();
    for n in 0..100_000u32 {
        let plain = PlainKey::generate(&prefix).expect("OS random source");
        let key = ApiKey::issued(
            Uuid::from_u128(u128::from(n)),
            &plain,
            &prefix,
            Uuid::from_u128(1),
            None,
            keyward_domain::Scopes::parse(&["orders:read"]).unwrap(),
            now,
        );
        cache.fill(plain.digest(), Some(key), 0, now);
        plaintexts.push(plain.expose().to_owned());
    }
    let mut i = 0usize;
    c.bench_function("parse + checksum + digest + cache hit", |b| {
        b.iter(|| {
            i = (i + 7919) % plaintexts.len();
            let parsed = ParsedKey::parse(black_box(&plaintexts[i])).expect("well-formed");
            match cache.lookup(&parsed.digest(), now) {
                Lookup::Hit(Some(key)) => black_box(key),
                _ => panic!("the cache is warm"),
            }
        })
    });
    c.bench_function("parse + checksum (rejects a typo)", |b| {
        let mut typo = plaintexts[0].clone();
        typo.pop();
        typo.push('x');
        b.iter(|| black_box(ParsedKey::parse(black_box(&typo)).is_err()))
    });
    let expression = "bench:read AND (bench:write OR bench:admin)";
    c.bench_function("permission expression: parse", |b| {
        b.iter(|| black_box(Expr::parse(black_box(expression)).unwrap()))
    });
    let parsed = Expr::parse(expression).unwrap();
    let held = keyward_domain::Scopes::parse(&["bench:read", "bench:write"]).unwrap();
    c.bench_function("permission expression: evaluate", |b| {
        b.iter(|| black_box(parsed.allows(|s| held.contains(s))))
    });
    // Counting a verification in the usage buffer, as every verify does: keys spread over
    // 100,000 ids, each key's counters inline in its slot of the buffer's map.
    let usage = keyward_core::usage::UsageBuffer::new(std::sync::Arc::default());
    let (mut n, mut counted) = (0u128, false);
    c.bench_function("usage buffer: count a verification (100,000 keys)", |b| {
        counted = true;
        b.iter(|| {
            n = (n + 7919) % 100_000;
            usage.record_verification(
                black_box(Uuid::from_u128(n)),
                now,
                keyward_domain::VerifyCode::Valid,
            );
        })
    });
    // Unless a filter skipped the case.
    assert!(!counted || usage.pending() > 0, "counted");
    let allowlist = IpAllowlist::parse(&["127.0.0.0/8", "10.0.0.0/8", "2001:db8::/32"]).unwrap();
    c.bench_function("client address: parse + allowlist (3 networks)", |b| {
        b.iter(|| {
            let ip: std::net::IpAddr = black_box("10.1.2.3").parse().unwrap();
            black_box(allowlist.allows(Some(ip)))
        })
    });
}

/// A cache miss on SQLite: the key read by its digest from a file of 100,000 keys, in random
/// order (the point read of `keyward-store-sqlite`, on the calling thread).
fn cache_miss_on_sqlite(c: &mut Criterion) {
    use keyward_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let (rt, store, keys, _) = seeded(dir.path(), 100_000);
    let digests: Vec<_> = keys
        .iter()
        .map(|k| ParsedKey::parse(k).unwrap().digest())
        .collect();
    let mut i = 0usize;
    c.bench_function("cache miss: SQLite read by digest (100,000 keys)", |b| {
        b.iter(|| {
            i = (i + 7919) % digests.len();
            let key = rt.block_on(store.get_key_by_digest(black_box(&digests[i])));
            black_box(key.unwrap().expect("seeded"))
        })
    });
}

/// Seeds `count` keys with `keyward bench-seed` into a SQLite file in `dir`: a runtime of one
/// thread, the store open on that file, the keys' plaintexts and the verifier's.
fn seeded(
    dir: &std::path::Path,
    count: u32,
) -> (
    tokio::runtime::Runtime,
    keyward_store_sqlite::SqliteStore,
    Vec<String>,
    String,
) {
    let db = format!("sqlite://{}", dir.join("bench.db").display());
    let (keys, verifier) = (dir.join("keys.txt"), dir.join("verifier.txt"));
    let seeded = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args([
            "--database",
            &db,
            "bench-seed",
            "--count",
            &count.to_string(),
        ])
        .arg("--keys-out")
        .arg(&keys)
        .arg("--verifier-out")
        .arg(&verifier)
        .env(
            "KEYWARD_JWT_SECRET",
            "bench-secret-bench-secret-bench-secret-42",
        )
        .output()
        .unwrap();
    assert!(seeded.status.success(), "{seeded:?}");
    let keys = std::fs::read_to_string(keys).unwrap();
    let verifier = std::fs::read_to_string(verifier).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(keyward_store_sqlite::SqliteStore::open(&db))
        .unwrap();
    (
        rt,
        store,
        keys.lines().map(str::to_owned).collect(),
        verifier.trim().to_owned(),
    )
}

/// Verify's whole request through keyward's router and layers, in process (no socket, no HTTP
/// parsing), against the benchmark's ceiling route (`examples/ceiling.rs`: verify's extractors
/// and a fixed answer): the difference is verify's own work per request, the usage flush's
/// writes aside. Keys at random from 100,000, all cached.
fn verify_through_the_router(c: &mut Criterion) {
    use axum::body::{Body, Bytes};
    use axum::http::Request;
    use http_body_util::BodyExt;
    use keyward_server::app::{layered, routes, AppState, Settings};
    use tower::ServiceExt;

    let dir = tempfile::tempdir().unwrap();
    let (rt, store, keys, verifier) = seeded(dir.path(), 100_000);
    let state = AppState::new(
        std::sync::Arc::new(store),
        std::sync::Arc::new(keyward_domain::SystemClock),
        keyward_core::jwt::JwtKeys::new(vec![7; 32], time::Duration::hours(1)).unwrap(),
        keyward_core::password::Passwords::production().unwrap(),
        Settings::default(),
    );
    let answer = Bytes::from_static(br#"{"valid":true,"code":"VALID","key_id":"01a22e19-6882-7408-819c-2c475afd48e6","tenant_id":"01a22e19-6261-7080-8927-9af8a4289f5b","owner_id":"01a22e19-6277-746a-9f38-4ec165bda85a","scopes":["bench:read"],"metadata":{}}"#);
    let ceiling = axum::routing::post(
        move |_: keyward_server::extract::NoQuery,
              _: keyward_server::extract::JsonBody<
            keyward_server::api::v1::verify::VerifyKeyInput,
        >| {
            let answer = answer.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    answer,
                )
            }
        },
    );
    let app = layered(
        routes(&state).route("/bench/ceiling", ceiling),
        state.clone(),
    );
    let bodies: Vec<Bytes> = keys
        .iter()
        .map(|k| Bytes::from(format!(r#"{{"key":"{k}","scopes":["bench:read"]}}"#)))
        .collect();
    // One request through the router, answered 2xx: its body.
    let send = |request: Request<Body>| {
        let app = app.clone();
        rt.block_on(async move {
            let response = app.oneshot(request).await.unwrap();
            assert!(response.status().is_success());
            response.into_body().collect().await.unwrap().to_bytes()
        })
    };
    let call = |path: &'static str, body: &Bytes| {
        send(
            Request::post(path)
                .header("x-api-key", &verifier)
                .header("content-type", "application/json")
                .body(Body::from(body.clone()))
                .unwrap(),
        )
    };
    for body in &bodies {
        assert!(call("/api/v1/keys/verify", body).starts_with(br#"{"valid":true"#));
    }
    let mut i = 0usize;
    let mut group = c.benchmark_group("verify's request through the router (100,000 keys cached)");
    group.bench_function("ceiling: verify's extractors, a fixed answer", |b| {
        b.iter(|| {
            i = (i + 7919) % bodies.len();
            black_box(call("/bench/ceiling", &bodies[i]))
        })
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            i = (i + 7919) % bodies.len();
            black_box(call("/api/v1/keys/verify", &bodies[i]))
        })
    });
    let forward = |key: &str| {
        send(
            Request::get("/api/v1/auth/forward?scopes=bench:read")
                .header("x-keyward-verifier", &verifier)
                .header("x-api-key", key)
                .body(Body::empty())
                .unwrap(),
        )
    };
    group.bench_function("forward auth", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(forward(&keys[i]))
        })
    });
    group.bench_function("/healthz", |b| {
        b.iter(|| black_box(send(Request::get("/healthz").body(Body::empty()).unwrap())))
    });
    group.finish();
}

criterion_group!(
    benches,
    verify_path,
    cache_miss_on_sqlite,
    verify_through_the_router
);
criterion_main!(benches);
