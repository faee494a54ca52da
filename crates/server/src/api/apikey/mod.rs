//! The form-encoded `/api/apikey` surface (its clients send `application/x-www-form-urlencoded`;
//! JSON bodies are accepted too). Wire shapes and its `{code, message}` errors only; every
//! operation is a `service` call on the caller's own keys.
//!
//! Where the original had a bug keyward differs on purpose: an `expires` it does not know is a
//! 400 listing what is accepted, never a silent key that does not expire.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keyward_domain::compat::ExpiryPhrase;
use keyward_domain::ApiKey;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::dialect::{BodyInDialect, Dialect, DialectResult, InDialect};
use super::ShownOnce;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{FormOrJson, NoQuery, StringPath};
use keyward_core::keys::{self as lifecycle, KeyExpiry, KeyPatch, KeyTenant, NewKey, Reach};

/// `{"code": "NOT_FOUND", "message": "..."}`: the native code in upper case.
pub struct FormApi;

impl Dialect for FormApi {
    fn error_body(error: &ApiError) -> serde_json::Value {
        json!({"code": error.code().to_ascii_uppercase(), "message": error.message()})
    }
}

type FormResult<T> = DialectResult<FormApi, T>;
type Who = InDialect<FormApi, Caller>;
type KeyId = InDialect<FormApi, StringPath>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/apikey", get(list).post(create))
        .route(
            "/api/apikey/{id}",
            get(get_one).patch(update).delete(remove),
        )
}

/// The surface's key document. `hash` is the hex SHA-256 of the key (what keyward stores);
/// `__v` is always 0.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FormKey {
    label: Option<String>,
    /// True exactly when the key never expires (`expireAt` is then null).
    is_never: bool,
    #[serde(rename = "_id")]
    id: Uuid,
    user: Uuid,
    hash: String,
    expire_at: Option<String>,
    created_at: String,
    updated_at: String,
    #[serde(rename = "__v")]
    version: u32,
}

impl From<ApiKey> for FormKey {
    fn from(k: ApiKey) -> Self {
        Self {
            label: k.name,
            is_never: k.expires_at.is_none(),
            id: k.id,
            user: k.owner_id,
            hash: k.digest.to_hex(),
            expire_at: k.expires_at.map(lifecycle::rfc3339),
            created_at: lifecycle::rfc3339(k.created_at),
            updated_at: lifecycle::rfc3339(k.updated_at),
            version: 0,
        }
    }
}

/// An id that is not a UUID names no key: 404, like an unknown one.
fn key_id(raw: &str) -> Result<Uuid, ApiError> {
    crate::extract::standard_uuid(raw).ok_or(ApiError::NotFound("api key"))
}

async fn list(
    State(state): State<AppState>,
    _: InDialect<FormApi, NoQuery>,
    InDialect(caller, ..): Who,
) -> FormResult<Response> {
    let keys = lifecycle::list_live_own(&state, &caller).await?;
    let total = keys.len();
    let api_keys: Vec<FormKey> = keys.into_iter().map(FormKey::from).collect();
    Ok(Json(json!({"apiKeys": api_keys, "total": total})).into_response())
}

async fn get_one(
    State(state): State<AppState>,
    _: InDialect<FormApi, NoQuery>,
    InDialect(caller, ..): Who,
    InDialect(StringPath(id), ..): KeyId,
) -> FormResult<Response> {
    let key = lifecycle::get_live(&state, &caller, Reach::Own, key_id(&id)?).await?;
    Ok(Json(json!({"apiKey": FormKey::from(key)})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateInput {
    label: Option<String>,
    expires: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    _: InDialect<FormApi, NoQuery>,
    InDialect(caller, ..): Who,
    BodyInDialect(FormOrJson(input), ..): BodyInDialect<FormApi, FormOrJson<CreateInput>>,
) -> FormResult<Response> {
    let phrase = input
        .expires
        .as_deref()
        .ok_or_else(|| {
            ApiError::invalid_field(
                "expires",
                "is required: One Day, One Week, One Month, One Year or Never",
            )
        })
        .and_then(|e| ExpiryPhrase::parse(e).map_err(|e| ApiError::invalid_field("expires", e)))?;
    let expiry = phrase
        .expires_at(state.now())
        .map_or(KeyExpiry::Never, KeyExpiry::At);
    let req = NewKey {
        allowed_ips: Vec::new(),
        rate_limit_scope: None,
        tenant: KeyTenant::CallersOwn,
        name: input.label,
        scopes: lifecycle::owner_scopes(),
        metadata: None,
        rate_limit_max: None,
        rate_limit_window: None,
        remaining: None,
        refill: None,
        expiry,
    };
    let issued = lifecycle::create(&state, &caller, req).await?;
    let body = Added {
        code: "ADDED",
        message: "Added new API Key",
        api_key: issued.plaintext.expose().into(),
    };
    Ok(ShownOnce::created(format!("/api/apikey/{}", issued.key.id), body).into_response())
}

/// The answer to an added key, with its plaintext (shown this once).
#[derive(Debug, Serialize)]
struct Added {
    code: &'static str,
    message: &'static str,
    #[serde(serialize_with = "super::v1::expose_secret")]
    api_key: secrecy::SecretString,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateInput {
    label: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    _: InDialect<FormApi, NoQuery>,
    InDialect(caller, ..): Who,
    InDialect(StringPath(id), ..): KeyId,
    BodyInDialect(FormOrJson(input), ..): BodyInDialect<FormApi, FormOrJson<UpdateInput>>,
) -> FormResult<Response> {
    let id = key_id(&id)?;
    let label = input
        .label
        .ok_or_else(|| ApiError::invalid_field("label", "is required"))?;
    let patch = KeyPatch {
        name: keyward_domain::Patch::Set(label),
        ..KeyPatch::default()
    };
    lifecycle::update(&state, &caller, Reach::Own, id, patch).await?;
    Ok(Json(json!({"code": "UPDATED", "message": "APIKey has been updated"})).into_response())
}

async fn remove(
    State(state): State<AppState>,
    _: InDialect<FormApi, NoQuery>,
    InDialect(caller, ..): Who,
    InDialect(StringPath(id), ..): KeyId,
) -> FormResult<Response> {
    lifecycle::revoke(&state, &caller, Reach::Own, key_id(&id)?).await?;
    Ok(Json(json!({"code": "REMOVED", "message": "APIKey has been removed"})).into_response())
}
