//! Rows to domain records, once for every backend: each backend says how to read one column of
//! its row type ([`StoredRow`]), and the decoding of tenants, users, keys, credits and audit
//! entries lives here. The column layout is the one all backends' migrations share; times are
//! milliseconds since the epoch, scopes/metadata/changes JSON text.

use keyward_domain::clock::from_millis;
use keyward_domain::credits::{Credits, Refill, RefillInterval};
use keyward_domain::ratelimit::RateLimitScope;
use keyward_domain::{
    ActorType, ApiKey, AuditEntry, Delivery, DeliveryStatus, EventFilter, EventType, KeyDigest,
    OwnerLimits, Role, SharedLimits, Tenant, User, VerifyCode, WebhookEndpoint, WebhookSecret,
};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{KeyCounts, StoreError, UsageCount};

/// One stored row, read column by column. `None` is SQL NULL.
pub trait StoredRow {
    fn text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    fn bytes(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn uuid(&self, col: &str) -> Result<Option<Uuid>, StoreError>;
    fn flag(&self, col: &str) -> Result<Option<bool>, StoreError>;
}

pub fn corrupt(what: &str) -> StoreError {
    StoreError::Other(format!("stored {what} is not valid"))
}

fn required<T>(value: Option<T>, col: &str) -> Result<T, StoreError> {
    value.ok_or_else(|| corrupt(col))
}

fn text(row: &impl StoredRow, col: &str) -> Result<String, StoreError> {
    required(row.text(col)?, col)
}

fn uuid(row: &impl StoredRow, col: &str) -> Result<Uuid, StoreError> {
    required(row.uuid(col)?, col)
}

fn time(row: &impl StoredRow, col: &str) -> Result<OffsetDateTime, StoreError> {
    Ok(from_millis(required(row.int(col)?, col)?))
}

fn opt_time(row: &impl StoredRow, col: &str) -> Result<Option<OffsetDateTime>, StoreError> {
    Ok(row.int(col)?.map(from_millis))
}

fn json(row: &impl StoredRow, col: &str) -> Result<Value, StoreError> {
    serde_json::from_str(&text(row, col)?).map_err(|_| corrupt(col))
}

/// A non-negative count column.
pub fn count(row: &impl StoredRow, col: &str) -> Result<u64, StoreError> {
    u64::try_from(required(row.int(col)?, col)?).map_err(|_| corrupt(col))
}

pub fn code(row: &impl StoredRow, col: &str) -> Result<VerifyCode, StoreError> {
    VerifyCode::parse(&text(row, col)?).ok_or_else(|| corrupt(col))
}

/// Scopes as stored: a JSON array of strings.
pub fn scopes_json(scopes: &[impl AsRef<str>]) -> String {
    Value::from(scopes.iter().map(AsRef::as_ref).collect::<Vec<&str>>()).to_string()
}

pub fn tenant(row: &impl StoredRow) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: uuid(row, "id")?,
        name: text(row, "name")?,
        slug: text(row, "slug")?,
        key_prefix: row.text("key_prefix")?,
        metadata: json(row, "metadata")?,
        policy: serde_json::from_str(&text(row, "policy")?).map_err(|_| corrupt("policy"))?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// A tenant's policy as stored: a JSON object.
pub fn policy_json(policy: &keyward_domain::TenantPolicy) -> String {
    serde_json::to_string(policy).unwrap_or_else(|_| "{}".into())
}

pub fn user(row: &impl StoredRow) -> Result<User, StoreError> {
    Ok(User {
        id: uuid(row, "id")?,
        email: text(row, "email")?,
        password_hash: text(row, "password_hash")?,
        role: Role::parse(&text(row, "role")?).ok_or_else(|| corrupt("role"))?,
        tenant_id: row.uuid("tenant_id")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        disabled_at: opt_time(row, "disabled_at")?,
    })
}

/// A row of `api_sessions`.
pub fn api_session(row: &impl StoredRow) -> Result<keyward_domain::ApiSession, StoreError> {
    Ok(keyward_domain::ApiSession {
        id: uuid(row, "id")?,
        user_id: uuid(row, "user_id")?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        source_ip: row.text("source_ip")?,
    })
}

/// The address a deleted user's email becomes, so that the email can be used again: in the
/// `.invalid` top-level domain (RFC 2606), which no mail reaches.
pub fn deleted_email(id: uuid::Uuid) -> String {
    format!("deleted-{id}@keyward.invalid")
}

/// The password hash of a user without a password (deleted, or made by an import): not a PHC
/// string, so no password matches it.
pub const NO_PASSWORD: &str = "!";

pub fn api_key(row: &impl StoredRow) -> Result<ApiKey, StoreError> {
    let digest = required(row.bytes("digest")?, "digest")?;
    let scopes: Vec<String> =
        serde_json::from_str(&text(row, "scopes")?).map_err(|_| corrupt("scopes"))?;
    let scopes = keyward_domain::Scopes::parse(&scopes).map_err(|_| corrupt("scopes"))?;
    Ok(ApiKey {
        id: uuid(row, "id")?,
        tenant_id: row.uuid("tenant_id")?,
        owner_id: uuid(row, "owner_id")?,
        name: row.text("name")?,
        prefix: text(row, "prefix")?,
        start: text(row, "start")?,
        digest: KeyDigest::from_slice(&digest).ok_or_else(|| corrupt("digest"))?,
        scopes,
        metadata: json(row, "metadata")?,
        rate_limit: rate_limit_of(row.int("rate_limit_max")?, row.text("rate_limit_window")?)?
            .map(|r| {
                let scope = row.text("rate_limit_scope")?;
                let scope = scope
                    .as_deref()
                    .map_or(Some(RateLimitScope::Node), RateLimitScope::parse);
                scope
                    .map(|s| r.with_scope(s))
                    .ok_or_else(|| corrupt("rate_limit_scope"))
            })
            .transpose()?,
        expires_at: opt_time(row, "expires_at")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
        last_used_at: opt_time(row, "last_used_at")?,
        credits: credits(row)?,
        enabled: required(row.flag("enabled")?, "enabled")?,
        allowed_ips: match row.text("allowed_ips")? {
            None => keyward_domain::IpAllowlist::anywhere(),
            Some(text) => serde_json::from_str::<Vec<String>>(&text)
                .ok()
                .and_then(|nets| keyward_domain::IpAllowlist::parse(&nets).ok())
                .ok_or_else(|| corrupt("allowed_ips"))?,
        },
        // Only the view of keys in use joins the owner's limits; a bare row has none.
        shared: SharedLimits {
            rate_limit: match row.int("owner_rate_limit_max") {
                Ok(max) => rate_limit_of(max, row.text("owner_rate_limit_window")?)?,
                Err(_) => None,
            },
            credits: row
                .flag("owner_has_credits")
                .ok()
                .flatten()
                .unwrap_or(false),
            owner_disabled: row.flag("owner_disabled").ok().flatten().unwrap_or(false),
        },
    })
}

/// A row of `owner_limits`.
pub fn owner_limits(row: &impl StoredRow) -> Result<OwnerLimits, StoreError> {
    Ok(OwnerLimits {
        user_id: uuid(row, "user_id")?,
        rate_limit: rate_limit_of(row.int("rate_limit_max")?, row.text("rate_limit_window")?)?,
        credits: credits(row)?,
        updated_at: time(row, "updated_at")?,
    })
}

/// Where a key's rate limit holds, as stored: NULL for this node (the default), else its name.
pub fn rate_limit_scope(
    limit: Option<&keyward_domain::ratelimit::KeyRateLimit>,
) -> Option<&'static str> {
    limit
        .map(|l| l.scope())
        .filter(|s| *s != RateLimitScope::Node)
        .map(RateLimitScope::as_str)
}

/// A key's allowlist as stored: a JSON array of networks, or NULL when it has none.
pub fn allowed_ips_json(list: &keyward_domain::IpAllowlist) -> Option<String> {
    (!list.is_anywhere()).then(|| Value::from(list.to_strings()).to_string())
}

/// A key's credits columns; `None` when `remaining` is NULL (an unlimited key).
pub fn credits(row: &impl StoredRow) -> Result<Option<Credits>, StoreError> {
    let Some(remaining) = row.int("remaining")? else {
        return Ok(None);
    };
    let refill = match row.text("refill_interval")? {
        None => None,
        Some(i) => Some(Refill {
            interval: RefillInterval::parse(&i).ok_or_else(|| corrupt("refill_interval"))?,
            amount: required(row.int("refill_amount")?, "refill_amount")?,
            day: u8::try_from(row.int("refill_day")?.unwrap_or(1))
                .map_err(|_| corrupt("refill_day"))?,
        }),
    };
    Ok(Some(Credits {
        remaining,
        refill,
        set_at: time(row, "credits_set_at")?,
    }))
}

pub fn audit_entry(row: &impl StoredRow) -> Result<AuditEntry, StoreError> {
    let changes = row
        .text("changes")?
        .map(|s| serde_json::from_str(&s).map_err(|_| corrupt("changes")))
        .transpose()?;
    Ok(AuditEntry {
        id: uuid(row, "id")?,
        tenant_id: row.uuid("tenant_id")?,
        action: text(row, "action")?,
        resource_type: text(row, "resource_type")?,
        resource_id: text(row, "resource_id")?,
        actor_id: text(row, "actor_id")?,
        actor_type: ActorType::parse(&text(row, "actor_type")?)
            .ok_or_else(|| corrupt("actor_type"))?,
        actor_user_id: row.uuid("actor_user_id")?,
        subject_user_id: row.uuid("subject_user_id")?,
        source_ip: row.text("source_ip")?,
        request_id: row.text("request_id")?,
        changes,
        created_at: time(row, "created_at")?,
        events: Vec::new(),
    })
}

pub fn webhook(row: &impl StoredRow) -> Result<WebhookEndpoint, StoreError> {
    Ok(WebhookEndpoint {
        id: uuid(row, "id")?,
        tenant_id: row.uuid("tenant_id")?,
        url: text(row, "url")?,
        events: EventFilter::from_stored(&text(row, "events")?).ok_or_else(|| corrupt("events"))?,
        enabled: required(row.flag("enabled")?, "enabled")?,
        description: row.text("description")?,
        secret: WebhookSecret::from_stored(text(row, "secret")?),
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub fn delivery(row: &impl StoredRow) -> Result<Delivery, StoreError> {
    let small = |col: &str| -> Result<Option<u64>, StoreError> {
        row.int(col)?
            .map(|v| u64::try_from(v).map_err(|_| corrupt(col)))
            .transpose()
    };
    Ok(Delivery {
        id: uuid(row, "id")?,
        endpoint_id: uuid(row, "endpoint_id")?,
        event_id: uuid(row, "event_id")?,
        event_type: EventType::parse(&text(row, "event_type")?)
            .ok_or_else(|| corrupt("event_type"))?,
        body: text(row, "body")?,
        status: DeliveryStatus::parse(&text(row, "status")?).ok_or_else(|| corrupt("status"))?,
        attempts: u32::try_from(count(row, "attempts")?).map_err(|_| corrupt("attempts"))?,
        next_attempt_at: opt_time(row, "next_attempt_at")?,
        last_attempt_at: opt_time(row, "last_attempt_at")?,
        response_status: small("response_status")?
            .map(|s| u16::try_from(s).map_err(|_| corrupt("response_status")))
            .transpose()?,
        response_body: row.text("response_body")?,
        duration_ms: small("duration_ms")?,
        error: row.text("error")?,
        created_at: time(row, "created_at")?,
    })
}

/// The row of a key-state count: columns `total`, `revoked`, `expired`, `dormant`.
pub fn key_counts(row: &impl StoredRow) -> Result<KeyCounts, StoreError> {
    let total = count(row, "total")?;
    let revoked = count(row, "revoked")?;
    let expired = count(row, "expired")?;
    Ok(KeyCounts {
        total,
        active: total.saturating_sub(revoked + expired),
        expired,
        revoked,
        dormant: count(row, "dormant")?,
    })
}

/// One stored usage counter: columns `key_id`, `day`, `code`, `count`.
pub fn usage_count(row: &impl StoredRow) -> Result<UsageCount, StoreError> {
    Ok(UsageCount {
        key_id: uuid(row, "key_id")?,
        day: required(row.int("day")?, "day")?,
        code: code(row, "code")?,
        count: count(row, "count")?,
    })
}

/// A key's rate limit from its two columns: both or neither (as keyward writes them).
fn rate_limit_of(
    max: Option<i64>,
    window: Option<String>,
) -> Result<Option<keyward_domain::ratelimit::KeyRateLimit>, StoreError> {
    match (max, window) {
        (None, None) => Ok(None),
        (Some(max), Some(window)) => keyward_domain::ratelimit::KeyRateLimit::stored(max, &window)
            .map(Some)
            .map_err(|_| corrupt("rate_limit")),
        _ => Err(corrupt("rate_limit")),
    }
}

pub fn session(row: &impl StoredRow) -> Result<keyward_domain::ConsoleSession, StoreError> {
    let digest = required(row.bytes("digest")?, "digest")?;
    Ok(keyward_domain::ConsoleSession {
        digest: digest.try_into().map_err(|_| corrupt("digest"))?,
        user_id: uuid(row, "user_id")?,
        csrf: text(row, "csrf")?,
        created_at: time(row, "created_at")?,
        last_seen_at: time(row, "last_seen_at")?,
        expires_at: time(row, "expires_at")?,
    })
}

/// What identifies a shape's secret in `key_shapes.secret_digest`: SHA-256 in hex, or `""`.
pub fn shape_secret_digest(shape: &keyward_domain::import::KeyShape) -> String {
    match &shape.hash {
        keyward_domain::import::ShapeHash::Sha256 => String::new(),
        keyward_domain::import::ShapeHash::HmacSha256(secret) => {
            KeyDigest::of_bytes(secret).to_hex()
        }
    }
}

/// A row of `key_shapes`.
pub fn key_shape(row: &impl StoredRow) -> Result<keyward_domain::import::KeyShape, StoreError> {
    use keyward_domain::import::{ImportFormat, KeyShape, ShapeHash};
    Ok(KeyShape {
        format: ImportFormat::parse(&text(row, "format")?).ok_or_else(|| corrupt("format"))?,
        prefix: text(row, "prefix")?,
        hash: match row.bytes("hmac_secret")? {
            None => ShapeHash::Sha256,
            Some(secret) => ShapeHash::HmacSha256(secret),
        },
        created_at: time(row, "created_at")?,
    })
}
