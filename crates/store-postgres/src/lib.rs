//! The scale-out backend: [`Store`] on a PostgreSQL database shared by any number of nodes.
//!
//! Owns the PostgreSQL schema (`migrations/`) and the translation between rows and domain
//! records; its semantics are those of `keyward-store-sqlite`, checked by the same conformance
//! suite. Every write runs in one transaction with its audit entry; a read-decide-write (a credit
//! spend, a tenant delete) first locks the rows it decides on, so nodes never interleave there.
//! It must never see a plaintext key (keys arrive as digests), and never print or log the
//! database URL, which may carry a password.

mod change_feed;

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
    cascade_revocation_events, AuditQuery, Change, ChangeSink, Claimed, CreditSpend, Cursor,
    EndSessions, ExpiringKey, KeyCounts, KeyQuery, KeysBy, KeysOf, LastCredit, RateLease, Store,
    StoreError, UsageBatch, UsageCount, UsagePosition, UserChanges, UserQuery, WebhooksOf,
    CASCADE_EVENT_PAGE, MAX_CHANGES_NAMED, MAX_SESSIONS, USAGE_BATCH_MEMORY,
};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::change_feed::{notify, ListenerState};

/// How long a caller waits for a pooled connection (sqlx keeps retrying a refused connect
/// meanwhile) before the store reports `Unavailable`.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Rows per multi-row INSERT: 21 parameters a key stays far below PostgreSQL's 65535.
const INSERT_CHUNK: usize = 1000;

/// Connection settings a deployment tunes. TLS is chosen in the URL (`sslmode`, `sslrootcert`).
#[derive(Debug, Clone, Copy)]
pub struct PgSettings {
    /// Most connections this node holds (the listener's is one more).
    pub pool_size: u32,
    /// How long a caller waits for a connection before the store reports `Unavailable`.
    pub acquire_timeout: Duration,
    /// Server-side limit of one statement (`statement_timeout`); `None` keeps the server's.
    pub statement_timeout: Option<Duration>,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self {
            pool_size: 16,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            statement_timeout: Some(Duration::from_secs(5)),
        }
    }
}

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// What [`Store::watch`] listens with.
    listener: Arc<ListenerState>,
    /// Names this store (one per node process) in its announcements, so that its own watcher
    /// skips them: the node already applied each change to its cache before answering.
    origin: Arc<str>,
}

/// Prints nothing of the pool: its connect options hold the password.
impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?...`) and brings its
    /// schema up to date. The database must exist. Errors never contain the URL.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, PgSettings::default()).await
    }

    /// [`PgStore::open`] with tuned connection settings.
    pub async fn open_with(url: &str, settings: PgSettings) -> Result<Self, StoreError> {
        // sqlx's parse errors name the part that is wrong, not the URL; still, say nothing of it.
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::Other("invalid PostgreSQL URL".into()))?
            .application_name("keyward");
        if let Some(limit) = settings.statement_timeout {
            options = options.options([("statement_timeout", format!("{}ms", limit.as_millis()))]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size.max(1))
            .min_connections(0)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => map_err(e),
                other => StoreError::Other(format!("migration failed: {other}")),
            })?;
        let origin: Arc<str> = Uuid::new_v4().simple().to_string().into();
        // The process id, and the start of the origin, which tells apart nodes that all run as
        // process 1 in their containers.
        let listener_name = format!("keyward-listener-{}-{}", std::process::id(), &origin[..8]);
        let listener = Arc::new(ListenerState::new(
            options.application_name(&listener_name),
            settings.acquire_timeout,
        ));
        Ok(Self {
            pool,
            listener,
            origin,
        })
    }

    async fn write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(map_err)
    }
}

/// SQLSTATEs that mean "the server cannot serve us right now", not "the request is wrong":
/// class 08 (connection exception), too many connections, a statement cancelled by
/// `statement_timeout` (57014) or a lock not granted in time, and the server shutting down or
/// starting up.
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "53300" | "57014" | "55P03" | "57P01" | "57P02" | "57P03"
        )
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            // Every unique constraint in the schema is named after what it guards.
            let name = db.constraint().unwrap_or_else(|| db.message());
            let what = if name.contains("slug") {
                "slug"
            } else if name.contains("email") {
                "email"
            } else if name.contains("digest") {
                "digest"
            } else {
                "id"
            };
            StoreError::Conflict(what.into())
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Conflict("reference".into())
        }
        sqlx::Error::Database(db) if db.code().is_some_and(|c| is_unavailable_code(&c)) => {
            StoreError::Unavailable(db.message().to_owned())
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

// --- row <-> domain ----------------------------------------------------------------------

fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(col).map_err(map_err)
}

/// Reads columns for the shared decoders in `keyward_store::rows` (a newtype: both the trait and
/// the row type are foreign here).
struct Cols<'a>(&'a PgRow);

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
        self.0.try_get(col).map_err(map_err)
    }

    fn flag(&self, col: &str) -> Result<Option<bool>, StoreError> {
        self.0.try_get(col).map_err(map_err)
    }
}

fn key_from(row: &PgRow) -> Result<ApiKey, StoreError> {
    rows::api_key(&Cols(row))
}

fn tenant_from(row: &PgRow) -> Result<Tenant, StoreError> {
    rows::tenant(&Cols(row))
}

fn user_from(row: &PgRow) -> Result<User, StoreError> {
    rows::user(&Cols(row))
}

fn audit_from(row: &PgRow) -> Result<AuditEntry, StoreError> {
    rows::audit_entry(&Cols(row))
}

fn credits_from(row: &PgRow) -> Result<Option<Credits>, StoreError> {
    rows::credits(&Cols(row))
}

fn count_col(row: &PgRow, col: &str) -> Result<u64, StoreError> {
    rows::count(&Cols(row), col)
}

fn code_col(row: &PgRow, col: &str) -> Result<VerifyCode, StoreError> {
    rows::code(&Cols(row), col)
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
    tx: &mut Transaction<'static, Postgres>,
    of: CreditsOf,
    credits: Option<&Credits>,
) -> Result<(), StoreError> {
    let refill = credits.and_then(|c| c.refill);
    let (sql, id) = match of {
        CreditsOf::Key(id) => (
            "UPDATE api_keys SET remaining = $1, refill_interval = $2, refill_amount = $3, \
             refill_day = $4, credits_set_at = $5 WHERE id = $6",
            id,
        ),
        CreditsOf::Owner(id) => (
            "UPDATE owner_limits SET remaining = $1, refill_interval = $2, \
             refill_amount = $3, refill_day = $4, credits_set_at = $5 WHERE user_id = $6",
            id,
        ),
    };
    sqlx::query(sql)
        .bind(credits.map(|c| c.remaining))
        .bind(refill.map(|r| r.interval.as_str()))
        .bind(refill.map(|r| r.amount))
        .bind(refill.map(|r| i64::from(r.day)))
        .bind(credits.map(|c| ms(c.set_at)))
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

async fn insert_audit(
    tx: &mut Transaction<'static, Postgres>,
    e: &AuditEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, action, resource_type, resource_id, actor_id, \
         actor_type, actor_user_id, subject_user_id, source_ip, request_id, changes, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(e.id)
    .bind(e.tenant_id)
    .bind(&e.action)
    .bind(&e.resource_type)
    .bind(&e.resource_id)
    .bind(&e.actor_id)
    .bind(e.actor_type.as_str())
    .bind(e.actor_user_id)
    .bind(e.subject_user_id)
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
type Hearer = (Uuid, EventFilter);

/// The endpoints `event` may reach: the one it names, or the enabled ones of its tenant and
/// the installation-wide ones.
async fn hearers(
    tx: &mut Transaction<'static, Postgres>,
    event: &Event,
) -> Result<Vec<Hearer>, StoreError> {
    let rows = match event.only_endpoint {
        Some(id) => {
            sqlx::query("SELECT id, '*' AS events FROM webhook_endpoints WHERE id = $1").bind(id)
        }
        None => sqlx::query(
            "SELECT id, events FROM webhook_endpoints WHERE enabled \
             AND (tenant_id IS NULL OR tenant_id = $1)",
        )
        .bind(event.tenant_id),
    }
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    let mut hearers = Vec::with_capacity(rows.len());
    for row in &rows {
        let filter = EventFilter::from_stored(&get::<String>(row, "events")?)
            .ok_or_else(|| rows::corrupt("events"))?;
        hearers.push((get::<Uuid>(row, "id")?, filter));
    }
    Ok(hearers)
}

/// The outbox: one pending delivery of each event to each enabled endpoint that hears it.
async fn write_events(
    tx: &mut Transaction<'static, Postgres>,
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
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
            )
            .bind(Uuid::now_v7())
            .bind(endpoint)
            .bind(event.id)
            .bind(event.kind.as_str())
            .bind(&event.body)
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
    tx: &mut Transaction<'static, Postgres>,
    key_id: Uuid,
    name: &str,
    now: OffsetDateTime,
    events: &[Event],
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO key_notices (key_id, notice, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(key_id)
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

fn webhook_from(row: &PgRow) -> Result<WebhookEndpoint, StoreError> {
    rows::webhook(&Cols(row))
}

fn delivery_from(row: &PgRow) -> Result<Delivery, StoreError> {
    rows::delivery(&Cols(row))
}

/// Inserts keys with their credits, many rows per statement. A clash on any id or digest fails
/// the statement, and the caller's transaction with it.
/// Inserts `keys`; with `skip_known`, a key whose id or digest is stored already is left out
/// (else it is a `Conflict`). Returns the ids inserted.
async fn insert_keys(
    tx: &mut Transaction<'static, Postgres>,
    keys: &[ApiKey],
    skip_known: bool,
) -> Result<Vec<Uuid>, StoreError> {
    let mut inserted = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::new(
            "INSERT INTO api_keys (id, tenant_id, owner_id, name, prefix, start, digest, scopes, \
             metadata, rate_limit_max, rate_limit_window, expires_at, created_at, updated_at, \
             revoked_at, remaining, refill_interval, refill_amount, refill_day, \
             credits_set_at, enabled, allowed_ips, rate_limit_scope) ",
        );
        qb.push_values(chunk, |mut row, k| {
            let credits = k.credits.as_ref();
            let refill = credits.and_then(|c| c.refill);
            row.push_bind(k.id)
                .push_bind(k.tenant_id)
                .push_bind(k.owner_id)
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
                inserted.push(get::<Uuid>(r, "id")?);
            }
        } else {
            qb.build().execute(&mut **tx).await.map_err(map_err)?;
            inserted.extend(chunk.iter().map(|k| k.id));
        }
    }
    let new: std::collections::HashSet<Uuid> = inserted.iter().copied().collect();
    let used: Vec<(Uuid, i64)> = keys
        .iter()
        .filter(|k| new.contains(&k.id))
        .filter_map(|k| Some((k.id, ms(k.last_used_at?))))
        .collect();
    if !used.is_empty() {
        let (ids, ats): (Vec<Uuid>, Vec<i64>) = used.into_iter().unzip();
        sqlx::query(
            "INSERT INTO key_last_used (key_id, at) SELECT * FROM UNNEST($1::uuid[], $2::bigint[])",
        )
        .bind(ids)
        .bind(ats)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    }
    Ok(inserted)
}

/// Revokes a key live at `now` at `at`, or keeps the earlier end it already has (a key's end of
/// life only ever moves earlier); `NotFound` when there is none. The UPDATE locks the row, and
/// PostgreSQL re-checks the condition after any concurrent revocation commits.
async fn revoke_in(
    tx: &mut Transaction<'static, Postgres>,
    id: Uuid,
    at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<ApiKey, StoreError> {
    // Not the "not revoked as of now" rule (`NOT_REVOKED_AS_OF`): a key that has an end is still
    // revocable only while that end lies after both `now` and its last change (a grace period),
    // so that of two revocations racing, whichever `now` is earlier, one wins.
    let row = sqlx::query(
        "WITH revoked AS (UPDATE api_keys SET revoked_at = LEAST(COALESCE(revoked_at, $1), $1), \
         updated_at = $2 \
         WHERE id = $3 AND (revoked_at IS NULL OR (revoked_at > $2 AND revoked_at > updated_at)) \
         RETURNING *) \
         SELECT r.*, lu.at AS last_used_at FROM revoked r \
         LEFT JOIN key_last_used lu ON lu.key_id = r.id",
    )
    .bind(ms(at))
    .bind(ms(now))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(map_err)?;
    key_from(&row.ok_or(StoreError::NotFound)?)
}

/// Revokes at `now` (ms) every key of a tenant or an owner not revoked as of `now`, expired ones
/// included (so that none comes back to life through a later expiry change), and writes each
/// one's `key.revoked` event with `audit` ([`keyward_store::cascade_revocation_events`]); their
/// ids.
async fn revoke_live(
    tx: &mut Transaction<'static, Postgres>,
    by: KeysBy,
    now: i64,
    audit: &AuditEntry,
) -> Result<Vec<Uuid>, StoreError> {
    let (column, id) = by.column();
    let ids: Vec<Uuid> = sqlx::query_scalar(&format!(
        "UPDATE api_keys SET revoked_at = $1, updated_at = $1 WHERE {column} = $2 AND {} \
         RETURNING id",
        not_revoked_as_of("$1")
    ))
    .bind(now)
    .bind(id)
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    for page in ids.chunks(CASCADE_EVENT_PAGE) {
        let keys = sqlx::query(
            "SELECT k.*, lu.at AS last_used_at FROM api_keys k \
             LEFT JOIN key_last_used lu ON lu.key_id = k.id WHERE k.id = ANY($1) ORDER BY k.id",
        )
        .bind(page)
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

/// The digests of all of `user_id`'s keys.
async fn owner_digests(
    tx: &mut Transaction<'static, Postgres>,
    user_id: Uuid,
) -> Result<Vec<KeyDigest>, StoreError> {
    sqlx::query("SELECT digest FROM api_keys WHERE owner_id = $1")
        .bind(user_id)
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

/// Announces each of `digests`, or everything past [`MAX_CHANGES_NAMED`].
async fn announce_keys(
    tx: &mut Transaction<'static, Postgres>,
    origin: &str,
    digests: &[KeyDigest],
) -> Result<(), StoreError> {
    if digests.len() > MAX_CHANGES_NAMED {
        return notify(tx, origin, Change::All).await;
    }
    for digest in digests {
        notify(tx, origin, Change::Key(*digest)).await?;
    }
    Ok(())
}

/// Ends `user_id`'s sessions as `end` says: the API's (their ids returned and announced) and
/// the console's.
async fn end_sessions(
    tx: &mut Transaction<'static, Postgres>,
    origin: &str,
    user_id: Uuid,
    end: EndSessions,
) -> Result<Vec<Uuid>, StoreError> {
    let kept = match end {
        EndSessions::None => return Ok(vec![]),
        EndSessions::All => None,
        EndSessions::AllBut(id) => Some(id),
    };
    sqlx::query("DELETE FROM console_sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    let ended: Vec<Uuid> = sqlx::query_scalar(
        "DELETE FROM api_sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2 RETURNING id",
    )
    .bind(user_id)
    .bind(kept)
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    for id in &ended {
        notify(tx, origin, Change::Session(*id)).await?;
    }
    Ok(ended)
}

/// Live (not deleted) user `id`, locked with every active admin in one statement, in id order
/// (every write that takes both takes them so: none holds a row another waits for), and
/// whether an active admin other than it exists. `NotFound`, or `Conflict("stale")` when the
/// row changed since `read_at`.
async fn lock_user(
    tx: &mut Transaction<'static, Postgres>,
    id: Uuid,
    read_at: OffsetDateTime,
) -> Result<(User, bool), StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM users WHERE deleted_at IS NULL \
         AND (id = $1 OR (role = 'admin' AND disabled_at IS NULL)) ORDER BY id FOR UPDATE",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    let mut user = None;
    let mut other_admin = false;
    for row in &rows {
        let u = user_from(row)?;
        if u.id == id {
            user = Some(u);
        } else {
            other_admin = true;
        }
    }
    let user = user.ok_or(StoreError::NotFound)?;
    if user.updated_at != read_at {
        return Err(StoreError::Conflict("stale".into()));
    }
    Ok((user, other_admin))
}

/// Binds a copied value as its own type.
fn push_cell(
    values: &mut sqlx::query_builder::Separated<'_, '_, Postgres, &'static str>,
    cell: &copy::Cell,
) {
    match cell {
        copy::Cell::Null => values.push_bind(None::<String>),
        copy::Cell::Int(i) => values.push_bind(*i),
        copy::Cell::Text(t) => values.push_bind(t.clone()),
        copy::Cell::Bytes(b) => values.push_bind(b.clone()),
        copy::Cell::Bool(b) => values.push_bind(*b),
        copy::Cell::Uuid(u) => values.push_bind(*u),
    };
}

/// Inserts user `u`: `Conflict` when its email is taken, `NotFound` when its tenant is gone.
async fn insert_user(tx: &mut Transaction<'static, Postgres>, u: &User) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, role, tenant_id, created_at, updated_at, \
         disabled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(u.id)
    .bind(&u.email)
    .bind(&u.password_hash)
    .bind(u.role.as_str())
    .bind(u.tenant_id)
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

fn push_after(qb: &mut QueryBuilder<'_, Postgres>, after: Option<Cursor>) {
    if let Some(c) = after {
        qb.push(" AND (created_at, id) > (")
            .push_bind(ms(c.created_at))
            .push(", ")
            .push_bind(c.id)
            .push(")");
    }
}

/// Appends the `KeysOf` narrowing on `api_keys` columns, named with `column_prefix` (e.g. `k.`).
fn push_keys_of(qb: &mut QueryBuilder<'_, Postgres>, of: KeysOf, column_prefix: &str) {
    if let Some(t) = of.tenant_id {
        qb.push(format_args!(" AND {column_prefix}tenant_id = "))
            .push_bind(t);
    }
    if let Some(o) = of.owner_id {
        qb.push(format_args!(" AND {column_prefix}owner_id = "))
            .push_bind(o);
    }
}

/// The rule "not revoked as of a moment", spelled here once for this backend (a key whose
/// `revoked_at` is still ahead, in a grace period, is not revoked yet): the SQL before the moment
/// it compares with and after it. Statements use it through [`not_revoked_as_of`],
/// [`push_not_revoked_as_of`] and [`push_not_revoked`], never written out again.
const NOT_REVOKED_AS_OF: (&str, &str) = ("(revoked_at IS NULL OR revoked_at > ", ")");

/// "Not revoked as of `now`" for a plain statement, where `now` is the SQL of the moment (a
/// placeholder such as `$2`).
fn not_revoked_as_of(now: &str) -> String {
    let (before, after) = NOT_REVOKED_AS_OF;
    format!("{before}{now}{after}")
}

/// Appends "not revoked as of `now`" as a condition of its own (e.g. inside a `FILTER`).
fn push_not_revoked_as_of(qb: &mut QueryBuilder<'_, Postgres>, now: i64) {
    let (before, after) = NOT_REVOKED_AS_OF;
    qb.push(before).push_bind(now).push(after);
}

/// Appends "not revoked as of `now`" (a key in its grace period is not revoked yet).
fn push_not_revoked(qb: &mut QueryBuilder<'_, Postgres>, now: i64) {
    qb.push(" AND ");
    push_not_revoked_as_of(qb, now);
}

/// `SELECT u.<column> AS grp, SUM(u.count) AS n` over the usage of the keys of `of` on days
/// `>= since_day`, grouped by that column; the caller appends the order.
fn usage_sums(column: &'static str, of: KeysOf, since_day: i64) -> QueryBuilder<'static, Postgres> {
    // SUM(bigint) is numeric in PostgreSQL; the counters fit a bigint.
    let mut qb = QueryBuilder::new(format!(
        "SELECT u.{column} AS grp, SUM(u.count)::BIGINT AS n FROM key_usage u \
         JOIN api_keys k ON k.id = u.key_id WHERE u.day >= "
    ));
    qb.push_bind(since_day);
    push_keys_of(&mut qb, of, "k.");
    qb.push(format_args!(" GROUP BY u.{column}"));
    qb
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn close(&self) {
        // Nothing is buffered here: every write committed before it returned.
        self.listener.close().await;
        self.pool.close().await;
    }

    fn publishes_changes(&self) -> bool {
        true
    }

    async fn watch(&self, sink: Arc<dyn ChangeSink>) {
        self.listener.watch(sink, &self.origin).await;
    }

    async fn create_tenant(&self, t: &Tenant, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO tenants (id, name, slug, key_prefix, metadata, policy, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(t.id)
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
        sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(tenant_from)
            .transpose()
    }

    async fn get_tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>, StoreError> {
        sqlx::query("SELECT * FROM tenants WHERE slug = $1")
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
        let mut qb = QueryBuilder::new("SELECT * FROM tenants WHERE TRUE");
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
            "UPDATE tenants SET name = $1, slug = $2, key_prefix = $3, metadata = $4, \
             policy = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(&t.name)
        .bind(&t.slug)
        .bind(&t.key_prefix)
        .bind(t.metadata.to_string())
        .bind(rows::policy_json(&t.policy))
        .bind(ms(t.updated_at))
        .bind(t.id)
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
        let now = ms(now);
        let mut tx = self.write().await?;
        // Locking the tenant row serialises deletes of one tenant across nodes.
        let exists = sqlx::query("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        // Its unrevoked keys are locked too, so none is revoked or edited under the decision.
        let unrevoked = sqlx::query(&format!(
            "SELECT id, expires_at FROM api_keys WHERE tenant_id = $1 AND {} \
             ORDER BY id FOR UPDATE",
            not_revoked_as_of("$2")
        ))
        .bind(id)
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut active = false;
        for row in &unrevoked {
            active |= get::<Option<i64>>(row, "expires_at")?.is_none_or(|at| at > now);
        }
        if active && !force {
            return Err(StoreError::Conflict("active keys".into()));
        }
        // Expired-but-unrevoked keys are revoked too, so no key of a deleted tenant can come
        // back to life through a later expiry change. By tenant, not by the ids read above, so a
        // key another node created meanwhile is revoked as well.
        let revoked = revoke_live(&mut tx, KeysBy::Tenant(id), now, audit).await?;
        // Its users (admins aside) are disabled and signed out with it: a user with no tenant
        // would otherwise go on making keys as if it still belonged somewhere. (Announced by the
        // `All` below.) Users are locked before their sessions, as every such write does.
        sqlx::query(
            "SELECT id FROM users WHERE tenant_id = $1 AND role <> 'admin' ORDER BY id FOR UPDATE",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        for table in ["api_sessions", "console_sessions"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE user_id IN \
                 (SELECT id FROM users WHERE tenant_id = $1 AND role <> 'admin')"
            ))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        sqlx::query(
            "UPDATE users SET disabled_at = $1, updated_at = $1 \
             WHERE tenant_id = $2 AND disabled_at IS NULL AND role <> 'admin'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        insert_audit(&mut tx, audit).await?;
        // Members lose their tenant too, which cached users must learn: forget everything.
        notify(&mut tx, &self.origin, Change::All).await?;
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
        sqlx::query("SELECT * FROM users WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
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
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(s.digest.as_slice())
        .bind(s.user_id)
        .bind(&s.csrf)
        .bind(ms(s.created_at))
        .bind(ms(s.last_seen_at))
        .bind(ms(s.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "DELETE FROM console_sessions WHERE user_id = $1 AND (expires_at <= $2 OR digest IN \
             (SELECT digest FROM console_sessions WHERE user_id = $1 AND digest <> $3 \
             ORDER BY created_at DESC, digest DESC LIMIT ALL OFFSET $4))",
        )
        .bind(s.user_id)
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
        sqlx::query("SELECT * FROM console_sessions WHERE digest = $1")
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
            "SELECT * FROM console_sessions WHERE user_id = $1 ORDER BY created_at DESC, digest",
        )
        .bind(user_id)
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
            "UPDATE console_sessions SET last_seen_at = $1 WHERE digest = $2 AND last_seen_at < $1",
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
        let done = sqlx::query("DELETE FROM console_sessions WHERE digest = $1")
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
            qb.push(" AND tenant_id = ").push_bind(t);
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
            // starts_with, not LIKE: the prefix is matched as text, `%` and `_` included.
            qb.push(" AND starts_with(email, ")
                .push_bind(prefix.clone())
                .push(")");
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
        let (stored, other_admin) = lock_user(&mut tx, user.id, read_at).await?;
        let active_admin = |u: &User| u.role == Role::Admin && !u.is_disabled();
        if active_admin(&stored) && !active_admin(user) && !other_admin {
            return Err(StoreError::Conflict("last_admin".into()));
        }
        sqlx::query(
            "UPDATE users SET role = $1, password_hash = $2, disabled_at = $3, updated_at = $4 \
             WHERE id = $5",
        )
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.disabled_at.map(ms))
        .bind(ms(user.updated_at))
        .bind(user.id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let keys = if stored.is_disabled() == user.is_disabled() {
            vec![]
        } else {
            owner_digests(&mut tx, user.id).await?
        };
        let sessions = end_sessions(&mut tx, &self.origin, user.id, end).await?;
        insert_audit(&mut tx, audit).await?;
        notify(&mut tx, &self.origin, Change::User(user.id)).await?;
        announce_keys(&mut tx, &self.origin, &keys).await?;
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
        let now = ms(now);
        let mut tx = self.write().await?;
        let (stored, other_admin) = lock_user(&mut tx, id, read_at).await?;
        if stored.role == Role::Admin && !stored.is_disabled() && !other_admin {
            return Err(StoreError::Conflict("last_admin".into()));
        }
        let revoked = revoke_live(&mut tx, KeysBy::Owner(id), now, audit).await?;
        let keys = owner_digests(&mut tx, id).await?;
        let sessions = end_sessions(&mut tx, &self.origin, id, EndSessions::All).await?;
        sqlx::query("DELETE FROM owner_limits WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "UPDATE users SET email = $1, password_hash = $2, deleted_at = $3, \
             disabled_at = COALESCE(disabled_at, $3), updated_at = $3 WHERE id = $4",
        )
        .bind(rows::deleted_email(id))
        .bind(rows::NO_PASSWORD)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        insert_audit(&mut tx, audit).await?;
        notify(&mut tx, &self.origin, Change::User(id)).await?;
        announce_keys(&mut tx, &self.origin, &keys).await?;
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
        // The user first (shared: sign-ins do not wait on each other), then its sessions, as
        // every write that ends sessions takes them.
        let active = sqlx::query(
            "SELECT 1 FROM users WHERE id = $1 AND password_hash = $2 \
             AND disabled_at IS NULL AND deleted_at IS NULL FOR SHARE",
        )
        .bind(session.user_id)
        .bind(password_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if active.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM api_sessions WHERE user_id = $1 AND expires_at <= $2")
            .bind(session.user_id)
            .bind(ms(session.created_at))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO api_sessions (id, user_id, created_at, expires_at, source_ip) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session.id)
        .bind(session.user_id)
        .bind(ms(session.created_at))
        .bind(ms(session.expires_at))
        .bind(session.source_ip.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        // The new session and the newest MAX_SESSIONS - 1 others stay.
        let ended: Vec<Uuid> = sqlx::query_scalar(
            "DELETE FROM api_sessions WHERE id IN (SELECT id FROM api_sessions \
             WHERE user_id = $1 AND id <> $2 ORDER BY created_at DESC, id DESC \
             LIMIT ALL OFFSET $3) RETURNING id",
        )
        .bind(session.user_id)
        .bind(session.id)
        .bind(MAX_SESSIONS - 1)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        for id in &ended {
            notify(&mut tx, &self.origin, Change::Session(*id)).await?;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(ended)
    }

    async fn get_api_session(&self, id: Uuid) -> Result<Option<ApiSession>, StoreError> {
        sqlx::query("SELECT * FROM api_sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(|row| rows::api_session(&Cols(&row)))
            .transpose()
    }

    async fn list_api_sessions(&self, user_id: Uuid) -> Result<Vec<ApiSession>, StoreError> {
        sqlx::query("SELECT * FROM api_sessions WHERE user_id = $1 ORDER BY created_at DESC, id")
            .bind(user_id)
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
        let done = sqlx::query("DELETE FROM api_sessions WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        notify(&mut tx, &self.origin, Change::Session(id)).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        sqlx::query("SELECT * FROM users WHERE email = $1 AND deleted_at IS NULL")
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
        // FOR UPDATE makes read-decide-write one step: a concurrent spend of the same key, or of
        // a key of the same owner, from this node or another, waits here until this transaction
        // ends, then reads its result. Locks are taken key first, then owner: no deadlock.
        let mut tx = self.write().await?;
        let Some(row) = sqlx::query("SELECT * FROM api_keys WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
        else {
            return Ok(CreditSpend::default());
        };
        let key_credits = credits_from(&row)?;
        let owner_id = rows::StoredRow::uuid(&Cols(&row), "owner_id")?
            .ok_or_else(|| rows::corrupt("owner_id"))?;
        let owner_credits =
            match sqlx::query("SELECT * FROM owner_limits WHERE user_id = $1 FOR UPDATE")
                .bind(owner_id)
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
        // The row first, so that the read below locks it: two first leases of a key (no row
        // yet, nothing to lock) would otherwise both read nothing and both grant.
        sqlx::query(
            "INSERT INTO rate_limit_windows (key_id, window_start, used) VALUES ($1, $2, 0) \
             ON CONFLICT (key_id) DO NOTHING",
        )
        .bind(key_id)
        .bind(ms(window_start))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT window_start, used FROM rate_limit_windows WHERE key_id = $1 FOR UPDATE",
        )
        .bind(key_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let start = ms(window_start);
        let (lease, store) = RateLease::for_window(row, start, max, want);
        if !store {
            return Ok(lease);
        }
        sqlx::query(
            "INSERT INTO rate_limit_windows (key_id, window_start, used) VALUES ($1, $2, $3) \
             ON CONFLICT (key_id) DO UPDATE SET window_start = excluded.window_start, \
             used = excluded.used",
        )
        .bind(key_id)
        .bind(start)
        .bind(i64::from(lease.used))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(lease)
    }

    async fn get_owner_limits(&self, user_id: Uuid) -> Result<Option<OwnerLimits>, StoreError> {
        sqlx::query("SELECT * FROM owner_limits WHERE user_id = $1")
            .bind(user_id)
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
        // Locked: two sets of one user's limits at once would otherwise both find no row to
        // delete, and the second insert would fail on the first's.
        let exists = sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM owner_limits WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if let Some(l) = limits {
            let credits = l.credits.as_ref();
            let refill = credits.and_then(|c| c.refill);
            sqlx::query(
                "INSERT INTO owner_limits (user_id, rate_limit_max, rate_limit_window, remaining, \
                 refill_interval, refill_amount, refill_day, credits_set_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(user_id)
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
        announce_keys(&mut tx, &self.origin, &digests).await?;
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
        if !inserted.is_empty() {
            // Clients already present these keys: other nodes forget having found none.
            notify(&mut tx, &self.origin, Change::NewKeys).await?;
        }
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
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(Uuid::now_v7())
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
        notify(&mut tx, &self.origin, Change::Shapes).await?;
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
        sqlx::query("SELECT * FROM api_keys_in_use WHERE id = $1")
            .bind(id)
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
            let page: Vec<&[u8]> = page.iter().map(|d| d.as_bytes().as_slice()).collect();
            for row in sqlx::query("SELECT * FROM api_keys_in_use WHERE digest = ANY($1)")
                .bind(page)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?
            {
                keys.push(key_from(&row)?);
            }
        }
        Ok(keys)
    }

    async fn get_key_by_digest(&self, digest: &KeyDigest) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query("SELECT * FROM api_keys_in_use WHERE digest = $1")
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
        let mut qb = QueryBuilder::new("SELECT * FROM api_keys_in_use WHERE TRUE");
        push_keys_of(&mut qb, q.of, "");
        if let Some(part) = &q.name_contains {
            // A plain substring test: nothing in `part` is a pattern.
            qb.push(" AND strpos(lower(COALESCE(name, '')), lower(")
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
            "UPDATE api_keys SET name = $1, scopes = $2, metadata = $3, rate_limit_max = $4, \
             rate_limit_window = $5, expires_at = $6, enabled = $7, updated_at = $8, \
             allowed_ips = $9, rate_limit_scope = $10 WHERE id = $11 AND {}",
            not_revoked_as_of("$12")
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
        .bind(k.id)
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        write_credits(&mut tx, CreditsOf::Key(k.id), k.credits.as_ref()).await?;
        insert_audit(&mut tx, audit).await?;
        notify(&mut tx, &self.origin, Change::Key(k.digest)).await?;
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
        notify(&mut tx, &self.origin, Change::Key(key.digest)).await?;
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
        let old = revoke_in(&mut tx, old_id, revoke_old_at, now).await?;
        insert_keys(&mut tx, std::slice::from_ref(new_key), false).await?;
        insert_audit(&mut tx, audit).await?;
        notify(&mut tx, &self.origin, Change::Key(old.digest)).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn record_usage(&self, batch: Arc<UsageBatch>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Each list goes as arrays in one statement; rows are locked in (key, day, code) order
        // so that two nodes flushing overlapping batches wait for each other, never deadlock.
        let mut tx = self.write().await?;
        // Written once (see `UsageBatch::id`): the same steps as the other backend's, in this
        // backend's own SQL. Old ids that another node is forgetting right now are left to it.
        sqlx::query(
            "DELETE FROM usage_batches WHERE id IN (SELECT id FROM usage_batches \
             WHERE taken_at < $1 FOR UPDATE SKIP LOCKED)",
        )
        .bind(ms(batch.taken_at - USAGE_BATCH_MEMORY))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let first_time = sqlx::query(
            "INSERT INTO usage_batches (id, taken_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(batch.id)
        .bind(ms(batch.taken_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected()
            == 1;
        if !first_time {
            // Written before: only the answer was lost.
            return tx.commit().await.map_err(map_err);
        }
        if !batch.last_used.is_empty() {
            let ids: Vec<Uuid> = batch.last_used.iter().map(|u| u.key_id).collect();
            let ats: Vec<i64> = batch.last_used.iter().map(|u| ms(u.at)).collect();
            // Only ever forward: an older use (a late flush, a slower node) changes nothing.
            // Only keys that exist get a last use (the same rule as the counters).
            sqlx::query(
                "INSERT INTO key_last_used (key_id, at) \
                 SELECT v.id, MAX(v.at) FROM UNNEST($1::uuid[], $2::bigint[]) AS v(id, at) \
                 WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = v.id) \
                 GROUP BY v.id ORDER BY v.id \
                 ON CONFLICT (key_id) DO UPDATE SET at = excluded.at \
                 WHERE key_last_used.at < excluded.at",
            )
            .bind(ids)
            .bind(ats)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        if !batch.counts.is_empty() {
            let mut ids = Vec::with_capacity(batch.counts.len());
            let mut days = Vec::with_capacity(batch.counts.len());
            let mut codes = Vec::with_capacity(batch.counts.len());
            let mut counts = Vec::with_capacity(batch.counts.len());
            for c in &batch.counts {
                ids.push(c.key_id);
                days.push(c.day);
                codes.push(c.code.as_str());
                counts.push(
                    i64::try_from(c.count)
                        .map_err(|_| StoreError::Other("usage count out of range".into()))?,
                );
            }
            // One row per counter first: ON CONFLICT may touch a row only once per statement.
            // Only keys that exist get counters (the same rule as `last_used_at`).
            sqlx::query(
                "INSERT INTO key_usage (key_id, day, code, count) \
                 SELECT v.key_id, v.day, v.code, SUM(v.count)::BIGINT \
                 FROM UNNEST($1::uuid[], $2::bigint[], $3::text[], $4::bigint[]) \
                 AS v(key_id, day, code, count) \
                 WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = v.key_id) \
                 GROUP BY v.key_id, v.day, v.code \
                 ORDER BY v.key_id, v.day, v.code COLLATE \"C\" \
                 ON CONFLICT (key_id, day, code) \
                 DO UPDATE SET count = key_usage.count + excluded.count",
            )
            .bind(ids)
            .bind(days)
            .bind(codes)
            .bind(counts)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn count_keys(
        &self,
        of: KeysOf,
        now: OffsetDateTime,
        dormant_before: OffsetDateTime,
    ) -> Result<KeyCounts, StoreError> {
        let now = ms(now);
        let mut qb = QueryBuilder::new(
            "SELECT COUNT(*) AS total, \
             COUNT(*) FILTER (WHERE revoked_at IS NOT NULL AND revoked_at <= ",
        );
        qb.push_bind(now)
            .push(") AS revoked, COUNT(*) FILTER (WHERE ");
        push_not_revoked_as_of(&mut qb, now);
        qb.push(" AND expires_at IS NOT NULL AND expires_at <= ")
            .push_bind(now)
            .push(") AS expired, COUNT(*) FILTER (WHERE ");
        push_not_revoked_as_of(&mut qb, now);
        qb.push(" AND COALESCE(last_used_at, created_at) < ")
            .push_bind(ms(dormant_before))
            .push(") AS dormant FROM api_keys_in_use WHERE TRUE");
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
            "SELECT u.day AS day, u.code AS code, SUM(u.count)::BIGINT AS n FROM key_usage u \
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
            .map(|row| Ok((get(row, "grp")?, count_col(row, "n")?)))
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
            ids.push_bind(*id);
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
             FROM key_usage u JOIN api_keys k ON k.id = u.key_id WHERE TRUE",
        );
        push_keys_of(&mut qb, of, "k.");
        if let Some(p) = after {
            qb.push(" AND (u.key_id, u.day, u.code) > (")
                .push_bind(p.key_id)
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
             secret, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(w.id)
        .bind(w.tenant_id)
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
        sqlx::query("SELECT * FROM webhook_endpoints WHERE id = $1")
            .bind(id)
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
                qb.push(" AND tenant_id = ").push_bind(t);
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
            "UPDATE webhook_endpoints SET url = $1, events = $2, enabled = $3, \
             description = $4, secret = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(&w.url)
        .bind(w.events.stored())
        .bind(w.enabled)
        .bind(&w.description)
        .bind(w.secret.expose())
        .bind(ms(w.updated_at))
        .bind(w.id)
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
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
            .bind(id)
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
        qb.push_bind(endpoint_id);
        if let Some(c) = before {
            qb.push(" AND (created_at, id) < (")
                .push_bind(ms(c.created_at))
                .push(", ")
                .push_bind(c.id)
                .push(")");
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
        sqlx::query("SELECT * FROM webhook_deliveries WHERE id = $1")
            .bind(id)
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
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, \
             lease_id = NULL, lease_until = NULL WHERE id = $2",
        )
        .bind(ms(now))
        .bind(id)
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
        // Rows another node is leasing right now are skipped, not waited for: each delivery is
        // leased by one node, and no node stalls behind another's claim.
        let mut tx = self.write().await?;
        let lease_id = Uuid::new_v4();
        let rows = sqlx::query(
            "UPDATE webhook_deliveries SET lease_id = $1, lease_until = $2 WHERE id IN (\
             SELECT id FROM webhook_deliveries WHERE status = 'pending' \
             AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3) \
             ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING *",
        )
        .bind(lease_id)
        .bind(ms(lease_until))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let delivery = delivery_from(row)?;
            let endpoint = sqlx::query("SELECT * FROM webhook_endpoints WHERE id = $1")
                .bind(delivery.endpoint_id)
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
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, \
             next_attempt_at = $2, lease_id = NULL, lease_until = NULL, last_attempt_at = $3, \
             response_status = $4, response_body = $5, duration_ms = $6, error = $7 \
             WHERE id = $8 AND lease_id = $9",
        )
        .bind(status.as_str())
        .bind(opt_ms(next.filter(|_| status == DeliveryStatus::Pending)))
        .bind(ms(attempt.at))
        .bind(attempt.response_status.map(i64::from))
        .bind(&attempt.response_body)
        .bind(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX))
        .bind(&attempt.error)
        .bind(id)
        .bind(lease_id)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1",
        )
        .bind(ms(before))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
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
            "SELECT k.*, (SELECT string_agg(n.notice, ' ') FROM key_notices n \
             WHERE n.key_id = k.id) AS notices FROM api_keys_in_use k \
             WHERE expires_at > $1 AND expires_at <= $2 AND {} \
             ORDER BY expires_at, id LIMIT $3",
            not_revoked_as_of("$1")
        ))
        .bind(ms(from))
        .bind(ms(to))
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
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             AND table_name NOT LIKE '\\_sqlx\\_%' ORDER BY table_name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn table_columns(&self, table: &str) -> Result<Vec<copy::Column>, StoreError> {
        copy::known_table(table)?;
        sqlx::query(
            "SELECT column_name::text AS name, data_type::text AS type \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|row| {
            let name: String = get(row, "name")?;
            let declared: String = get(row, "type")?;
            let kind = match declared.as_str() {
                "uuid" => copy::Kind::Uuid,
                "bigint" | "integer" | "smallint" => copy::Kind::Int,
                "boolean" => copy::Kind::Bool,
                "bytea" => copy::Kind::Bytes,
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
        use sqlx::{Column as _, TypeInfo};
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
                row.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, column)| {
                        let cell = match column.type_info().name() {
                            "UUID" => row
                                .try_get::<Option<Uuid>, _>(i)
                                .map(|v| v.map(copy::Cell::Uuid)),
                            "INT8" => row
                                .try_get::<Option<i64>, _>(i)
                                .map(|v| v.map(copy::Cell::Int)),
                            "INT4" => row
                                .try_get::<Option<i32>, _>(i)
                                .map(|v| v.map(|n| copy::Cell::Int(i64::from(n)))),
                            "BOOL" => row
                                .try_get::<Option<bool>, _>(i)
                                .map(|v| v.map(copy::Cell::Bool)),
                            "BYTEA" => row
                                .try_get::<Option<Vec<u8>>, _>(i)
                                .map(|v| v.map(copy::Cell::Bytes)),
                            _ => row
                                .try_get::<Option<String>, _>(i)
                                .map(|v| v.map(copy::Cell::Text)),
                        };
                        Ok(cell.map_err(map_err)?.unwrap_or(copy::Cell::Null))
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
        // PostgreSQL binds at most 65535 values per statement.
        let (head, per_statement) = copy::insert_sql(table, columns, 60_000)?;
        // A NULL is bound as its column's type: PostgreSQL does not cast a text NULL to uuid.
        let catalog = self.table_columns(table).await?;
        let kinds: Vec<copy::Kind> = columns
            .iter()
            .map(|c| {
                catalog
                    .iter()
                    .find(|k| &k.name == c)
                    .map(|k| k.kind)
                    .ok_or_else(|| StoreError::Other(format!("{table} has no column {c}")))
            })
            .collect::<Result<_, _>>()?;
        let mut tx = self.write().await?;
        for chunk in rows.chunks(per_statement) {
            let mut qb = QueryBuilder::new(head.clone());
            qb.push_values(chunk, |mut b, row| {
                for (cell, kind) in row.iter().zip(&kinds) {
                    match (cell, kind) {
                        (copy::Cell::Null, copy::Kind::Uuid) => b.push_bind(None::<Uuid>),
                        (copy::Cell::Null, copy::Kind::Int) => b.push_bind(None::<i64>),
                        (copy::Cell::Null, copy::Kind::Bool) => b.push_bind(None::<bool>),
                        (copy::Cell::Null, copy::Kind::Bytes) => b.push_bind(None::<Vec<u8>>),
                        _ => {
                            push_cell(&mut b, cell);
                            &mut b
                        }
                    };
                }
            });
            qb.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let mut qb = QueryBuilder::new("SELECT * FROM audit_log WHERE TRUE");
        if let Some(t) = q.tenant_id {
            qb.push(" AND tenant_id = ").push_bind(t);
        }
        if let Some(u) = q.involving_user {
            qb.push(" AND (actor_user_id = ")
                .push_bind(u)
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
