//! Point reads on the verify path's cache misses, made on the calling thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands it every statement over a
//! channel: a key read on a cache miss cost two thread wake-ups and their context switches, which
//! on two cores outweighed the read itself (SQLite finds a key by its digest in ~10 µs from the
//! page cache; the hop made a cold-key verify ~150 µs of CPU). Here each thread that reads keeps
//! its own connection to the database (SQLite's WAL lets readers run beside the writer), with the
//! statement prepared once, and reads in place. A read that SQLite answers "busy" (a checkpoint
//! restarting the log, say), a thread that cannot open its connection, and a closed store go the
//! sqlx way instead, which waits out the busy timeout (or answers as a closed pool).
//!
//! The price: a page that is not in the operating system's cache is read from disk on a runtime
//! worker thread, holding that thread for the read (on an SSD, about 0.1 ms). keyward's database
//! is meant to be on local storage, where the pages of a key's digest and row are few.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use keyward_domain::ApiKey;
use keyward_store::rows::{self, StoredRow};
use keyward_store::StoreError;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use uuid::Uuid;

/// A file database's point reader: which file, and a token whose life is the store's (so that a
/// thread drops its connection to a store that is gone).
pub(crate) struct PointReader {
    path: std::path::PathBuf,
    id: u64,
    alive: Arc<()>,
    /// Set when the store closes: reads go the sqlx way, which answers as a closed pool does.
    closed: AtomicBool,
}

struct Open {
    id: u64,
    store: Weak<()>,
    connection: Connection,
    /// The names of [`KEY_BY_DIGEST`]'s columns, in order: a row's column is found by name here
    /// rather than by rusqlite, which asks SQLite for every column's name on every `get` (about
    /// 300 foreign calls for one key's row).
    columns: Vec<String>,
}

thread_local! {
    /// This thread's connections, one per open store it has read (usually one).
    static CONNECTIONS: RefCell<Vec<Open>> = const { RefCell::new(Vec::new()) };
}

/// The statement of `get_key_by_digest` (both paths read the same view).
pub(crate) const KEY_BY_DIGEST: &str = "SELECT * FROM api_keys_in_use WHERE digest = ?";

/// Why a point read was not made here; the caller reads through sqlx instead.
pub(crate) enum Fallback {
    /// SQLite was busy or locked.
    Busy,
    /// The store is closed.
    Closed,
    /// This thread could not open its connection (too many open files, say).
    Unopened,
}

impl PointReader {
    /// A reader of the database file at `path` (a file path, not a URL).
    pub(crate) fn new(path: std::path::PathBuf) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self {
            path,
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            alive: Arc::new(()),
            closed: AtomicBool::new(false),
        }
    }

    /// From now on, every read falls back (the store is closing).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// The key with this digest, as `get_key_by_digest` reads it.
    pub(crate) fn key_by_digest(
        &self,
        digest: &[u8],
    ) -> Result<Result<Option<ApiKey>, StoreError>, Fallback> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Fallback::Closed);
        }
        CONNECTIONS.with(|cell| {
            let mut open = cell.borrow_mut();
            // Connections to stores that are gone are closed as this thread next reads.
            open.retain(|o| o.store.strong_count() > 0);
            let index = match open.iter().position(|o| o.id == self.id) {
                Some(i) => i,
                None => match self.connect() {
                    Ok((connection, columns)) => {
                        open.push(Open {
                            id: self.id,
                            store: Arc::downgrade(&self.alive),
                            connection,
                            columns,
                        });
                        open.len() - 1
                    }
                    Err(_) => return Err(Fallback::Unopened),
                },
            };
            let Open {
                connection,
                columns,
                ..
            } = &open[index];
            let read = connection
                .prepare_cached(KEY_BY_DIGEST)
                .and_then(|mut statement| {
                    statement
                        .query_row([digest], |row| Ok(rows::api_key(&Cols { row, columns })))
                        .optional()
                });
            match read {
                Ok(Some(decoded)) => Ok(decoded.map(Some)),
                Ok(None) => Ok(Ok(None)),
                Err(e) if is_busy(&e) => Err(Fallback::Busy),
                Err(e) => Ok(Err(StoreError::Other(format!("SQLite point read: {e}")))),
            }
        })
    }

    /// This thread's connection, and the names of [`KEY_BY_DIGEST`]'s columns.
    fn connect(&self) -> Result<(Connection, Vec<String>), rusqlite::Error> {
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // This connection only reads, and never waits: "busy" is answered at once (rusqlite's
        // default would hold this thread, a runtime worker, for 5 s) and the sqlx path waits.
        connection.busy_timeout(std::time::Duration::ZERO)?;
        connection.execute_batch("PRAGMA query_only = ON")?;
        let columns = connection
            .prepare_cached(KEY_BY_DIGEST)?
            .column_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        Ok((connection, columns))
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// A rusqlite row for the shared decoders in `keyward_store::rows`, with its statement's column
/// names (see [`Open::columns`]).
struct Cols<'a, 'b> {
    row: &'a rusqlite::Row<'b>,
    columns: &'a [String],
}

impl Cols<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, col: &str) -> Result<Option<T>, StoreError> {
        // SQLite's column names are matched without regard to ASCII case, as rusqlite does.
        let index = self
            .columns
            .iter()
            .position(|name| name.eq_ignore_ascii_case(col))
            .ok_or_else(|| rows::corrupt(col))?;
        self.row.get(index).map_err(|_| rows::corrupt(col))
    }
}

impl StoredRow for Cols<'_, '_> {
    fn text(&self, col: &str) -> Result<Option<String>, StoreError> {
        self.get(col)
    }

    fn int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        self.get(col)
    }

    fn bytes(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(col)
    }

    fn uuid(&self, col: &str) -> Result<Option<Uuid>, StoreError> {
        self.text(col)?
            .map(|s| Uuid::try_parse(&s).map_err(|_| rows::corrupt(col)))
            .transpose()
    }

    fn flag(&self, col: &str) -> Result<Option<bool>, StoreError> {
        Ok(self.int(col)?.map(|v| v != 0))
    }
}
