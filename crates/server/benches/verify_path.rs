//! The verify hot path without HTTP: parse a presented key (shape and checksum), digest it, and
//! look it up in a warm cache of 100,000 keys; a cache miss's read of a key from a SQLite file
//! of 100,000 (`keyward bench-seed`), on the calling thread; and the richer decisions' pieces (a
//! permission expression, a client address against an allowlist). Run:
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
    let db = format!("sqlite://{}", dir.path().join("bench.db").display());
    let keys = dir.path().join("keys.txt");
    let seeded = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args([
            "--database",
            &db,
            "bench-seed",
            "--count",
            "100000",
            "--keys-out",
        ])
        .arg(&keys)
        .arg("--verifier-out")
        .arg(dir.path().join("verifier.txt"))
        .env(
            "KEYWARD_JWT_SECRET",
            "bench-secret-bench-secret-bench-secret-42",
        )
        .output()
        .unwrap();
    assert!(seeded.status.success(), "{seeded:?}");
    let digests: Vec<_> = std::fs::read_to_string(&keys)
        .unwrap()
        .lines()
        .map(|k| ParsedKey::parse(k).unwrap().digest())
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(keyward_store_sqlite::SqliteStore::open(&db))
        .unwrap();
    let mut i = 0usize;
    c.bench_function("cache miss: SQLite read by digest (100,000 keys)", |b| {
        b.iter(|| {
            i = (i + 7919) % digests.len();
            let key = rt.block_on(store.get_key_by_digest(black_box(&digests[i])));
            black_box(key.unwrap().expect("seeded"))
        })
    });
}

criterion_group!(benches, verify_path, cache_miss_on_sqlite);
criterion_main!(benches);
