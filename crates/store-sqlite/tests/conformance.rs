//! The store conformance suite on SQLite, plus the durability settings only SQLite has.

use keyward_store::Store;
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
