//! `/api/v1/users`: users and their lifecycle, and each user's own password and sessions.
//! Wire shapes only; the rules live in `keyward_core::users`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use keyward_domain::{Role, User};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{created, page_response};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{optional_uuid, IdPath, JsonBody, NoQuery, QueryParams};
use keyward_core::page::page_params;
use keyward_core::users::{self, NewUser, SessionKind, SessionView, UserFilter, UserPatch};

/// A user; never its password hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    /// `admin`, `tenant_admin` or `member`.
    pub role: &'static str,
    pub tenant_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// A disabled user cannot sign in and its keys answer `OWNER_DISABLED` at verify.
    pub disabled: bool,
    /// Since when the user is disabled; null while active.
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            role: u.role.as_str(),
            tenant_id: u.tenant_id,
            created_at: u.created_at,
            updated_at: u.updated_at,
            disabled: u.disabled_at.is_some(),
            disabled_at: u.disabled_at,
        }
    }
}

fn parse_role(role: &str) -> ApiResult<Role> {
    Role::parse(role)
        .ok_or_else(|| ApiError::invalid_field("role", "one of admin, tenant_admin, member"))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserInput {
    pub email: String,
    /// At least 12 characters.
    #[schema(value_type = String, min_length = 12, max_length = 1024, format = Password)]
    pub password: secrecy::SecretString,
    /// `admin`, `tenant_admin` or `member` (default).
    pub role: Option<String>,
    /// Defaults to the calling tenant admin's tenant.
    #[serde(default, deserialize_with = "crate::extract::optional_uuid")]
    pub tenant_id: Option<Uuid>,
}

/// Create a user: admins anywhere, tenant admins in their own tenant.
#[utoipa::path(post, path = "/api/v1/users", tag = "Users", operation_id = "createUser", request_body = CreateUserInput,
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 400, description = "Validation error", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "Not allowed to create this user", body = super::Error),
        (status = 404, description = "Tenant not found", body = super::Error),
        (status = 409, description = "Email taken", body = super::Error),
    ))]
pub async fn create(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    JsonBody(input): JsonBody<CreateUserInput>,
) -> ApiResult<Response> {
    let role = input.role.as_deref().map(parse_role).transpose()?;
    let role = role.unwrap_or(Role::Member);
    let req = NewUser {
        email: input.email,
        password: input.password,
        role,
        tenant_id: input.tenant_id,
    };
    let user = users::create(&state, &caller, req).await?;
    Ok(created(
        format!("/api/v1/users/{}", user.id),
        UserView::from(user),
    ))
}

/// The calling user.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "Users", operation_id = "getCurrentUser",
    responses(
        (status = 200, description = "The caller", body = UserView),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:read", body = super::Error),
    ))]
pub async fn me(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
) -> ApiResult<Json<UserView>> {
    Ok(Json(users::me(&state, &caller).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListUsersParams {
    /// An admin's filter by tenant; a tenant admin lists its own tenant's users only.
    #[serde(default, deserialize_with = "optional_uuid")]
    pub tenant_id: Option<Uuid>,
    /// `admin`, `tenant_admin` or `member`.
    pub role: Option<String>,
    /// `active` or `disabled`.
    pub status: Option<String>,
    /// Users whose email starts with this text (any case).
    pub email_prefix: Option<String>,
    /// Page size, 1..1000 (default 100).
    pub limit: Option<u32>,
    /// The `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List users, oldest first: admins all (or a tenant's), tenant admins their tenant's.
#[utoipa::path(get, path = "/api/v1/users", tag = "Users", operation_id = "listUsers", params(ListUsersParams),
    responses(
        (status = 200, description = "Users", body = Vec<UserView>, headers(("X-Next-Cursor" = String))),
        (status = 400, description = "Bad query parameter", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "A member, or the credential lacks keyward:read", body = super::Error),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListUsersParams>,
) -> ApiResult<Response> {
    let (limit, after) = page_params(q.limit, q.cursor.as_deref())?;
    let disabled = match q.status.as_deref() {
        None => None,
        Some("active") => Some(false),
        Some("disabled") => Some(true),
        Some(_) => return Err(ApiError::invalid_field("status", "one of active, disabled")),
    };
    let filter = UserFilter {
        tenant_id: q.tenant_id,
        role: q.role.as_deref().map(parse_role).transpose()?,
        disabled,
        email_prefix: q.email_prefix,
    };
    let page = users::list(&state, &caller, filter, limit, after).await?;
    Ok(page_response(page, UserView::from))
}

/// A user the caller may see: itself, its tenant's users (tenant admins), anyone (admins).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "Users", operation_id = "getUser",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 400, description = "id is not a UUID", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:read", body = super::Error),
        (status = 404, description = "No such user the caller may see", body = super::Error),
    ))]
pub async fn get(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Json<UserView>> {
    Ok(Json(users::get(&state, &caller, id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserInput {
    /// `admin`, `tenant_admin` or `member`; never above the caller's own role.
    pub role: Option<String>,
    /// `true` disables the user (its sessions end, its keys stop verifying, on every node
    /// within a second); `false` enables it again.
    pub disabled: Option<bool>,
}

/// Change a user's role or disable/enable it: admins anyone, tenant admins their tenant's
/// members. The last active admin cannot be disabled or demoted.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "Users", operation_id = "updateUser",
    params(("id" = Uuid, Path)), request_body = UpdateUserInput,
    responses(
        (status = 200, description = "The user now", body = UserView),
        (status = 400, description = "Validation error", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "Not allowed to manage this user, a role above the caller's, or the credential lacks keyward:admin", body = super::Error),
        (status = 404, description = "No such user the caller may see", body = super::Error),
        (status = 409, description = "The last active admin (code last_admin)", body = super::Error),
    ))]
pub async fn update(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<UpdateUserInput>,
) -> ApiResult<Json<UserView>> {
    let patch = UserPatch {
        role: input.role.as_deref().map(parse_role).transpose()?,
        disabled: input.disabled,
    };
    Ok(Json(
        users::update(&state, &caller, id, patch).await?.into(),
    ))
}

/// Delete a user: its keys are revoked and its sessions ended at once; its audit history stays
/// readable and its email may be used again. The last active admin cannot be deleted.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "Users", operation_id = "deleteUser",
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "id is not a UUID", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "Not allowed to manage this user, or the credential lacks keyward:admin", body = super::Error),
        (status = 404, description = "No such user the caller may see", body = super::Error),
        (status = 409, description = "The last active admin (code last_admin)", body = super::Error),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    users::delete(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPasswordInput {
    #[schema(value_type = String, min_length = 12, max_length = 1024, format = Password)]
    pub new_password: secrecy::SecretString,
}

/// Set a new password for a user the caller manages; all the user's sessions end.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "Users", operation_id = "setUserPassword",
    params(("id" = Uuid, Path)), request_body = SetPasswordInput,
    responses(
        (status = 204, description = "Password set"),
        (status = 400, description = "Validation error", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "Not allowed to manage this user, or the credential lacks keyward:admin", body = super::Error),
        (status = 404, description = "No such user the caller may see", body = super::Error),
    ))]
pub async fn set_password(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<SetPasswordInput>,
) -> ApiResult<StatusCode> {
    users::set_password(&state, &caller, id, input.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordInput {
    #[schema(value_type = String, min_length = 1, max_length = 1024, format = Password)]
    pub current_password: secrecy::SecretString,
    #[schema(value_type = String, min_length = 12, max_length = 1024, format = Password)]
    pub new_password: secrecy::SecretString,
}

/// Change the caller's own password. The caller's other sessions end; the one it calls with
/// lives on.
#[utoipa::path(post, path = "/api/v1/users/me/password", tag = "Users", operation_id = "changeMyPassword",
    request_body = ChangePasswordInput,
    responses(
        (status = 204, description = "Password changed"),
        (status = 400, description = "Validation error", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "current_password is wrong, or the credential lacks keyward:write", body = super::Error),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = super::Error),
    ))]
pub async fn change_my_password(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    JsonBody(input): JsonBody<ChangePasswordInput>,
) -> ApiResult<StatusCode> {
    users::change_own_password(&state, &caller, input.current_password, input.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `api` (a login's token) or `console` (a sign-in of the web console).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionKindOut {
    Api,
    Console,
}

/// A signed-in session: an API login's or the web console's (their tokens are never shown).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    /// An API session's id (its token's `jti`), or a console session's: a version 8 UUID made
    /// of the first 16 bytes of the SHA-256 digest of its cookie's token.
    pub id: Uuid,
    pub kind: SessionKindOut,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// A console session's last request, to the minute (it ends when idle for longer than the
    /// console's idle timeout); absent for API sessions.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub last_seen_at: Option<OffsetDateTime>,
    /// The address that signed in (API sessions).
    pub source_ip: Option<String>,
    /// The session this request was made with.
    pub current: bool,
}

impl From<SessionView> for SessionOut {
    fn from(v: SessionView) -> Self {
        Self {
            id: v.id,
            kind: match v.kind {
                SessionKind::Api => SessionKindOut::Api,
                SessionKind::Console => SessionKindOut::Console,
            },
            created_at: v.created_at,
            expires_at: v.expires_at,
            last_seen_at: v.last_seen_at,
            source_ip: v.source_ip,
            current: v.current,
        }
    }
}

/// The caller's live sessions, API and console, newest first.
#[utoipa::path(get, path = "/api/v1/users/me/sessions", tag = "Users", operation_id = "listMySessions",
    responses(
        (status = 200, description = "Sessions", body = Vec<SessionOut>),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:read", body = super::Error),
    ))]
pub async fn sessions(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
) -> ApiResult<Json<Vec<SessionOut>>> {
    // The API is never called with a console session.
    let sessions = users::sessions(&state, &caller, None).await?;
    Ok(Json(sessions.into_iter().map(SessionOut::from).collect()))
}

/// End one of the caller's sessions, API or console: an API token is refused on every node
/// within a second, a console cookie at once.
#[utoipa::path(delete, path = "/api/v1/users/me/sessions/{id}", tag = "Users", operation_id = "endMySession",
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Ended"),
        (status = 400, description = "id is not a UUID", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:write", body = super::Error),
        (status = 404, description = "No such session of the caller", body = super::Error),
    ))]
pub async fn end_session(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    users::end_session(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
