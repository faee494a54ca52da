//! Importing the keys of another service so that they keep working (see
//! [`keyward_domain::import`] for the formats and shapes). Admins only; the CLI's
//! `keyward import` and `POST /api/v1/api-keys/import` both feed an [`Importer`] line by line.
//!
//! Lines are taken in batches of [`ImportOptions::batch_size`]: each batch is checked whole, then
//! written in one transaction. A bad row is reported with its line number and reason, and nothing
//! of its batch is written (the other batches are); fixing the file and running it again writes
//! what is missing, since a key already stored (by digest) is left as it is and counted as
//! present. So a second run of the same file changes nothing, and its report says so.

use std::collections::HashMap;

use keyward_domain::import::{ImportFormat, ImportRow, KeyShape};
use keyward_domain::model::normalize_email;
use keyward_domain::{ApiKey, AuditAction, Role, Scopes, User};
use keyward_store::rows::NO_PASSWORD;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::Keyward;

/// The longest line an import reads, in bytes.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// The default and the largest batch.
pub const DEFAULT_BATCH: usize = 20_000;
pub const MAX_BATCH: usize = 50_000;
/// How many bad rows a report lists (all are counted).
pub const MAX_BAD_LISTED: usize = 1_000;

/// How to read an import.
#[derive(Clone)]
pub struct ImportOptions {
    pub format: ImportFormat,
    /// The prefix every key starts with (`sha256` imports only).
    pub prefix: Option<String>,
    /// The secret Stratum keys were hashed with (HMAC-SHA256), when they were.
    pub hmac_secret: Option<Vec<u8>>,
    /// Make the owners the rows name that do not exist yet (members, without a password).
    pub create_owners: bool,
    pub batch_size: usize,
}

impl std::fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOptions")
            .field("format", &self.format)
            .field("prefix", &self.prefix)
            .field(
                "hmac_secret",
                &self.hmac_secret.as_ref().map(|_| "<secret>"),
            )
            .field("create_owners", &self.create_owners)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based.
    pub line: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows read (blank lines are not rows).
    pub rows: u64,
    /// Keys stored by this run.
    pub imported: u64,
    /// Keys that were stored already (a second run of a file).
    pub already_present: u64,
    /// Owners made for rows (`create_owners`).
    pub owners_created: u64,
    /// Bad rows, the first [`MAX_BAD_LISTED`] of them.
    pub bad: Vec<BadRow>,
    pub bad_count: u64,
    /// Good rows left unwritten because their batch held a bad one.
    pub not_written: u64,
}

/// An owner a row names, as the import knows it.
#[derive(Clone, Copy)]
struct Owner {
    id: Uuid,
    tenant_id: Option<Uuid>,
    /// Made by this import, once its first batch is written.
    pending: bool,
}

/// Reads an import line by line ([`Importer::line`]), writing each batch when it is full, then
/// the rest at [`Importer::finish`].
pub struct Importer<'a> {
    kw: &'a Keyward,
    caller: &'a Caller,
    shape: KeyShape,
    options: ImportOptions,
    owners: HashMap<String, Option<Owner>>,
    tenants: HashMap<String, Option<Uuid>>,
    batch: Vec<ApiKey>,
    /// Emails of owners to make before the batch is written.
    batch_owners: Vec<(String, Owner)>,
    batch_lines: (u64, u64),
    /// Rows of the batch, good and bad.
    batch_rows: usize,
    batch_bad: bool,
    report: ImportReport,
}

impl<'a> Importer<'a> {
    /// Starts an import as `caller` (an admin with `keyward:admin`): checks the options and
    /// teaches keyward the shape of the keys to come.
    pub async fn start(
        kw: &'a Keyward,
        caller: &'a Caller,
        options: ImportOptions,
    ) -> Result<Importer<'a>> {
        caller.principal.require_admin()?;
        if !(1..=MAX_BATCH).contains(&options.batch_size) {
            return Err(Error::invalid_field(
                "batch",
                format!("must be between 1 and {MAX_BATCH}"),
            ));
        }
        if options.prefix.is_some() && options.format != ImportFormat::Sha256 {
            return Err(Error::invalid_field(
                "prefix",
                "is for sha256 imports only (estuary and stratum keys have their own)",
            ));
        }
        let now = keyward_domain::clock::truncate_millis(kw.now());
        let shape = KeyShape::of(
            options.format,
            options.prefix.as_deref(),
            options.hmac_secret.clone(),
            now,
        )
        .map_err(|e| {
            let field = match e {
                keyward_domain::import::ShapeError::Prefix => "prefix",
                _ => "hmac_secret",
            };
            Error::invalid_field(field, e)
        })?;
        let audit = caller
            .actor()
            .entry(now, AuditAction::ApiKeyImport, shape.prefix.clone())
            .changes(
                json!({"format": shape.format.as_str(), "prefix": shape.prefix,
                "hash": if options.hmac_secret.is_some() { "hmac-sha256" } else { "sha256" }}),
            );
        kw.store.add_key_shape(&shape, &audit).await?;
        kw.cache.shapes_changed();
        Ok(Importer {
            kw,
            caller,
            shape,
            options,
            owners: HashMap::new(),
            tenants: HashMap::new(),
            batch: Vec::new(),
            batch_owners: Vec::new(),
            batch_lines: (0, 0),
            batch_rows: 0,
            batch_bad: false,
            report: ImportReport::default(),
        })
    }

    /// What the import did so far.
    pub fn report(&self) -> &ImportReport {
        &self.report
    }

    /// Reads line `number` (1-based). Storage errors end the import; a bad row does not.
    pub async fn line(&mut self, number: u64, line: &str) -> Result<()> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        self.report.rows += 1;
        if self.batch_rows == 0 {
            self.batch_lines.0 = number;
        }
        self.batch_lines.1 = number;
        self.batch_rows += 1;
        match self.row(line).await {
            Ok((key, new_owner)) => {
                self.batch.push(key);
                self.batch_owners.extend(new_owner);
            }
            Err(reason) => {
                self.batch_bad = true;
                self.report.bad_count += 1;
                if self.report.bad.len() < MAX_BAD_LISTED {
                    self.report.bad.push(BadRow {
                        line: number,
                        reason,
                    });
                }
            }
        }
        if self.batch_rows >= self.options.batch_size {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes what is left and says what the import did.
    pub async fn finish(mut self) -> Result<ImportReport> {
        self.flush().await?;
        Ok(self.report)
    }

    /// One row's key (and the owner to make for it), or why it is bad.
    async fn row(
        &mut self,
        line: &str,
    ) -> std::result::Result<(ApiKey, Option<(String, Owner)>), String> {
        if line.len() > MAX_LINE_BYTES {
            return Err(format!("longer than {MAX_LINE_BYTES} bytes"));
        }
        let row: ImportRow = serde_json::from_str(line).map_err(|e| {
            // serde's message names the field and column; never the line's content.
            format!("not a JSON object of the import's fields: {e}")
        })?;
        if row.is_session == Some(true) {
            return Err("an Estuary login session, not an API key".into());
        }
        let digest = row.digest(&self.shape).map_err(|e| e.to_string())?;
        let tenant_id = match &row.tenant {
            None => None,
            Some(slug) => Some(self.tenant(slug).await?),
        };
        let email = row
            .owner_email
            .as_deref()
            .ok_or("`owner_email` is required")?;
        let email = normalize_email(email).ok_or("`owner_email` is not an email address")?;
        let (owner, new_owner) = self.owner(&email, tenant_id).await?;
        if tenant_id.is_some() && owner.tenant_id != tenant_id {
            return Err(format!(
                "{email} is not a user of tenant {:?}",
                row.tenant.unwrap_or_default()
            ));
        }
        // An Estuary token was its user's full credential: by default it may use keyward's
        // API as its user (Estuary's `perms=all`). Other formats' keys only verify.
        let scopes = match (&row.scopes, self.shape.format) {
            (Some(s), _) => Scopes::parse(s).map_err(|e| format!("scopes: {e}"))?,
            (None, ImportFormat::Estuary) => {
                Scopes::parse(&crate::keys::owner_scopes()).map_err(|e| format!("scopes: {e}"))?
            }
            (None, _) => Scopes::none(),
        };
        if let Some(name) = &row.name {
            keyward_domain::text::KEY_NAME
                .check(name)
                .map_err(|e| format!("name: {e}"))?;
        }
        let now = keyward_domain::clock::truncate_millis(self.kw.now());
        let at = |t: Option<OffsetDateTime>| t.map(keyward_domain::clock::truncate_millis);
        let created_at = at(row.created_at).unwrap_or(now);
        if created_at > now {
            return Err("`created_at` is in the future".into());
        }
        let start = self.start_of(&row);
        Ok((
            ApiKey {
                id: Uuid::now_v7(),
                tenant_id: tenant_id.or(owner.tenant_id),
                owner_id: owner.id,
                name: row.name,
                prefix: self.shape.display_prefix().to_owned(),
                start,
                digest,
                scopes,
                metadata: json!({"imported_from": self.shape.format.as_str()}),
                rate_limit: None,
                expires_at: at(row.expires_at),
                created_at,
                updated_at: now,
                revoked_at: at(row.revoked_at),
                last_used_at: at(row.last_used_at),
                credits: None,
                enabled: true,
                allowed_ips: keyward_domain::IpAllowlist::anywhere(),
                shared: keyward_domain::SharedLimits::default(),
            },
            new_owner.map(|o| (email, o)),
        ))
    }

    /// What a key shows of itself: its prefix and, when the row gave the plaintext, the next
    /// four characters (as native keys show theirs).
    fn start_of(&self, row: &ImportRow) -> String {
        let plain = row.token.as_deref().or(row.key.as_deref());
        let prefix = &self.shape.prefix;
        match plain {
            Some(p) => p
                .char_indices()
                .nth(prefix.chars().count() + keyward_domain::key::START_CHARS)
                .map_or(p, |(i, _)| &p[..i])
                .to_owned(),
            None => prefix.clone(),
        }
    }

    async fn tenant(&mut self, slug: &str) -> std::result::Result<Uuid, String> {
        if !self.tenants.contains_key(slug) {
            let found = self
                .kw
                .store
                .get_tenant_by_slug(slug)
                .await
                .map_err(|e| format!("reading tenant {slug:?}: {e}"))?
                .map(|t| t.id);
            self.tenants.insert(slug.to_owned(), found);
        }
        self.tenants[slug].ok_or_else(|| format!("no tenant {slug:?}"))
    }

    /// The owner of `email`, made (pending) when the import may make owners.
    async fn owner(
        &mut self,
        email: &str,
        tenant_id: Option<Uuid>,
    ) -> std::result::Result<(Owner, Option<Owner>), String> {
        if !self.owners.contains_key(email) {
            let found = self
                .kw
                .store
                .get_user_by_email(email)
                .await
                .map_err(|e| format!("reading user {email}: {e}"))?
                .map(|u| Owner {
                    id: u.id,
                    tenant_id: u.tenant_id,
                    pending: false,
                });
            self.owners.insert(email.to_owned(), found);
        }
        match self.owners[email] {
            Some(o) if o.pending && !self.batch_owners.iter().any(|(e, _)| e == email) => {
                // Made for an earlier batch that was not written: make it with this one.
                Ok((o, Some(o)))
            }
            Some(o) => Ok((o, None)),
            None if self.options.create_owners => {
                let o = Owner {
                    id: Uuid::now_v7(),
                    tenant_id,
                    pending: true,
                };
                self.owners.insert(email.to_owned(), Some(o));
                Ok((o, Some(o)))
            }
            None => Err(format!(
                "no user {email} (import with create_owners to make the users the rows name)"
            )),
        }
    }

    /// Writes the batch (when none of its rows was bad): its new owners, then its keys.
    async fn flush(&mut self) -> Result<()> {
        let keys = std::mem::take(&mut self.batch);
        let owners = std::mem::take(&mut self.batch_owners);
        let bad = std::mem::replace(&mut self.batch_bad, false);
        self.batch_rows = 0;
        if bad {
            self.report.not_written += keys.len() as u64;
            return Ok(());
        }
        if keys.is_empty() {
            return Ok(());
        }
        let now = keyward_domain::clock::truncate_millis(self.kw.now());
        for (email, owner) in owners {
            self.create_owner(&email, owner, now).await?;
            if let Some(Some(o)) = self.owners.get_mut(&email) {
                o.pending = false;
            }
            self.report.owners_created += 1;
        }
        let (first, last) = self.batch_lines;
        let audit = self
            .caller
            .actor()
            .entry(
                now,
                AuditAction::ApiKeyImport,
                format!("lines {first}-{last}"),
            )
            .changes(
                json!({"format": self.shape.format.as_str(), "first_line": first,
                "last_line": last, "rows": keys.len()}),
            );
        let stored = self.kw.store.import_new_keys(&keys, &audit).await?;
        self.report.imported += stored.len() as u64;
        self.report.already_present += (keys.len() - stored.len()) as u64;
        // Digests remembered as unknown on this node are known now.
        let stored: std::collections::HashSet<Uuid> = stored.into_iter().collect();
        for key in keys.iter().filter(|k| stored.contains(&k.id)) {
            self.kw.cache.invalidate(&key.digest);
        }
        Ok(())
    }

    async fn create_owner(&self, email: &str, owner: Owner, now: OffsetDateTime) -> Result<()> {
        let user = User {
            id: owner.id,
            email: email.to_owned(),
            password_hash: NO_PASSWORD.to_owned(),
            role: Role::Member,
            tenant_id: owner.tenant_id,
            created_at: now,
            updated_at: now,
            disabled_at: None,
        };
        let audit = self
            .caller
            .actor()
            .entry(now, AuditAction::UserCreate, user.id)
            .tenant(user.tenant_id)
            .subject(user.id)
            .changes(json!({"email": email, "role": "member", "via": "import"}));
        match self.kw.store.create_user(&user, &audit).await {
            Ok(()) => Ok(()),
            Err(keyward_store::StoreError::Conflict(_)) => Err(Error::Conflict {
                code: "email_taken",
                message: format!("{email}: a user was made with this email during the import"),
            }),
            Err(e) => Err(e.into()),
        }
    }
}
