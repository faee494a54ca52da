//! Tenants: installation-wide administration, for admins only.

use keyward_domain::model::validate_slug;
use keyward_domain::model::MAX_EXPIRY_REMINDERS;
use keyward_domain::ratelimit::{KeyRateLimit, RateLimitError};
use keyward_domain::scope::KEYWARD_NAMESPACE;
use keyward_domain::text;
use keyward_domain::AuditAction;
use keyward_domain::{DefaultRateLimit, KeyPrefix, Patch, Scopes, Tenant, TenantPolicy};
use keyward_store::{Cursor, StoreError};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::page::{paginate, validate_metadata, Page};
use crate::Keyward;

#[derive(Debug, Clone, Default)]
pub struct TenantChanges {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub metadata: Option<Value>,
    /// Cleared: back to the default prefix.
    pub key_prefix: Patch<String>,
    /// Changes to the tenant's policy; fields left `None` stay as they are.
    pub policy: Option<PolicyChanges>,
}

/// Changes to a [`TenantPolicy`].
#[derive(Debug, Clone, Default)]
pub struct PolicyChanges {
    pub revoke_leaked_keys: Option<bool>,
    /// Durations before expiry (`7d`, `12h`, ...: [`keyward_domain::duration::SHORT_PATTERN`]),
    /// at most 5, none written twice; empty sends no reminders.
    pub expiry_reminders: Option<Vec<String>>,
    /// The longest lifetime of a key (a short duration such as `90d`, at most 100 years);
    /// cleared: no limit.
    pub max_key_lifetime: Patch<String>,
    pub require_expiry: Option<bool>,
    /// The application scopes keys may carry (each a scope outside `keyward:`, at most 64);
    /// cleared: any.
    pub allowed_scopes: Patch<Vec<String>>,
    /// `(max, window)` as a key's rate limit takes them; cleared: none.
    pub default_rate_limit: Patch<(i64, String)>,
    /// Where new keys' rate limits hold when their request does not say.
    pub rate_limit_scope: Option<keyward_domain::ratelimit::RateLimitScope>,
}

impl PolicyChanges {
    fn applied_to(&self, mut policy: TenantPolicy) -> Result<TenantPolicy> {
        if let Some(revoke) = self.revoke_leaked_keys {
            policy.revoke_leaked_keys = revoke;
        }
        if let Some(list) = &self.expiry_reminders {
            let field = "policy.expiry_reminders";
            if list.len() > MAX_EXPIRY_REMINDERS {
                return Err(Error::invalid_field(field, "at most 5 thresholds"));
            }
            let mut written: Vec<&String> = list.iter().collect();
            written.sort_unstable();
            if written.windows(2).any(|w| w[0] == w[1]) {
                return Err(Error::invalid_field(field, "a threshold is listed twice"));
            }
            let mut seconds = list
                .iter()
                .map(|t| {
                    let d = keyward_domain::duration::parse_short(t)
                        .map_err(|e| Error::invalid_field(field, e))?;
                    if d <= time::Duration::ZERO {
                        return Err(Error::invalid_field(field, "each must be positive"));
                    }
                    Ok(d.whole_seconds())
                })
                .collect::<Result<Vec<i64>>>()?;
            // Two spellings of one duration (`7d`, `1w`) are one threshold.
            seconds.sort_unstable_by(|a, b| b.cmp(a));
            seconds.dedup();
            policy.expiry_reminders = seconds;
        }
        if let Some(require) = self.require_expiry {
            policy.require_expiry = require;
        }
        if let Some(scope) = self.rate_limit_scope {
            policy.rate_limit_scope = scope;
        }
        match &self.max_key_lifetime {
            Patch::Keep => {}
            Patch::Clear => policy.max_key_lifetime = None,
            Patch::Set(text) => {
                let field = "policy.max_key_lifetime";
                let d = keyward_domain::duration::parse_short(text)
                    .map_err(|e| Error::invalid_field(field, e))?;
                if d <= time::Duration::ZERO
                    || d.whole_seconds() > keyward_domain::duration::MAX_DURATION_SECONDS
                {
                    return Err(Error::invalid_field(
                        field,
                        "must be positive and within 100 years",
                    ));
                }
                policy.max_key_lifetime = Some(d.whole_seconds());
            }
        }
        match &self.allowed_scopes {
            Patch::Keep => {}
            Patch::Clear => policy.allowed_scopes = None,
            Patch::Set(list) => {
                let field = "policy.allowed_scopes";
                let scopes = Scopes::parse(list).map_err(|e| Error::invalid_field(field, e))?;
                if let Some(own) = scopes.iter().find(|s| s.starts_with(KEYWARD_NAMESPACE)) {
                    return Err(Error::invalid_field(
                        field,
                        format!(
                            "{own:?} is keyward's own scope: its use follows roles, not this list"
                        ),
                    ));
                }
                policy.allowed_scopes = Some(scopes.into_vec());
            }
        }
        match &self.default_rate_limit {
            Patch::Keep => {}
            Patch::Clear => policy.default_rate_limit = None,
            Patch::Set((max, window)) => {
                KeyRateLimit::set(*max, window).map_err(|e| match e {
                    RateLimitError::MaxOutOfRange => {
                        Error::invalid_field("policy.default_rate_limit.max", e)
                    }
                    RateLimitError::Window(e) => {
                        Error::invalid_field("policy.default_rate_limit.window", e)
                    }
                })?;
                policy.default_rate_limit = Some(DefaultRateLimit {
                    max: *max,
                    window: window.clone(),
                });
            }
        }
        Ok(policy)
    }
}

fn validate(changes: &TenantChanges) -> Result<()> {
    if let Some(name) = &changes.name {
        text::TENANT_NAME
            .check(name)
            .map_err(|e| Error::invalid_field("name", e))?;
    }
    if let Some(slug) = &changes.slug {
        validate_slug(slug).map_err(|e| Error::invalid_field("slug", e))?;
    }
    if let Some(metadata) = &changes.metadata {
        validate_metadata("metadata", metadata)?;
    }
    if let Patch::Set(prefix) = &changes.key_prefix {
        KeyPrefix::parse(prefix).map_err(|e| Error::invalid_field("key_prefix", e))?;
    }
    Ok(())
}

/// A tenant's own key prefix may not be one an import taught keyward: keys under it would be
/// looked up as imported ones when their checksum fails (see `lookup::key_by_token`), and a
/// mistyped keyward key must never reach storage.
async fn check_prefix_is_not_imported(state: &Keyward, changes: &TenantChanges) -> Result<()> {
    let Patch::Set(prefix) = &changes.key_prefix else {
        return Ok(());
    };
    let shapes = state.store.list_key_shapes().await?;
    match shapes.iter().find(|s| s.claims_keys_of(prefix)) {
        Some(shape) => Err(Error::invalid_field(
            "key_prefix",
            format!(
                "is the prefix of keys imported from another service ({:?}, {}): keyward's \
                 checksum could not tell the two apart",
                shape.prefix,
                shape.format.as_str()
            ),
        )),
        None => Ok(()),
    }
}

fn slug_conflict(e: StoreError) -> Error {
    match e {
        StoreError::Conflict(_) => Error::Conflict {
            code: "slug_taken",
            message: "slug: a tenant with this slug exists".into(),
        },
        StoreError::NotFound => Error::NotFound("tenant"),
        other => other.into(),
    }
}

/// Creates a tenant. `actor` is the caller's, or the CLI's.
pub async fn create_as(
    state: &Keyward,
    actor: &keyward_domain::Actor,
    changes: TenantChanges,
) -> Result<Tenant> {
    let (Some(name), Some(slug)) = (changes.name.clone(), changes.slug.clone()) else {
        return Err(Error::invalid_field(
            if changes.name.is_none() {
                "name"
            } else {
                "slug"
            },
            "is required",
        ));
    };
    validate(&changes)?;
    check_prefix_is_not_imported(state, &changes).await?;
    let policy = match &changes.policy {
        Some(p) => p.applied_to(TenantPolicy::default())?,
        None => TenantPolicy::default(),
    };
    let now = keyward_domain::clock::truncate_millis(state.now());
    let tenant = Tenant {
        policy,
        id: Uuid::now_v7(),
        name,
        slug,
        key_prefix: changes.key_prefix.apply(None),
        metadata: changes.metadata.unwrap_or_else(|| json!({})),
        created_at: now,
        updated_at: now,
    };
    let audit = actor
        .entry(now, AuditAction::TenantCreate, tenant.id)
        .tenant(Some(tenant.id))
        .changes(
            json!({"name": tenant.name, "slug": tenant.slug, "key_prefix": tenant.key_prefix}),
        );
    state
        .store
        .create_tenant(&tenant, &audit)
        .await
        .map_err(slug_conflict)?;
    Ok(tenant)
}

pub async fn create(state: &Keyward, caller: &Caller, changes: TenantChanges) -> Result<Tenant> {
    caller.principal.require_admin()?;
    create_as(state, &caller.actor(), changes).await
}

pub async fn get(state: &Keyward, caller: &Caller, id: Uuid) -> Result<Tenant> {
    caller.principal.require_admin()?;
    state
        .store
        .get_tenant(id)
        .await?
        .ok_or(Error::NotFound("tenant"))
}

pub async fn list(
    state: &Keyward,
    caller: &Caller,
    limit: u32,
    after: Option<Cursor>,
) -> Result<Page<Tenant>> {
    caller.principal.require_admin()?;
    let limit = crate::page::checked_size(limit)?;
    let tenants = state.store.list_tenants(after, limit + 1).await?;
    Ok(paginate(tenants, limit, |t| Cursor {
        created_at: t.created_at,
        id: t.id,
    }))
}

pub async fn update(
    state: &Keyward,
    caller: &Caller,
    id: Uuid,
    changes: TenantChanges,
) -> Result<Tenant> {
    caller.principal.require_admin()?;
    validate(&changes)?;
    check_prefix_is_not_imported(state, &changes).await?;
    let mut tenant = state
        .store
        .get_tenant(id)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    let now = keyward_domain::clock::truncate_millis(state.now());
    let mut diff = serde_json::Map::new();
    if let Some(name) = changes.name {
        diff.insert("name".into(), json!(name));
        tenant.name = name;
    }
    if let Some(slug) = changes.slug {
        diff.insert("slug".into(), json!(slug));
        tenant.slug = slug;
    }
    if let Some(metadata) = changes.metadata {
        diff.insert("metadata".into(), json!("changed"));
        tenant.metadata = metadata;
    }
    if !changes.key_prefix.is_keep() {
        tenant.key_prefix = changes.key_prefix.apply(tenant.key_prefix.take());
        diff.insert("key_prefix".into(), json!(tenant.key_prefix));
    }
    if let Some(p) = &changes.policy {
        tenant.policy = p.applied_to(tenant.policy)?;
        diff.insert("policy".into(), json!(tenant.policy));
    }
    tenant.updated_at = now;
    let audit = caller
        .actor()
        .entry(now, AuditAction::TenantUpdate, id)
        .tenant(Some(id))
        .changes(Value::Object(diff));
    state
        .store
        .update_tenant(&tenant, &audit)
        .await
        .map_err(slug_conflict)?;
    Ok(tenant)
}

/// Deletes a tenant; with active keys only when `force`, which revokes them in the same
/// transaction. Returns the ids of the revoked keys.
pub async fn delete(state: &Keyward, caller: &Caller, id: Uuid, force: bool) -> Result<Vec<Uuid>> {
    caller.principal.require_admin()?;
    let now = keyward_domain::clock::truncate_millis(state.now());
    let audit = caller
        .actor()
        .entry(now, AuditAction::TenantDelete, id)
        .tenant(Some(id))
        .changes(json!({"force": force}));
    let deleted = state.store.delete_tenant(id, force, now, &audit).await;
    // Forced deletes revoke keys by the tenant, and users lose their tenant: forget everything
    // (rare, and refilled on demand).
    state.cache.clear();
    deleted.map_err(|e| match e {
        StoreError::NotFound => Error::NotFound("tenant"),
        StoreError::Conflict(_) => Error::Conflict {
            code: "tenant_has_active_keys",
            message: "the tenant still has active keys; delete with ?force=true to revoke them"
                .into(),
        },
        other => other.into(),
    })
}

/// Every tenant, read a page at a time (for installation-wide sweeps and checks).
pub(crate) async fn all(state: &Keyward) -> Result<Vec<Tenant>> {
    let mut tenants = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .store
            .list_tenants(after, crate::page::MAX_PAGE)
            .await?;
        let full = page.len() == crate::page::MAX_PAGE as usize;
        after = page.last().map(|t| Cursor {
            created_at: t.created_at,
            id: t.id,
        });
        tenants.extend(page);
        if !full {
            return Ok(tenants);
        }
    }
}

/// Every prefix keyward's own keys carry: the default `kw` and each tenant's own.
pub(crate) async fn key_prefixes(state: &Keyward) -> Result<std::collections::HashSet<String>> {
    let mut prefixes =
        std::collections::HashSet::from([keyward_domain::key::DEFAULT_PREFIX.to_owned()]);
    prefixes.extend(all(state).await?.into_iter().filter_map(|t| t.key_prefix));
    Ok(prefixes)
}

/// The id of the tenant with `slug`, for a caller that names a tenant by its slug (a form's
/// tenant field): admins may name any (`NotFound` when there is none); everyone else only their
/// own: another, existing or not, is `Forbidden`, so that nobody learns which slugs exist.
pub async fn id_by_slug(state: &Keyward, caller: &Caller, slug: &str) -> Result<Uuid> {
    let p = &caller.principal;
    if p.role == keyward_domain::Role::Admin {
        return state
            .store
            .get_tenant_by_slug(slug)
            .await?
            .map(|t| t.id)
            .ok_or(Error::NotFound("tenant"));
    }
    let own = match p.tenant_id {
        Some(id) => state.store.get_tenant(id).await?,
        None => None,
    };
    match own {
        Some(t) if t.slug == slug => Ok(t.id),
        _ => Err(Error::Forbidden("a tenant other than your own".into())),
    }
}
