//! How long the console takes to render a member's key listing when the member has many keys:
//! the server time of `GET /keys` (a page of 50, with each key's 30-day sparkline), a name search
//! over them, and the dormant listing, through keyward's whole router in process (no socket), on
//! a SQLite file.
//!
//! Usage: cargo run --release -p keyward-server --example console_page [-- KEYS [ROUNDS]]
//! (defaults 10000 keys, 200 rounds). Prints the median and the 99th percentile per page.

// A measuring tool: a failed step ends it, and it reads the real clock to measure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use keyward_core::jwt::JwtKeys;
use keyward_core::password::Passwords;
use keyward_domain::{Actor, ApiKey, AuditAction, KeyPrefix, PlainKey, Role, Scopes, SystemClock};
use keyward_server::{AppState, Settings};
use keyward_store::{usage_day, Store, UsageBatch, UsageCount};
use keyward_store_sqlite::SqliteStore;
use tower::ServiceExt;
use uuid::Uuid;

const PASSWORD: &str = "a member password that is long";

fn main() {
    let mut args = std::env::args().skip(1);
    let keys: usize = args.next().map_or(10_000, |a| a.parse().unwrap());
    let rounds: usize = args.next().map_or(200, |a| a.parse().unwrap());
    keyward_server::serve::runtime()
        .unwrap()
        .block_on(run(keys, rounds));
}

async fn run(count: usize, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("console.db").display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
    let state = AppState::new(
        Arc::clone(&store),
        Arc::new(SystemClock),
        JwtKeys::new(vec![7; 32], time::Duration::hours(1)).unwrap(),
        Passwords::production().unwrap(),
        Settings::default(),
    );
    let member = keyward_core::users::create_as(
        &state,
        &Actor::system(),
        keyward_core::users::NewUser {
            email: "ann@example.com".into(),
            password: PASSWORD.into(),
            role: Role::Member,
            tenant_id: None,
        },
    )
    .await
    .unwrap();
    let now = keyward_domain::clock::truncate_millis(state.now());
    let prefix = KeyPrefix::default_prefix();
    let scopes = Scopes::parse(&["orders:read"]).unwrap();
    let keys: Vec<ApiKey> = (0..count)
        .map(|i| ApiKey {
            name: Some(format!("service {i}")),
            ..ApiKey::issued(
                Uuid::now_v7(),
                &PlainKey::generate(&prefix).unwrap(),
                &prefix,
                member.id,
                None,
                scopes.clone(),
                now,
            )
        })
        .collect();
    for chunk in keys.chunks(5_000) {
        let audit = Actor::system().entry(now, AuditAction::ApiKeyImport, "seed");
        store.import_keys(chunk, &audit).await.unwrap();
    }
    // Usage on every key for the sparklines: 30 days of counters.
    let today = usage_day(now);
    let counts = keys
        .iter()
        .flat_map(|k| {
            (0..30).map(move |d| UsageCount {
                key_id: k.id,
                day: today - d,
                code: keyward_domain::VerifyCode::Valid,
                count: 1 + (d as u64 % 5),
            })
        })
        .collect();
    let batch = UsageBatch {
        counts,
        ..UsageBatch::new(now)
    };
    store.record_usage(Arc::new(batch)).await.unwrap();
    let router = keyward_server::router(state.clone());
    let sign_in = Request::post("/sign-in")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "email=ann%40example.com&password={}",
            PASSWORD.replace(' ', "+")
        )))
        .unwrap();
    let signed = router.clone().oneshot(sign_in).await.unwrap();
    let cookie = signed.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    println!("{count} keys of one member, {rounds} rounds each, server time per page:");
    for path in [
        "/keys",
        "/keys?q=service+9999",
        "/keys?status=active",
        "/keys/dormant?days=30",
    ] {
        let mut took = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let req = Request::get(path)
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap();
            let started = Instant::now();
            let response = router.clone().oneshot(req).await.unwrap();
            let status = response.status();
            let _ = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            took.push(started.elapsed());
            assert!(status.is_success(), "{path}: {status}");
        }
        took.sort();
        let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
        println!(
            "  GET {path:<24} median {:>6.2} ms   p99 {:>6.2} ms",
            ms(at(0.5)),
            ms(at(0.99))
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
