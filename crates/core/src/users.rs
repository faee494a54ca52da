//! Users: created by admins anywhere, by tenant admins in their own tenant, and from the CLI;
//! listed, read, changed (role, disabled), deleted and given new passwords likewise; and each
//! user's own sessions, API and console (listed, ended, signed out).
//!
//! A disabled user cannot sign in, its sessions end, and its keys answer `OWNER_DISABLED` at
//! verify (401 where they authenticate) on every node within the cache's coherence, until it is
//! enabled. Deleting a user revokes its keys in the same transaction; its row stays as history.
//! The last active admin can be neither disabled, demoted nor deleted (409 `last_admin`).

use keyward_domain::model::{normalize_email, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use keyward_domain::scope::KeywardRight;
use keyward_domain::AuditAction;
use keyward_domain::ConsoleSession;
use keyward_domain::{Actor, Role, User};
use keyward_store::{Cursor, EndSessions, StoreError, UserChanges, UserQuery};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use time::OffsetDateTime;
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
    if email.starts_with("deleted-") && email.ends_with("@keyward.invalid") {
        // Where deleted users' emails go (`keyward_store::rows::deleted_email`).
        return Err(Error::invalid_field(
            "email",
            "deleted-…@keyward.invalid is where deleted users' emails go",
        ));
    }
    check_password_rules("password", &req.password)?;
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
        disabled_at: None,
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

/// A password's length rules (12 to 1024 characters), for the field `field`.
fn check_password_rules(field: &'static str, password: &SecretString) -> Result<()> {
    let len = password.expose_secret().chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(Error::invalid_field(
            field,
            "must be at least 12 characters",
        ));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(Error::invalid_field(
            field,
            "must be at most 1024 characters",
        ));
    }
    Ok(())
}

/// Which users to list (see [`list`]).
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// An admin's choice of tenant; a tenant admin's list is of its own tenant regardless.
    pub tenant_id: Option<Uuid>,
    pub role: Option<Role>,
    /// `Some(true)`: disabled users only; `Some(false)`: active users only.
    pub disabled: Option<bool>,
    /// Users whose email starts with this text (compared in lower case).
    pub email_prefix: Option<String>,
}

/// Users, oldest first: an admin's of any tenant (`tenant_id`) or all; a tenant admin's of its
/// own tenant only (another tenant's list is empty). Members may not list users.
pub async fn list(
    state: &Keyward,
    caller: &Caller,
    filter: UserFilter,
    limit: u32,
    after: Option<Cursor>,
) -> Result<Page<User>> {
    let p = &caller.principal;
    p.require(KeywardRight::Read)?;
    let tenant_id = match p.role {
        Role::Admin => filter.tenant_id,
        Role::TenantAdmin if p.tenant_id.is_some() => {
            if filter
                .tenant_id
                .is_some_and(|asked| Some(asked) != p.tenant_id)
            {
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
    // Emails are stored lower-cased in ASCII (`normalize_email`); no email holds a control.
    let email_prefix = filter.email_prefix.map(|e| e.to_ascii_lowercase());
    if email_prefix
        .as_ref()
        .is_some_and(|e| e.chars().any(char::is_control))
    {
        return Err(Error::invalid_field(
            "email_prefix",
            "must not hold control characters",
        ));
    }
    if email_prefix
        .as_ref()
        .is_some_and(|e| e.chars().count() > keyward_domain::model::MAX_EMAIL_CHARS)
    {
        return Err(Error::invalid_field(
            "email_prefix",
            "must be at most 254 characters (an email's longest)",
        ));
    }
    let limit = crate::page::checked_size(limit)?;
    let query = UserQuery {
        tenant_id,
        role: filter.role,
        disabled: filter.disabled,
        email_prefix,
        after,
        limit: limit + 1,
    };
    let users = state.store.list_users(&query).await?;
    Ok(paginate(users, limit, |u| Cursor {
        created_at: u.created_at,
        id: u.id,
    }))
}

/// User `id` if the caller may see it (itself; its tenant's users for a tenant admin; anyone
/// for an admin), else `NotFound`: another's user is never confirmed to exist.
pub(crate) async fn visible(state: &Keyward, caller: &Caller, id: Uuid) -> Result<User> {
    state
        .store
        .get_user(id)
        .await?
        .filter(|u| caller.principal.sees_user(u))
        .ok_or(Error::NotFound("user"))
}

/// User `id`, if the caller may see it (itself; its tenant's users for a tenant admin;
/// anyone for an admin), else `NotFound`.
pub async fn get(state: &Keyward, caller: &Caller, id: Uuid) -> Result<User> {
    caller.principal.require(KeywardRight::Read)?;
    visible(state, caller, id).await
}

/// What a PATCH of a user changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// How many times a change is tried again when another change of the same user landed between
/// its read and its write (compare-and-set on `updated_at`).
const WRITE_ATTEMPTS: usize = 3;

/// What a change makes of the user as stored: the user to write, the audit entry's changes, and
/// the sessions to end; `None` when nothing changes.
type Change<'a> =
    dyn Fn(&User) -> Result<Option<(User, serde_json::Value, EndSessions)>> + Send + Sync + 'a;

/// Writes what `change` makes of user `id` as stored now (read, checked and written again when
/// another change landed meanwhile, so that none is lost or judged on a stale row).
async fn write_user(
    state: &Keyward,
    caller: &Caller,
    id: Uuid,
    action: AuditAction,
    change: &Change<'_>,
) -> Result<User> {
    for attempt in 1..=WRITE_ATTEMPTS {
        let stored = visible(state, caller, id).await?;
        let Some((mut user, changes, end)) = change(&stored)? else {
            return Ok(stored);
        };
        let now = keyward_domain::clock::truncate_millis(state.now());
        // Strictly later than the row read, so that the next write's compare-and-set sees it.
        user.updated_at = now.max(stored.updated_at + time::Duration::milliseconds(1));
        let audit = caller
            .actor()
            .entry(now, action, user.id)
            .tenant(user.tenant_id)
            .subject(user.id)
            .changes(changes);
        let written = state
            .store
            .update_user(&user, stored.updated_at, end, &audit)
            .await;
        if attempt < WRITE_ATTEMPTS && is_stale(&written) {
            continue;
        }
        forget(state, user.id, written).await?;
        return Ok(user);
    }
    unreachable!("the last attempt returns")
}

fn is_stale<T>(written: &std::result::Result<T, StoreError>) -> bool {
    matches!(written, Err(StoreError::Conflict(what)) if what == "stale")
}

/// Changes user `id`'s role and/or `disabled`, as one who manages it
/// ([`keyward_domain::Principal::may_manage_user`]), never to a role above the caller's own.
/// Disabling ends the user's sessions; disabling and enabling reach its keys on every node.
pub async fn update(state: &Keyward, caller: &Caller, id: Uuid, patch: UserPatch) -> Result<User> {
    let p = &caller.principal;
    if let Some(role) = patch.role {
        p.may_assign_role(role)?;
    }
    let now = keyward_domain::clock::truncate_millis(state.now());
    let change = |stored: &User| {
        p.may_manage_user(stored)?;
        if patch.role == Some(Role::TenantAdmin) && stored.tenant_id.is_none() {
            return Err(Error::invalid_field(
                "role",
                "a tenant_admin needs a tenant, and this user has none",
            ));
        }
        let mut user = stored.clone();
        if let Some(role) = patch.role {
            user.role = role;
        }
        match patch.disabled {
            Some(true) if !stored.is_disabled() => user.disabled_at = Some(now),
            Some(false) => user.disabled_at = None,
            _ => {}
        }
        if user == *stored {
            return Ok(None);
        }
        let end = if user.is_disabled() {
            EndSessions::All
        } else {
            EndSessions::None
        };
        let changes = json!({
            "role": (user.role != stored.role).then(|| user.role.as_str()),
            "disabled": (user.is_disabled() != stored.is_disabled()).then(|| user.is_disabled()),
        });
        Ok(Some((user, changes, end)))
    };
    write_user(state, caller, id, AuditAction::UserUpdate, &change).await
}

/// Deletes user `id` (as one who manages it): its keys are revoked and its sessions ended in
/// the same transaction; its row stays as history, its email free for a new user. Returns the
/// ids of the keys revoked.
pub async fn delete(state: &Keyward, caller: &Caller, id: Uuid) -> Result<Vec<Uuid>> {
    for attempt in 1..=WRITE_ATTEMPTS {
        let stored = visible(state, caller, id).await?;
        caller.principal.may_manage_user(&stored)?;
        let now = keyward_domain::clock::truncate_millis(state.now());
        let audit = caller
            .actor()
            .entry(now, AuditAction::UserDelete, stored.id)
            .tenant(stored.tenant_id)
            .subject(stored.id)
            .changes(json!({"email": stored.email, "role": stored.role.as_str()}));
        let deleted = state
            .store
            .delete_user(stored.id, stored.updated_at, now, &audit)
            .await;
        if attempt < WRITE_ATTEMPTS && is_stale(&deleted) {
            continue;
        }
        let revoked = deleted
            .as_ref()
            .map(|c| c.revoked.clone())
            .unwrap_or_default();
        forget(state, stored.id, deleted).await?;
        return Ok(revoked);
    }
    unreachable!("the last attempt returns")
}

/// Applies a stored change of user `id` to this node's caches before the answer (other nodes
/// hear it through the change feed), and words the store's refusals.
async fn forget(
    state: &Keyward,
    id: Uuid,
    changes: std::result::Result<UserChanges, StoreError>,
) -> Result<()> {
    state.cache.invalidate_user(id);
    let changes = match changes {
        Ok(changes) => changes,
        Err(StoreError::NotFound) => return Err(Error::NotFound("user")),
        Err(StoreError::Conflict(what)) if what == "last_admin" => {
            return Err(Error::Conflict {
                code: "last_admin",
                message: "this is the last active admin: make another admin first".into(),
            })
        }
        Err(StoreError::Conflict(what)) if what == "stale" => {
            return Err(Error::Conflict {
                code: "user_changed",
                message: "the user kept changing meanwhile; try again".into(),
            })
        }
        Err(e) => {
            // The outcome is unknown: forget everything cached rather than guess.
            state.cache.clear();
            return Err(e.into());
        }
    };
    for digest in &changes.keys {
        state.cache.invalidate(digest);
    }
    for session in &changes.sessions {
        state.cache.invalidate_session(*session);
    }
    Ok(())
}

/// Sets user `id`'s password as one who manages it; every session of the user ends.
pub async fn set_password(
    state: &Keyward,
    caller: &Caller,
    id: Uuid,
    new_password: SecretString,
) -> Result<()> {
    let stored = visible(state, caller, id).await?;
    caller.principal.may_manage_user(&stored)?;
    check_password_rules("new_password", &new_password)?;
    let hash = state.passwords.hash(new_password).await?;
    let change = |stored: &User| {
        caller.principal.may_manage_user(stored)?;
        let user = User {
            password_hash: hash.clone(),
            ..stored.clone()
        };
        Ok(Some((user, json!({}), EndSessions::All)))
    };
    write_user(state, caller, id, AuditAction::UserSetPassword, &change).await?;
    Ok(())
}

/// Changes the caller's own password, given its current one; the caller's other sessions end
/// (the one it calls with, if a session, lives on). A wrong `current_password` is a 403 and
/// counts against the sign-in throttle like a failed sign-in.
pub async fn change_own_password(
    state: &Keyward,
    caller: &Caller,
    current_password: SecretString,
    new_password: SecretString,
) -> Result<()> {
    let p = &caller.principal;
    p.require(KeywardRight::Write)?;
    check_password_rules("new_password", &new_password)?;
    if current_password.expose_secret().chars().count() > MAX_PASSWORD_LEN {
        return Err(Error::invalid_field(
            "current_password",
            "must be at most 1024 characters",
        ));
    }
    let user = state
        .store
        .get_user(p.user_id)
        .await?
        .ok_or(Error::NotFound("user"))?;
    let proven = crate::login::check_password(state, &caller.meta, &user.email, current_password)
        .await
        .map_err(|e| match e {
            Error::Unauthenticated(_) => {
                Error::Forbidden("current_password: not this user's password".into())
            }
            other => other,
        })?;
    let end = match p.credential {
        keyward_domain::Credential::Session { id: Some(current) } => EndSessions::AllBut(current),
        _ => EndSessions::All,
    };
    let hash = state.passwords.hash(new_password).await?;
    let change = |stored: &User| {
        // The password proven is the one stored: a change meanwhile asks for it again.
        if stored.password_hash != proven.password_hash {
            return Err(Error::Forbidden(
                "current_password: the password changed meanwhile".into(),
            ));
        }
        let user = User {
            password_hash: hash.clone(),
            ..stored.clone()
        };
        Ok(Some((user, json!({}), end)))
    };
    write_user(
        state,
        caller,
        p.user_id,
        AuditAction::UserSetPassword,
        &change,
    )
    .await?;
    Ok(())
}

/// Which sign-in a session comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A login of the API: its JWT's `jti` is the session's id.
    Api,
    /// A sign-in of the web console (a cookie).
    Console,
}

impl SessionKind {
    /// As the session list and the audit log name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Console => "console",
        }
    }
}

/// One of the caller's live sessions, as listed.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// An API session's id (its JWT's `jti`), or a console session's [`ConsoleSession::id`].
    pub id: Uuid,
    pub kind: SessionKind,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// A console session's last request, to [`crate::console::LAST_SEEN_RESOLUTION`] (it
    /// also ends when idle for longer than the console's idle timeout).
    pub last_seen_at: Option<OffsetDateTime>,
    /// The address that signed in (API sessions).
    pub source_ip: Option<String>,
    /// The session the caller calls with.
    pub current: bool,
}

/// The caller's live sessions, API and console, newest first; `console_current` is the console
/// session the caller is (a console page's), marked `current` like an API caller's own.
pub async fn sessions(
    state: &Keyward,
    caller: &Caller,
    console_current: Option<Uuid>,
) -> Result<Vec<SessionView>> {
    let p = &caller.principal;
    p.require(KeywardRight::Read)?;
    let now = state.now();
    let current = current_session(caller);
    let api = state
        .store
        .list_api_sessions(p.user_id)
        .await?
        .into_iter()
        .filter(|s| s.expires_at > now)
        .map(|s| SessionView {
            id: s.id,
            kind: SessionKind::Api,
            created_at: s.created_at,
            expires_at: s.expires_at,
            last_seen_at: None,
            source_ip: s.source_ip,
            current: Some(s.id) == current,
        });
    let console = live_console_sessions(state, p.user_id, now)
        .await?
        .into_iter()
        .map(|s| SessionView {
            id: s.id(),
            kind: SessionKind::Console,
            created_at: s.created_at,
            expires_at: s.expires_at,
            last_seen_at: Some(s.last_seen_at),
            source_ip: None,
            current: Some(s.id()) == console_current,
        });
    let mut all: Vec<SessionView> = api.chain(console).collect();
    all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    Ok(all)
}

async fn live_console_sessions(
    state: &Keyward,
    user_id: Uuid,
    now: OffsetDateTime,
) -> Result<Vec<ConsoleSession>> {
    Ok(state
        .store
        .list_console_sessions(user_id)
        .await?
        .into_iter()
        .filter(|s| crate::console::is_live(state, s, now))
        .collect())
}

fn current_session(caller: &Caller) -> Option<Uuid> {
    match caller.principal.credential {
        keyward_domain::Credential::Session { id } => id,
        keyward_domain::Credential::ApiKey { .. } => None,
    }
}

/// Ends the caller's session `id`, API or console (another's is `NotFound`): an API session's
/// token is refused on every node from the cache's coherence on, a console session's cookie at
/// once (console sessions are read from storage on every request).
pub async fn end_session(state: &Keyward, caller: &Caller, id: Uuid) -> Result<()> {
    let p = &caller.principal;
    p.require(KeywardRight::Write)?;
    let now = state.now();
    // The caller's console sessions first (one indexed read): an API session's ending is a
    // write and a cache invalidation, wasted on a console session's id.
    let console = live_console_sessions(state, p.user_id, now)
        .await?
        .into_iter()
        .find(|s| s.id() == id);
    let Some(console) = console else {
        return end(state, caller, id, AuditAction::SessionEnd).await;
    };
    let audit = session_audit(
        caller,
        AuditAction::SessionEnd,
        id,
        SessionKind::Console,
        now,
    );
    session_ended(
        state
            .store
            .delete_session(&console.digest, Some(&audit))
            .await,
    )
}

/// The audit entry of the caller ending its session `id` of `kind`.
fn session_audit(
    caller: &Caller,
    action: AuditAction,
    id: Uuid,
    kind: SessionKind,
    now: OffsetDateTime,
) -> keyward_domain::AuditEntry {
    let p = &caller.principal;
    caller
        .actor()
        .entry(now, action, p.user_id)
        .tenant(p.tenant_id)
        .subject(p.user_id)
        .changes(json!({"session_id": id, "kind": kind.as_str()}))
}

/// A store's answer to ending a session: none of the caller's is `NotFound("session")`.
fn session_ended(ended: Result<(), StoreError>) -> Result<()> {
    ended.map_err(|e| match e {
        StoreError::NotFound => Error::NotFound("session"),
        other => other.into(),
    })
}

/// Signs out: ends the session the caller calls with. Only a session token can sign out
/// (an API key is revoked instead).
pub async fn logout(state: &Keyward, caller: &Caller) -> Result<()> {
    let id = current_session(caller).ok_or_else(|| Error::Invalid {
        code: "not_a_session",
        message: "only a session token (a login's access_token) can sign out; revoke a key instead"
            .into(),
    })?;
    end(state, caller, id, AuditAction::AuthLogout).await
}

async fn end(state: &Keyward, caller: &Caller, id: Uuid, action: AuditAction) -> Result<()> {
    let audit = session_audit(caller, action, id, SessionKind::Api, state.now());
    let ended = state
        .store
        .end_api_session(id, caller.principal.user_id, &audit)
        .await;
    state.cache.invalidate_session(id);
    session_ended(ended)
}
