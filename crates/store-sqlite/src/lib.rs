//! The embedded default backend: [`Store`] on one SQLite file (or memory), through sqlx.
//!
//! Owns the schema (`migrations/`) and the translation between rows and domain records.
//! Durability: WAL journal with `synchronous=FULL`, so a write that returned has reached the
//! disk and survives `kill -9`. Writes run in `BEGIN IMMEDIATE` transactions so that two
//! processes on one file (a server and the CLI) wait for each other instead of failing.
//! It must never see a plaintext key: keys arrive here as digests.

mod backup;
mod point_read;
mod usage_writer;

pub use backup::backup;

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keyward_domain::clock::to_millis;
use keyward_domain::credits::Credits;
use keyward_domain::event::Attempt;
use keyward_domain::import::{KeyShape, ShapeHash};
use keyward_domain::ratelimit::KeyRateLimit;
use keyward_domain::{
    ApiKey, ApiSession, AuditEntry, ConsoleSession, Delivery, DeliveryStatus, Event, EventFilter,
    KeyDigest, KeyStatus, OwnerLimits, Role, Tenant, User, VerifyCode, WebhookEndpoint,
};
use keyward_store::copy;
use keyward_store::rows::{self, StoredRow};
use keyward_store::SpendPlan;
use keyward_store::{
    cascade_revocation_events, AuditQuery, Claimed, CreditSpend, Cursor, EndSessions, ExpiringKey,
    KeyCounts, KeyQuery, KeysBy, KeysOf, LastCredit, RateLease, Store, StoreError, UsageBatch,
    UsageCount, UsagePosition, UserChanges, UserQuery, WebhooksOf, CASCADE_EVENT_PAGE,
    MAX_SESSIONS,
};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

/// How long a writer waits for another process's write lock before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The usage flush's own connection, whose page cache stays warm from one flush to the
    /// next (see [`usage_writer::open_pool`]); `None` for a memory database, which has one
    /// connection.
    usage: Option<SqlitePool>,
    /// Point reads of keys on the calling thread (see [`point_read`]); `None` for a memory
    /// database, which other connections cannot see.
    reader: Option<Arc<point_read::PointReader>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `url`: `sqlite://path`,
    /// `sqlite:path` or `sqlite::memory:`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_cache(url, None).await
    }

    /// [`SqliteStore::open`], with each connection keeping up to `cache_kib` KiB of pages
    /// (SQLite's default is 2 MiB): for a bulk load (`keyward import`), whose random digests
    /// outgrow the default (1M keys imported in 57 s with it, 29 s with 64 MiB).
    pub async fn open_with_cache(url: &str, cache_kib: Option<u32>) -> Result<Self, StoreError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full)
            // Statement journals (a multi-row INSERT's undo) in memory, not in temporary files.
            .pragma("temp_store", "memory");
        let options = match cache_kib {
            // Negative: KiB rather than pages.
            Some(kib) => options.pragma("cache_size", format!("-{kib}")),
            None => options,
        };
        // One connection for a memory database: each connection would see its own database.
        let max = if in_memory { 1 } else { 8 };
        let pool = pool_of(max, options.clone()).await?;
        if !in_memory {
            use_wal(&pool).await?;
        }
        migrate(&pool).await?;
        // The point reader opens a plain file path, with SQLite's default VFS: a URL that names
        // another (or an immutable file, or a `file:` URI) reads through sqlx only.
        let plain_file = !url.contains("vfs=")
            && !url.contains("immutable=")
            && !options.get_filename().starts_with("file:");
        let reader = (!in_memory && plain_file).then(|| {
            Arc::new(point_read::PointReader::new(
                options.get_filename().to_path_buf(),
            ))
        });
        let usage = if in_memory {
            None
        } else {
            Some(usage_writer::open_pool(options).await?)
        };
        Ok(Self {
            pool,
            usage,
            reader,
        })
    }

    /// A pragma's current value, for tests that check the durability settings.
    pub async fn pragma(&self, name: &str) -> Result<String, StoreError> {
        pragma_of(&self.pool, name).await
    }

    /// A pragma's value on the usage writer's connection.
    pub async fn usage_pragma(&self, name: &str) -> Result<String, StoreError> {
        pragma_of(self.usage_pool(), name).await
    }

    fn usage_pool(&self) -> &SqlitePool {
        self.usage.as_ref().unwrap_or(&self.pool)
    }

    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        begin_write(&self.pool).await
    }
}

/// Switches the file to WAL once, here, rather than in every connection's options (each pool
/// connection asked for the mode again as it opened). The switch needs the file to itself, and
/// when two processes switch a new file at the same moment SQLite answers one of them "database
/// is locked" at once, without waiting out the busy timeout (each held a lock the other
/// needed): that one tries again, within the busy timeout, and finds the file in WAL.
// A timeout of the retry loop, measured, not a time of day operations reason about.
#[allow(clippy::disallowed_methods)]
async fn use_wal(pool: &SqlitePool) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + BUSY_TIMEOUT;
    let mode: String = loop {
        match sqlx::query_scalar("PRAGMA journal_mode = WAL")
            .fetch_one(pool)
            .await
        {
            Err(e) if is_busy(&e) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            mode => break mode.map_err(map_err)?,
        }
    };
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(StoreError::Other(format!(
            "the database stays in journal mode {mode}, not WAL"
        )))
    }
}

/// Brings the schema up to date, all pending migrations in one `IMMEDIATE` transaction (each
/// migration a savepoint in it). sqlx takes a migration lock on PostgreSQL only: on SQLite, two
/// processes opening a new file at once (a server and the CLI) both started migration 1 and the
/// later one failed on the tables the other had just made. Holding the write lock from the first
/// read of `_sqlx_migrations` makes the later one wait (the busy timeout), then find the work done.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let failed = |e: &dyn std::fmt::Display| StoreError::Other(format!("migration failed: {e}"));
    let mut tx = begin_write(pool).await?;
    // run_direct: `run(&mut *tx)` makes the future not Send ("Acquire is not general enough"),
    // the sqlx issue this public function exists for.
    sqlx::migrate!("./migrations")
        .run_direct(&mut *tx)
        .await
        .map_err(|e| failed(&e))?;
    tx.commit().await.map_err(|e| failed(&e))
}

/// SQLITE_BUSY or SQLITE_LOCKED.
fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "5" || c == "6"))
}

async fn pool_of(size: u32, options: SqliteConnectOptions) -> Result<SqlitePool, StoreError> {
    SqlitePoolOptions::new()
        .max_connections(size)
        .min_connections(1)
        .acquire_timeout(BUSY_TIMEOUT + Duration::from_secs(5))
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .map_err(map_err)
}

async fn pragma_of(pool: &SqlitePool, name: &str) -> Result<String, StoreError> {
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(StoreError::Other("not a pragma name".into()));
    }
    let row = sqlx::query(&format!("PRAGMA {name}"))
        .fetch_one(pool)
        .await
        .map_err(map_err)?;
    // Pragmas answer either an integer or text.
    if let Ok(v) = row.try_get::<i64, _>(0) {
        return Ok(v.to_string());
    }
    row.try_get::<String, _>(0).map_err(map_err)
}

async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, StoreError> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)
}

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let msg = db.message();
            let what = if msg.contains("slug") {
                "slug"
            } else if msg.contains("email") {
                "email"
            } else if msg.contains("digest") {
                "digest"
            } else {
                "id"
            };
            StoreError::Conflict(what.into())
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Conflict("reference".into())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(db) if is_busy(&e) => {
            // SQLITE_BUSY / SQLITE_LOCKED after the busy timeout.
            StoreError::Unavailable(db.message().to_owned())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

// --- row <-> domain ----------------------------------------------------------------------

fn get<'r, T>(row: &'r SqliteRow, col: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(col).map_err(map_err)
}

/// Reads columns for the shared decoders in `keyward_store::rows` (a newtype: both the trait and
/// the row type are foreign here).
struct Cols<'a>(&'a SqliteRow);

impl StoredRow for Cols<'_> {
    fn text(&self, col: &str) -> Result<Option<String>, StoreError> {
        self.0.try_get(col).map_err(map_err)
    }

    fn int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        self.0.try_get(col).map_err(map_err)
    }

    fn bytes(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.try_get(col).map_err(map_err)
    }

    fn uuid(&self, col: &str) -> Result<Option<Uuid>, StoreError> {
        self.text(col)?
            .map(|s| Uuid::try_parse(&s).map_err(|_| rows::corrupt(col)))
            .transpose()
    }

    fn flag(&self, col: &str) -> Result<Option<bool>, StoreError> {
        self.0.try_get(col).map_err(map_err)
    }
}

fn key_from(row: &SqliteRow) -> Result<ApiKey, StoreError> {
    rows::api_key(&Cols(row))
}

fn tenant_from(row: &SqliteRow) -> Result<Tenant, StoreError> {
    rows::tenant(&Cols(row))
}

fn user_from(row: &SqliteRow) -> Result<User, StoreError> {
    rows::user(&Cols(row))
}

fn audit_from(row: &SqliteRow) -> Result<AuditEntry, StoreError> {
    rows::audit_entry(&Cols(row))
}

fn credits_from(row: &SqliteRow) -> Result<Option<Credits>, StoreError> {
    rows::credits(&Cols(row))
}

fn count_col(row: &SqliteRow, col: &str) -> Result<u64, StoreError> {
    rows::count(&Cols(row), col)
}

fn code_col(row: &SqliteRow, col: &str) -> Result<VerifyCode, StoreError> {
    rows::code(&Cols(row), col)
}

fn uuid_col(row: &SqliteRow, col: &str) -> Result<Uuid, StoreError> {
    Cols(row).uuid(col)?.ok_or_else(|| rows::corrupt(col))
}

fn ms(t: OffsetDateTime) -> i64 {
    to_millis(t)
}

fn opt_ms(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(to_millis)
}

/// Writes a key's credits columns (all NULL when it has none).
/// Whose credits a write sets: a key's, or an owner's shared ones.
#[derive(Clone, Copy)]
enum CreditsOf {
    Key(Uuid),
    Owner(Uuid),
}

async fn write_credits(
    tx: &mut Transaction<'static, Sqlite>,
    of: CreditsOf,
    credits: Option<&Credits>,
) -> Result<(), StoreError> {
    let refill = credits.and_then(|c| c.refill);
    let (sql, id) = match of {
        CreditsOf::Key(id) => (
            "UPDATE api_keys SET remaining = ?, refill_interval = ?, refill_amount = ?, \
             refill_day = ?, credits_set_at = ? WHERE id = ?",
            id,
        ),
        CreditsOf::Owner(id) => (
            "UPDATE owner_limits SET remaining = ?, refill_interval = ?, \
             refill_amount = ?, refill_day = ?, credits_set_at = ? WHERE user_id = ?",
            id,
        ),
    };
    sqlx::query(sql)
        .bind(credits.map(|c| c.remaining))
        .bind(refill.map(|r| r.interval.as_str()))
        .bind(refill.map(|r| r.amount))
        .bind(refill.map(|r| i64::from(r.day)))
        .bind(credits.map(|c| ms(c.set_at)))
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

async fn insert_audit(
    tx: &mut Transaction<'static, Sqlite>,
    e: &AuditEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, action, resource_type, resource_id, actor_id, \
         actor_type, actor_user_id, subject_user_id, source_ip, request_id, changes, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.id.to_string())
    .bind(e.tenant_id.map(|t| t.to_string()))
    .bind(&e.action)
    .bind(&e.resource_type)
    .bind(&e.resource_id)
    .bind(&e.actor_id)
    .bind(e.actor_type.as_str())
    .bind(e.actor_user_id.map(|u| u.to_string()))
    .bind(e.subject_user_id.map(|u| u.to_string()))
    .bind(&e.source_ip)
    .bind(&e.request_id)
    .bind(e.changes.as_ref().map(Value::to_string))
    .bind(ms(e.created_at))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    write_events(tx, &e.events).await
}

/// An endpoint that may hear an event, and the events it hears.
type Hearer = (String, EventFilter);

/// The endpoints `event` may reach: the one it names, or the enabled ones of its tenant and
/// the installation-wide ones.
async fn hearers(
    tx: &mut Transaction<'static, Sqlite>,
    event: &Event,
) -> Result<Vec<Hearer>, StoreError> {
    let rows = match event.only_endpoint {
        Some(id) => sqlx::query("SELECT id, '*' AS events FROM webhook_endpoints WHERE id = ?")
            .bind(id.to_string()),
        None => sqlx::query(
            "SELECT id, events FROM webhook_endpoints WHERE enabled = 1 \
             AND (tenant_id IS NULL OR tenant_id = ?)",
        )
        .bind(event.tenant_id.map(|t| t.to_string())),
    }
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    let mut hearers = Vec::with_capacity(rows.len());
    for row in &rows {
        let filter = EventFilter::from_stored(&get::<String>(row, "events")?)
            .ok_or_else(|| rows::corrupt("events"))?;
        hearers.push((get::<String>(row, "id")?, filter));
    }
    Ok(hearers)
}

/// The outbox: one pending delivery of each event to each enabled endpoint that hears it.
async fn write_events(
    tx: &mut Transaction<'static, Sqlite>,
    events: &[Event],
) -> Result<(), StoreError> {
    // Who hears what, read once per audience (a cascade writes thousands of events of one).
    let mut audiences: HashMap<(Option<Uuid>, Option<Uuid>), Vec<Hearer>> = HashMap::new();
    for event in events {
        let heard = match audiences.entry((event.only_endpoint, event.tenant_id)) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) => new.insert(hearers(tx, event).await?),
        };
        for (endpoint, filter) in heard.iter() {
            if !filter.matches(event.kind) {
                continue;
            }
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, body, \
                 status, attempts, next_attempt_at, created_at) \
                 VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
            )
            .bind(Uuid::now_v7().to_string())
            .bind(endpoint)
            .bind(event.id.to_string())
            .bind(event.kind.as_str())
            .bind(&event.body)
            .bind(ms(event.created_at))
            .bind(ms(event.created_at))
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        }
    }
    Ok(())
}

/// Records the notice `name` for the key unless it was recorded before, with its events;
/// whether it was new.
async fn record_notice(
    tx: &mut Transaction<'static, Sqlite>,
    key_id: Uuid,
    name: &str,
    now: OffsetDateTime,
    events: &[Event],
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO key_notices (key_id, notice, created_at) VALUES (?, ?, ?) \
         ON CONFLICT DO NOTHING",
    )
    .bind(key_id.to_string())
    .bind(name)
    .bind(ms(now))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    write_events(tx, events).await?;
    Ok(true)
}

fn webhook_from(row: &SqliteRow) -> Result<WebhookEndpoint, StoreError> {
    rows::webhook(&Cols(row))
}

fn delivery_from(row: &SqliteRow) -> Result<Delivery, StoreError> {
    rows::delivery(&Cols(row))
}

/// Rows per INSERT: each statement is a round trip to sqlx's SQLite thread, and 21 parameters
/// a row stays far below SQLite's 32766 per statement.
const INSERT_CHUNK: usize = 1000;

/// Inserts keys, credits included, many rows per statement.
/// Inserts `keys`; with `skip_known`, a key whose id or digest is stored already is left out
/// (else it is a `Conflict`). Returns the ids inserted.
async fn insert_keys(
    tx: &mut Transaction<'static, Sqlite>,
    keys: &[ApiKey],
    skip_known: bool,
) -> Result<Vec<Uuid>, StoreError> {
    let mut inserted = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::new(
            "INSERT INTO api_keys (id, tenant_id, owner_id, name, prefix, start, digest, scopes, \
             metadata, rate_limit_max, rate_limit_window, expires_at, created_at, updated_at, \
             revoked_at, remaining, refill_interval, refill_amount, refill_day, credits_set_at, \
             enabled, allowed_ips, rate_limit_scope) ",
        );
        qb.push_values(chunk, |mut row, k| {
            let credits = k.credits.as_ref();
            let refill = credits.and_then(|c| c.refill);
            row.push_bind(k.id.to_string())
                .push_bind(k.tenant_id.map(|t| t.to_string()))
                .push_bind(k.owner_id.to_string())
                .push_bind(k.name.clone())
                .push_bind(k.prefix.clone())
                .push_bind(k.start.clone())
                .push_bind(k.digest.as_bytes().to_vec())
                .push_bind(rows::scopes_json(&k.scopes))
                .push_bind(k.metadata.to_string())
                .push_bind(k.rate_limit.as_ref().map(KeyRateLimit::max))
                .push_bind(k.rate_limit.as_ref().map(|r| r.window().to_owned()))
                .push_bind(opt_ms(k.expires_at))
                .push_bind(ms(k.created_at))
                .push_bind(ms(k.updated_at))
                .push_bind(opt_ms(k.revoked_at))
                .push_bind(credits.map(|c| c.remaining))
                .push_bind(refill.map(|r| r.interval.as_str()))
                .push_bind(refill.map(|r| r.amount))
                .push_bind(refill.map(|r| i64::from(r.day)))
                .push_bind(credits.map(|c| ms(c.set_at)))
                .push_bind(k.enabled)
                .push_bind(rows::allowed_ips_json(&k.allowed_ips))
                .push_bind(rows::rate_limit_scope(k.rate_limit.as_ref()));
        });
        if skip_known {
            qb.push(" ON CONFLICT DO NOTHING RETURNING id");
            for r in qb
                .build()
                .fetch_all(&mut **tx)
                .await
                .map_err(map_err)?
                .iter()
            {
                inserted.push(uuid_col(r, "id")?);
            }
        } else {
            qb.build().execute(&mut **tx).await.map_err(map_err)?;
            inserted.extend(chunk.iter().map(|k| k.id));
        }
    }
    let new: std::collections::HashSet<Uuid> = inserted.iter().copied().collect();
    let used: Vec<_> = keys
        .iter()
        .filter(|k| new.contains(&k.id))
        .filter_map(|k| Some((k.id, ms(k.last_used_at?))))
        .collect();
    for chunk in used.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::new("INSERT INTO key_last_used (key_id, at) ");
        qb.push_values(chunk, |mut row, (id, at)| {
            row.push_bind(id.to_string()).push_bind(*at);
        });
        qb.build().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(inserted)
}

/// Revokes a key live at `now` at `at`, or keeps the earlier end it already has (a key's end of
/// life only ever moves earlier); `NotFound` when there is none.
async fn revoke_in(
    tx: &mut Transaction<'static, Sqlite>,
    id: Uuid,
    at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<ApiKey, StoreError> {
    // Not the "not revoked as of now" rule (`NOT_REVOKED_AS_OF`): a key that has an end is still
    // revocable only while that end lies after both `now` and its last change (a grace period),
    // so that of two revocations racing, whichever `now` is earlier, one wins.
    let row = sqlx::query(
        "UPDATE api_keys SET revoked_at = MIN(COALESCE(revoked_at, ?1), ?1), updated_at = ?2 \
         WHERE id = ?3 AND (revoked_at IS NULL OR (revoked_at > ?2 AND revoked_at > updated_at)) \
         RETURNING *, (SELECT at FROM key_last_used WHERE key_id = api_keys.id) AS last_used_at",
    )
    .bind(ms(at))
    .bind(ms(now))
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await
    .map_err(map_err)?;
    key_from(&row.ok_or(StoreError::NotFound)?)
}

/// Revokes at `now` every key of a tenant or an owner not revoked as of `now`, expired ones
/// included (so that none comes back to life through a later expiry change), and writes each
/// one's `key.revoked` event with `audit` ([`keyward_store::cascade_revocation_events`]); their
/// ids.
async fn revoke_live(
    tx: &mut Transaction<'static, Sqlite>,
    by: KeysBy,
    now: OffsetDateTime,
    audit: &AuditEntry,
) -> Result<Vec<Uuid>, StoreError> {
    let (column, id) = by.column();
    let ids = sqlx::query(&format!(
        "UPDATE api_keys SET revoked_at = ?1, updated_at = ?1 WHERE {column} = ?2 AND {} \
         RETURNING id",
        not_revoked_as_of("?1")
    ))
    .bind(ms(now))
    .bind(id.to_string())
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?
    .iter()
    .map(|r| uuid_col(r, "id"))
    .collect::<Result<Vec<_>, _>>()?;
    for page in ids.chunks(CASCADE_EVENT_PAGE) {
        let mut qb = QueryBuilder::new(
            "SELECT *, (SELECT at FROM key_last_used WHERE key_id = api_keys.id) AS last_used_at \
             FROM api_keys WHERE id IN (",
        );
        let mut list = qb.separated(", ");
        for id in page {
            list.push_bind(id.to_string());
        }
        qb.push(") ORDER BY id");
        let keys = qb
            .build()
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?
            .iter()
            .map(key_from)
            .collect::<Result<Vec<_>, _>>()?;
        write_events(tx, &cascade_revocation_events(&keys, audit, by)).await?;
    }
    Ok(ids)
}

/// Binds a copied value as SQLite keeps it (a UUID as text).
fn push_cell(
    values: &mut sqlx::query_builder::Separated<'_, '_, Sqlite, &'static str>,
    cell: &copy::Cell,
) {
    match cell {
        copy::Cell::Null => values.push_bind(None::<i64>),
        copy::Cell::Int(i) => values.push_bind(*i),
        copy::Cell::Text(t) => values.push_bind(t.clone()),
        copy::Cell::Bytes(b) => values.push_bind(b.clone()),
        copy::Cell::Bool(b) => values.push_bind(*b),
        copy::Cell::Uuid(u) => values.push_bind(u.to_string()),
    };
}

/// The digests of all of `user_id`'s keys.
async fn owner_digests(
    tx: &mut Transaction<'static, Sqlite>,
    user_id: Uuid,
) -> Result<Vec<KeyDigest>, StoreError> {
    sqlx::query("SELECT digest FROM api_keys WHERE owner_id = ?")
        .bind(user_id.to_string())
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?
        .iter()
        .map(|row| {
            let bytes: Vec<u8> = row.try_get("digest").map_err(map_err)?;
            KeyDigest::from_slice(&bytes).ok_or_else(|| rows::corrupt("digest"))
        })
        .collect()
}

/// Ends `user_id`'s sessions as `end` says: the API's (their ids returned) and the console's.
async fn end_sessions(
    tx: &mut Transaction<'static, Sqlite>,
    user_id: Uuid,
    end: EndSessions,
) -> Result<Vec<Uuid>, StoreError> {
    let kept = match end {
        EndSessions::None => return Ok(vec![]),
        EndSessions::All => String::new(),
        EndSessions::AllBut(id) => id.to_string(),
    };
    sqlx::query("DELETE FROM console_sessions WHERE user_id = ?")
        .bind(user_id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    sqlx::query("DELETE FROM api_sessions WHERE user_id = ? AND id <> ? RETURNING id")
        .bind(user_id.to_string())
        .bind(kept)
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| uuid_col(r, "id"))
        .collect()
}

/// `Conflict("last_admin")` unless some active admin other than `user_id` exists.
async fn another_admin(
    tx: &mut Transaction<'static, Sqlite>,
    user_id: Uuid,
) -> Result<(), StoreError> {
    let others: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL \
         AND deleted_at IS NULL AND id <> ?",
    )
    .bind(user_id.to_string())
    .fetch_one(&mut **tx)
    .await
    .map_err(map_err)?;
    if others == 0 {
        return Err(StoreError::Conflict("last_admin".into()));
    }
    Ok(())
}

/// The live (not deleted) user `id`, read inside a write.
async fn live_user(tx: &mut Transaction<'static, Sqlite>, id: Uuid) -> Result<User, StoreError> {
    let row = sqlx::query("SELECT * FROM users WHERE id = ? AND deleted_at IS NULL")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?
        .ok_or(StoreError::NotFound)?;
    user_from(&row)
}

/// Inserts user `u`: `Conflict` when its email is taken, `NotFound` when its tenant is gone.
async fn insert_user(tx: &mut Transaction<'static, Sqlite>, u: &User) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, role, tenant_id, created_at, updated_at, \
         disabled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(u.id.to_string())
    .bind(&u.email)
    .bind(&u.password_hash)
    .bind(u.role.as_str())
    .bind(u.tenant_id.map(|t| t.to_string()))
    .bind(ms(u.created_at))
    .bind(ms(u.updated_at))
    .bind(u.disabled_at.map(ms))
    .execute(&mut **tx)
    .await
    .map_err(|e| match map_err(e) {
        // The tenant vanished between the caller's check and this insert.
        StoreError::Conflict(what) if what == "reference" => StoreError::NotFound,
        other => other,
    })?;
    Ok(())
}

/// Appends `AND (created_at > c OR (created_at = c AND id > id))` for keyset pagination.
fn push_after(qb: &mut QueryBuilder<'_, Sqlite>, after: Option<Cursor>) {
    if let Some(c) = after {
        let at = ms(c.created_at);
        qb.push(" AND (created_at > ")
            .push_bind(at)
            .push(" OR (created_at = ")
            .push_bind(at)
            .push(" AND id > ")
            .push_bind(c.id.to_string())
            .push("))");
    }
}

/// Appends the `KeysOf` narrowing on `api_keys` columns, named with `column_prefix` (e.g. `k.`).
fn push_keys_of(qb: &mut QueryBuilder<'_, Sqlite>, of: KeysOf, column_prefix: &str) {
    if let Some(t) = of.tenant_id {
        qb.push(format_args!(" AND {column_prefix}tenant_id = "))
            .push_bind(t.to_string());
    }
    if let Some(o) = of.owner_id {
        qb.push(format_args!(" AND {column_prefix}owner_id = "))
            .push_bind(o.to_string());
    }
}

/// The rule "not revoked as of a moment", spelled here once for this backend (a key whose
/// `revoked_at` is still ahead, in a grace period, is not revoked yet): the SQL before the moment
/// it compares with and after it. Statements use it through [`not_revoked_as_of`],
/// [`push_not_revoked_as_of`] and [`push_not_revoked`], never written out again.
const NOT_REVOKED_AS_OF: (&str, &str) = ("(revoked_at IS NULL OR revoked_at > ", ")");

/// "Not revoked as of `now`" for a plain statement, where `now` is the SQL of the moment (a
/// placeholder such as `?`).
fn not_revoked_as_of(now: &str) -> String {
    let (before, after) = NOT_REVOKED_AS_OF;
    format!("{before}{now}{after}")
}

/// Appends "not revoked as of `now`" as a condition of its own (e.g. inside a `SUM`).
fn push_not_revoked_as_of(qb: &mut QueryBuilder<'_, Sqlite>, now: i64) {
    let (before, after) = NOT_REVOKED_AS_OF;
    qb.push(before).push_bind(now).push(after);
}

/// Appends "not revoked as of `now`" (a key in its grace period is not revoked yet).
fn push_not_revoked(qb: &mut QueryBuilder<'_, Sqlite>, now: i64) {
    qb.push(" AND ");
    push_not_revoked_as_of(qb, now);
}

/// `SELECT u.<column> AS grp, SUM(u.count) AS n` over the usage of the keys of `of` on days
/// `>= since_day`, grouped by that column; the caller appends the order.
fn usage_sums(column: &'static str, of: KeysOf, since_day: i64) -> QueryBuilder<'static, Sqlite> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT u.{column} AS grp, SUM(u.count) AS n FROM key_usage u \
         JOIN api_keys k ON k.id = u.key_id WHERE u.day >= "
    ));
    qb.push_bind(since_day);
    push_keys_of(&mut qb, of, "k.");
    qb.push(format_args!(" GROUP BY u.{column}"));
    qb
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn close(&self) {
        if let Some(reader) = &self.reader {
            reader.close();
        }
        if let Some(usage) = &self.usage {
            usage.close().await;
        }
        // Fold the WAL back into the main file so a copy of the .db alone is complete.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint at shutdown failed");
        }
        self.pool.close().await;
    }

    async fn create_tenant(&self, t: &Tenant, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO tenants (id, name, slug, key_prefix, metadata, policy, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(t.id.to_string())
        .bind(&t.name)
        .bind(&t.slug)
        .bind(&t.key_prefix)
        .bind(t.metadata.to_string())
        .bind(rows::policy_json(&t.policy))
        .bind(ms(t.created_at))
        .bind(ms(t.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_tenant(&self, id: Uuid) -> Result<Option<Tenant>, StoreError> {
        sqlx::query("SELECT * FROM tenants WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(tenant_from)
            .transpose()
    }

    async fn get_tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>, StoreError> {
        sqlx::query("SELECT * FROM tenants WHERE slug = ?")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(tenant_from)
            .transpose()
    }

    async fn list_tenants(
        &self,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Tenant>, StoreError> {
        let mut qb = QueryBuilder::new("SELECT * FROM tenants WHERE 1 = 1");
        push_after(&mut qb, after);
        qb.push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::from(limit));
        qb.build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(tenant_from)
            .collect()
    }

    async fn update_tenant(&self, t: &Tenant, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE tenants SET name = ?, slug = ?, key_prefix = ?, metadata = ?, policy = ?, \
             updated_at = ? WHERE id = ?",
        )
        .bind(&t.name)
        .bind(&t.slug)
        .bind(&t.key_prefix)
        .bind(t.metadata.to_string())
        .bind(rows::policy_json(&t.policy))
        .bind(ms(t.updated_at))
        .bind(t.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn delete_tenant(
        &self,
        id: Uuid,
        force: bool,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.write().await?;
        let exists = sqlx::query("SELECT 1 FROM tenants WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let live: Vec<String> = sqlx::query(&format!(
            "SELECT id FROM api_keys WHERE tenant_id = ? \
             AND {} AND (expires_at IS NULL OR expires_at > ?)",
            not_revoked_as_of("?")
        ))
        .bind(id.to_string())
        .bind(ms(now))
        .bind(ms(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| get::<String>(r, "id"))
        .collect::<Result<_, _>>()?;
        if !live.is_empty() && !force {
            return Err(StoreError::Conflict("active keys".into()));
        }
        // Expired-but-unrevoked keys are revoked too, so no key of a deleted tenant can come
        // back to life through a later expiry change.
        let revoked = revoke_live(&mut tx, KeysBy::Tenant(id), now, audit).await?;
        // Its users (admins aside) are disabled and signed out with it: a user with no tenant
        // would otherwise go on making keys as if it still belonged somewhere.
        for table in ["api_sessions", "console_sessions"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE user_id IN \
                 (SELECT id FROM users WHERE tenant_id = ? AND role <> 'admin')"
            ))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        sqlx::query(
            "UPDATE users SET disabled_at = ?1, updated_at = ?1 \
             WHERE tenant_id = ?2 AND disabled_at IS NULL AND role <> 'admin'",
        )
        .bind(ms(now))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("DELETE FROM tenants WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(revoked)
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE deleted_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn create_user(&self, u: &User, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_user(&mut tx, u).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        sqlx::query("SELECT * FROM users WHERE id = ? AND deleted_at IS NULL")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    async fn create_session(
        &self,
        s: &ConsoleSession,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO console_sessions (digest, user_id, csrf, created_at, last_seen_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(s.digest.as_slice())
        .bind(s.user_id.to_string())
        .bind(&s.csrf)
        .bind(ms(s.created_at))
        .bind(ms(s.last_seen_at))
        .bind(ms(s.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "DELETE FROM console_sessions WHERE user_id = ?1 AND (expires_at <= ?2 OR digest IN \
             (SELECT digest FROM console_sessions WHERE user_id = ?1 AND digest <> ?3 \
             ORDER BY created_at DESC, digest DESC LIMIT -1 OFFSET ?4))",
        )
        .bind(s.user_id.to_string())
        .bind(ms(s.created_at))
        .bind(s.digest.as_slice())
        .bind(MAX_SESSIONS - 1)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_session(&self, digest: &[u8; 32]) -> Result<Option<ConsoleSession>, StoreError> {
        sqlx::query("SELECT * FROM console_sessions WHERE digest = ?1")
            .bind(digest.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(|row| rows::session(&Cols(&row)))
            .transpose()
    }

    async fn list_console_sessions(
        &self,
        user_id: Uuid,
    ) -> Result<Vec<ConsoleSession>, StoreError> {
        sqlx::query(
            "SELECT * FROM console_sessions WHERE user_id = ?1 ORDER BY created_at DESC, digest",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|row| rows::session(&Cols(row)))
        .collect()
    }

    async fn touch_session(&self, digest: &[u8; 32], at: OffsetDateTime) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE console_sessions SET last_seen_at = ?1 WHERE digest = ?2 AND last_seen_at < ?1",
        )
        .bind(ms(at))
        .bind(digest.as_slice())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn delete_session(
        &self,
        digest: &[u8; 32],
        audit: Option<&AuditEntry>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM console_sessions WHERE digest = ?1")
            .bind(digest.as_slice())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if let Some(audit) = audit {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn list_users(&self, q: &UserQuery) -> Result<Vec<User>, StoreError> {
        let mut qb = QueryBuilder::new("SELECT * FROM users WHERE deleted_at IS NULL");
        if let Some(t) = q.tenant_id {
            qb.push(" AND tenant_id = ").push_bind(t.to_string());
        }
        if let Some(role) = q.role {
            qb.push(" AND role = ").push_bind(role.as_str());
        }
        match q.disabled {
            Some(true) => qb.push(" AND disabled_at IS NOT NULL"),
            Some(false) => qb.push(" AND disabled_at IS NULL"),
            None => &mut qb,
        };
        if let Some(prefix) = &q.email_prefix {
            // substr, not LIKE: the prefix is matched as text, `%` and `_` included.
            qb.push(" AND substr(email, 1, ")
                .push_bind(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX))
                .push(") = ")
                .push_bind(prefix.clone());
        }
        push_after(&mut qb, q.after);
        qb.push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::from(q.limit));
        qb.build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(user_from)
            .collect()
    }

    async fn update_user(
        &self,
        user: &User,
        read_at: OffsetDateTime,
        end: EndSessions,
        audit: &AuditEntry,
    ) -> Result<UserChanges, StoreError> {
        let mut tx = self.write().await?;
        let stored = live_user(&mut tx, user.id).await?;
        if stored.updated_at != read_at {
            return Err(StoreError::Conflict("stale".into()));
        }
        let active_admin = |u: &User| u.role == Role::Admin && !u.is_disabled();
        if active_admin(&stored) && !active_admin(user) {
            another_admin(&mut tx, user.id).await?;
        }
        sqlx::query(
            "UPDATE users SET role = ?, password_hash = ?, disabled_at = ?, updated_at = ? \
             WHERE id = ?",
        )
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(opt_ms(user.disabled_at))
        .bind(ms(user.updated_at))
        .bind(user.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let keys = if stored.is_disabled() == user.is_disabled() {
            vec![]
        } else {
            owner_digests(&mut tx, user.id).await?
        };
        let sessions = end_sessions(&mut tx, user.id, end).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(UserChanges {
            keys,
            sessions,
            revoked: vec![],
        })
    }

    async fn delete_user(
        &self,
        id: Uuid,
        read_at: OffsetDateTime,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<UserChanges, StoreError> {
        let mut tx = self.write().await?;
        let stored = live_user(&mut tx, id).await?;
        if stored.updated_at != read_at {
            return Err(StoreError::Conflict("stale".into()));
        }
        if stored.role == Role::Admin && !stored.is_disabled() {
            another_admin(&mut tx, id).await?;
        }
        let revoked = revoke_live(&mut tx, KeysBy::Owner(id), now, audit).await?;
        let keys = owner_digests(&mut tx, id).await?;
        let sessions = end_sessions(&mut tx, id, EndSessions::All).await?;
        sqlx::query("DELETE FROM owner_limits WHERE user_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "UPDATE users SET email = ?1, password_hash = ?2, deleted_at = ?3, \
             disabled_at = COALESCE(disabled_at, ?3), updated_at = ?3 WHERE id = ?4",
        )
        .bind(rows::deleted_email(id))
        .bind(rows::NO_PASSWORD)
        .bind(ms(now))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(UserChanges {
            keys,
            sessions,
            revoked,
        })
    }

    async fn create_api_session(
        &self,
        session: &ApiSession,
        password_hash: &str,
        audit: &AuditEntry,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.write().await?;
        let active = sqlx::query(
            "SELECT 1 FROM users WHERE id = ? AND password_hash = ? \
             AND disabled_at IS NULL AND deleted_at IS NULL",
        )
        .bind(session.user_id.to_string())
        .bind(password_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if active.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM api_sessions WHERE user_id = ? AND expires_at <= ?")
            .bind(session.user_id.to_string())
            .bind(ms(session.created_at))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO api_sessions (id, user_id, created_at, expires_at, source_ip) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
        .bind(ms(session.created_at))
        .bind(ms(session.expires_at))
        .bind(session.source_ip.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        // The new session and the newest MAX_SESSIONS - 1 others stay.
        let ended = sqlx::query_scalar::<_, String>(
            "DELETE FROM api_sessions WHERE id IN (SELECT id FROM api_sessions \
             WHERE user_id = ? AND id <> ? ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?) \
             RETURNING id",
        )
        .bind(session.user_id.to_string())
        .bind(session.id.to_string())
        .bind(MAX_SESSIONS - 1)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?
        .iter()
        .map(|id| Uuid::parse_str(id).map_err(|_| rows::corrupt("id")))
        .collect::<Result<Vec<_>, _>>()?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(ended)
    }

    async fn get_api_session(&self, id: Uuid) -> Result<Option<ApiSession>, StoreError> {
        sqlx::query("SELECT * FROM api_sessions WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(|row| rows::api_session(&Cols(&row)))
            .transpose()
    }

    async fn list_api_sessions(&self, user_id: Uuid) -> Result<Vec<ApiSession>, StoreError> {
        sqlx::query("SELECT * FROM api_sessions WHERE user_id = ? ORDER BY created_at DESC, id")
            .bind(user_id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(|row| rows::api_session(&Cols(row)))
            .collect()
    }

    async fn end_api_session(
        &self,
        id: Uuid,
        user_id: Uuid,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM api_sessions WHERE id = ? AND user_id = ?")
            .bind(id.to_string())
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        sqlx::query("SELECT * FROM users WHERE email = ? AND deleted_at IS NULL")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    async fn create_key(&self, key: &ApiKey, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_keys(&mut tx, std::slice::from_ref(key), false).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn import_keys(&self, keys: &[ApiKey], audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_keys(&mut tx, keys, false).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn spend_credits(
        &self,
        id: Uuid,
        cost: i64,
        now: OffsetDateTime,
        last_credit: LastCredit<'_>,
    ) -> Result<CreditSpend, StoreError> {
        // The write lock (BEGIN IMMEDIATE) makes read-decide-write one step: no two spends of one
        // key (or owner) interleave, on this node or any process on the file.
        let mut tx = self.write().await?;
        let Some(row) = sqlx::query("SELECT * FROM api_keys WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
        else {
            return Ok(CreditSpend::default());
        };
        let key_credits = credits_from(&row)?;
        let owner_id = rows::StoredRow::uuid(&Cols(&row), "owner_id")?
            .ok_or_else(|| rows::corrupt("owner_id"))?;
        let owner_credits = match sqlx::query("SELECT * FROM owner_limits WHERE user_id = ?")
            .bind(owner_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
        {
            Some(row) => credits_from(&row)?,
            None => None,
        };
        let plan = SpendPlan::of(key_credits, owner_credits, cost, now);
        if let Some(after) = plan.write_key {
            write_credits(&mut tx, CreditsOf::Key(id), Some(&after)).await?;
        }
        if let Some(after) = plan.write_owner {
            write_credits(&mut tx, CreditsOf::Owner(owner_id), Some(&after)).await?;
        }
        if let Some(notice) = plan.last_credit.and_then(|after| last_credit(&after)) {
            record_notice(&mut tx, id, &notice.name, now, &notice.events).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(plan.spent)
    }

    async fn lease_rate_budget(
        &self,
        key_id: Uuid,
        window_start: OffsetDateTime,
        max: u32,
        want: u32,
    ) -> Result<RateLease, StoreError> {
        let mut tx = self.write().await?;
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT window_start, used FROM rate_limit_windows WHERE key_id = ?")
                .bind(key_id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let start = ms(window_start);
        let (lease, store) = RateLease::for_window(row, start, max, want);
        if !store {
            return Ok(lease);
        }
        sqlx::query(
            "INSERT INTO rate_limit_windows (key_id, window_start, used) VALUES (?, ?, ?) \
             ON CONFLICT (key_id) DO UPDATE SET window_start = excluded.window_start, \
             used = excluded.used",
        )
        .bind(key_id.to_string())
        .bind(start)
        .bind(i64::from(lease.used))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(lease)
    }

    async fn get_owner_limits(&self, user_id: Uuid) -> Result<Option<OwnerLimits>, StoreError> {
        sqlx::query("SELECT * FROM owner_limits WHERE user_id = ?")
            .bind(user_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(|row| rows::owner_limits(&Cols(row)))
            .transpose()
    }

    async fn set_owner_limits(
        &self,
        user_id: Uuid,
        limits: Option<&OwnerLimits>,
        audit: &AuditEntry,
    ) -> Result<Vec<KeyDigest>, StoreError> {
        let mut tx = self.write().await?;
        let exists = sqlx::query("SELECT 1 FROM users WHERE id = ?")
            .bind(user_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM owner_limits WHERE user_id = ?")
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if let Some(l) = limits {
            let credits = l.credits.as_ref();
            let refill = credits.and_then(|c| c.refill);
            sqlx::query(
                "INSERT INTO owner_limits (user_id, rate_limit_max, rate_limit_window, remaining, \
                 refill_interval, refill_amount, refill_day, credits_set_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(user_id.to_string())
            .bind(l.rate_limit.as_ref().map(KeyRateLimit::max))
            .bind(l.rate_limit.as_ref().map(|r| r.window().to_owned()))
            .bind(credits.map(|c| c.remaining))
            .bind(refill.map(|r| r.interval.as_str()))
            .bind(refill.map(|r| r.amount))
            .bind(refill.map(|r| i64::from(r.day)))
            .bind(credits.map(|c| ms(c.set_at)))
            .bind(ms(l.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        let digests = owner_digests(&mut tx, user_id).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(digests)
    }

    async fn import_new_keys(
        &self,
        owners: &[User],
        keys: &[ApiKey],
        audit: &AuditEntry,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.write().await?;
        for owner in owners {
            insert_user(&mut tx, owner).await?;
        }
        let inserted = insert_keys(&mut tx, keys, true).await?;
        if inserted.is_empty() && owners.is_empty() {
            // Nothing changed: nothing to audit.
            return Ok(inserted);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(inserted)
    }

    async fn add_key_shape(&self, shape: &KeyShape, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let secret = match &shape.hash {
            ShapeHash::Sha256 => None,
            ShapeHash::HmacSha256(secret) => Some(secret.clone()),
        };
        let added = sqlx::query(
            "INSERT INTO key_shapes (id, format, prefix, hmac_secret, secret_digest, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(shape.format.as_str())
        .bind(&shape.prefix)
        .bind(secret)
        .bind(rows::shape_secret_digest(shape))
        .bind(ms(shape.created_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if added.rows_affected() == 0 {
            return Ok(());
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_key_shapes(&self) -> Result<Vec<KeyShape>, StoreError> {
        sqlx::query("SELECT * FROM key_shapes ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(|row| rows::key_shape(&Cols(row)))
            .collect()
    }

    async fn get_key(&self, id: Uuid) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query("SELECT * FROM api_keys_in_use WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(key_from)
            .transpose()
    }

    async fn get_keys_by_digests(&self, digests: &[KeyDigest]) -> Result<Vec<ApiKey>, StoreError> {
        let mut keys = Vec::with_capacity(digests.len());
        for page in digests.chunks(CASCADE_EVENT_PAGE) {
            let mut qb = QueryBuilder::new("SELECT * FROM api_keys_in_use WHERE digest IN (");
            let mut list = qb.separated(", ");
            for digest in page {
                list.push_bind(digest.as_bytes().to_vec());
            }
            qb.push(")");
            for row in qb.build().fetch_all(&self.pool).await.map_err(map_err)? {
                keys.push(key_from(&row)?);
            }
        }
        Ok(keys)
    }

    async fn get_key_by_digest(&self, digest: &KeyDigest) -> Result<Option<ApiKey>, StoreError> {
        // Verify's cache misses: read on this thread (see `point_read`), unless SQLite is busy.
        if let Some(reader) = &self.reader {
            if let Ok(read) = reader.key_by_digest(digest.as_bytes()) {
                return read;
            }
        }
        sqlx::query(point_read::KEY_BY_DIGEST)
            .bind(digest.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(key_from)
            .transpose()
    }

    async fn list_keys(&self, q: &KeyQuery) -> Result<Vec<ApiKey>, StoreError> {
        let now = ms(q.now);
        let mut qb = QueryBuilder::new("SELECT * FROM api_keys_in_use WHERE 1 = 1");
        push_keys_of(&mut qb, q.of, "");
        if let Some(part) = &q.name_contains {
            // A plain substring test: nothing in `part` is a pattern.
            qb.push(" AND instr(lower(COALESCE(name, '')), lower(")
                .push_bind(part.clone())
                .push(")) > 0");
        }
        match q.status {
            None => {}
            Some(KeyStatus::Revoked) => {
                qb.push(" AND revoked_at IS NOT NULL AND revoked_at <= ")
                    .push_bind(now);
            }
            Some(KeyStatus::Expired) => {
                push_not_revoked(&mut qb, now);
                qb.push(" AND expires_at IS NOT NULL AND expires_at <= ")
                    .push_bind(now);
            }
            Some(KeyStatus::Active) => {
                push_not_revoked(&mut qb, now);
                qb.push(" AND (expires_at IS NULL OR expires_at > ")
                    .push_bind(now)
                    .push(")");
            }
        }
        if q.exclude_revoked {
            push_not_revoked(&mut qb, now);
        }
        if let Some(before) = q.dormant_before {
            push_not_revoked(&mut qb, now);
            qb.push(" AND COALESCE(last_used_at, created_at) < ")
                .push_bind(ms(before));
        }
        push_after(&mut qb, q.after);
        qb.push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::from(q.limit));
        qb.build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(key_from)
            .collect()
    }

    async fn update_key(
        &self,
        k: &ApiKey,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(&format!(
            "UPDATE api_keys SET name = ?, scopes = ?, metadata = ?, rate_limit_max = ?, \
             rate_limit_window = ?, expires_at = ?, enabled = ?, updated_at = ?, allowed_ips = ?, \
             rate_limit_scope = ? WHERE id = ? AND {}",
            not_revoked_as_of("?")
        ))
        .bind(&k.name)
        .bind(rows::scopes_json(&k.scopes))
        .bind(k.metadata.to_string())
        .bind(k.rate_limit.as_ref().map(KeyRateLimit::max))
        .bind(k.rate_limit.as_ref().map(KeyRateLimit::window))
        .bind(opt_ms(k.expires_at))
        .bind(k.enabled)
        .bind(ms(k.updated_at))
        .bind(rows::allowed_ips_json(&k.allowed_ips))
        .bind(rows::rate_limit_scope(k.rate_limit.as_ref()))
        .bind(k.id.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        write_credits(&mut tx, CreditsOf::Key(k.id), k.credits.as_ref()).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn revoke_key(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<ApiKey, StoreError> {
        let mut tx = self.write().await?;
        let key = revoke_in(&mut tx, id, at, now).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(key)
    }

    async fn rotate_key(
        &self,
        old_id: Uuid,
        revoke_old_at: OffsetDateTime,
        new_key: &ApiKey,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        revoke_in(&mut tx, old_id, revoke_old_at, now).await?;
        insert_keys(&mut tx, std::slice::from_ref(new_key), false).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn record_usage(&self, batch: Arc<UsageBatch>) -> Result<(), StoreError> {
        usage_writer::record(self.usage_pool(), batch).await
    }

    async fn count_keys(
        &self,
        of: KeysOf,
        now: OffsetDateTime,
        dormant_before: OffsetDateTime,
    ) -> Result<KeyCounts, StoreError> {
        let now = ms(now);
        let mut qb = QueryBuilder::new(
            "SELECT COUNT(*) AS total, COALESCE(SUM(revoked_at IS NOT NULL AND revoked_at <= ",
        );
        qb.push_bind(now).push("), 0) AS revoked, COALESCE(SUM(");
        push_not_revoked_as_of(&mut qb, now);
        qb.push(" AND expires_at IS NOT NULL AND expires_at <= ")
            .push_bind(now)
            .push("), 0) AS expired, COALESCE(SUM(");
        push_not_revoked_as_of(&mut qb, now);
        qb.push(" AND COALESCE(last_used_at, created_at) < ")
            .push_bind(ms(dormant_before))
            .push("), 0) AS dormant FROM api_keys_in_use WHERE 1 = 1");
        push_keys_of(&mut qb, of, "");
        let row = qb.build().fetch_one(&self.pool).await.map_err(map_err)?;
        rows::key_counts(&Cols(&row))
    }

    async fn usage_by_code(
        &self,
        of: KeysOf,
        since_day: i64,
    ) -> Result<Vec<(VerifyCode, u64)>, StoreError> {
        let mut qb = usage_sums("code", of, since_day);
        qb.push(" ORDER BY u.code");
        qb.build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(|row| Ok((code_col(row, "grp")?, count_col(row, "n")?)))
            .collect()
    }

    async fn usage_by_day(
        &self,
        of: KeysOf,
        since_day: i64,
    ) -> Result<Vec<(i64, VerifyCode, u64)>, StoreError> {
        let mut qb = QueryBuilder::new(
            "SELECT u.day AS day, u.code AS code, SUM(u.count) AS n FROM key_usage u \
             JOIN api_keys k ON k.id = u.key_id WHERE u.day >= ",
        );
        qb.push_bind(since_day);
        push_keys_of(&mut qb, of, "k.");
        qb.push(" GROUP BY u.day, u.code ORDER BY u.day, u.code");
        qb.build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(|row| {
                let day: i64 = get(row, "day")?;
                Ok((day, code_col(row, "code")?, count_col(row, "n")?))
            })
            .collect()
    }

    async fn top_keys(
        &self,
        of: KeysOf,
        since_day: i64,
        limit: u32,
    ) -> Result<Vec<(Uuid, u64)>, StoreError> {
        let mut qb = usage_sums("key_id", of, since_day);
        qb.push(" ORDER BY n DESC, u.key_id LIMIT ")
            .push_bind(i64::from(limit));
        qb.build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(|row| Ok((uuid_col(row, "grp")?, count_col(row, "n")?)))
            .collect()
    }

    async fn usage_of_keys(
        &self,
        key_ids: &[Uuid],
        since_day: i64,
    ) -> Result<Vec<UsageCount>, StoreError> {
        if key_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb =
            QueryBuilder::new("SELECT key_id, day, code, count FROM key_usage WHERE day >= ");
        qb.push_bind(since_day).push(" AND key_id IN (");
        let mut ids = qb.separated(", ");
        for id in key_ids {
            ids.push_bind(id.to_string());
        }
        qb.push(") ORDER BY key_id, day, code");
        qb.build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(|row| rows::usage_count(&Cols(row)))
            .collect()
    }

    async fn list_usage(
        &self,
        of: KeysOf,
        after: Option<UsagePosition>,
        limit: u32,
    ) -> Result<Vec<UsageCount>, StoreError> {
        let mut qb = QueryBuilder::new(
            "SELECT u.key_id AS key_id, u.day AS day, u.code AS code, u.count AS count \
             FROM key_usage u JOIN api_keys k ON k.id = u.key_id WHERE 1 = 1",
        );
        push_keys_of(&mut qb, of, "k.");
        if let Some(p) = after {
            qb.push(" AND (u.key_id, u.day, u.code) > (")
                .push_bind(p.key_id.to_string())
                .push(", ")
                .push_bind(p.day)
                .push(", ")
                .push_bind(p.code.as_str())
                .push(")");
        }
        qb.push(" ORDER BY u.key_id, u.day, u.code LIMIT ")
            .push_bind(i64::from(limit));
        qb.build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(|row| rows::usage_count(&Cols(row)))
            .collect()
    }

    async fn create_webhook(
        &self,
        w: &WebhookEndpoint,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, tenant_id, url, events, enabled, description, \
             secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(w.id.to_string())
        .bind(w.tenant_id.map(|t| t.to_string()))
        .bind(&w.url)
        .bind(w.events.stored())
        .bind(w.enabled)
        .bind(&w.description)
        .bind(w.secret.expose())
        .bind(ms(w.created_at))
        .bind(ms(w.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_webhook(&self, id: Uuid) -> Result<Option<WebhookEndpoint>, StoreError> {
        sqlx::query("SELECT * FROM webhook_endpoints WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(webhook_from)
            .transpose()
    }

    async fn list_webhooks(
        &self,
        of: WebhooksOf,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let mut qb = QueryBuilder::new("SELECT * FROM webhook_endpoints WHERE 1 = 1");
        match of {
            WebhooksOf::All => {}
            WebhooksOf::Tenant(t) => {
                qb.push(" AND tenant_id = ").push_bind(t.to_string());
            }
            WebhooksOf::Installation => {
                qb.push(" AND tenant_id IS NULL");
            }
        }
        push_after(&mut qb, after);
        qb.push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::from(limit));
        qb.build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(webhook_from)
            .collect()
    }

    async fn update_webhook(
        &self,
        w: &WebhookEndpoint,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET url = ?, events = ?, enabled = ?, description = ?, \
             secret = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&w.url)
        .bind(w.events.stored())
        .bind(w.enabled)
        .bind(&w.description)
        .bind(w.secret.expose())
        .bind(ms(w.updated_at))
        .bind(w.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn delete_webhook(&self, id: Uuid, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_deliveries(
        &self,
        endpoint_id: Uuid,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut qb = QueryBuilder::new("SELECT * FROM webhook_deliveries WHERE endpoint_id = ");
        qb.push_bind(endpoint_id.to_string());
        if let Some(c) = before {
            let at = ms(c.created_at);
            qb.push(" AND (created_at < ")
                .push_bind(at)
                .push(" OR (created_at = ")
                .push_bind(at)
                .push(" AND id < ")
                .push_bind(c.id.to_string())
                .push("))");
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        qb.build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(delivery_from)
            .collect()
    }

    async fn get_delivery(&self, id: Uuid) -> Result<Option<Delivery>, StoreError> {
        sqlx::query("SELECT * FROM webhook_deliveries WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(delivery_from)
            .transpose()
    }

    async fn retry_delivery(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, \
             lease_id = NULL, lease_until = NULL WHERE id = ?",
        )
        .bind(ms(now))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Claimed>, StoreError> {
        // One writer at a time (BEGIN IMMEDIATE): the select and the lease are one step.
        let mut tx = self.write().await?;
        let lease_id = Uuid::new_v4();
        let rows = sqlx::query(
            "UPDATE webhook_deliveries SET lease_id = ?, lease_until = ? WHERE id IN (\
             SELECT id FROM webhook_deliveries WHERE status = 'pending' \
             AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?) \
             ORDER BY next_attempt_at, id LIMIT ?) RETURNING *",
        )
        .bind(lease_id.to_string())
        .bind(ms(lease_until))
        .bind(ms(now))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let delivery = delivery_from(row)?;
            let endpoint = sqlx::query("SELECT * FROM webhook_endpoints WHERE id = ?")
                .bind(delivery.endpoint_id.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
            claimed.push(Claimed {
                delivery,
                endpoint: webhook_from(&endpoint)?,
                lease_id,
            });
        }
        tx.commit().await.map_err(map_err)?;
        Ok(claimed)
    }

    async fn record_attempt(
        &self,
        id: Uuid,
        lease_id: Uuid,
        attempt: &Attempt,
        next: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let status = DeliveryStatus::after(attempt, next);
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, \
             next_attempt_at = ?, lease_id = NULL, lease_until = NULL, last_attempt_at = ?, \
             response_status = ?, response_body = ?, duration_ms = ?, error = ? \
             WHERE id = ? AND lease_id = ?",
        )
        .bind(status.as_str())
        .bind(opt_ms(next.filter(|_| status == DeliveryStatus::Pending)))
        .bind(ms(attempt.at))
        .bind(attempt.response_status.map(i64::from))
        .bind(&attempt.response_body)
        .bind(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX))
        .bind(&attempt.error)
        .bind(id.to_string())
        .bind(lease_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < ?",
        )
        .bind(ms(before))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn notify_once(
        &self,
        key_id: Uuid,
        notice: &str,
        now: OffsetDateTime,
        audit: Option<&AuditEntry>,
        events: &[Event],
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        if !record_notice(&mut tx, key_id, notice, now, events).await? {
            return Ok(false);
        }
        if let Some(audit) = audit {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn keys_expiring(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ExpiringKey>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT k.*, (SELECT group_concat(n.notice, ' ') FROM key_notices n \
             WHERE n.key_id = k.id) AS notices FROM api_keys_in_use k \
             WHERE expires_at > ? AND expires_at <= ? AND {} \
             ORDER BY expires_at, id LIMIT ?",
            not_revoked_as_of("?")
        ))
        .bind(ms(from))
        .bind(ms(to))
        .bind(ms(from))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let notices: Option<String> = get(row, "notices")?;
                Ok(ExpiringKey {
                    key: key_from(row)?,
                    notices: notices
                        .map(|n| n.split(' ').map(str::to_owned).collect())
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_audit(&mut tx, entry).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn table_names(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%' ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn table_columns(&self, table: &str) -> Result<Vec<copy::Column>, StoreError> {
        copy::known_table(table)?;
        sqlx::query("SELECT name, type FROM pragma_table_info(?) ORDER BY cid")
            .bind(table)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(|row| {
                let name: String = get(row, "name")?;
                let declared: String = get(row, "type")?;
                let kind = match declared.to_ascii_uppercase().as_str() {
                    "INTEGER" => copy::Kind::Int,
                    "BLOB" => copy::Kind::Bytes,
                    _ => copy::Kind::Text,
                };
                Ok(copy::Column { name, kind })
            })
            .collect()
    }

    async fn count_rows(&self, table: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(&copy::count_sql(table)?)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn read_rows(
        &self,
        table: &str,
        columns: &[String],
        key: &[&str],
        after: Option<&[copy::Cell]>,
        limit: u32,
    ) -> Result<Vec<Vec<copy::Cell>>, StoreError> {
        use sqlx::{TypeInfo, ValueRef};
        let (head, tail) = copy::read_sql(table, columns, key, after.is_some())?;
        let mut qb = QueryBuilder::new(head);
        if let Some(after) = after {
            let mut values = qb.separated(", ");
            for cell in after {
                push_cell(&mut values, cell);
            }
        }
        qb.push(tail).push_bind(i64::from(limit));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter()
            .map(|row| {
                (0..columns.len())
                    .map(|i| {
                        let raw = row.try_get_raw(i).map_err(map_err)?;
                        if raw.is_null() {
                            return Ok(copy::Cell::Null);
                        }
                        // A value's own storage class (SQLite types values, not columns).
                        let class = raw.type_info().name().to_owned();
                        Ok(match class.as_str() {
                            "INTEGER" => copy::Cell::Int(row.try_get(i).map_err(map_err)?),
                            "BLOB" => copy::Cell::Bytes(row.try_get(i).map_err(map_err)?),
                            "TEXT" => copy::Cell::Text(row.try_get(i).map_err(map_err)?),
                            other => {
                                return Err(StoreError::Other(format!(
                                    "{table}.{}: a {other} value keyward never writes",
                                    columns[i]
                                )))
                            }
                        })
                    })
                    .collect()
            })
            .collect()
    }

    async fn write_rows(
        &self,
        table: &str,
        columns: &[String],
        rows: &[Vec<copy::Cell>],
    ) -> Result<(), StoreError> {
        // SQLite binds at most 32766 values per statement.
        let (head, per_statement) = copy::insert_sql(table, columns, 30_000)?;
        let mut tx = self.write().await?;
        for chunk in rows.chunks(per_statement) {
            let mut qb = QueryBuilder::new(head.clone());
            qb.push_values(chunk, |mut b, row| {
                for cell in row {
                    push_cell(&mut b, cell);
                }
            });
            qb.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let mut qb = QueryBuilder::new("SELECT * FROM audit_log WHERE 1 = 1");
        if let Some(t) = q.tenant_id {
            qb.push(" AND tenant_id = ").push_bind(t.to_string());
        }
        if let Some(u) = q.involving_user {
            let u = u.to_string();
            qb.push(" AND (actor_user_id = ")
                .push_bind(u.clone())
                .push(" OR subject_user_id = ")
                .push_bind(u)
                .push(")");
        }
        if let Some(rt) = &q.resource_type {
            qb.push(" AND resource_type = ").push_bind(rt.clone());
        }
        if let Some(rid) = &q.resource_id {
            qb.push(" AND resource_id = ").push_bind(rid.clone());
        }
        if let Some(a) = &q.action {
            qb.push(" AND action = ").push_bind(a.clone());
        }
        if let Some(a) = &q.actor_id {
            qb.push(" AND actor_id = ").push_bind(a.clone());
        }
        if let Some(since) = q.since {
            qb.push(" AND created_at >= ").push_bind(ms(since));
        }
        if let Some(until) = q.until {
            qb.push(" AND created_at < ").push_bind(ms(until));
        }
        push_after(&mut qb, q.after);
        qb.push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::from(q.limit));
        qb.build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(audit_from)
            .collect()
    }
}
