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
use keyward_domain::{ApiKey, AuditAction, KeyDigest, Role, Scopes, User};
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
    /// Keys stored already that this run's `revoked_at` ended earlier than they did (revoked
    /// in the old service since the last run): each revoked with a `key.revoked` event whose
    /// `data.reason` is `import`. Counted in `already_present` too.
    pub revoked: u64,
    /// Owners made for rows (`create_owners`).
    pub owners_created: u64,
    /// Bad rows, the first [`MAX_BAD_LISTED`] of them.
    pub bad: Vec<BadRow>,
    pub bad_count: u64,
    /// Good rows left unwritten because their batch held a bad one.
    pub not_written: u64,
    /// Estuary login sessions in the file (`isSession: true`): not keys, left out.
    pub sessions_skipped: u64,
}

/// What one row is.
enum Row {
    Key(Box<ApiKey>, Option<(String, Owner)>),
    Bad(String),
    /// Not a key (an Estuary session): left out, not an error.
    Skipped,
}

/// An owner a row names, as the import knows it.
#[derive(Clone, Copy)]
struct Owner {
    id: Uuid,
    tenant_id: Option<Uuid>,
    role: Role,
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
    tenants: HashMap<String, Option<(Uuid, keyward_domain::TenantPolicy)>>,
    /// Whether the shape is stored (with the first batch written).
    shape_added: bool,
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
        // Keys that start with one of keyward's own prefixes are judged by keyward's checksum
        // alone (a mistyped key never reaches storage): no import may claim any of them.
        if let Some(own) = crate::tenants::key_prefixes(kw)
            .await?
            .into_iter()
            .find(|own| shape.claims_keys_of(own))
        {
            return Err(Error::invalid_field(
                "prefix",
                format!(
                    "{:?} could start keys of keyward's own prefix {own:?} (the default or a \
                     tenant's): those are judged by keyward's checksum",
                    shape.prefix
                ),
            ));
        }
        Ok(Importer {
            kw,
            caller,
            shape,
            options,
            owners: HashMap::new(),
            tenants: HashMap::new(),
            shape_added: false,
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
        match self.row(line).await? {
            Row::Key(key, new_owner) => {
                self.batch.push(*key);
                self.batch_owners.extend(new_owner);
            }
            Row::Skipped => self.report.sessions_skipped += 1,
            Row::Bad(reason) => {
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

    /// One row's key (and the owner to make for it), or why it is bad. Storage errors end the
    /// import.
    async fn row(&mut self, line: &str) -> Result<Row> {
        Ok(match self.key_of(line).await? {
            Ok(Some((key, owner))) => Row::Key(Box::new(key), owner),
            Ok(None) => Row::Skipped,
            Err(reason) => Row::Bad(reason),
        })
    }

    async fn key_of(
        &mut self,
        line: &str,
    ) -> Result<std::result::Result<Option<(ApiKey, Option<(String, Owner)>)>, String>> {
        macro_rules! bad {
            ($($why:tt)*) => { return Ok(Err(format!($($why)*))) };
        }
        if line.len() > MAX_LINE_BYTES {
            bad!("longer than {MAX_LINE_BYTES} bytes");
        }
        let row: ImportRow = match serde_json::from_str(line) {
            Ok(row) => row,
            Err(e) => bad!(
                "not a JSON object of the import's fields: {}",
                without_values(&e.to_string())
            ),
        };
        if row.is_session == Some(true) {
            return Ok(Ok(None));
        }
        let digest = match row.digest(&self.shape) {
            Ok(d) => d,
            Err(e) => bad!("{e}"),
        };
        let tenant = match &row.tenant {
            None => None,
            Some(slug) => match self.tenant(slug).await? {
                Some(t) => Some(t),
                None => bad!("no tenant {slug:?}"),
            },
        };
        let Some(email) = row.owner_email.as_deref() else {
            bad!("`owner_email` is required");
        };
        let Some(email) = normalize_email(email) else {
            bad!("`owner_email` is not an email address");
        };
        let tenant_id = tenant.as_ref().map(|(id, _)| *id);
        let (owner, new_owner) = match self.owner(&email, tenant_id).await? {
            Ok(found) => found,
            Err(why) => bad!("{why}"),
        };
        if tenant_id.is_some() && owner.tenant_id != tenant_id {
            bad!(
                "{email} is not a user of tenant {:?}",
                row.tenant.unwrap_or_default()
            );
        }
        // An Estuary token was its user's full credential: by default it may use keyward's
        // API as its user (Estuary's `perms=all`). Other formats' keys only verify.
        let scopes = match (&row.scopes, self.shape.format) {
            (Some(s), _) => match Scopes::parse(s) {
                Ok(s) => s,
                Err(e) => bad!("scopes: {}", without_values(&e.to_string())),
            },
            (None, ImportFormat::Estuary) => Scopes::parse(&crate::keys::owner_scopes())
                .map_err(|e| Error::Internal(format!("the owner's scopes: {e}")))?,
            (None, _) => Scopes::none(),
        };
        // A key that acts for an admin would give an old service's token an admin's rights.
        if owner.role != Role::Member
            && scopes
                .iter()
                .any(|s| s.starts_with(keyward_domain::scope::KEYWARD_NAMESPACE))
        {
            bad!(
                "{email} is a {}: an imported key may act for members only (give it scopes \
                 outside keyward:)",
                owner.role.as_str()
            );
        }
        if let Some(name) = &row.name {
            if let Err(e) = keyward_domain::text::KEY_NAME.check(name) {
                bad!("name: {e}");
            }
        }
        let now = keyward_domain::clock::truncate_millis(self.kw.now());
        let at = |t: Option<OffsetDateTime>| t.map(keyward_domain::clock::truncate_millis);
        // The times keyward's own keys can have: none before 1970, none further ahead than an
        // expiry may be set (100 years, as `expires_at` on create).
        let latest = now + time::Duration::seconds(keyward_domain::duration::MAX_DURATION_SECONDS);
        for (field, t) in [
            ("created_at", row.created_at),
            ("expires_at", row.expires_at),
            ("last_used_at", row.last_used_at),
            ("revoked_at", row.revoked_at),
        ] {
            if t.is_some_and(|t| t < OffsetDateTime::UNIX_EPOCH || t > latest) {
                bad!("`{field}` must lie between 1970 and 100 years from now");
            }
        }
        let created_at = at(row.created_at).unwrap_or(now);
        if created_at > now {
            bad!("`created_at` is in the future");
        }
        let expires_at = at(row.expires_at);
        let mut rate_limit = None;
        if let Some((_, policy)) = &tenant {
            if let Err(v) = policy.check_scopes(&scopes) {
                bad!("scopes: {v}");
            }
            if let Err(v) = policy.check_expiry(expires_at, now) {
                bad!("expires_at: {v}");
            }
            rate_limit = crate::keys::default_rate_limit(policy)?
                .map(|l| l.with_scope(policy.rate_limit_scope));
        }
        let start = self.start_of(&row);
        Ok(Ok(Some((
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
                rate_limit,
                expires_at,
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
        ))))
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

    /// Tenant `slug` and its policy, if it exists.
    async fn tenant(&mut self, slug: &str) -> Result<Option<(Uuid, keyward_domain::TenantPolicy)>> {
        if !self.tenants.contains_key(slug) {
            let found = self
                .kw
                .store
                .get_tenant_by_slug(slug)
                .await?
                .map(|t| (t.id, t.policy));
            self.tenants.insert(slug.to_owned(), found);
        }
        Ok(self.tenants[slug].clone())
    }

    /// The owner of `email`, made (pending) when the import may make owners; why not, else.
    async fn owner(
        &mut self,
        email: &str,
        tenant_id: Option<Uuid>,
    ) -> Result<std::result::Result<(Owner, Option<Owner>), String>> {
        if !self.owners.contains_key(email) {
            let found = self
                .kw
                .store
                .get_user_by_email(email)
                .await?
                .map(|u| Owner {
                    id: u.id,
                    tenant_id: u.tenant_id,
                    role: u.role,
                    pending: false,
                });
            self.owners.insert(email.to_owned(), found);
        }
        Ok(match self.owners[email] {
            Some(o) if o.pending && !self.batch_owners.iter().any(|(e, _)| e == email) => {
                // Made for an earlier batch that was not written: make it with this one.
                Ok((o, Some(o)))
            }
            Some(o) => Ok((o, None)),
            None if self.options.create_owners => {
                let o = Owner {
                    id: Uuid::now_v7(),
                    tenant_id,
                    role: Role::Member,
                    pending: true,
                };
                self.owners.insert(email.to_owned(), Some(o));
                Ok((o, Some(o)))
            }
            None => Err(format!(
                "no user {email} (import with create_owners to make the users the rows name)"
            )),
        })
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
        if !self.shape_added {
            let audit = self
                .caller
                .actor()
                .entry(now, AuditAction::ApiKeyImport, self.shape.prefix.clone())
                .changes(json!({"format": self.shape.format.as_str(), "prefix": self.shape.prefix,
                    "hash": if self.options.hmac_secret.is_some() { "hmac-sha256" } else { "sha256" }}));
            self.kw.store.add_key_shape(&self.shape, &audit).await?;
            self.kw.cache.shapes_changed();
            self.shape_added = true;
        }
        let users: Vec<User> = owners
            .iter()
            .map(|(email, o)| User {
                id: o.id,
                email: email.clone(),
                password_hash: NO_PASSWORD.to_owned(),
                role: Role::Member,
                tenant_id: o.tenant_id,
                created_at: now,
                updated_at: now,
                disabled_at: None,
            })
            .collect();
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
                "last_line": last, "rows": keys.len(),
                "owners_created": owners.iter().map(|(e, _)| e).collect::<Vec<_>>()}),
            );
        let stored = match self.kw.store.import_new_keys(&users, &keys, &audit).await {
            Ok(stored) => stored,
            Err(keyward_store::StoreError::Conflict(_)) => {
                // Another import made one of these owners meanwhile: this batch waits for a
                // second run, which finds them.
                for (email, _) in &owners {
                    self.owners.remove(email);
                }
                self.report.not_written += keys.len() as u64;
                self.report.bad_count += 1;
                if self.report.bad.len() < MAX_BAD_LISTED {
                    self.report.bad.push(BadRow {
                        line: first,
                        reason: format!(
                            "lines {first}-{last}: an owner was made by another import meanwhile; \
                             run the import again"
                        ),
                    });
                }
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        for (email, _) in &owners {
            if let Some(Some(o)) = self.owners.get_mut(email) {
                o.pending = false;
            }
        }
        self.report.owners_created += owners.len() as u64;
        self.report.imported += stored.len() as u64;
        self.report.already_present += (keys.len() - stored.len()) as u64;
        // Digests remembered as unknown on this node are known now.
        let stored: std::collections::HashSet<Uuid> = stored.into_iter().collect();
        for key in keys.iter().filter(|k| stored.contains(&k.id)) {
            self.kw.cache.invalidate(&key.digest);
        }
        // Rows stored before that now say revoked: their stored keys, read a page at a time.
        let ends: HashMap<KeyDigest, OffsetDateTime> = keys
            .iter()
            .filter(|k| !stored.contains(&k.id))
            .filter_map(|k| Some((k.digest, k.revoked_at?)))
            .collect();
        if !ends.is_empty() {
            let digests: Vec<KeyDigest> = ends.keys().copied().collect();
            for key in self.kw.store.get_keys_by_digests(&digests).await? {
                if let Some(&end) = ends.get(&key.digest) {
                    self.report.revoked += u64::from(self.end_present(key, end, now).await?);
                }
            }
        }
        Ok(())
    }

    /// Ends `stored` at `end` when it ends later or not at all (the old service revoked it since
    /// the last run); whether it did. A revocation is never undone: a row without `revoked_at`,
    /// or with a later one, leaves the stored key as it is; so does a key already revoked here
    /// (its end stays where it is).
    async fn end_present(
        &self,
        stored: ApiKey,
        end: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool> {
        if stored.revoked_at.is_some_and(|at| at <= end || at <= now) {
            return Ok(false);
        }
        let actor = self.caller.actor();
        match crate::keys::end_as(
            self.kw,
            &actor,
            stored,
            end,
            now,
            json!({"reason": "import"}),
        )
        .await
        {
            Ok(_) => Ok(true),
            // Revoked meanwhile, by hand or by another import.
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The shapes imports taught keyward, oldest first (admins only): what a presented string must
/// look like to be looked up as an imported key. The caller shows them without their HMAC
/// secrets.
pub async fn shapes(kw: &Keyward, caller: &Caller) -> Result<Vec<KeyShape>> {
    caller.principal.require_admin()?;
    Ok(kw.store.list_key_shapes().await?)
}

/// A parser's message without the values it quotes (a line's text may hold a key).
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match c {
            '"' if quoted => {
                quoted = false;
                out.push_str("\"…\"");
            }
            '"' => quoted = true,
            _ if quoted => {}
            _ => out.push(c),
        }
    }
    out
}
