//! The store conformance suite on SQLite, plus the durability settings only SQLite has.

// Test code: a failed step is a failed test, and waits on real processes and sockets are timed
// by the real clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use keyward_domain::VerifyCode;
use keyward_store::{KeysOf, Store};
use keyward_store_sqlite::SqliteStore;

async fn fresh() -> Box<dyn Store> {
    Box::new(SqliteStore::open("sqlite::memory:").await.expect("open"))
}

keyward_store::conformance_tests!(fresh);

/// The same suite on a file, where usage is written through a connection of its own and read
/// back through the pool.
mod on_file {
    use super::*;

    async fn fresh_file() -> Box<dyn Store> {
        // Kept past the test (under target/, not /tmp): removing the directory under an open
        // database would fail its WAL files.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let url = format!("sqlite://{}", dir.join("conformance.db").display());
        Box::new(SqliteStore::open(&url).await.expect("open"))
    }

    keyward_store::conformance_tests!(fresh_file);
}

#[tokio::test]
async fn file_database_is_wal_with_full_sync_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sub.db").display());
    let store = SqliteStore::open(&url).await.expect("created when missing");
    assert_eq!(store.pragma("journal_mode").await.unwrap(), "wal");
    // 2 = FULL
    assert_eq!(store.pragma("synchronous").await.unwrap(), "2");
    assert_eq!(store.pragma("foreign_keys").await.unwrap(), "1");
    assert_eq!(store.count_users().await.unwrap(), 0);
    // The usage writer has a connection of its own, with a page cache for a busy node's flush.
    assert_eq!(store.usage_pragma("cache_size").await.unwrap(), "-98304");
    assert_eq!(store.pragma("cache_size").await.unwrap(), "-2000");
    assert_eq!(store.usage_pragma("synchronous").await.unwrap(), "2");
    // 2 = MEMORY
    assert_eq!(store.usage_pragma("temp_store").await.unwrap(), "2");
    store.close().await;
    // Opening again runs no migration twice and finds the same database.
    let again = SqliteStore::open(&url).await.expect("reopen");
    again.ping().await.unwrap();
    assert!(again.pragma("bad name;").await.is_err());
}

#[tokio::test]
async fn an_unusable_url_is_an_error_not_a_panic() {
    let err = SqliteStore::open("sqlite:///nonexistent-dir/deeper/x.db").await;
    assert!(err.is_err());
}

/// A database file in `dir` made by the shipped migrations older than `first_left_out`, and a
/// pool on it (the store is then opened on the URL to run the rest).
async fn database_before(
    dir: &std::path::Path,
    first_left_out: &str,
) -> (String, sqlx::SqlitePool) {
    use std::str::FromStr;

    let before = dir.join("migrations-before");
    std::fs::create_dir(&before).unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() < first_left_out {
            std::fs::copy(&path, before.join(&name)).unwrap();
        }
    }
    let url = format!("sqlite://{}", dir.join("old.db").display());
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    (url, pool)
}

/// Databases made before `last_used_at` had a table of its own keep every key's last use.
#[tokio::test]
async fn last_uses_survive_the_move_to_their_own_table() {
    let dir = tempfile::tempdir().unwrap();
    let (url, pool) = database_before(dir.path(), "0004").await;
    let used = uuid::Uuid::from_u128(1);
    let unused = uuid::Uuid::from_u128(2);
    for (id, last_used) in [(used, Some(1_750_000_000_123_i64)), (unused, None)] {
        sqlx::query(
            "INSERT INTO api_keys (id, owner_id, prefix, start, digest, scopes, metadata, \
             created_at, updated_at, last_used_at) \
             VALUES (?, ?, 'kw', 'kw_abc', ?, '[]', '{}', 1700000000000, 1700000000000, ?)",
        )
        .bind(id.to_string())
        .bind(uuid::Uuid::from_u128(7).to_string())
        .bind(vec![id.as_bytes()[15]; 32])
        .bind(last_used)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = SqliteStore::open(&url).await.expect("migrates");
    let at = |ms: i64| time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000);
    assert_eq!(
        store.get_key(used).await.unwrap().unwrap().last_used_at,
        Some(at(1_750_000_000_123).unwrap())
    );
    assert_eq!(
        store.get_key(unused).await.unwrap().unwrap().last_used_at,
        None
    );
    store.close().await;
}

/// Databases made before `key_usage` was ordered by key keep every counter, and the table is
/// one B-tree (no rowid) from then on.
#[tokio::test]
async fn usage_counters_survive_the_move_to_a_key_ordered_table() {
    let dir = tempfile::tempdir().unwrap();
    let (url, pool) = database_before(dir.path(), "0005").await;
    let key = uuid::Uuid::from_u128(1);
    sqlx::query(
        "INSERT INTO api_keys (id, owner_id, prefix, start, digest, scopes, metadata, \
         created_at, updated_at) \
         VALUES (?, ?, 'kw', 'kw_abc', ?, '[]', '{}', 1700000000000, 1700000000000)",
    )
    .bind(key.to_string())
    .bind(uuid::Uuid::from_u128(7).to_string())
    .bind(vec![1u8; 32])
    .execute(&pool)
    .await
    .unwrap();
    for (day, code, count) in [
        (20_000, "VALID", 5),
        (20_000, "REVOKED", 2),
        (20_001, "VALID", 3),
    ] {
        sqlx::query("INSERT INTO key_usage (key_id, day, code, count) VALUES (?, ?, ?, ?)")
            .bind(key.to_string())
            .bind(day)
            .bind(code)
            .bind(count)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    let store = SqliteStore::open(&url).await.expect("migrates");
    let mut by_code = store
        .usage_by_code(KeysOf::default(), 20_000)
        .await
        .unwrap();
    by_code.sort_by_key(|(code, _)| code.as_str());
    assert_eq!(
        by_code,
        vec![(VerifyCode::Revoked, 2), (VerifyCode::Valid, 8)]
    );
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (sql,): (String,) =
        sqlx::query_as("SELECT sql FROM sqlite_master WHERE name = 'key_usage'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(sql.ends_with("WITHOUT ROWID"), "{sql}");
    pool.close().await;
}

/// Processes that start on a new file at the same moment (a server and the CLI, or several
/// servers) all open it. Without the migration lock the later ones failed on tables the first had
/// just made (every run); without the retry of the WAL switch one of them now and then got
/// "database is locked" at once (about half the runs of 32 rounds).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_opened_at_once_on_a_new_file_all_open() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..32 {
        let url = format!(
            "sqlite://{}",
            dir.path().join(format!("race-{round}.db")).display()
        );
        let mut opens = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let url = url.clone();
            opens.spawn(async move { SqliteStore::open(&url).await });
        }
        while let Some(open) = opens.join_next().await {
            let store = open.unwrap().expect("every open succeeds");
            assert_eq!(store.count_users().await.unwrap(), 0);
            store.close().await;
        }
    }
}
