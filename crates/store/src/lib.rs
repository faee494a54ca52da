//! The storage contract: [`Store`] is everything keyward asks of a database, in domain terms.
//!
//! Backends (`keyward-store-sqlite`, `keyward-store-postgres`) implement it and must pass the
//! [`conformance`] suite. This crate knows nothing of HTTP or of any database driver.
//!
//! Every mutation takes the [`AuditEntry`] that records it and writes both in one transaction:
//! either the change and its audit entry are stored, or neither is. The entry carries the
//! webhook events the change causes; they go to the outbox in that same transaction, one
//! pending delivery per enabled endpoint of the event's tenant (or installation-wide) that
//! subscribes to the event's type.

use std::sync::Arc;

use async_trait::async_trait;
use keyward_domain::event::Attempt;
use keyward_domain::import::KeyShape;
use keyward_domain::{
    ApiKey, ApiSession, AuditEntry, ConsoleSession, Delivery, Event, KeyDigest, KeyStatus,
    OwnerLimits, Role, Tenant, User, VerifyCode, WebhookEndpoint,
};
use thiserror::Error;
use time::OffsetDateTime;
use uuid::Uuid;

pub mod conformance;
pub mod copy;
mod cursor;
pub mod rows;

pub use cursor::{Cursor, InvalidCursor, CURSOR_PATTERN};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule or a precondition failed; the text names which (no values).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached right now.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Other(String),
}

/// Which keys a listing returns: the one description of "which keys" from a surface down to
/// storage (whose keys in `of`, and which of them). All filters are combined with AND.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyQuery {
    /// Whose keys: a tenant's, an owner's, or both narrowed.
    pub of: KeysOf,
    /// Status as of `now`.
    pub status: Option<KeyStatus>,
    /// Only keys not revoked as of `now` whose last use (or creation, if never used) is before this.
    pub dormant_before: Option<OffsetDateTime>,
    /// Leave out keys revoked as of `now` (the compatibility surfaces list live keys only).
    pub exclude_revoked: bool,
    /// Only keys whose name contains this, ignoring ASCII case.
    pub name_contains: Option<String>,
    pub now: OffsetDateTime,
    /// Keys strictly after this position in (created_at, id) order.
    pub after: Option<Cursor>,
    pub limit: u32,
}

impl KeyQuery {
    pub fn new(now: OffsetDateTime, limit: u32) -> Self {
        Self {
            of: KeysOf::default(),
            status: None,
            dormant_before: None,
            exclude_revoked: false,
            name_contains: None,
            now,
            after: None,
            limit,
        }
    }
}

/// Which audit entries a listing returns. All filters are combined with AND.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditQuery {
    pub tenant_id: Option<Uuid>,
    /// Entries whose actor user or subject user is this user.
    pub involving_user: Option<Uuid>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub action: Option<String>,
    /// Entries whose actor has this id (a user id, a key id, `cli`, `anonymous`).
    pub actor_id: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Entries strictly after this position in (created_at, id) order.
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// One verification's trace on a key, written in batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyUse {
    pub key_id: Uuid,
    pub at: OffsetDateTime,
}

/// Verifications of one key on one UTC day with one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageCount {
    pub key_id: Uuid,
    /// Days since the Unix epoch, UTC.
    pub day: i64,
    pub code: VerifyCode,
    pub count: u64,
}

/// What the verify path buffered since the last flush; written in one transaction, once.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageBatch {
    /// Storage remembers the ids it wrote for [`USAGE_BATCH_MEMORY`]: a batch sent again
    /// because the answer to a write that did land was lost is not counted twice.
    pub id: Uuid,
    /// When the batch was taken; storage forgets the ids of batches taken
    /// [`USAGE_BATCH_MEMORY`] before it.
    pub taken_at: OffsetDateTime,
    pub last_used: Vec<KeyUse>,
    /// Added to the stored counters (never replacing them), so nodes' counts add up.
    pub counts: Vec<UsageCount>,
}

/// How long storage remembers a written usage batch's id. A retry comes seconds later; the
/// memory only has to outlast the longest outage a node sits through with the batch in hand.
pub const USAGE_BATCH_MEMORY: time::Duration = time::Duration::days(1);

impl UsageBatch {
    /// An empty batch with a new id.
    pub fn new(taken_at: OffsetDateTime) -> Self {
        Self {
            id: Uuid::new_v4(),
            taken_at,
            last_used: Vec::new(),
            counts: Vec::new(),
        }
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.last_used.len() + self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_used.is_empty() && self.counts.is_empty()
    }
}

/// The keys of a tenant and/or an owner; a `None` field does not narrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeysOf {
    pub tenant_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
}

/// How many keys are in each state, as of a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyCounts {
    pub total: u64,
    pub active: u64,
    pub expired: u64,
    pub revoked: u64,
    /// Not revoked, and last used (or made, if never used) before the dormancy cut-off.
    pub dormant: u64,
}

/// Where a usage listing resumes: strictly after this (key_id, day, code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsagePosition {
    pub key_id: Uuid,
    pub day: i64,
    pub code: VerifyCode,
}

impl UsageCount {
    pub fn position(&self) -> UsagePosition {
        UsagePosition {
            key_id: self.key_id,
            day: self.day,
            code: self.code,
        }
    }
}

/// Days since the Unix epoch of `t`, in UTC: the usage counters' bucket.
pub fn usage_day(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(86_400)
}

/// Whose webhook endpoints a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhooksOf {
    /// Every endpoint (admins).
    All,
    /// The endpoints of this tenant.
    Tenant(Uuid),
    /// The installation-wide endpoints (of no tenant).
    Installation,
}

/// A delivery a node has leased to send, with where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub delivery: Delivery,
    pub endpoint: WebhookEndpoint,
    /// Names this node's lease: an attempt is recorded only while the lease is still this one.
    pub lease_id: Uuid,
}

/// A notice about a key, sent once per key and name (`credits_exhausted:<ms>`, ...), and the
/// events it sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub name: String,
    pub events: Vec<Event>,
}

/// Requests of a cluster-wide window granted to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLease {
    /// Requests this node may now allow; 0: the window is spent.
    pub granted: u32,
    /// The window's count after this lease, across the cluster.
    pub used: u32,
}

impl RateLease {
    /// A lease of the window starting at `start` (ms since the epoch), given the count stored for
    /// the key (`(window_start, used)`, if any), and whether the lease's count is to be stored
    /// (not when the stored count is of a newer window: this node's clock is behind, its window
    /// is over, and it gets nothing).
    pub fn for_window(stored: Option<(i64, i64)>, start: i64, max: u32, want: u32) -> (Self, bool) {
        let used = match stored {
            Some((at, used)) if at == start => u32::try_from(used).unwrap_or(max),
            Some((at, _)) if at > start => {
                return (
                    Self {
                        granted: 0,
                        used: max,
                    },
                    false,
                )
            }
            // No count yet, or an older window's: this one starts from nothing.
            _ => 0,
        };
        (Self::grant(max, used, want), true)
    }

    /// What a lease of `want` gets when `used` of `max` are gone: at most a quarter of what is
    /// left (at least 1 while anything is), so that budgets shrink as the window runs out and
    /// little is left stranded on nodes that stop asking.
    pub fn grant(max: u32, used: u32, want: u32) -> Self {
        let left = max.saturating_sub(used);
        let granted = want.max(1).min(left.div_ceil(4)).min(left);
        Self {
            granted,
            used: used.saturating_add(granted),
        }
    }
}

/// What a backend writes for one [`Store::spend_credits`], decided once for every backend from
/// the credits it read: the key's and the owner's new credits (each only when changed), and the
/// key's credits when this spend took its last one (the notice is due).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpendPlan {
    pub spent: CreditSpend,
    pub write_key: Option<keyward_domain::credits::Credits>,
    pub write_owner: Option<keyward_domain::credits::Credits>,
    pub last_credit: Option<keyward_domain::credits::Credits>,
}

impl SpendPlan {
    /// Spends `cost` of `key`'s and `owner`'s credits (as read, in the spending transaction)
    /// as of `now`: both or neither ([`keyward_domain::credits::spend_together`]).
    pub fn of(
        key: Option<keyward_domain::credits::Credits>,
        owner: Option<keyward_domain::credits::Credits>,
        cost: i64,
        now: OffsetDateTime,
    ) -> Self {
        use keyward_domain::credits::{spend_together, Spend};
        let (key_spend, owner_spend) = spend_together(key, owner, cost, now);
        let changed = |spend: Option<Spend>, before: Option<keyward_domain::credits::Credits>| {
            spend
                .map(|s| s.after())
                .filter(|after| Some(*after) != before)
        };
        let last_credit = match (key_spend, key) {
            (Some(Spend::Spent(after)), Some(before))
                if after.remaining == 0 && before.current(now).remaining > 0 =>
            {
                Some(after)
            }
            _ => None,
        };
        Self {
            spent: CreditSpend {
                key: key_spend,
                owner: owner_spend,
            },
            write_key: changed(key_spend, key),
            write_owner: changed(owner_spend, owner),
            last_credit,
        }
    }
}

/// What [`Store::spend_credits`] did to the key's credits and to its owner's shared ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreditSpend {
    pub key: Option<keyward_domain::credits::Spend>,
    pub owner: Option<keyward_domain::credits::Spend>,
}

/// Past this many keys, a change to an owner's limits is announced as [`Change::All`] rather
/// than key by key.
pub const MAX_CHANGES_NAMED: usize = 256;

/// What [`Store::spend_credits`] records when a spend takes a key's last credit: the notice for
/// the credits left, if any.
pub type LastCredit<'a> =
    &'a (dyn Fn(&keyward_domain::credits::Credits) -> Option<Notice> + Send + Sync);

/// A key close to (or past) its expiry, with the notices already sent about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiringKey {
    pub key: ApiKey,
    /// The names given to [`Store::notify_once`] for this key so far.
    pub notices: Vec<String>,
}

/// A change to stored keys that a node's verify cache must forget, published by the store that
/// made it (in the changing transaction, so it is seen no earlier than the change) to every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The key with this digest was revoked, rotated away or edited.
    Key(KeyDigest),
    /// The user with this id changed (role, disabled, deleted): forget what was read of it.
    User(Uuid),
    /// The API session with this id (a JWT's `jti`) ended.
    Session(Uuid),
    /// An import taught keyward a new shape of keys: read the shapes again.
    Shapes,
    /// An import stored keys that clients may already be presenting: forget the digests
    /// remembered as unknown.
    NewKeys,
    /// Too many keys changed to name each (a tenant deleted with its keys): forget them all.
    All,
}

/// Which users [`Store::list_users`] lists, ordered by (created_at, id); deleted users never.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Users of this tenant only; all when `None`.
    pub tenant_id: Option<Uuid>,
    pub role: Option<Role>,
    /// `Some(true)`: disabled users only; `Some(false)`: active ones only.
    pub disabled: Option<bool>,
    /// Users whose (normalized, lower-case) email starts with this text.
    pub email_prefix: Option<String>,
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// Which of a user's sessions (the API's and the console's) a write to the user ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndSessions {
    None,
    All,
    /// All but the API session with this id (the caller's own, on a password change).
    AllBut(Uuid),
}

/// What a write to a user changed beyond its row, for the caches that hold them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    /// The user's keys, when whether they verify changed (disabled, enabled, deleted).
    pub keys: Vec<KeyDigest>,
    /// The API sessions that ended.
    pub sessions: Vec<Uuid>,
    /// The keys revoked (deleting a user).
    pub revoked: Vec<Uuid>,
}

/// The most sessions one user keeps of each kind (API, console): a sign-in beyond ends the
/// oldest (a script that signs in on every run, and never out, would otherwise grow the table
/// without end). Two sign-ins at the same moment may each leave one more until the next.
pub const MAX_SESSIONS: i64 = 100;

/// Whose keys a cascading revocation ends: a deleted tenant's or a deleted owner's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysBy {
    Tenant(Uuid),
    Owner(Uuid),
}

impl KeysBy {
    /// The `api_keys` column that names the tenant or owner, and its id.
    pub fn column(self) -> (&'static str, Uuid) {
        match self {
            Self::Tenant(id) => ("tenant_id", id),
            Self::Owner(id) => ("owner_id", id),
        }
    }

    /// Why the keys were revoked, as the `key.revoked` event's `data.reason` says it.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Tenant(_) => "tenant_deleted",
            Self::Owner(_) => "owner_deleted",
        }
    }
}

/// How many revoked keys a backend reads back at a time to write their events (a deleted tenant
/// may hold a million keys: never all at once in memory).
pub const CASCADE_EVENT_PAGE: usize = 1000;

/// The `key.revoked` events of `keys`, revoked (as read back after the revocation) by the change
/// `audit` records because of `by`: one per key, caused by the entry's actor at its time, with
/// `data.reason` (`tenant_deleted` or `owner_deleted`). A backend writes them to the outbox in
/// the revoking transaction, so that a webhook hears of every key that stops working. A deleted
/// tenant's events go to the installation-wide endpoints only: its own go with it.
pub fn cascade_revocation_events(keys: &[ApiKey], audit: &AuditEntry, by: KeysBy) -> Vec<Event> {
    let actor = audit.actor();
    keys.iter()
        .map(|key| {
            let mut event = Event::about_key(
                keyward_domain::EventType::KeyRevoked,
                key,
                &actor,
                audit.created_at,
                serde_json::json!({"reason": by.reason()}),
            );
            if let KeysBy::Tenant(_) = by {
                event.tenant_id = None;
            }
            event
        })
        .collect()
}

/// Where [`Store::watch`] delivers what it hears. Called from the watching task; must not block.
pub trait ChangeSink: Send + Sync {
    fn changed(&self, change: Change);
    /// The feed is down: changes made from now on may go unseen until [`ChangeSink::resumed`].
    fn lost(&self);
    /// The feed listens again. Changes made while it was down were not seen.
    fn resumed(&self);
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Whether other processes may change keys behind this node's back and announce it through
    /// [`Store::watch`] (a database shared by nodes). When false, this process is the only
    /// writer that matters and `watch` has nothing to say.
    fn publishes_changes(&self) -> bool {
        false
    }

    /// Feeds `sink` with every node's changes for as long as the node runs, reconnecting by
    /// itself. It starts in the "lost" state: the first call on `sink` is `resumed` once it
    /// listens. The default, for a store without other writers, returns at once.
    async fn watch(&self, sink: std::sync::Arc<dyn ChangeSink>) {
        let _ = sink;
    }

    /// Durably writes anything the backend buffers; called at shutdown.
    async fn close(&self);

    // --- tenants -------------------------------------------------------------------------

    /// `Conflict` when the slug is taken.
    async fn create_tenant(&self, tenant: &Tenant, audit: &AuditEntry) -> Result<(), StoreError>;
    async fn get_tenant(&self, id: Uuid) -> Result<Option<Tenant>, StoreError>;
    async fn get_tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>, StoreError>;
    /// Ordered by (created_at, id).
    async fn list_tenants(
        &self,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Tenant>, StoreError>;
    /// Replaces name, slug, key_prefix, metadata, policy and updated_at. `NotFound`, or
    /// `Conflict` on slug.
    async fn update_tenant(&self, tenant: &Tenant, audit: &AuditEntry) -> Result<(), StoreError>;
    /// Deletes the tenant. With active keys (as of `now`): `Conflict` unless `force`, which
    /// revokes them at `now` in the same transaction; returns the ids of the keys it revoked.
    /// Users of the tenant are kept, with no tenant, disabled at `now` and signed out (an
    /// admin may enable one again); admins among them are only left without a tenant (disabling
    /// them could leave no admin). Keys keep their tenant id as
    /// history.
    async fn delete_tenant(
        &self,
        id: Uuid,
        force: bool,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<Vec<Uuid>, StoreError>;

    // --- users ---------------------------------------------------------------------------

    async fn count_users(&self) -> Result<u64, StoreError>;
    /// `Conflict` when the email is taken.
    async fn create_user(&self, user: &User, audit: &AuditEntry) -> Result<(), StoreError>;
    async fn get_user(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    /// `email` is already normalized (lower case).
    async fn get_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;
    /// The users `query` asks for, ordered by (created_at, id).
    async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>, StoreError>;
    /// Writes `user`'s role, password hash, `disabled_at` and `updated_at`, and ends the
    /// sessions `end` names, with the audit entry; `read_at` is the `updated_at` of the row the
    /// change was made from. `NotFound` when there is no such user (deleted users included);
    /// `Conflict("stale")`, and nothing written, when the stored row changed since `read_at`;
    /// `Conflict("last_admin")`, and nothing written, when the user is an active admin and the
    /// write would leave no active admin. The returned [`UserChanges::keys`] are the user's keys
    /// when `disabled_at` changed between active and disabled. A shared database announces the
    /// user, the ended sessions and those keys.
    async fn update_user(
        &self,
        user: &User,
        read_at: OffsetDateTime,
        end: EndSessions,
        audit: &AuditEntry,
    ) -> Result<UserChanges, StoreError>;
    /// Deletes user `id` at `now`: revokes its keys live at `now`, ends its sessions, removes its
    /// shared limits, and keeps its row as history (marked deleted, email freed, no password),
    /// all with the audit entry in one transaction. `NotFound`, `Conflict("stale")` and
    /// `Conflict("last_admin")` as in [`Store::update_user`].
    async fn delete_user(
        &self,
        id: Uuid,
        read_at: OffsetDateTime,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<UserChanges, StoreError>;

    // --- API sessions ----------------------------------------------------------------------

    /// Stores a new API session with the audit entry of its sign-in, forgets the user's
    /// sessions that expired before `session.created_at`, and ends the oldest live ones beyond
    /// [`MAX_SESSIONS`] (the new one counted; a shared database announces them). Returns the
    /// ids of the sessions it ended. `NotFound`, and nothing written, unless the user is active
    /// (not disabled or deleted) and its password hash is still `password_hash`, the one the
    /// sign-in proved (so that a sign-in racing a password change or a disable does not outlive
    /// it).
    async fn create_api_session(
        &self,
        session: &ApiSession,
        password_hash: &str,
        audit: &AuditEntry,
    ) -> Result<Vec<Uuid>, StoreError>;
    async fn get_api_session(&self, id: Uuid) -> Result<Option<ApiSession>, StoreError>;
    /// A user's stored API sessions (expired ones may be among them), newest first.
    async fn list_api_sessions(&self, user_id: Uuid) -> Result<Vec<ApiSession>, StoreError>;
    /// Ends user `user_id`'s API session `id`, with its audit entry; `NotFound` when it has no
    /// such session. A shared database announces it.
    async fn end_api_session(
        &self,
        id: Uuid,
        user_id: Uuid,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;

    // --- console sessions ----------------------------------------------------------------

    /// Stores a new console session with the audit entry of its sign-in, forgets the user's
    /// console sessions that expired before `created_at`, and ends the oldest beyond
    /// [`MAX_SESSIONS`] (the new one counted; console sessions are read from storage on every
    /// request, so nothing needs telling).
    async fn create_session(
        &self,
        session: &ConsoleSession,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// The session with this token digest, if it exists (expired or not: the caller decides).
    async fn get_session(&self, digest: &[u8; 32]) -> Result<Option<ConsoleSession>, StoreError>;
    /// A user's stored console sessions (expired or idle ones may be among them), newest first.
    async fn list_console_sessions(&self, user_id: Uuid)
        -> Result<Vec<ConsoleSession>, StoreError>;
    /// Moves `last_seen_at` forward to `at` (never back).
    async fn touch_session(&self, digest: &[u8; 32], at: OffsetDateTime) -> Result<(), StoreError>;
    /// Deletes the session (sign-out, or found expired), with its audit entry when one is given;
    /// `NotFound` when there was none.
    async fn delete_session(
        &self,
        digest: &[u8; 32],
        audit: Option<&AuditEntry>,
    ) -> Result<(), StoreError>;

    // --- keys ----------------------------------------------------------------------------

    /// `Conflict` if the digest or id already exists.
    async fn create_key(&self, key: &ApiKey, audit: &AuditEntry) -> Result<(), StoreError>;
    /// Many keys in one transaction with one audit entry that records the import (bulk
    /// provisioning and the benchmark's seeding). `Conflict`, and nothing written, if any
    /// digest or id exists.
    async fn import_keys(&self, keys: &[ApiKey], audit: &AuditEntry) -> Result<(), StoreError>;
    /// Creates `owners` and imports the keys of `keys` whose id and digest are new, in one
    /// transaction with `audit` (none when nothing changed); keys stored already are left as they
    /// are. `Conflict`, and nothing written, when an owner's email is taken. Returns the ids of
    /// the keys it stored.
    async fn import_new_keys(
        &self,
        owners: &[User],
        keys: &[ApiKey],
        audit: &AuditEntry,
    ) -> Result<Vec<Uuid>, StoreError>;
    /// Remembers `shape` of imported keys, with `audit`; the same shape again changes nothing.
    /// A shared database announces [`Change::Shapes`].
    async fn add_key_shape(&self, shape: &KeyShape, audit: &AuditEntry) -> Result<(), StoreError>;
    /// Every shape of imported keys, oldest first.
    async fn list_key_shapes(&self) -> Result<Vec<KeyShape>, StoreError>;
    async fn get_key(&self, id: Uuid) -> Result<Option<ApiKey>, StoreError>;
    /// Spends `cost` of the key's credits and of its owner's shared credits (each when present)
    /// as of `now`, applying due refills: both or neither
    /// ([`keyward_domain::credits::spend_together`]), atomically with respect to every other
    /// spend, never more spent than there was. Both parts `None` when the key does not exist or
    /// neither has credits. When this spend takes the key's last credit, the notice
    /// `last_credit` gives for the credits left is recorded in the same transaction (once per
    /// key and notice name, as [`Store::notify_once`]).
    async fn spend_credits(
        &self,
        id: Uuid,
        cost: i64,
        now: OffsetDateTime,
        last_credit: LastCredit<'_>,
    ) -> Result<CreditSpend, StoreError>;
    /// Leases up to `want` (at least 1) requests of the cluster-wide window starting at
    /// `window_start` of key `key_id`, whose limit is `max` a window: never more than is left
    /// ([`RateLease::grant`]), atomically with every other lease, from any node. A lease of a
    /// newer window starts its count again.
    async fn lease_rate_budget(
        &self,
        key_id: Uuid,
        window_start: OffsetDateTime,
        max: u32,
        want: u32,
    ) -> Result<RateLease, StoreError>;
    /// The limits shared by `user_id`'s keys, if any are set.
    async fn get_owner_limits(&self, user_id: Uuid) -> Result<Option<OwnerLimits>, StoreError>;
    /// Sets (or, with `None`, removes) the limits shared by `user_id`'s keys, with `audit`, and
    /// announces every key of the owner as changed (their cached copies carry the limits).
    /// Returns the digests of those keys, for this node's cache. `NotFound` when there is no
    /// such user.
    async fn set_owner_limits(
        &self,
        user_id: Uuid,
        limits: Option<&OwnerLimits>,
        audit: &AuditEntry,
    ) -> Result<Vec<KeyDigest>, StoreError>;
    async fn get_key_by_digest(&self, digest: &KeyDigest) -> Result<Option<ApiKey>, StoreError>;
    /// The stored keys of `digests` (in no particular order; unknown digests left out), read
    /// [`CASCADE_EVENT_PAGE`] at a time: a second run of an import reads its batch's keys in a
    /// few queries rather than one each.
    async fn get_keys_by_digests(&self, digests: &[KeyDigest]) -> Result<Vec<ApiKey>, StoreError>;
    async fn list_keys(&self, query: &KeyQuery) -> Result<Vec<ApiKey>, StoreError>;
    /// Replaces name, scopes, metadata, rate limit, credits, expires_at, enabled and updated_at of a key not
    /// revoked as of `now`; `NotFound` otherwise.
    async fn update_key(
        &self,
        key: &ApiKey,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// Sets `revoked_at = at` on a key not revoked as of `now` (`at` may be later than `now`:
    /// a grace period), unless the key already has an earlier `revoked_at`: a key's end of life
    /// only ever moves earlier, whatever the writes. `NotFound` if unknown or already revoked:
    /// a key counts as still revocable only in a grace period (an end later than both `now` and
    /// its last change), so that of two revocations racing, whichever `now` is earlier, one wins.
    /// Returns the updated key.
    async fn revoke_key(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<ApiKey, StoreError>;
    /// In one transaction: revokes `old_id` at `revoke_old_at` (as [`Store::revoke_key`]) and
    /// inserts `new_key`. `NotFound` (and nothing written) if the old key is unknown or revoked.
    async fn rotate_key(
        &self,
        old_id: Uuid,
        revoke_old_at: OffsetDateTime,
        new_key: &ApiKey,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// In one transaction: moves each key's `last_used_at` forward (never backwards) and adds
    /// the counts to the per-key, per-day counters. Unknown key ids are ignored. A batch whose
    /// id was written before (within [`USAGE_BATCH_MEMORY`]) changes nothing. Shared rather
    /// than borrowed, so that a store may prepare it on another thread without copying it.
    async fn record_usage(&self, batch: Arc<UsageBatch>) -> Result<(), StoreError>;
    /// Key states of `of` as of `now`; dormant means last use (or creation) before `dormant_before`.
    async fn count_keys(
        &self,
        of: KeysOf,
        now: OffsetDateTime,
        dormant_before: OffsetDateTime,
    ) -> Result<KeyCounts, StoreError>;
    /// Verifications of the keys of `of` on days `>= since_day`, summed per outcome code
    /// (codes with no verifications are left out).
    async fn usage_by_code(
        &self,
        of: KeysOf,
        since_day: i64,
    ) -> Result<Vec<(VerifyCode, u64)>, StoreError>;
    /// Verifications of the keys of `of` on days `>= since_day`, summed per day and outcome code,
    /// ordered by day, then code name: `(day, code, count)`, days since the Unix epoch (UTC).
    async fn usage_by_day(
        &self,
        of: KeysOf,
        since_day: i64,
    ) -> Result<Vec<(i64, VerifyCode, u64)>, StoreError>;
    /// The `limit` keys of `of` with the most verifications on days `>= since_day`, most first
    /// (ties by key id).
    async fn top_keys(
        &self,
        of: KeysOf,
        since_day: i64,
        limit: u32,
    ) -> Result<Vec<(Uuid, u64)>, StoreError>;
    /// The counters of these keys (at most 1000) on days from `since_day` (days since the Unix
    /// epoch, UTC), ordered by (key_id, day, code).
    async fn usage_of_keys(
        &self,
        key_ids: &[Uuid],
        since_day: i64,
    ) -> Result<Vec<UsageCount>, StoreError>;
    /// Raw counters of the keys of `of`, ordered by (key_id, day, code).
    async fn list_usage(
        &self,
        of: KeysOf,
        after: Option<UsagePosition>,
        limit: u32,
    ) -> Result<Vec<UsageCount>, StoreError>;

    // --- webhooks ------------------------------------------------------------------------

    async fn create_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    async fn get_webhook(&self, id: Uuid) -> Result<Option<WebhookEndpoint>, StoreError>;
    /// Ordered by (created_at, id).
    async fn list_webhooks(
        &self,
        of: WebhooksOf,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<WebhookEndpoint>, StoreError>;
    /// Replaces url, events, enabled, description, secret and updated_at. `NotFound` otherwise.
    async fn update_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// Deletes the endpoint and its deliveries. `NotFound` when there is none.
    async fn delete_webhook(&self, id: Uuid, audit: &AuditEntry) -> Result<(), StoreError>;
    /// The endpoint's deliveries, newest first: ordered by (created_at, id) descending, strictly
    /// before `before`.
    async fn list_deliveries(
        &self,
        endpoint_id: Uuid,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;
    async fn get_delivery(&self, id: Uuid) -> Result<Option<Delivery>, StoreError>;
    /// Makes the delivery due at `now` again, whatever its status (a manual retry), with the
    /// audit entry of the request. `NotFound` when there is none.
    async fn retry_delivery(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// Leases up to `limit` pending deliveries due at `now` whose lease (if any) ran out, until
    /// `lease_until`, earliest due first. Each is leased by one caller at a time across every
    /// node (PostgreSQL: row locks that skip locked rows); one whose holder died is leased again
    /// once its lease runs out.
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Claimed>, StoreError>;
    /// Records an attempt on a delivery still leased as `lease_id`, and ends the lease: the
    /// delivery succeeded (a 2xx), is due again at `next`, or failed for good (`next` None).
    /// Returns false (and writes nothing) when the lease was lost to another node.
    async fn record_attempt(
        &self,
        id: Uuid,
        lease_id: Uuid,
        attempt: &Attempt,
        next: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;
    /// Deletes deliveries no longer pending that were made before `before`; returns how many.
    async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, StoreError>;

    // --- notices about keys --------------------------------------------------------------

    /// Writes `events` (and `audit`, with its own events, when given) in one transaction,
    /// unless a notice named `notice` was recorded for the key before: each notice is sent once
    /// per key, across restarts and nodes. Returns whether it wrote.
    async fn notify_once(
        &self,
        key_id: Uuid,
        notice: &str,
        now: OffsetDateTime,
        audit: Option<&AuditEntry>,
        events: &[Event],
    ) -> Result<bool, StoreError>;
    /// Keys not revoked as of `from` whose expiry is in `(from, to]`, soonest first (ties by
    /// id), at most `limit`, each with the notices already recorded for it.
    async fn keys_expiring(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ExpiringKey>, StoreError>;

    // --- audit ---------------------------------------------------------------------------

    /// For events that change nothing else (a login, a failed login).
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    // --- moving an installation (see [`copy`]) ---------------------------------------------

    /// The tables of keyward's schema in this database (not the migrations' own).
    async fn table_names(&self) -> Result<Vec<String>, StoreError>;
    /// The columns of `table` (one of [`copy::TABLES`]) as this database's catalog states them.
    async fn table_columns(&self, table: &str) -> Result<Vec<copy::Column>, StoreError>;
    /// How many rows `table` holds.
    async fn count_rows(&self, table: &str) -> Result<u64, StoreError>;
    /// At most `limit` rows of `table` (the `columns` named, in that order) ordered by the
    /// `key` columns, after the row whose key is `after` when given.
    async fn read_rows(
        &self,
        table: &str,
        columns: &[String],
        key: &[&str],
        after: Option<&[copy::Cell]>,
        limit: u32,
    ) -> Result<Vec<Vec<copy::Cell>>, StoreError>;
    /// Inserts `rows` (values of `columns`, in that order) into `table` in one transaction.
    async fn write_rows(
        &self,
        table: &str,
        columns: &[String],
        rows: &[Vec<copy::Cell>],
    ) -> Result<(), StoreError>;
    /// Ordered by (created_at, id).
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
}
