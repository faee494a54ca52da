//! The operator's commands: users, tenants and keys managed straight through `keyward_core` (no
//! HTTP, no session secret), and backups. They work while a server runs on the same database;
//! every change is audited with actor `system`, as the API audits its callers.
//!
//! Each prints JSON with `--json` (the native API's wire shapes, so a script can treat both
//! alike) and a table otherwise. A key's plaintext is printed once, to standard output only.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use keyward_core::auth::Caller;
use keyward_core::keys::{self, IssuedKey, KeyExpiry, KeyTenant, NewKey, Reach};
use keyward_core::page::{Page, MAX_PAGE};
use keyward_core::{tenants, users, Keyward};
use keyward_domain::{ApiKey, Credential, Principal, Role, Tenant, User};
use keyward_server::api::v1::keys::{ApiKeyCreated, ApiKeyView};
use keyward_server::api::v1::tenants::TenantView;
use keyward_server::api::v1::users::UserView;
use keyward_store::{Cursor, KeyQuery, KeysOf};
use serde::Serialize;
use uuid::Uuid;

/// `keyward key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key for a user. Prints its plaintext once (to standard output only).
    Create {
        /// Slug of the owner's tenant (checked against the owner's).
        #[arg(long)]
        tenant: Option<String>,
        /// Email of the user who owns the key.
        #[arg(long)]
        owner: String,
        #[arg(long)]
        name: String,
        /// Scopes, comma-separated (e.g. `read,write`).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// When the key stops working, from now: e.g. 90d, 12h (default: never).
        #[arg(long)]
        expires_in: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List keys, oldest first (as the API does): a tenant's, a user's, or all.
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this user's keys.
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one key.
    Show {
        id: Uuid,
        /// The tenant the key must belong to.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Replace a key by a new one with its scopes, limits and lifetime; the old one stops at
    /// once, or when the grace period ends. Prints the new plaintext once.
    Rotate {
        id: Uuid,
        /// The tenant the key must belong to.
        #[arg(long)]
        tenant: Option<String>,
        /// How long the old key keeps working, e.g. 1h (at most 7d; default: not at all).
        #[arg(long)]
        grace_period: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key now.
    Revoke {
        id: Uuid,
        /// The tenant the key must belong to.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// The operator's rights over every tenant: an admin that is nobody's user, audited as
/// `system` ([`Caller::operator`]).
pub fn operator() -> Caller {
    Caller::operator(Principal {
        user_id: Uuid::nil(),
        role: Role::Admin,
        tenant_id: None,
        credential: Credential::Session { id: None },
    })
}

/// The operator acting as `user` (so that a key it makes is the user's, within their rights).
fn operator_as(user: &User) -> Caller {
    Caller::operator(Principal {
        user_id: user.id,
        role: user.role,
        tenant_id: user.tenant_id,
        credential: Credential::Session { id: None },
    })
}

/// The tenant with this slug, or an error naming it.
pub async fn tenant_by_slug(kw: &Keyward, slug: &str) -> anyhow::Result<Tenant> {
    kw.store
        .get_tenant_by_slug(slug)
        .await?
        .with_context(|| format!("no tenant with slug {slug:?}"))
}

async fn user_by_email(kw: &Keyward, email: &str) -> anyhow::Result<User> {
    let normalized = keyward_domain::model::normalize_email(email)
        .with_context(|| format!("{email:?} is not an email address"))?;
    kw.store
        .get_user_by_email(&normalized)
        .await?
        .with_context(|| format!("no user with email {email:?}"))
}

/// Every item of a listing, read page after page (`page(after)` reads the one after `after`).
async fn every_page<T, F, Fut>(mut page: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(Option<Cursor>) -> Fut,
    Fut: std::future::Future<Output = keyward_core::Result<Page<T>>>,
{
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let next = page(after).await.map_err(refused)?;
        all.extend(next.items);
        match next.next {
            Some(cursor) => after = Some(cursor),
            None => return Ok(all),
        }
    }
}

/// An operation's refusal, as the command line says it.
fn refused(e: keyward_core::Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub async fn key(kw: &Keyward, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create {
            tenant,
            owner,
            name,
            scopes,
            expires_in,
            json,
        } => {
            let owner = user_by_email(kw, &owner).await?;
            if let Some(slug) = tenant {
                let tenant = tenant_by_slug(kw, &slug).await?;
                if owner.tenant_id != Some(tenant.id) {
                    bail!("{} is not a user of the tenant {slug:?}", owner.email);
                }
            }
            let expiry = match expires_in {
                None => KeyExpiry::Never,
                Some(text) => KeyExpiry::After(
                    keyward_domain::duration::parse_short(&text)
                        .map_err(|e| anyhow::anyhow!("--expires-in: {e}"))?,
                ),
            };
            let req = NewKey {
                allowed_ips: Vec::new(),
                rate_limit_scope: None,
                tenant: KeyTenant::CallersOwn,
                name: Some(name),
                scopes,
                metadata: None,
                rate_limit_max: None,
                rate_limit_window: None,
                expiry,
                remaining: None,
                refill: None,
            };
            let issued = keys::create(kw, &operator_as(&owner), req)
                .await
                .map_err(refused)?;
            print_issued(issued, json)
        }
        KeyCommand::List {
            tenant,
            owner,
            json,
        } => {
            let mut of = KeysOf::default();
            if let Some(slug) = tenant {
                of.tenant_id = Some(tenant_by_slug(kw, &slug).await?.id);
            }
            if let Some(email) = owner {
                of.owner_id = Some(user_by_email(kw, &email).await?.id);
            }
            let all = every_page(|after| {
                let mut query = KeyQuery::new(kw.now(), MAX_PAGE);
                query.of = of;
                query.after = after;
                async move { keys::list(kw, &operator(), Reach::Role, query).await }
            })
            .await?;
            print_keys(kw, all, json)
        }
        KeyCommand::Show { id, tenant, json } => {
            let key = key_in(kw, id, tenant.as_deref()).await?;
            print_keys(kw, vec![key], json)
        }
        KeyCommand::Rotate {
            id,
            tenant,
            grace_period,
            json,
        } => {
            live(key_in(kw, id, tenant.as_deref()).await?, kw)?;
            let grace = grace_period
                .map(|text| {
                    keyward_domain::duration::parse_short(&text)
                        .map_err(|e| anyhow::anyhow!("--grace-period: {e}"))
                })
                .transpose()?;
            let issued = keys::rotate(kw, &operator(), id, None, grace)
                .await
                .map_err(refused)?;
            print_issued(issued, json)
        }
        KeyCommand::Revoke { id, tenant, json } => {
            live(key_in(kw, id, tenant.as_deref()).await?, kw)?;
            let key = keys::revoke(kw, &operator(), Reach::Role, id)
                .await
                .map_err(refused)?;
            print_keys(kw, vec![key], json)
        }
    }
}

/// The key with this id, in the tenant with this slug when one is named.
async fn key_in(kw: &Keyward, id: Uuid, tenant: Option<&str>) -> anyhow::Result<ApiKey> {
    let key = keys::get(kw, &operator(), Reach::Role, id)
        .await
        .map_err(refused)?;
    if let Some(slug) = tenant {
        let tenant = tenant_by_slug(kw, slug).await?;
        if key.tenant_id != Some(tenant.id) {
            // As the API answers a key outside the caller's reach.
            bail!("api key not found in the tenant {slug:?}");
        }
    }
    Ok(key)
}

/// The key, unless it is revoked already (which the operator is told in so many words; the API
/// answers such a key 404, as one no longer there to act on).
fn live(key: ApiKey, kw: &Keyward) -> anyhow::Result<ApiKey> {
    if key.status(kw.now()) == keyward_domain::KeyStatus::Revoked {
        bail!("api key {} is already revoked", key.id);
    }
    Ok(key)
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("writing JSON")?;
    println!("{text}");
    Ok(())
}

pub fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(header.iter().copied());
    for row in rows {
        table.add_row(row);
    }
    println!("{table}");
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".into())
}

fn key_row(key: &ApiKeyView) -> Vec<String> {
    vec![
        key.id.to_string(),
        or_dash(key.name.clone()),
        key.start.clone(),
        key.status.as_str().into(),
        key.scopes.join(","),
        or_dash(key.expires_at.map(keyward_core::keys::rfc3339)),
        keyward_core::keys::rfc3339(key.created_at),
    ]
}

const KEY_HEADER: [&str; 7] = [
    "id", "name", "start", "status", "scopes", "expires", "created",
];

fn print_keys(kw: &Keyward, keys: Vec<ApiKey>, json: bool) -> anyhow::Result<()> {
    let now = kw.now();
    let views: Vec<ApiKeyView> = keys.into_iter().map(|k| ApiKeyView::of(k, now)).collect();
    if json {
        return print_json(&views);
    }
    table(&KEY_HEADER, views.iter().map(key_row).collect());
    Ok(())
}

fn print_issued(issued: IssuedKey, json: bool) -> anyhow::Result<()> {
    let created = ApiKeyCreated::from(issued);
    if json {
        return print_json(&created);
    }
    let row = vec![
        created.id.to_string(),
        or_dash(created.name.clone()),
        created.scopes.join(","),
        or_dash(created.expires_at.map(keyward_core::keys::rfc3339)),
        keyward_core::keys::rfc3339(created.created_at),
    ];
    table(&["id", "name", "scopes", "expires", "created"], vec![row]);
    println!(
        "key: {}",
        secrecy::ExposeSecret::expose_secret(&created.key)
    );
    println!("(shown once: keyward keeps only its digest)");
    Ok(())
}

pub async fn tenant_list(kw: &Keyward, json: bool) -> anyhow::Result<()> {
    let all =
        every_page(|after| async move { tenants::list(kw, &operator(), MAX_PAGE, after).await })
            .await?;
    let views: Vec<TenantView> = all.into_iter().map(TenantView::from).collect();
    if json {
        return print_json(&views);
    }
    let rows = views
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.slug.clone(),
                t.name.clone(),
                or_dash(t.key_prefix.clone()),
                keyward_core::keys::rfc3339(t.created_at),
            ]
        })
        .collect();
    table(&["id", "slug", "name", "key prefix", "created"], rows);
    Ok(())
}

pub async fn user_list(
    kw: &Keyward,
    tenant: Option<String>,
    mut filter: users::UserFilter,
    json: bool,
) -> anyhow::Result<()> {
    filter.tenant_id = match tenant {
        Some(slug) => Some(tenant_by_slug(kw, &slug).await?.id),
        None => None,
    };
    let filter = &filter;
    let all = every_page(|after| async move {
        users::list(kw, &operator(), filter.clone(), MAX_PAGE, after).await
    })
    .await?;
    let views: Vec<UserView> = all.into_iter().map(UserView::from).collect();
    if json {
        return print_json(&views);
    }
    let rows = views
        .iter()
        .map(|u| {
            vec![
                u.id.to_string(),
                u.email.clone(),
                u.role.to_string(),
                or_dash(u.tenant_id.map(|t| t.to_string())),
                if u.disabled { "disabled" } else { "active" }.to_string(),
                keyward_core::keys::rfc3339(u.created_at),
            ]
        })
        .collect();
    table(
        &["id", "email", "role", "tenant", "status", "created"],
        rows,
    );
    Ok(())
}

/// The user an operator names by email or id, or an error naming it.
pub async fn user_named(kw: &Keyward, named: &str) -> anyhow::Result<User> {
    let found = match Uuid::try_parse(named) {
        Ok(id) => kw.store.get_user(id).await?,
        Err(_) => {
            let email = keyward_domain::model::normalize_email(named)
                .with_context(|| format!("{named:?} is neither an email nor a user id"))?;
            kw.store.get_user_by_email(&email).await?
        }
    };
    found.with_context(|| format!("no user {named:?}"))
}

/// `keyward user disable|enable`.
pub async fn user_set_disabled(kw: &Keyward, named: &str, disabled: bool) -> anyhow::Result<()> {
    let user = user_named(kw, named).await?;
    let patch = users::UserPatch {
        role: None,
        disabled: Some(disabled),
    };
    users::update(kw, &operator(), user.id, patch)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let done = if disabled { "disabled" } else { "enabled" };
    println!("{} {done}", user.email);
    Ok(())
}

/// `keyward user delete`.
pub async fn user_delete(kw: &Keyward, named: &str) -> anyhow::Result<()> {
    let user = user_named(kw, named).await?;
    let revoked = users::delete(kw, &operator(), user.id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{} deleted; {} keys revoked", user.email, revoked.len());
    Ok(())
}

/// `keyward user set-password`.
pub async fn user_set_password(
    kw: &Keyward,
    named: &str,
    password: secrecy::SecretString,
) -> anyhow::Result<()> {
    let user = user_named(kw, named).await?;
    users::set_password(kw, &operator(), user.id, password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}: password set; its sessions ended", user.email);
    Ok(())
}

/// The database is not one `keyward backup` copies (PostgreSQL): exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("keyward backup copies SQLite databases; for PostgreSQL use pg_dump (e.g. pg_dump --format=custom --file=keyward.dump \"$DATABASE_URL\")")]
pub struct NotSqlite;

/// A consistent copy of the SQLite database at `url` in `to` (a new file), taken while servers
/// may write to it: restorable by `keyward serve --database sqlite://<to>`.
pub async fn backup(url: &str, to: &Path) -> anyhow::Result<()> {
    if !url.starts_with("sqlite:") {
        return Err(NotSqlite.into());
    }
    let started = std::time::Instant::now();
    keyward_store_sqlite::backup(url, to)
        .await
        .with_context(|| format!("backing up to {}", to.display()))?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up to {} ({bytes} bytes, {} ms); restore with: keyward serve --database sqlite://{}",
        to.display(),
        started.elapsed().as_millis(),
        to.display()
    );
    Ok(())
}

/// Where `backup --to` writes: refused when something is there already (a backup never
/// overwrites).
pub fn backup_target(to: PathBuf) -> anyhow::Result<PathBuf> {
    if to.exists() {
        bail!("{} exists; a backup never overwrites", to.display());
    }
    Ok(to)
}
