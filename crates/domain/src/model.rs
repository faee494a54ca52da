//! The records keyward keeps: tenants, users, keys and audit entries, in domain terms.
//! Wire shapes live in the server's surfaces; storage rows live in the stores.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::key::{KeyDigest, KeyPrefix};

#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    /// Prefix for keys made in this tenant from now on; `None` means the default `kw`.
    pub key_prefix: Option<String>,
    pub metadata: Value,
    /// Rules for the tenant's keys beyond each key's own.
    pub policy: TenantPolicy,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A tenant's rules for its keys, stored as one JSON object (fields missing from an older one
/// take their defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantPolicy {
    /// A key reported leaked by a verified report is revoked at once (default). When false, the
    /// report is audited and announced (`key.leaked`) and the key keeps working.
    pub revoke_leaked_keys: bool,
    /// How long before a key's expiry a `key.expiring` event is sent, in seconds, longest first;
    /// one event per key and threshold. Default 7 days and 1 day; empty sends none.
    pub expiry_reminders: Vec<i64>,
    /// The longest lifetime, in seconds, of a key made, rotated or given a new expiry in the
    /// tenant; `None`: no limit. Keys that existed before it was set keep their expiry.
    pub max_key_lifetime: Option<i64>,
    /// Every key made or changed must have an expiry.
    pub require_expiry: bool,
    /// The application scopes (outside `keyward:`) keys of the tenant may carry; `None`: any.
    pub allowed_scopes: Option<Vec<String>>,
    /// The rate limit a new key gets when its request names none.
    pub default_rate_limit: Option<DefaultRateLimit>,
    /// Where the rate limits of new keys hold when their request does not say.
    pub rate_limit_scope: crate::ratelimit::RateLimitScope,
}

/// A tenant's rate limit for new keys that name none: `max` requests per `window` (as a key's
/// `rate_limit_max` and `rate_limit_window`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRateLimit {
    pub max: i64,
    pub window: String,
}

/// A key that a tenant's policy does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    #[error("this tenant requires every key to have an expiry")]
    ExpiryRequired,
    #[error("keys of this tenant live at most {}: give an expiry within it", crate::duration::short_text(*.0))]
    LifetimeTooLong(i64),
    #[error("scope {0:?} is not among the scopes this tenant allows ({1})")]
    ScopeNotAllowed(String, String),
}

impl TenantPolicy {
    /// Whether a key made (or whose expiry is set) at `now` may have `expires_at`.
    pub fn check_expiry(
        &self,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(), PolicyViolation> {
        match (expires_at, self.max_key_lifetime) {
            (None, Some(max)) => Err(PolicyViolation::LifetimeTooLong(max)),
            (None, None) if self.require_expiry => Err(PolicyViolation::ExpiryRequired),
            (Some(at), Some(max)) if at > now + time::Duration::seconds(max) => {
                Err(PolicyViolation::LifetimeTooLong(max))
            }
            _ => Ok(()),
        }
    }

    /// Whether a key of the tenant may carry `scopes` (keyward's own are not the policy's).
    pub fn check_scopes(&self, scopes: &crate::scope::Scopes) -> Result<(), PolicyViolation> {
        let Some(allowed) = &self.allowed_scopes else {
            return Ok(());
        };
        match scopes.iter().find(|s| {
            !s.starts_with(crate::scope::KEYWARD_NAMESPACE)
                && !allowed.iter().any(|a| a.as_str() == s.as_str())
        }) {
            Some(s) => Err(PolicyViolation::ScopeNotAllowed(
                s.to_string(),
                if allowed.is_empty() {
                    "none".into()
                } else {
                    allowed.join(", ")
                },
            )),
            None => Ok(()),
        }
    }
}

/// The most expiry reminder thresholds a tenant may have.
pub const MAX_EXPIRY_REMINDERS: usize = 5;

impl Default for TenantPolicy {
    fn default() -> Self {
        Self {
            revoke_leaked_keys: true,
            expiry_reminders: vec![7 * 86_400, 86_400],
            max_key_lifetime: None,
            require_expiry: false,
            allowed_scopes: None,
            default_rate_limit: None,
            rate_limit_scope: crate::ratelimit::RateLimitScope::Node,
        }
    }
}

impl Tenant {
    pub fn prefix(&self) -> KeyPrefix {
        self.key_prefix
            .as_deref()
            .and_then(|p| KeyPrefix::parse(p).ok())
            .unwrap_or_else(KeyPrefix::default_prefix)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a slug is 1 to 63 characters of a-z, 0-9 and -")]
pub struct InvalidSlug;

pub fn validate_slug(slug: &str) -> Result<(), InvalidSlug> {
    let ok = (1..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(InvalidSlug)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Acts on the whole installation.
    Admin,
    /// Acts on its own tenant.
    TenantAdmin,
    /// Acts on its own keys.
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::TenantAdmin => "tenant_admin",
            Self::Member => "member",
        }
    }

    /// How much the role may do: admin 2, tenant admin 1, member 0. Nobody grants a role
    /// above its own.
    pub fn rank(self) -> u8 {
        match self {
            Self::Admin => 2,
            Self::TenantAdmin => 1,
            Self::Member => 0,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "tenant_admin" => Some(Self::TenantAdmin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    /// PHC string of the argon2id hash; never leaves the server.
    pub password_hash: String,
    pub role: Role,
    pub tenant_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Since when the user may not sign in and its keys do not verify; `None`: active.
    pub disabled_at: Option<OffsetDateTime>,
}

impl User {
    /// Whether the user is disabled (it cannot sign in; its keys answer `OWNER_DISABLED`).
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("tenant_id", &self.tenant_id)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

/// The most characters an email has (RFC 5321's path limit, less its brackets).
pub const MAX_EMAIL_CHARS: usize = 254;

/// What [`normalize_email`] accepts, for the OpenAPI document (with `maxLength` 254): one `@`
/// between two non-empty parts with no white space or control characters.
pub fn email_pattern() -> String {
    let part = crate::text::VISIBLE_CLASS.replacen("[^", "[^@", 1);
    format!("^{part}+@{part}+$")
}

/// Emails are compared case-insensitively in their ASCII letters: keyward stores those
/// lower-cased and keeps every other character as sent. (Unicode lower-casing would need a
/// migration of the addresses already stored, and is not case-folding either.)
/// Anything else about them is taken as sent, or refused (`None`).
pub fn normalize_email(email: &str) -> Option<String> {
    let (local, domain) = email.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && email.chars().count() <= MAX_EMAIL_CHARS
        && !email
            .chars()
            .any(|c| crate::text::is_space(c) || c.is_control());
    ok.then(|| email.to_ascii_lowercase())
}

pub const MIN_PASSWORD_LEN: usize = 12;
pub const MAX_PASSWORD_LEN: usize = 1024;

/// What an audit entry records. The wire strings (`<resource>.<verb>`) are stored and shown;
/// NEVER CHANGE one: the audit log of every installation holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    ApiKeyCreate,
    /// Many keys at once (the benchmark's seeding, imports): one entry for the batch.
    ApiKeyImport,
    ApiKeyUpdate,
    ApiKeyRevoke,
    ApiKeyRotate,
    /// A verified report said the key's plaintext was published.
    ApiKeyLeak,
    AuthLogin,
    AuthLoginFailed,
    /// A session (the console's or the API's) ended by its user signing out.
    AuthLogout,
    TenantCreate,
    TenantUpdate,
    TenantDelete,
    UserCreate,
    /// A user's role or `disabled` changed.
    UserUpdate,
    /// A user deleted, with its keys revoked.
    UserDelete,
    /// A user's password changed (by itself or by whoever manages it).
    UserSetPassword,
    /// Limits shared by a user's keys set, changed or removed.
    UserSetLimits,
    /// A sign-in session ended by its user (not by sign-out).
    SessionEnd,
    WebhookCreate,
    WebhookUpdate,
    WebhookDelete,
    /// A delivery sent again by hand.
    WebhookRetry,
    /// A `webhook.test` event sent on request.
    WebhookTest,
}

impl AuditAction {
    pub const ALL: [AuditAction; 23] = [
        Self::ApiKeyCreate,
        Self::ApiKeyImport,
        Self::ApiKeyUpdate,
        Self::ApiKeyRevoke,
        Self::ApiKeyRotate,
        Self::ApiKeyLeak,
        Self::AuthLogin,
        Self::AuthLoginFailed,
        Self::AuthLogout,
        Self::TenantCreate,
        Self::TenantUpdate,
        Self::TenantDelete,
        Self::UserCreate,
        Self::UserUpdate,
        Self::UserDelete,
        Self::UserSetPassword,
        Self::UserSetLimits,
        Self::SessionEnd,
        Self::WebhookCreate,
        Self::WebhookUpdate,
        Self::WebhookDelete,
        Self::WebhookRetry,
        Self::WebhookTest,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKeyCreate => "api_key.create",
            Self::ApiKeyImport => "api_key.import",
            Self::ApiKeyUpdate => "api_key.update",
            Self::ApiKeyRevoke => "api_key.revoke",
            Self::ApiKeyRotate => "api_key.rotate",
            Self::ApiKeyLeak => "api_key.leak",
            Self::AuthLogin => "auth.login",
            Self::AuthLoginFailed => "auth.login_failed",
            Self::AuthLogout => "auth.logout",
            Self::TenantCreate => "tenant.create",
            Self::TenantUpdate => "tenant.update",
            Self::TenantDelete => "tenant.delete",
            Self::UserCreate => "user.create",
            Self::UserUpdate => "user.update",
            Self::UserDelete => "user.delete",
            Self::UserSetPassword => "user.set_password",
            Self::UserSetLimits => "user.set_limits",
            Self::SessionEnd => "session.end",
            Self::WebhookCreate => "webhook.create",
            Self::WebhookUpdate => "webhook.update",
            Self::WebhookDelete => "webhook.delete",
            Self::WebhookRetry => "webhook.retry",
            Self::WebhookTest => "webhook.test",
        }
    }

    /// The type of resource the entry's `resource_id` names.
    pub fn resource_type(self) -> &'static str {
        match self {
            Self::ApiKeyCreate
            | Self::ApiKeyImport
            | Self::ApiKeyUpdate
            | Self::ApiKeyRevoke
            | Self::ApiKeyRotate
            | Self::ApiKeyLeak => "api_key",
            Self::AuthLogin
            | Self::AuthLoginFailed
            | Self::AuthLogout
            | Self::UserCreate
            | Self::UserUpdate
            | Self::UserDelete
            | Self::UserSetPassword
            | Self::UserSetLimits
            | Self::SessionEnd => "user",
            Self::TenantCreate | Self::TenantUpdate | Self::TenantDelete => "tenant",
            Self::WebhookCreate
            | Self::WebhookUpdate
            | Self::WebhookDelete
            | Self::WebhookRetry
            | Self::WebhookTest => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A stored API key. Holds its digest, never its plaintext.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub owner_id: Uuid,
    pub name: Option<String>,
    pub prefix: String,
    /// Prefix plus the first characters of the secret, for display.
    pub start: String,
    pub digest: KeyDigest,
    pub scopes: crate::scope::Scopes,
    pub metadata: Value,
    /// At most this many verifications per window, when limited.
    pub rate_limit: Option<crate::ratelimit::KeyRateLimit>,
    pub expires_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// When the key stops verifying. In the future while a rotation's grace period runs.
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    /// Uses left (and their refill), when the key is limited by credits.
    pub credits: Option<crate::credits::Credits>,
    /// False while the key is paused: verify answers `DISABLED` until it is enabled again.
    pub enabled: bool,
    /// The networks callers must verify it from; empty: anywhere.
    pub allowed_ips: crate::network::IpAllowlist,
    /// Its owner's limits, shared by all the owner's keys, as storage read them with the key.
    /// Never written with the key: [`OwnerLimits`] are set on the owner.
    pub shared: SharedLimits,
}

/// What verify needs of a key's owner, read with the key: its [`OwnerLimits`] and whether it
/// is disabled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SharedLimits {
    pub rate_limit: Option<crate::ratelimit::KeyRateLimit>,
    /// The owner has shared credits: a verification spends them in storage too.
    pub credits: bool,
    /// The owner is disabled: the key answers `OWNER_DISABLED` until the owner is enabled.
    pub owner_disabled: bool,
}

/// Limits set on a user that hold for all its keys together, besides each key's own: a rate
/// limit and credits, with the same fields and rules as a key's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerLimits {
    pub user_id: Uuid,
    pub rate_limit: Option<crate::ratelimit::KeyRateLimit>,
    pub credits: Option<crate::credits::Credits>,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "expired" => Some(Self::Expired),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

impl ApiKey {
    /// A key just issued from `plain`: unnamed, no metadata, no limits, no expiry, no credits.
    /// Callers set what their request asks for on top (`ApiKey { name, ..ApiKey::issued(..) }`).
    pub fn issued(
        id: Uuid,
        plain: &crate::PlainKey,
        prefix: &crate::KeyPrefix,
        owner_id: Uuid,
        tenant_id: Option<Uuid>,
        scopes: crate::scope::Scopes,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            tenant_id,
            owner_id,
            name: None,
            prefix: prefix.as_str().to_owned(),
            start: plain.start(),
            digest: plain.digest(),
            scopes,
            metadata: Value::Object(serde_json::Map::new()),
            rate_limit: None,
            expires_at: None,
            created_at: now,
            updated_at: now,
            revoked_at: None,
            last_used_at: None,
            credits: None,
            enabled: true,
            allowed_ips: crate::network::IpAllowlist::anywhere(),
            shared: SharedLimits::default(),
        }
    }

    /// Revocation wins over expiry: a revoked key reports `Revoked` even once past its expiry.
    pub fn status(&self, now: OffsetDateTime) -> KeyStatus {
        if self.revoked_at.is_some_and(|at| at <= now) {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }

    /// Dormant: not revoked, and last used (or, never used, created) more than `days` ago.
    pub fn is_dormant(&self, now: OffsetDateTime, days: i64) -> bool {
        let last = self.last_used_at.unwrap_or(self.created_at);
        self.status(now) != KeyStatus::Revoked && last < now - time::Duration::days(days)
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }
}

/// A signed-in session of the web console, kept on the server: the browser holds only a random
/// token whose SHA-256 digest is the session's key here, so a read of the database gives no
/// usable session. Ends at `expires_at` (absolute), or when idle for longer than the console's
/// idle timeout since `last_seen_at`, or at sign-out (everywhere: it is deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// SHA-256 of the token the browser holds.
    pub digest: [u8; 32],
    pub user_id: Uuid,
    /// The token every state-changing form of this session carries (CSRF, synchronizer pattern).
    pub csrf: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl ConsoleSession {
    /// The session's public id, as the session list shows it: a version 8 UUID (RFC 9562,
    /// section 5.8) made of the first 16 bytes of its digest (122 of their bits). Like the
    /// digest, it cannot be turned back into the token.
    pub fn id(&self) -> Uuid {
        Self::id_of_digest(&self.digest)
    }

    /// [`ConsoleSession::id`] of the session whose token has this digest.
    pub fn id_of_digest(digest: &[u8; 32]) -> Uuid {
        let mut half = [0u8; 16];
        half.copy_from_slice(&digest[..16]);
        Uuid::new_v8(half)
    }
}

/// A signed-in session of the API: the JWT that [`crate`]'s users present carries the session's
/// `id` as its `jti` (RFC 7519 section 4.1.7), and the token is refused once the session is gone
/// (signed out, ended from the session list, the password changed, the user disabled or
/// deleted), on every node. The token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSession {
    /// The JWT's `jti`.
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The address that signed in, as the server saw it.
    pub source_ip: Option<String>,
}

/// Largest `metadata` object a key or tenant may carry, serialized.
pub const MAX_METADATA_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    ApiKey,
    Jwt,
    /// The command line, acting on the database directly.
    System,
    /// A request that proved no identity, such as a failed login.
    Anonymous,
    /// A secret scanner whose signed report was verified (GitHub's secret scanning).
    Scanner,
}

impl ActorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Jwt => "jwt",
            Self::System => "system",
            Self::Anonymous => "anonymous",
            Self::Scanner => "scanner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "api_key" => Some(Self::ApiKey),
            "jwt" => Some(Self::Jwt),
            "system" => Some(Self::System),
            "anonymous" => Some(Self::Anonymous),
            "scanner" => Some(Self::Scanner),
            _ => None,
        }
    }
}

/// One audit log entry (the reference's `AuditLogEntry`). Never carries a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    /// `<resource>.<verb>`: an [`AuditAction`]'s name, e.g. `api_key.create`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    /// The user id (session) or key id (API key) that acted.
    pub actor_id: String,
    pub actor_type: ActorType,
    /// The user behind the actor, when there is one.
    pub actor_user_id: Option<Uuid>,
    /// The user the entry is about (a key's owner, a created user), when there is one.
    pub subject_user_id: Option<Uuid>,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    pub changes: Option<Value>,
    pub created_at: OffsetDateTime,
    /// Webhook events the change causes: written to the outbox in the same transaction as this
    /// entry (so a change that rolls back sends nothing). Not kept with the entry: empty when
    /// read back.
    pub events: Vec<crate::event::Event>,
}

impl AuditEntry {
    /// Adds an event the change causes (see [`AuditEntry::events`]).
    pub fn event(mut self, event: crate::event::Event) -> Self {
        self.events.push(event);
        self
    }

    /// Who made the entry, as [`Actor::entry`] was given it.
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.actor_id.clone(),
            kind: self.actor_type,
            user_id: self.actor_user_id,
            source_ip: self.source_ip.clone(),
            request_id: self.request_id.clone(),
        }
    }

    pub fn tenant(mut self, tenant_id: Option<Uuid>) -> Self {
        self.tenant_id = tenant_id;
        self
    }

    pub fn subject(mut self, user_id: Uuid) -> Self {
        self.subject_user_id = Some(user_id);
        self
    }

    pub fn changes(mut self, changes: Value) -> Self {
        self.changes = Some(changes);
        self
    }
}

/// Who did something and from where; turned into an [`AuditEntry`] with [`Actor::entry`].
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    pub id: String,
    pub kind: ActorType,
    pub user_id: Option<Uuid>,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Self {
            id: "cli".into(),
            kind: ActorType::System,
            user_id: None,
            source_ip: None,
            request_id: None,
        }
    }

    /// A secret scanner (`id` names it, e.g. `github`) whose report's signature was verified.
    pub fn scanner(id: &str, source_ip: Option<String>, request_id: Option<String>) -> Self {
        Self {
            id: id.into(),
            kind: ActorType::Scanner,
            user_id: None,
            source_ip,
            request_id,
        }
    }

    pub fn anonymous(source_ip: Option<String>, request_id: Option<String>) -> Self {
        Self {
            id: "anonymous".into(),
            kind: ActorType::Anonymous,
            user_id: None,
            source_ip,
            request_id,
        }
    }

    /// An entry for `action` on a resource; refine it with `.tenant()`, `.subject()`, `.changes()`.
    /// An audit entry of this actor doing `action` to the resource with `resource_id` (of the
    /// action's resource type) at `now`.
    pub fn entry(
        &self,
        now: OffsetDateTime,
        action: AuditAction,
        resource_id: impl ToString,
    ) -> AuditEntry {
        AuditEntry {
            id: Uuid::now_v7(),
            tenant_id: None,
            action: action.as_str().to_owned(),
            resource_type: action.resource_type().to_owned(),
            resource_id: resource_id.to_string(),
            actor_id: self.id.clone(),
            actor_type: self.kind,
            actor_user_id: self.user_id,
            subject_user_id: None,
            source_ip: self.source_ip.clone(),
            request_id: self.request_id.clone(),
            changes: None,
            created_at: now,
            events: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn key(created: OffsetDateTime) -> ApiKey {
        ApiKey {
            id: Uuid::nil(),
            tenant_id: None,
            owner_id: Uuid::nil(),
            name: None,
            prefix: "kw".into(),
            start: "kw_abcd".into(),
            digest: KeyDigest([0; 32]),
            scopes: crate::Scopes::none(),
            metadata: Value::Null,
            rate_limit: None,
            expires_at: None,
            created_at: created,
            updated_at: created,
            revoked_at: None,
            last_used_at: None,
            credits: None,
            enabled: true,
            allowed_ips: crate::network::IpAllowlist::anywhere(),
            shared: SharedLimits::default(),
        }
    }

    #[test]
    fn status_prefers_revocation_and_respects_grace() {
        let now = datetime!(2026-06-01 00:00 UTC);
        let mut k = key(now - time::Duration::days(1));
        assert_eq!(k.status(now), KeyStatus::Active);
        k.expires_at = Some(now);
        assert_eq!(k.status(now), KeyStatus::Expired);
        k.revoked_at = Some(now + time::Duration::minutes(10));
        assert_eq!(
            k.status(now),
            KeyStatus::Expired,
            "grace not over, expiry applies"
        );
        k.expires_at = None;
        assert_eq!(
            k.status(now),
            KeyStatus::Active,
            "grace period still verifies"
        );
        k.revoked_at = Some(now);
        assert_eq!(k.status(now), KeyStatus::Revoked);
    }

    #[test]
    fn a_new_unused_key_is_not_dormant() {
        let now = datetime!(2026-06-01 00:00 UTC);
        assert!(!key(now - time::Duration::minutes(1)).is_dormant(now, 1));
        assert!(key(now - time::Duration::days(2)).is_dormant(now, 1));
        let mut used = key(now - time::Duration::days(200));
        used.last_used_at = Some(now - time::Duration::days(10));
        assert!(!used.is_dormant(now, 90));
        assert!(used.is_dormant(now, 5));
        used.revoked_at = Some(now - time::Duration::days(1));
        assert!(!used.is_dormant(now, 5), "revoked keys are not dormant");
    }

    #[test]
    fn slugs_and_emails() {
        assert!(validate_slug("acme-1").is_ok());
        assert!(validate_slug("Acme").is_err());
        assert!(validate_slug("").is_err());
        assert!(validate_slug(&"a".repeat(64)).is_err());
        assert_eq!(
            normalize_email("Ann@Example.COM").as_deref(),
            Some("ann@example.com")
        );
        assert!(normalize_email(" ann@example.com").is_none(), "not trimmed");
        let pattern = regex::Regex::new(&email_pattern()).unwrap();
        for email in [
            "a@b",
            "Ann@Example.COM",
            "a b@c",
            "a@b@c",
            "@b",
            "a@",
            "a\u{feff}@b",
            "a\u{0}@b",
        ] {
            assert_eq!(
                pattern.is_match(email),
                normalize_email(email).is_some(),
                "{email:?}"
            );
        }
        assert!(normalize_email("nope").is_none());
        assert!(normalize_email("a@b@c").is_none());
    }
}
