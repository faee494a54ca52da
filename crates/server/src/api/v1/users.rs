//! `/api/v1/users`.

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use keyward_domain::{Role, User};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::created;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, NoQuery};
use keyward_core::users::{self, NewUser};

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
        }
    }
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
    let role = match input.role.as_deref() {
        None => Role::Member,
        Some(r) => Role::parse(r)
            .ok_or_else(|| ApiError::invalid_field("role", "one of admin, tenant_admin, member"))?,
    };
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
