//! Everything keyward holds about the caller, read page by page so that a large export streams:
//! its profile (with the limits its keys share) and tenant, every key it owns (never a secret or a digest: the surface renders
//! keys through its public view), the usage counters of those keys, and the audit entries in
//! which it is the actor or the subject (which covers every change to its keys).

use keyward_domain::scope::KeywardRight;
use keyward_domain::{ApiKey, AuditEntry, Tenant, User};
use keyward_store::{AuditQuery, Cursor, KeyQuery, KeysOf, UsageCount, UsagePosition};
use time::OffsetDateTime;

use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::keys::{cursor_of, Reach};
use crate::Keyward;

/// Rows read from storage per step.
const EXPORT_PAGE: u32 = 500;

/// The fixed head of an export.
#[derive(Debug)]
pub struct Profile {
    pub exported_at: OffsetDateTime,
    pub user: User,
    /// The limits shared by the user's keys, when set.
    pub limits: Option<keyward_domain::OwnerLimits>,
    pub tenant: Option<Tenant>,
}

/// One step of an export, in this order: keys, usage, audit (each at least one page, maybe empty).
#[derive(Debug)]
pub enum ExportPart {
    Keys(Vec<ApiKey>),
    Usage(Vec<UsageCount>),
    Audit(Vec<AuditEntry>),
}

#[derive(Debug, Clone, Copy)]
enum Next {
    Keys(Option<Cursor>),
    Usage(Option<UsagePosition>),
    Audit(Option<Cursor>),
    Done,
}

/// An export in progress: call [`Export::next`] until it returns `None`.
pub struct Export {
    store: std::sync::Arc<dyn keyward_store::Store>,
    user: uuid::Uuid,
    of: KeysOf,
    now: OffsetDateTime,
    next: Next,
}

/// Whether the caller may export (all that a `HEAD` of the export checks).
pub fn may_export(caller: &Caller) -> Result<()> {
    Ok(caller.principal.require(KeywardRight::Read)?)
}

/// Checks the caller may read, and reads the head of its export.
pub async fn start(state: &Keyward, caller: &Caller) -> Result<(Profile, Export)> {
    may_export(caller)?;
    let now = state.now();
    let user = state
        .store
        .get_user(caller.principal.user_id)
        .await?
        .ok_or(Error::NotFound("user"))?;
    let tenant = match user.tenant_id {
        Some(t) => state.store.get_tenant(t).await?,
        None => None,
    };
    let limits = state.store.get_owner_limits(user.id).await?;
    let export = Export {
        store: std::sync::Arc::clone(&state.store),
        user: user.id,
        of: Reach::Own.keys_of(caller),
        now,
        next: Next::Keys(None),
    };
    Ok((
        Profile {
            exported_at: now,
            user,
            limits,
            tenant,
        },
        export,
    ))
}

/// Whether a page was full, so that another may follow.
fn full<T>(page: &[T]) -> bool {
    page.len() == EXPORT_PAGE as usize
}

impl Export {
    pub async fn next(&mut self) -> Result<Option<ExportPart>> {
        let store = &self.store;
        let (part, next) = match self.next {
            Next::Done => return Ok(None),
            Next::Keys(after) => {
                let mut q = KeyQuery::new(self.now, EXPORT_PAGE);
                q.of = self.of;
                q.after = after;
                let page = store.list_keys(&q).await?;
                let next = match page.last() {
                    Some(last) if full(&page) => Next::Keys(Some(cursor_of(last))),
                    _ => Next::Usage(None),
                };
                (ExportPart::Keys(page), next)
            }
            Next::Usage(after) => {
                let page = store.list_usage(self.of, after, EXPORT_PAGE).await?;
                let next = match page.last() {
                    Some(last) if full(&page) => Next::Usage(Some(last.position())),
                    _ => Next::Audit(None),
                };
                (ExportPart::Usage(page), next)
            }
            Next::Audit(after) => {
                let q = AuditQuery {
                    involving_user: Some(self.user),
                    after,
                    limit: EXPORT_PAGE,
                    ..AuditQuery::default()
                };
                let page = store.list_audit(&q).await?;
                let next = match page.last() {
                    Some(last) if full(&page) => Next::Audit(Some(Cursor {
                        created_at: last.created_at,
                        id: last.id,
                    })),
                    _ => Next::Done,
                };
                (ExportPart::Audit(page), next)
            }
        };
        self.next = next;
        Ok(Some(part))
    }
}
