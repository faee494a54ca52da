//! `/api/v1/webhooks`: endpoints that receive keyward's events, their deliveries, retries and
//! test events. Admins and tenant admins only; for anyone else they do not exist (404).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyward_core::page::page_params;
use keyward_core::webhooks::{self, NewWebhook, WebhookPatch};
use keyward_domain::{Delivery, Patch, WebhookEndpoint};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::page_response;
use crate::api::ShownOnce;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{
    optional_uuid, IdPath, IdsPath, JsonBody, NoQuery, OptionalJsonBody, QueryParams,
};

/// A webhook endpoint. Its signing secret is shown only when made or rolled.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: Uuid,
    /// null: installation-wide (hears every tenant's events).
    pub tenant_id: Option<Uuid>,
    pub url: String,
    /// The event types it hears; null for all.
    pub events: Option<Vec<&'static str>>,
    pub enabled: bool,
    pub description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&WebhookEndpoint> for WebhookView {
    fn from(w: &WebhookEndpoint) -> Self {
        Self {
            id: w.id,
            tenant_id: w.tenant_id,
            url: w.url.clone(),
            events: w.events.names(),
            enabled: w.enabled,
            description: w.description.clone(),
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// An endpoint with its signing secret: the one time it is shown.
#[derive(Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_` and base64 of 32 bytes, as the Standard Webhooks specification writes it: give
    /// it to the receiver's Standard Webhooks library. Shown once.
    pub secret: String,
}

impl std::fmt::Debug for WebhookWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookWithSecret")
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

impl From<&WebhookEndpoint> for WebhookWithSecret {
    fn from(w: &WebhookEndpoint) -> Self {
        Self {
            webhook: WebhookView::from(w),
            secret: w.secret.expose().to_owned(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookInput {
    /// Tenant admins: their own tenant (may be left out). Admins: a tenant, or left out for an
    /// installation-wide endpoint.
    #[serde(default, deserialize_with = "optional_uuid")]
    pub tenant_id: Option<Uuid>,
    /// Absolute http(s) URL, at most 2048 bytes, with no user name or password, that resolves to
    /// no loopback, private, link-local or metadata address.
    pub url: String,
    /// Event types to send (e.g. `key.revoked`); left out or null for all.
    pub events: Option<Vec<String>>,
    /// Default true.
    pub enabled: Option<bool>,
    /// At most 200 characters.
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookInput {
    pub url: Option<String>,
    /// null: every event.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub events: Patch<Vec<String>>,
    pub enabled: Option<bool>,
    /// null clears it.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Patch<String>,
    /// true: replace the signing secret; the answer shows the new one, once.
    pub roll_secret: Option<bool>,
}

/// One event's delivery to the endpoint, with its latest attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    /// The event's id: the `webhook-id` header the receiver sees (the same on every attempt).
    pub event_id: Uuid,
    pub event_type: &'static str,
    /// `pending`, `succeeded` or `failed`.
    pub status: &'static str,
    pub attempts: u32,
    /// When the next attempt is due (pending only).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    /// HTTP status of the latest answer.
    pub response_status: Option<u16>,
    /// The first 1024 bytes of the latest answer's body.
    pub response_body: Option<String>,
    /// Duration of the latest attempt, in milliseconds.
    pub duration_ms: Option<u64>,
    /// Why the latest attempt got no answer.
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type.as_str(),
            status: d.status.as_str(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_attempt_at: d.last_attempt_at,
            response_status: d.response_status,
            response_body: d.response_body,
            duration_ms: d.duration_ms,
            error: d.error,
            created_at: d.created_at,
        }
    }
}

/// The event a test sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestEventView {
    /// The `webhook-id` the receiver will see.
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// A body with nothing to say: none, or `{}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Create a webhook endpoint. The answer shows its signing secret, once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "Webhooks", operation_id = "createWebhook", request_body = CreateWebhookInput,
    responses(
        (status = 201, description = "Created, with its secret", body = WebhookWithSecret,
            headers(("Location" = String), ("Cache-Control" = String))),
        (status = 400, description = "Validation error, or a URL webhooks may not reach", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:admin", body = super::Error),
        (status = 404, description = "Not an admin or tenant admin, or no such tenant", body = super::Error),
    ))]
pub async fn create(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    JsonBody(input): JsonBody<CreateWebhookInput>,
) -> ApiResult<Response> {
    let req = NewWebhook {
        tenant_id: input.tenant_id,
        url: input.url,
        events: input.events,
        enabled: input.enabled,
        description: input.description,
    };
    let w = webhooks::create(&state, &caller, req).await?;
    Ok(ShownOnce::created(
        format!("/api/v1/webhooks/{}", w.id),
        WebhookWithSecret::from(&w),
    )
    .into_response())
}

/// List webhook endpoints (a tenant admin's: their tenant's), oldest first.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "Webhooks", operation_id = "listWebhooks", params(PageParams),
    responses(
        (status = 200, description = "Endpoints", body = Vec<WebhookView>),
        (status = 400, description = "Bad query parameter", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:read", body = super::Error),
        (status = 404, description = "Not an admin or tenant admin", body = super::Error),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<PageParams>,
) -> ApiResult<Response> {
    let (limit, after) = page_params(q.limit, q.cursor.as_deref())?;
    let page = webhooks::list(&state, &caller, limit, after).await?;
    Ok(page_response(page, |w| WebhookView::from(&w)))
}

/// Get a webhook endpoint.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "Webhooks", operation_id = "getWebhook", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The endpoint", body = WebhookView),
        (status = 400, description = "id is not a UUID", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:read", body = super::Error),
        (status = 404, description = "Not found", body = super::Error),
    ))]
pub async fn get(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Json<WebhookView>> {
    Ok(Json(WebhookView::from(
        &webhooks::get(&state, &caller, id).await?,
    )))
}

/// Edit a webhook endpoint, or roll its secret (`roll_secret: true`: the answer shows the new
/// secret, once).
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "Webhooks", operation_id = "updateWebhook", params(("id" = Uuid, Path)), request_body = UpdateWebhookInput,
    responses(
        (status = 200, description = "The endpoint (with `secret` when rolled)", body = WebhookView),
        (status = 400, description = "Validation error", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:admin", body = super::Error),
        (status = 404, description = "Not found", body = super::Error),
    ))]
pub async fn update(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<UpdateWebhookInput>,
) -> ApiResult<Response> {
    let roll = input.roll_secret.unwrap_or(false);
    let patch = WebhookPatch {
        url: input.url,
        events: input.events,
        enabled: input.enabled,
        description: input.description,
        roll_secret: roll,
    };
    let w = webhooks::update(&state, &caller, id, patch).await?;
    Ok(if roll {
        ShownOnce::with_status(StatusCode::OK, WebhookWithSecret::from(&w)).into_response()
    } else {
        Json(WebhookView::from(&w)).into_response()
    })
}

/// Delete a webhook endpoint and its deliveries.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "Webhooks", operation_id = "deleteWebhook", params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "id is not a UUID", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:admin", body = super::Error),
        (status = 404, description = "Not found", body = super::Error),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    webhooks::delete(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The endpoint's deliveries, newest first, each with its latest attempt.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "Webhooks", operation_id = "listWebhookDeliveries", params(("id" = Uuid, Path), PageParams),
    responses(
        (status = 200, description = "Deliveries", body = Vec<DeliveryView>),
        (status = 400, description = "id is not a UUID, or a bad query parameter", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:read", body = super::Error),
        (status = 404, description = "Not found", body = super::Error),
    ))]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    QueryParams(q): QueryParams<PageParams>,
) -> ApiResult<Response> {
    let (limit, before) = page_params(q.limit, q.cursor.as_deref())?;
    let page = webhooks::deliveries(&state, &caller, id, limit, before).await?;
    Ok(page_response(page, DeliveryView::from))
}

/// Send a delivery again, now, whatever became of it.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "Webhooks", operation_id = "retryWebhookDelivery",
    params(("id" = Uuid, Path), ("delivery_id" = Uuid, Path)),
    responses(
        (status = 202, description = "Due now", body = DeliveryView),
        (status = 400, description = "An id is not a UUID", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:admin", body = super::Error),
        (status = 404, description = "Not found", body = super::Error),
    ))]
pub async fn retry(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdsPath(id, delivery_id): IdsPath,
    OptionalJsonBody(NoFields {}): OptionalJsonBody<NoFields>,
) -> ApiResult<Response> {
    let d = webhooks::retry(&state, &caller, id, delivery_id).await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(d))).into_response())
}

/// Send a `webhook.test` event to this endpoint only.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "Webhooks", operation_id = "testWebhook", params(("id" = Uuid, Path)),
    responses(
        (status = 202, description = "Queued", body = TestEventView),
        (status = 400, description = "id is not a UUID", body = super::Error),
        (status = 401, description = "No valid credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:admin", body = super::Error),
        (status = 404, description = "Not found", body = super::Error),
    ))]
pub async fn test(
    State(state): State<AppState>,
    _: NoQuery,
    caller: Caller,
    IdPath(id): IdPath,
    OptionalJsonBody(NoFields {}): OptionalJsonBody<NoFields>,
) -> ApiResult<Response> {
    let event = webhooks::send_test(&state, &caller, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestEventView {
            event_id: event.id,
            kind: event.kind.as_str(),
        }),
    )
        .into_response())
}
