//! `POST /api/v1/auth/login` and `POST /api/v1/auth/logout`.

use axum::extract::State;
use axum::Json;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::Origin;
use crate::error::ApiResult;
use crate::extract::{JsonBody, NoQuery};
use keyward_core::login;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    pub email: String,
    #[schema(value_type = String, min_length = 1, max_length = 1024, format = Password)]
    pub password: SecretString,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    #[serde(serialize_with = "super::expose_secret")]
    #[schema(value_type = String)]
    pub access_token: SecretString,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

/// Log in with email and password; returns a JWT for `Authorization: Bearer`.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "Auth", operation_id = "login", request_body = LoginInput,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "Malformed request", body = super::Error),
        (status = 401, description = "Wrong email or password (one answer for both)", body = super::Error),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = super::Error),
    ), security(()))]
pub async fn login(
    State(state): State<AppState>,
    _: NoQuery,
    Origin(meta): Origin,
    JsonBody(input): JsonBody<LoginInput>,
) -> ApiResult<Json<LoginResponse>> {
    let session = login::login(&state, &meta, &input.email, input.password).await?;
    Ok(Json(LoginResponse {
        access_token: session.access_token,
        token_type: "Bearer",
        expires_in: session.expires_in,
    }))
}

/// Sign out: the session whose token this request carries ends, and the token is refused on
/// every node within a second.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "Auth", operation_id = "logout",
    // A session's token only: an API key is refused (400), it is revoked instead.
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 400, description = "The credential is an API key, not a session token", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    _: NoQuery,
    caller: crate::auth::Caller,
) -> ApiResult<axum::http::StatusCode> {
    keyward_core::users::logout(&state, &caller).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_prints_without_its_token() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let response = LoginResponse {
            access_token: token.into(),
            token_type: "Bearer",
            expires_in: 3600,
        };
        assert!(!format!("{response:?}").contains(token));
        let wire = serde_json::to_string(&response).unwrap();
        assert!(wire.contains(token), "the body carries it: {wire}");
    }
}
