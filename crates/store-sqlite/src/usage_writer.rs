//! The usage writer: how a [`UsageBatch`] reaches the file.
//!
//! Owns the usage flush's own connection (a large page cache that stays warm from one flush to
//! the next, statement journals in memory), the packing of a batch into JSON texts that SQLite
//! unpacks with `json_each`, and the one transaction that writes it: forget old batch ids, record
//! this batch's id, move last uses forward, add to the per-day counters. It must never write a
//! batch twice (a batch whose id is recorded changes nothing: only the answer was lost), never
//! write outside that one transaction, never give a key that does not exist a last use or a
//! counter, and never pack a batch on the async workers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use keyward_domain::VerifyCode;
use keyward_store::{StoreError, UsageBatch, UsageCount, USAGE_BATCH_MEMORY};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::SqlitePool;

use crate::{begin_write, map_err, ms, pool_of};

/// The usage writer's page cache: the index pages one flush of a busy node touches (the
/// counters of ~100,000 keys and the key-id index of a million keys). Pool connections keep
/// SQLite's default 2 MB, and a flush that took turns over them read nearly every page it
/// touched from the file again (~700,000 reads per flush).
const USAGE_CACHE_KIB: i64 = 96 * 1024;

/// Rows of a usage batch per statement.
const USAGE_CHUNK: usize = 10_000;

/// The name of the usage writer's connection thread (sqlx runs each SQLite connection on a
/// thread of its own), so that `top -H`, `/proc` and profiles (`bench/profile.py`) tell the
/// flush's writes from the other connections' work.
pub const USAGE_THREAD: &str = "keyward-usage";

/// The usage flush's own connection (one), on the file `options` open, with its page cache of
/// [`USAGE_CACHE_KIB`], on a thread named [`USAGE_THREAD`]. A memory database gets none: it has
/// one connection, and a second would see a database of its own.
pub(crate) async fn open_pool(options: SqliteConnectOptions) -> Result<SqlitePool, StoreError> {
    let cache = format!("-{USAGE_CACHE_KIB}");
    // temp_store=MEMORY keeps each statement's journal (the pages it changed, for undoing
    // just that statement) in memory: on disk it was ~60,000 page writes per flush.
    let options = options
        .pragma("cache_size", cache)
        .pragma("temp_store", "MEMORY")
        .thread_name(|_| USAGE_THREAD.to_owned());
    pool_of(1, options).await
}

/// Writes `batch` on `pool` (the usage writer's own, or the only one of a memory database), as
/// [`keyward_store::Store::record_usage`] promises.
pub(crate) async fn record(pool: &SqlitePool, batch: Arc<UsageBatch>) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    // Preparing 100,000 rows takes milliseconds of CPU: off the async workers, where every
    // other request on the same worker would wait for it.
    let (id, taken_at) = (batch.id, batch.taken_at);
    let (uses, counts) = tokio::task::spawn_blocking(move || usage_json(&batch))
        .await
        .map_err(|e| StoreError::Other(format!("preparing usage: {e}")))??;
    let mut tx = begin_write(pool).await?;
    // Written once (see `UsageBatch::id`); the same steps as the other backend's, in this
    // backend's own SQL.
    sqlx::query("DELETE FROM usage_batches WHERE taken_at < ?1")
        .bind(ms(taken_at - USAGE_BATCH_MEMORY))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    let first_time = sqlx::query(
        "INSERT INTO usage_batches (id, taken_at) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(ms(taken_at))
    .execute(&mut *tx)
    .await
    .map_err(map_err)?
    .rows_affected()
        == 1;
    if !first_time {
        // Written before: only the answer was lost.
        return tx.commit().await.map_err(map_err);
    }
    for json in &uses {
        sqlx::query(
            "INSERT INTO key_last_used (key_id, at) \
             SELECT substr(value, 1, 36), MAX(CAST(substr(value, 38) AS INTEGER)) \
             FROM json_each(?1) AS v \
             WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = substr(v.value, 1, 36)) GROUP BY 1 \
             ON CONFLICT (key_id) DO UPDATE SET at = MAX(at, excluded.at)",
        )
        .bind(json)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    for chunk in &counts {
        // Only keys that exist get counters (the same rule as `last_used_at`).
        sqlx::query(
            "INSERT INTO key_usage (key_id, day, code, count) \
             SELECT substr(value, 1, 36), ?2, ?3, CAST(substr(value, 38) AS INTEGER) \
             FROM json_each(?1) AS v \
             WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = substr(v.value, 1, 36)) \
             ON CONFLICT (key_id, day, code) DO UPDATE SET count = count + excluded.count",
        )
        .bind(&chunk.rows)
        .bind(chunk.day)
        .bind(chunk.code.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)
}

/// Counters of one day and outcome code, as a JSON array of `"<key id>:<count>"` strings.
struct CountChunk {
    day: i64,
    code: VerifyCode,
    rows: String,
}

/// A usage batch as JSON texts of at most [`USAGE_CHUNK`] rows each, which SQLite unpacks with
/// `json_each`: binding parameters per row through sqlx cost several times the writing itself.
/// Each row is one JSON string, `"<key id>:<value>"` (a hyphenated UUID is 36 characters), split
/// with `substr`: extracting the fields of a row array with `->>` took about two thirds of the
/// time `json_each` cost (measured with SQLite 3.51 on 95,000 counters: 0.11 s against 0.035 s).
/// Counters are grouped by day and code, which each statement binds once. (The server's buffer
/// hands batches in key order, which each group keeps, so each index page is read once.)
fn usage_json(batch: &UsageBatch) -> Result<(Vec<String>, Vec<CountChunk>), StoreError> {
    let uses = batch
        .last_used
        .chunks(USAGE_CHUNK)
        .map(|chunk| json_rows(chunk, |s, u| write!(s, "\"{}:{}\"", u.key_id, ms(u.at))))
        .collect();
    if batch.counts.iter().any(|c| i64::try_from(c.count).is_err()) {
        return Err(StoreError::Other("usage count out of range".into()));
    }
    let mut groups: BTreeMap<(i64, VerifyCode), Vec<&UsageCount>> = BTreeMap::new();
    for count in &batch.counts {
        groups
            .entry((count.day, count.code))
            .or_default()
            .push(count);
    }
    let mut counts = Vec::new();
    for ((day, code), rows) in groups {
        for chunk in rows.chunks(USAGE_CHUNK) {
            counts.push(CountChunk {
                day,
                code,
                rows: json_rows(chunk, |s, c| write!(s, "\"{}:{}\"", c.key_id, c.count)),
            });
        }
    }
    Ok((uses, counts))
}

/// `[row, row, ...]` as JSON, each row written by `row`.
fn json_rows<T>(items: &[T], row: impl Fn(&mut String, &T) -> std::fmt::Result) -> String {
    let mut s = String::with_capacity(items.len() * 64 + 2);
    s.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        // Writing to a String cannot fail.
        let _ = row(&mut s, item);
    }
    s.push(']');
    s
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;

    /// This process's threads named `name` (their `/proc/self/task/*/comm`).
    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count()
    }

    #[tokio::test]
    async fn the_usage_writer_has_a_named_thread_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("usage.db").display());
        let before = threads_named(USAGE_THREAD);
        let store = crate::SqliteStore::open(&url).await.unwrap();
        assert_eq!(threads_named(USAGE_THREAD), before + 1);
        drop(store);
    }
}
