//! The store conformance suite on SQLite, plus the durability settings only SQLite has.

use keyward_store::Store;
use keyward_store_sqlite::SqliteStore;

async fn fresh() -> Box<dyn Store> {
    Box::new(SqliteStore::open("sqlite::memory:").await.expect("open"))
}

keyward_store::conformance_tests!(fresh);

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
