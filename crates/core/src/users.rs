//! Users: created by admins anywhere, by tenant admins in their own tenant, and from the CLI;
//! listed likewise.

use keyward_domain::model::{normalize_email, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use keyward_domain::scope::KeywardRight;
use keyward_domain::AuditAction;
use keyward_domain::{Actor, Role, User};
use keyward_store::{Cursor, StoreError};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::page::{paginate, Page};
use crate::Keyward;

/// A user to create; its password prints as redacted.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub password: SecretString,
    pub role: Role,
    pub tenant_id: Option<Uuid>,
}

/// Creates a user on behalf of `actor` once rights are settled (the CLI has them all).
pub async fn create_as(state: &Keyward, actor: &Actor, req: NewUser) -> Result<User> {
    let email = normalize_email(&req.email)
        .ok_or_else(|| Error::invalid_field("email", "not an email address"))?;
    let len = req.password.expose_secret().chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(Error::invalid_field(
            "password",
            "must be at least 12 characters",
        ));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(Error::invalid_field(
            "password",
            "must be at most 1024 characters",
        ));
    }
    if req.role == Role::TenantAdmin && req.tenant_id.is_none() {
        return Err(Error::invalid_field(
            "tenant_id",
            "is required for a tenant_admin",
        ));
    }
    if let Some(t) = req.tenant_id {
        state
            .store
            .get_tenant(t)
            .await?
            .ok_or(Error::NotFound("tenant"))?;
    }
    let password_hash = state.passwords.hash(req.password).await?;
    let now = keyward_domain::clock::truncate_millis(state.now());
    let user = User {
        id: Uuid::now_v7(),
        email,
        password_hash,
        role: req.role,
        tenant_id: req.tenant_id,
        created_at: now,
        updated_at: now,
    };
    let audit = actor
        .entry(now, AuditAction::UserCreate, user.id)
        .tenant(user.tenant_id)
        .subject(user.id)
        .changes(json!({"email": user.email, "role": user.role.as_str()}));
    state
        .store
        .create_user(&user, &audit)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => Error::Conflict {
                code: "email_taken",
                message: "email: a user with this email exists".into(),
            },
            other => other.into(),
        })?;
    Ok(user)
}

pub async fn create(state: &Keyward, caller: &Caller, mut req: NewUser) -> Result<User> {
    let p = &caller.principal;
    if p.role == Role::TenantAdmin && req.tenant_id.is_none() {
        req.tenant_id = p.tenant_id;
    }
    p.may_create_user(req.role, req.tenant_id)?;
    create_as(state, &caller.actor(), req).await
}

pub async fn me(state: &Keyward, caller: &Caller) -> Result<User> {
    caller
        .principal
        .require(keyward_domain::KeywardRight::Read)?;
    state
        .store
        .get_user(caller.principal.user_id)
        .await?
        .ok_or(Error::NotFound("user"))
}

/// Users, oldest first: an admin's of any tenant (`tenant_id`) or all; a tenant admin's of its
/// own tenant only (another tenant's list is empty). Members may not list users.
pub async fn list(
    state: &Keyward,
    caller: &Caller,
    tenant_id: Option<Uuid>,
    limit: u32,
    after: Option<Cursor>,
) -> Result<Page<User>> {
    let p = &caller.principal;
    p.require(KeywardRight::Read)?;
    let tenant_id = match p.role {
        Role::Admin => tenant_id,
        Role::TenantAdmin if p.tenant_id.is_some() => {
            if tenant_id.is_some_and(|asked| Some(asked) != p.tenant_id) {
                return Ok(Page {
                    items: vec![],
                    next: None,
                });
            }
            p.tenant_id
        }
        _ => {
            return Err(Error::Forbidden(
                "listing users needs the admin or tenant_admin role".into(),
            ))
        }
    };
    let limit = crate::page::checked_size(limit)?;
    let users = state.store.list_users(tenant_id, after, limit + 1).await?;
    Ok(paginate(users, limit, |u| Cursor {
        created_at: u.created_at,
        id: u.id,
    }))
}
