//! Online backup: a consistent copy of a live database, taken while servers write to it.
//!
//! `VACUUM INTO` (SQLite 3.27+, <https://sqlite.org/lang_vacuum.html#vacuuminto>) reads the
//! database inside one read transaction, so the copy is the database as of one instant (in WAL
//! mode, writers go on meanwhile) and holds every transaction committed before it began. The copy
//! is a plain, compacted database file that `keyward serve --database sqlite://FILE` opens as is.
//! It never writes to the source, and it never overwrites a file.

use std::path::Path;
use std::str::FromStr;

use keyward_store::StoreError;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::{map_err, BUSY_TIMEOUT};

/// Copies the database at `url` (which must exist) into the new file `to`. `Conflict` when `to`
/// exists; `Other` when the source cannot be opened or read.
pub async fn backup(url: &str, to: &Path) -> Result<(), StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Other(format!("invalid SQLite URL: {e}")))?
        // Read-write but never created: a WAL database's shared memory may need making.
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT);
    let target = to
        .to_str()
        .ok_or_else(|| StoreError::Other("the backup's path is not UTF-8".into()))?;
    // VACUUM INTO refuses a non-empty file; an empty one it would fill: refused here instead.
    if to.exists() {
        return Err(StoreError::Conflict(format!("{}", to.display())));
    }
    let mut conn = options.connect().await.map_err(map_err)?;
    let copied = sqlx::query("VACUUM INTO ?1")
        .bind(target)
        .execute(&mut conn)
        .await
        .map_err(map_err);
    let _ = conn.close().await;
    copied.map(|_| ())
}
