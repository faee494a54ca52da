//! Reading the audit log, each caller seeing what its role covers.

use keyward_domain::scope::KeywardRight;
use keyward_domain::text;
use keyward_domain::{AuditEntry, Role};
use keyward_store::{AuditQuery, Cursor};

use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::page::{paginate, Page};
use crate::Keyward;

pub async fn list(
    state: &Keyward,
    caller: &Caller,
    mut query: AuditQuery,
) -> Result<Page<AuditEntry>> {
    let p = &caller.principal;
    p.require(KeywardRight::Read)?;
    for (field, value) in [
        ("resource_type", &query.resource_type),
        ("resource_id", &query.resource_id),
        ("action", &query.action),
        ("actor_id", &query.actor_id),
    ] {
        if let Some(value) = value {
            text::FILTER
                .check(value)
                .map_err(|e| Error::invalid_field(field, e))?;
        }
    }
    match p.role {
        Role::Admin => {}
        Role::TenantAdmin if p.tenant_id.is_some() => {
            if query.tenant_id.is_some() && query.tenant_id != p.tenant_id {
                return Ok(Page {
                    items: vec![],
                    next: None,
                });
            }
            query.tenant_id = p.tenant_id;
        }
        _ => query.involving_user = Some(p.user_id),
    }
    let limit = crate::page::checked_size(query.limit)?;
    query.limit += 1;
    let entries = state.store.list_audit(&query).await?;
    Ok(paginate(entries, limit, |e| Cursor {
        created_at: e.created_at,
        id: e.id,
    }))
}
