//! `POST /api/v1/auth/login`.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::RequestMeta;
use crate::error::ApiResult;
use crate::extract::JsonBody;
use crate::service::login;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

/// Log in with email and password; returns a JWT for `Authorization: Bearer`.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "Auth", request_body = LoginInput,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "Malformed request", body = super::Error),
        (status = 401, description = "Wrong email or password (one answer for both)", body = super::Error),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = super::Error),
    ), security(()))]
pub async fn login(
    State(state): State<AppState>,
    meta: RequestMeta,
    JsonBody(input): JsonBody<LoginInput>,
) -> ApiResult<Json<LoginResponse>> {
    let session = login::login(&state, &meta, &input.email, input.password).await?;
    Ok(Json(LoginResponse {
        access_token: session.access_token,
        token_type: "Bearer",
        expires_in: session.expires_in,
    }))
}
