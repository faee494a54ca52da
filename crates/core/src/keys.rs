//! The key lifecycle: create, read, list, edit, revoke, rotate.
//!
//! Visibility is checked before anything else, and an unseen key is a 404, never a 403, so
//! existence never leaks across tenants or owners. No key is ever created or widened beyond the
//! rights of the caller.

use keyward_domain::credits::{Credits, Refill};
use keyward_domain::duration::MAX_DURATION_SECONDS;
use keyward_domain::event::key_json;
pub use keyward_domain::ratelimit::MAX_RATE_LIMIT;
use keyward_domain::ratelimit::{KeyRateLimit, RateLimitError, RateLimitScope};
use keyward_domain::scope::{KeywardRight, Scopes};
use keyward_domain::text;
use keyward_domain::Patch;
use keyward_domain::{
    ApiKey, IpAllowlist, KeyDigest, KeyPrefix, KeyStatus, PlainKey, PolicyViolation, Role,
    TenantPolicy,
};
use keyward_domain::{AuditAction, Event, EventType};
use keyward_store::{Cursor, KeyQuery, KeysOf, StoreError};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::page::{paginate, validate_metadata, Page};
use crate::Keyward;

/// The longest grace period a rotation may leave the old key alive for.
pub const MAX_GRACE: Duration = Duration::days(7);
/// The grace periods a rotation takes ([`keyward_domain::duration::SHORT_PATTERN`] up to
/// [`MAX_GRACE`]), as the OpenAPI document states them.
pub const GRACE_PATTERN: &str = r"^(([1-9][0-9]{0,4}|[1-5][0-9]{5}|60[0-3][0-9]{3}|604[0-7][0-9]{2}|604800)s|([1-9][0-9]{0,3}|100[0-7][0-9]|10080)m|([1-9][0-9]?|1[0-5][0-9]|16[0-8])h|[1-7]d|1w)$";

/// When a new key stops working.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyExpiry {
    Never,
    At(OffsetDateTime),
    After(Duration),
}

/// Whose keys an operation may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reach {
    /// What the caller's role covers: all keys (admin), its tenant's (tenant admin), its own.
    #[default]
    Role,
    /// The caller's own keys only, whatever its role (the Estuary and form surfaces, export).
    Own,
}

impl Reach {
    fn covers(self, caller: &Caller, key: &ApiKey) -> bool {
        match self {
            Self::Role => caller.principal.sees_key(key.tenant_id, key.owner_id),
            Self::Own => key.owner_id == caller.principal.user_id,
        }
    }

    /// The keys this reach covers, as a storage filter.
    pub fn keys_of(self, caller: &Caller) -> KeysOf {
        let p = &caller.principal;
        match (self, p.role) {
            (Self::Role, Role::Admin) => KeysOf::default(),
            (Self::Role, Role::TenantAdmin) if p.tenant_id.is_some() => KeysOf {
                tenant_id: p.tenant_id,
                owner_id: None,
            },
            _ => KeysOf {
                tenant_id: None,
                owner_id: Some(p.user_id),
            },
        }
    }
}

/// Which tenant a new key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTenant {
    /// The native rule: admins must name one; everyone else may name only their own.
    Requested(Option<Uuid>),
    /// The caller's own tenant, or none (the compatibility surfaces have no tenant field).
    CallersOwn,
}

#[derive(Debug, Clone)]
pub struct NewKey {
    pub tenant: KeyTenant,
    pub name: Option<String>,
    pub scopes: Vec<String>,
    pub metadata: Option<Value>,
    pub rate_limit_max: Option<i64>,
    pub rate_limit_window: Option<String>,
    pub expiry: KeyExpiry,
    /// Uses the key has; `None` for unlimited. With only a refill, it starts at the amount.
    pub remaining: Option<i64>,
    pub refill: Option<Refill>,
    /// Networks (CIDR) or addresses the key may be verified from; empty: anywhere.
    pub allowed_ips: Vec<String>,
    /// Where the rate limit holds; `None`: the tenant policy's choice (this node by default).
    /// Only with a rate limit.
    pub rate_limit_scope: Option<RateLimitScope>,
}

/// A key just made: the only moment its plaintext exists.
#[derive(Debug)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub plaintext: PlainKey,
}

/// Changes to a key: a [`Patch`] keeps, clears or sets a nullable field; `None` leaves the
/// others as they are.
#[derive(Debug, Default, Clone)]
pub struct KeyPatch {
    pub name: Patch<String>,
    pub scopes: Option<Vec<String>>,
    pub metadata: Option<Value>,
    /// Cleared: the key never expires.
    pub expires_at: Patch<OffsetDateTime>,
    /// With the window: both set, or both cleared.
    pub rate_limit_max: Patch<i64>,
    pub rate_limit_window: Patch<String>,
    /// Cleared: the credits (and their refill) go, and the key becomes unlimited.
    pub remaining: Patch<i64>,
    /// Cleared: the refill goes, the credits stay.
    pub refill: Patch<Refill>,
    /// False pauses the key (verify answers `DISABLED`), true resumes it.
    pub enabled: Option<bool>,
    /// A new allowlist; empty lifts it.
    pub allowed_ips: Option<Vec<String>>,
    /// Where the (new or current) rate limit holds; `None` keeps it.
    pub rate_limit_scope: Option<RateLimitScope>,
}

pub fn cursor_of(key: &ApiKey) -> Cursor {
    Cursor {
        created_at: key.created_at,
        id: key.id,
    }
}

fn validate_name(name: &Option<String>) -> Result<()> {
    match name {
        Some(n) => text::KEY_NAME
            .check(n)
            .map_err(|e| Error::invalid_field("name", e)),
        None => Ok(()),
    }
}

/// A rate limit from what a caller asked for: both fields, or neither.
pub(crate) fn rate_limit_of(
    max: Option<i64>,
    window: Option<&str>,
) -> Result<Option<KeyRateLimit>> {
    // The range first: a value out of range is named as such, whatever else is missing.
    if max.is_some_and(|max| !(1..=MAX_RATE_LIMIT).contains(&max)) {
        return Err(Error::invalid_field(
            "rate_limit_max",
            RateLimitError::MaxOutOfRange,
        ));
    }
    match (max, window) {
        (None, None) => Ok(None),
        (Some(max), Some(window)) => {
            KeyRateLimit::set(max, window)
                .map(Some)
                .map_err(|e| match e {
                    RateLimitError::MaxOutOfRange => Error::invalid_field("rate_limit_max", e),
                    RateLimitError::Window(e) => Error::invalid_field("rate_limit_window", e),
                })
        }
        _ => Err(Error::invalid_field(
            "rate_limit_max",
            "rate_limit_max and rate_limit_window are set together",
        )),
    }
}

/// The most credits a key may hold.
pub const MAX_CREDITS: i64 = 1_000_000_000_000;

fn validate_refill(refill: &Refill) -> Result<()> {
    if !(1..=MAX_CREDITS).contains(&refill.amount) {
        return Err(Error::invalid_field(
            "refill.amount",
            "must be between 1 and 10^12",
        ));
    }
    if !(1..=31).contains(&refill.day) {
        return Err(Error::invalid_field(
            "refill.day",
            "must be between 1 and 31",
        ));
    }
    Ok(())
}

/// Credits from what a caller asked for, set as of `now`.
pub(crate) fn credits_of(
    remaining: Option<i64>,
    refill: Option<Refill>,
    now: OffsetDateTime,
) -> Result<Option<Credits>> {
    if let Some(r) = &refill {
        validate_refill(r)?;
    }
    let remaining = match (remaining, refill) {
        (None, None) => return Ok(None),
        (Some(n), _) => n,
        (None, Some(r)) => r.amount,
    };
    if !(0..=MAX_CREDITS).contains(&remaining) {
        return Err(Error::invalid_field(
            "remaining",
            "must be between 0 and 10^12",
        ));
    }
    Ok(Some(Credits {
        remaining,
        refill,
        set_at: now,
    }))
}

fn resolve_expiry(expiry: KeyExpiry, now: OffsetDateTime) -> Result<Option<OffsetDateTime>> {
    match expiry {
        KeyExpiry::Never => Ok(None),
        KeyExpiry::At(at) if at <= now => {
            Err(Error::invalid_field("expires_at", "must be in the future"))
        }
        KeyExpiry::At(at) if at > now + Duration::seconds(MAX_DURATION_SECONDS) => Err(
            Error::invalid_field("expires_at", "must be within 100 years"),
        ),
        KeyExpiry::At(at) => Ok(Some(keyward_domain::clock::truncate_millis(at))),
        KeyExpiry::After(d) if d <= Duration::ZERO => {
            Err(Error::invalid_field("expires_in", "must be positive"))
        }
        KeyExpiry::After(d) => Ok(Some(keyward_domain::clock::truncate_millis(now + d))),
    }
}

fn allowlist_of(raw: &[String]) -> Result<IpAllowlist> {
    IpAllowlist::parse(raw).map_err(|e| Error::invalid_field("allowed_ips", e))
}

fn validated_scopes(caller: &Caller, raw: &[String]) -> Result<Scopes> {
    let scopes = Scopes::parse(raw).map_err(|e| Error::invalid_field("scopes", e))?;
    caller.principal.may_grant(&scopes)?;
    Ok(scopes)
}

/// The tenant a new key of `caller` goes to. Admins name one; everyone else gets their own.
async fn key_tenant(
    state: &Keyward,
    caller: &Caller,
    choice: KeyTenant,
) -> Result<Option<keyward_domain::Tenant>> {
    let p = &caller.principal;
    let requested = match choice {
        KeyTenant::Requested(t) => t,
        KeyTenant::CallersOwn => p.tenant_id,
    };
    let tenant_id = match (p.role, requested) {
        (Role::Admin, None) if choice == KeyTenant::CallersOwn => None,
        (Role::Admin, None) => {
            return Err(Error::invalid_field("tenant_id", "is required for admins"))
        }
        (Role::Admin, Some(t)) => Some(t),
        (_, Some(t)) if Some(t) != p.tenant_id => return Err(Error::NotFound("tenant")),
        (_, _) => p.tenant_id,
    };
    match tenant_id {
        None => Ok(None),
        Some(id) => state
            .store
            .get_tenant(id)
            .await?
            .map(Some)
            .ok_or(Error::NotFound("tenant")),
    }
}

pub async fn create(state: &Keyward, caller: &Caller, req: NewKey) -> Result<IssuedKey> {
    caller.principal.require(KeywardRight::Write)?;
    validate_name(&req.name)?;
    let mut rate_limit = rate_limit_of(req.rate_limit_max, req.rate_limit_window.as_deref())?;
    if let Some(m) = &req.metadata {
        validate_metadata("metadata", m)?;
    }
    let scopes = validated_scopes(caller, &req.scopes)?;
    let allowed_ips = allowlist_of(&req.allowed_ips)?;
    let now = keyward_domain::clock::truncate_millis(state.now());
    let expires_at = resolve_expiry(req.expiry, now)?;
    let tenant = key_tenant(state, caller, req.tenant).await?;
    if let Some(policy) = tenant.as_ref().map(|t| &t.policy) {
        policy.check_scopes(&scopes).map_err(violation("scopes"))?;
        policy
            .check_expiry(expires_at, now)
            .map_err(violation("expiry"))?;
        if rate_limit.is_none() {
            rate_limit = default_rate_limit(policy)?;
        }
    }
    let scope = req
        .rate_limit_scope
        .or(tenant.as_ref().map(|t| t.policy.rate_limit_scope))
        .unwrap_or_default();
    let rate_limit = scoped(rate_limit, scope, req.rate_limit_scope.is_some())?;
    let prefix = tenant
        .as_ref()
        .map(|t| t.prefix())
        .unwrap_or_else(KeyPrefix::default_prefix);
    let plaintext = PlainKey::generate(&prefix)
        .map_err(|e| Error::Internal(format!("OS random source: {e}")))?;
    let fresh = ApiKey::issued(
        Uuid::now_v7(),
        &plaintext,
        &prefix,
        caller.principal.user_id,
        tenant.map(|t| t.id),
        scopes,
        now,
    );
    let key = ApiKey {
        name: req.name,
        metadata: req.metadata.unwrap_or_else(|| json!({})),
        rate_limit,
        expires_at,
        credits: credits_of(req.remaining, req.refill, now)?,
        allowed_ips,
        ..fresh
    };
    let actor = caller.actor();
    let audit = actor
        .entry(now, AuditAction::ApiKeyCreate, key.id)
        .tenant(key.tenant_id)
        .subject(key.owner_id)
        .changes(json!({"name": key.name, "scopes": key.scopes, "expires_at": key.expires_at.map(rfc3339), "allowed_ips": key.allowed_ips}))
        .event(Event::about_key(EventType::KeyCreated, &key, &actor, now, Value::Null));
    let stored = state.store.create_key(&key, &audit).await;
    // Forget any memory of this digest as unknown.
    state.cache.invalidate(&key.digest);
    stored?;
    Ok(IssuedKey { key, plaintext })
}

/// A tenant policy's refusal, naming the field it concerns (`policy_violation`).
fn violation(field: &'static str) -> impl Fn(PolicyViolation) -> Error {
    move |v| Error::invalid("policy_violation", format!("{field}: {v}"))
}

/// The rate limit a policy gives new keys that name none.
pub(crate) fn default_rate_limit(policy: &TenantPolicy) -> Result<Option<KeyRateLimit>> {
    policy
        .default_rate_limit
        .as_ref()
        .map(|d| KeyRateLimit::stored(d.max, &d.window))
        .transpose()
        .map_err(|e| Error::Internal(format!("a stored default rate limit: {e}")))
}

/// `limit` holding where `scope` says; a scope asked for (`asked`) with no limit is refused.
fn scoped(
    limit: Option<KeyRateLimit>,
    scope: RateLimitScope,
    asked: bool,
) -> Result<Option<KeyRateLimit>> {
    match limit {
        Some(limit) => Ok(Some(limit.with_scope(scope))),
        None if asked => Err(Error::invalid_field(
            "rate_limit_scope",
            "applies to a rate limit: set rate_limit_max and rate_limit_window with it",
        )),
        None => Ok(None),
    }
}

/// The policy of the tenant a key lives in (the default for keys in none, or in a tenant since
/// deleted).
async fn policy_of(state: &Keyward, key: &ApiKey) -> Result<TenantPolicy> {
    Ok(match key.tenant_id {
        Some(t) => state.store.get_tenant(t).await?.map(|t| t.policy),
        None => None,
    }
    .unwrap_or_default())
}

/// A key within the caller's reach, or 404.
pub async fn get(state: &Keyward, caller: &Caller, reach: Reach, id: Uuid) -> Result<ApiKey> {
    caller.principal.require(KeywardRight::Read)?;
    visible(state, caller, reach, id).await
}

/// A key within the caller's reach that is not revoked, or 404 (the compatibility surfaces
/// forget revoked keys, as the originals deleted them).
pub async fn get_live(state: &Keyward, caller: &Caller, reach: Reach, id: Uuid) -> Result<ApiKey> {
    let key = get(state, caller, reach, id).await?;
    if key.status(state.now()) == KeyStatus::Revoked {
        return Err(Error::NotFound("api key"));
    }
    Ok(key)
}

/// The scopes of a key made through a compatibility surface (Estuary's `perms=all`): it may use
/// keyward's API as its owner, read and write.
pub fn owner_scopes() -> Vec<String> {
    [KeywardRight::Read, KeywardRight::Write]
        .map(|r| r.scope().to_owned())
        .to_vec()
}

async fn visible(state: &Keyward, caller: &Caller, reach: Reach, id: Uuid) -> Result<ApiKey> {
    match state.store.get_key(id).await? {
        Some(key) if reach.covers(caller, &key) => Ok(key),
        _ => Err(Error::NotFound("api key")),
    }
}

/// One page of the keys `query` asks for (`query.limit` of them at most), within `reach` of
/// the caller: a tenant or owner asked for outside it matches nothing the caller may see.
pub async fn list(
    state: &Keyward,
    caller: &Caller,
    reach: Reach,
    mut query: KeyQuery,
) -> Result<Page<ApiKey>> {
    caller.principal.require(KeywardRight::Read)?;
    let limit = crate::page::checked_size(query.limit)?;
    let within = reach.keys_of(caller);
    let (Some(tenant_id), Some(owner_id)) = (
        narrowed(query.of.tenant_id, within.tenant_id),
        narrowed(query.of.owner_id, within.owner_id),
    ) else {
        return Ok(Page {
            items: vec![],
            next: None,
        });
    };
    query.of = KeysOf {
        tenant_id,
        owner_id,
    };
    query.limit = limit + 1;
    let keys = state.store.list_keys(&query).await?;
    Ok(paginate(keys, limit, cursor_of))
}

/// What a filter asked for, narrowed to what the caller may see: `None` when they conflict
/// (nothing matches), else the narrower of the two.
fn narrowed(asked: Option<Uuid>, allowed: Option<Uuid>) -> Option<Option<Uuid>> {
    match (asked, allowed) {
        (Some(a), Some(b)) if a != b => None,
        (a, b) => Some(b.or(a)),
    }
}

/// Every live (not revoked) key the caller owns, oldest first: the compatibility surfaces list
/// without pages.
pub async fn list_live_own(state: &Keyward, caller: &Caller) -> Result<Vec<ApiKey>> {
    let mut keys = Vec::new();
    let mut after = None;
    loop {
        let mut query = KeyQuery::new(state.now(), crate::page::MAX_PAGE);
        query.exclude_revoked = true;
        query.after = after;
        let page = list(state, caller, Reach::Own, query).await?;
        keys.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(keys),
        }
    }
}

pub async fn update(
    state: &Keyward,
    caller: &Caller,
    reach: Reach,
    id: Uuid,
    patch: KeyPatch,
) -> Result<ApiKey> {
    caller.principal.require(KeywardRight::Write)?;
    let mut key = visible(state, caller, reach, id).await?;
    let now = keyward_domain::clock::truncate_millis(state.now());
    // The tenant's rules apply to what this change sets; what it leaves alone stays.
    let policy = if patch.scopes.is_some() || !patch.expires_at.is_keep() {
        policy_of(state, &key).await?
    } else {
        TenantPolicy::default()
    };
    let mut changes = serde_json::Map::new();
    if !patch.name.is_keep() {
        let name = patch.name.apply(key.name.take());
        validate_name(&name)?;
        changes.insert("name".into(), json!(name));
        key.name = name;
    }
    if let Some(scopes) = patch.scopes {
        let scopes = validated_scopes(caller, &scopes)?;
        // Scopes sent back as they are (a client that PUTs the whole object) change nothing.
        if scopes != key.scopes {
            policy.check_scopes(&scopes).map_err(violation("scopes"))?;
        }
        key.scopes = scopes;
        changes.insert("scopes".into(), json!(key.scopes));
    }
    if let Some(nets) = patch.allowed_ips {
        key.allowed_ips = allowlist_of(&nets)?;
        changes.insert("allowed_ips".into(), json!(key.allowed_ips));
    }
    if let Some(metadata) = patch.metadata {
        validate_metadata("metadata", &metadata)?;
        key.metadata = metadata;
        changes.insert("metadata".into(), json!("changed"));
    }
    if !patch.expires_at.is_keep() {
        let expiry = match patch.expires_at {
            Patch::Set(at) => KeyExpiry::At(at),
            Patch::Clear | Patch::Keep => KeyExpiry::Never,
        };
        key.expires_at = resolve_expiry(expiry, now)?;
        policy
            .check_expiry(key.expires_at, now)
            .map_err(violation("expiry"))?;
        changes.insert("expires_at".into(), json!(key.expires_at.map(rfc3339)));
    }
    // A limit the change leaves alone stays as stored (even one an older, more lenient grammar
    // took); a changed one is checked whole, as a new one is.
    let old_scope = key.rate_limit.as_ref().map(|r| r.scope());
    if !patch.rate_limit_max.is_keep() || !patch.rate_limit_window.is_keep() {
        let (old_max, old_window) = match key.rate_limit.take() {
            Some(r) => (Some(r.max()), Some(r.window().to_owned())),
            None => (None, None),
        };
        if !patch.rate_limit_max.is_keep() {
            changes.insert(
                "rate_limit_max".into(),
                json!(patch.rate_limit_max.apply(None)),
            );
        }
        if !patch.rate_limit_window.is_keep() {
            changes.insert(
                "rate_limit_window".into(),
                json!(patch.rate_limit_window.as_ref().apply(None)),
            );
        }
        let max = patch.rate_limit_max.apply(old_max);
        let window = patch.rate_limit_window.apply(old_window);
        key.rate_limit = rate_limit_of(max, window.as_deref())?;
    }
    if let Some(scope) = patch.rate_limit_scope {
        changes.insert("rate_limit_scope".into(), json!(scope.as_str()));
    }
    let scope = patch.rate_limit_scope.or(old_scope).unwrap_or_default();
    key.rate_limit = scoped(key.rate_limit, scope, patch.rate_limit_scope.is_some())?;
    if !patch.remaining.is_keep() || !patch.refill.is_keep() {
        let current = key.credits.map(|c| c.current(now));
        let refill = patch.refill.apply(current.and_then(|c| c.refill));
        key.credits = match patch.remaining {
            Patch::Clear => None,
            Patch::Set(n) => credits_of(Some(n), refill, now)?,
            Patch::Keep => match current {
                Some(c) => {
                    if let Some(r) = &refill {
                        validate_refill(r)?;
                    }
                    Some(Credits { refill, ..c })
                }
                None => credits_of(None, refill, now)?,
            },
        };
        changes.insert("remaining".into(), json!(key.credits.map(|c| c.remaining)));
        changes.insert(
            "refill".into(),
            json!(key
                .credits
                .and_then(|c| c.refill)
                .map(|r| r.interval.as_str())),
        );
    }
    // Only a change of the key's other fields is a `key.updated`; pausing and resuming have
    // events of their own.
    let updated = !changes.is_empty();
    let paused = match patch.enabled {
        Some(enabled) if enabled != key.enabled => {
            key.enabled = enabled;
            changes.insert("enabled".into(), json!(enabled));
            Some(if enabled {
                EventType::KeyEnabled
            } else {
                EventType::KeyDisabled
            })
        }
        _ => None,
    };
    key.updated_at = now;
    let actor = caller.actor();
    let mut audit = actor
        .entry(now, AuditAction::ApiKeyUpdate, key.id)
        .tenant(key.tenant_id)
        .subject(key.owner_id)
        .changes(Value::Object(changes.clone()));
    if updated {
        audit = audit.event(Event::about_key(
            EventType::KeyUpdated,
            &key,
            &actor,
            now,
            json!({"changes": changes}),
        ));
    }
    if let Some(kind) = paused {
        audit = audit.event(Event::about_key(kind, &key, &actor, now, Value::Null));
    }
    let stored = state.store.update_key(&key, now, &audit).await;
    // Before the answer: verify on this node sees the change at once. Also after a failure,
    // whose outcome storage may not have told.
    state.cache.invalidate(&key.digest);
    stored.map_err(not_found_as("api key"))?;
    Ok(key)
}

pub async fn revoke(state: &Keyward, caller: &Caller, reach: Reach, id: Uuid) -> Result<ApiKey> {
    caller.principal.require(KeywardRight::Write)?;
    let key = visible(state, caller, reach, id).await?;
    revoke_now(state, caller, key).await
}

/// Revokes the caller's own key with this digest (the Estuary surface names keys by their
/// plaintext or its hash; `None` when the name was neither); 404 when there is no such key of
/// the caller's, or it is already revoked.
pub async fn revoke_own_by_digest(
    state: &Keyward,
    caller: &Caller,
    digest: Option<&KeyDigest>,
) -> Result<ApiKey> {
    caller.principal.require(KeywardRight::Write)?;
    let Some(digest) = digest else {
        return Err(Error::NotFound("api key"));
    };
    let key = match state.store.get_key_by_digest(digest).await? {
        Some(key) if Reach::Own.covers(caller, &key) => key,
        _ => return Err(Error::NotFound("api key")),
    };
    revoke_now(state, caller, key).await
}

async fn revoke_now(state: &Keyward, caller: &Caller, key: ApiKey) -> Result<ApiKey> {
    revoke_as(state, &caller.actor(), key, Value::Null).await
}

/// Revokes `key` now as `actor`; `extra` (an object, or null) adds to the `key.revoked` event.
pub(crate) async fn revoke_as(
    state: &Keyward,
    actor: &keyward_domain::Actor,
    key: ApiKey,
    extra: Value,
) -> Result<ApiKey> {
    let now = keyward_domain::clock::truncate_millis(state.now());
    end_as(state, actor, key, now, now, extra).await
}

/// Ends `key` at `at` (now, earlier, or later: a scheduled end) as `actor` at `now`, unless it
/// already ends earlier; `NotFound` when it is revoked already (see [`Store::revoke_key`]).
/// `extra` (an object, or null) adds to the `key.revoked` event.
///
/// [`Store::revoke_key`]: keyward_store::Store::revoke_key
pub(crate) async fn end_as(
    state: &Keyward,
    actor: &keyward_domain::Actor,
    key: ApiKey,
    at: OffsetDateTime,
    now: OffsetDateTime,
    extra: Value,
) -> Result<ApiKey> {
    let ended = ApiKey {
        revoked_at: Some(key.revoked_at.map_or(at, |end| end.min(at))),
        ..key.clone()
    };
    let audit = actor
        .entry(now, AuditAction::ApiKeyRevoke, key.id)
        .tenant(key.tenant_id)
        .subject(key.owner_id)
        .event(Event::about_key(
            EventType::KeyRevoked,
            &ended,
            actor,
            now,
            extra,
        ));
    let revoked = state.store.revoke_key(key.id, at, now, &audit).await;
    state.cache.invalidate(&key.digest);
    revoked.map_err(not_found_as("api key"))
}

/// A new key with the old one's tenant, owner, scopes, metadata, limits and lifetime; the old
/// one is revoked now or when `grace` ends.
///
/// A key still in the grace period of an earlier rotation may be rotated again (say, the first
/// successor's plaintext was lost): another successor is made, and the old key ends at the
/// earlier of its current end and `now + grace`. No rotation ever moves an end later, so a grace
/// period cannot be renewed past [`MAX_GRACE`] (the store holds this invariant for every write).
pub async fn rotate(
    state: &Keyward,
    caller: &Caller,
    id: Uuid,
    name: Option<String>,
    grace: Option<Duration>,
) -> Result<IssuedKey> {
    caller.principal.require(KeywardRight::Write)?;
    validate_name(&name)?;
    let grace = grace.unwrap_or(Duration::ZERO);
    if grace < Duration::ZERO || grace > MAX_GRACE {
        return Err(Error::invalid_field("grace_period", "at most 7d"));
    }
    let old = visible(state, caller, Reach::Role, id).await?;
    let now = keyward_domain::clock::truncate_millis(state.now());
    if old.status(now) == KeyStatus::Revoked {
        return Err(Error::NotFound("api key"));
    }
    caller.principal.may_grant(&old.scopes)?;
    let tenant = match old.tenant_id {
        Some(t) => state.store.get_tenant(t).await?,
        None => None,
    };
    let prefix = tenant.as_ref().map(|t| t.prefix()).unwrap_or_else(|| {
        KeyPrefix::parse(&old.prefix).unwrap_or_else(|_| KeyPrefix::default_prefix())
    });
    let policy = tenant.map(|t| t.policy).unwrap_or_default();
    // A rotation is never refused by the tenant's policy (the old key may have leaked: it must
    // be replaceable at once). The successor keeps the old key's scopes, and its lifetime is the
    // old one's cut to the policy's longest.
    let plaintext = PlainKey::generate(&prefix)
        .map_err(|e| Error::Internal(format!("OS random source: {e}")))?;
    let old_end = old
        .revoked_at
        .map_or(now + grace, |end| end.min(now + grace));
    let lifetime = match (
        old.expires_at.map(|exp| exp - old.created_at),
        policy.max_key_lifetime,
    ) {
        (Some(l), Some(max)) => Some(l.min(Duration::seconds(max))),
        (None, Some(max)) => Some(Duration::seconds(max)),
        (lifetime, None) => lifetime,
    };
    let key = ApiKey {
        id: Uuid::now_v7(),
        name: name.or_else(|| old.name.clone()),
        prefix: prefix.as_str().to_owned(),
        start: plaintext.start(),
        digest: plaintext.digest(),
        expires_at: lifetime.map(|l| now + l),
        created_at: now,
        updated_at: now,
        revoked_at: None,
        last_used_at: None,
        ..old.clone()
    };
    let actor = caller.actor();
    let ending = ApiKey {
        revoked_at: Some(old_end),
        ..old.clone()
    };
    let audit = actor
        .entry(now, AuditAction::ApiKeyRotate, old.id)
        .tenant(old.tenant_id)
        .subject(old.owner_id)
        .changes(json!({"new_key_id": key.id, "old_key_revoked_at": rfc3339(old_end)}))
        .event(Event::about_key(
            EventType::KeyRotated,
            &ending,
            &actor,
            now,
            json!({"new_key": key_json(&key), "grace_ends_at": rfc3339(old_end)}),
        ));
    let stored = state
        .store
        .rotate_key(old.id, old_end, &key, now, &audit)
        .await;
    state.cache.invalidate(&old.digest);
    state.cache.invalidate(&key.digest);
    stored.map_err(not_found_as("api key"))?;
    Ok(IssuedKey { key, plaintext })
}

fn not_found_as(what: &'static str) -> impl Fn(StoreError) -> Error {
    move |e| match e {
        StoreError::NotFound => Error::NotFound(what),
        other => other.into(),
    }
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A grace period is taken exactly when it matches the documented pattern.
        #[test]
        fn grace_periods_agree_with_their_pattern(
            text in "[0-9]{1,7}[smhdw]",
            drawn in GRACE_PATTERN.trim_start_matches('^').trim_end_matches('$'),
        ) {
            let pattern = regex::Regex::new(GRACE_PATTERN).unwrap();
            for text in [text, drawn] {
                let taken = keyward_domain::duration::parse_short(&text)
                    .is_ok_and(|g| g <= MAX_GRACE);
                prop_assert_eq!(pattern.is_match(&text), taken, "{:?}", text);
            }
        }
    }
}
