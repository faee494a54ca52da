//! `POST /api/v1/keys/verify`: 200 for every well-formed request, with the verdict in the body.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyward_domain::ratelimit::{Decision, Limit};
use keyward_domain::{Permission, Principal, VerifyCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Instant;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::presented_credential;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, NoQuery};
use keyward_core::auth::verifier;
use keyward_core::metrics::VerifyRoute;
use keyward_core::verify::{self, Verdict, VerifyRequest};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyKeyInput {
    /// The key to check.
    pub key: String,
    /// Scopes the key must all hold (a list), or a permission expression such as
    /// `orders:read AND (orders:write OR admin)`: scopes joined by AND and OR (AND binds
    /// tighter), with parentheses. A malformed expression is a 400 naming the position.
    #[serde(default)]
    #[schema(value_type = ScopesInput)]
    pub scopes: ScopesInput,
    /// Credits a valid verification spends (keys with credits only), 0..=1000000; default 1.
    pub cost: Option<i64>,
    /// The calling client's IPv4 or IPv6 address. A key with an IP allowlist is
    /// `IP_NOT_ALLOWED` when it is absent or outside the list.
    pub ip: Option<String>,
}

/// Scopes required at verify: a list (all of them), or a permission expression.
// Deserialized by hand: serde's untagged enums buffer the value before trying each variant.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum ScopesInput {
    List(Vec<String>),
    Expression(String),
}

impl<'de> Deserialize<'de> for ScopesInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = ScopesInput;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of scopes or a permission expression")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ScopesInput, E> {
                Ok(ScopesInput::Expression(text.to_owned()))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ScopesInput, A::Error> {
                let mut scopes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(scope) = seq.next_element()? {
                    scopes.push(scope);
                }
                Ok(ScopesInput::List(scopes))
            }
        }
        d.deserialize_any(Either)
    }
}

impl Default for ScopesInput {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

impl ScopesInput {
    /// What the key's scopes must satisfy; a malformed expression is `invalid_field` naming
    /// `scopes` and the position.
    pub fn permission(self) -> Result<verify::Required, keyward_core::Error> {
        match self {
            Self::List(scopes) => Ok(verify::Required::Owned(Permission::All(scopes))),
            Self::Expression(text) => verify::expression(&text, "scopes"),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RateLimitState {
    pub limit: u32,
    pub remaining: u32,
    /// When the limit is whole again.
    #[serde(with = "time::serde::rfc3339")]
    pub reset: OffsetDateTime,
}

// Borrowed from the cached key, so that answering clones nothing. (A plain comment: a doc
// comment here would become the schema's description in the OpenAPI document.)
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyKeyResponse<'a> {
    pub valid: bool,
    /// `VALID`, `NOT_FOUND`, `EXPIRED`, `REVOKED`, `INSUFFICIENT_SCOPES`, `RATE_LIMITED`,
    /// `USAGE_EXCEEDED` (no credits left for this cost), `DISABLED` (paused), `IP_NOT_ALLOWED`
    /// (outside the key's allowlist), `OWNER_DISABLED` (its user is disabled), or, with status
    /// 503, `UNAVAILABLE`.
    #[schema(value_type = String)]
    pub code: VerifyCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Option<&'a keyward_domain::Scopes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<&'a Value>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit: Option<RateLimitState>,
    /// Credits left, for keys that have credits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<i64>,
    /// The rate limit shared by all the owner's keys, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_ratelimit: Option<RateLimitState>,
    /// The credits shared by all the owner's keys, left after this verification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_remaining: Option<i64>,
    /// Whose limit refused a `RATE_LIMITED` or `USAGE_EXCEEDED` answer: `key` (its own) or
    /// `owner` (the limit its owner's keys share).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub limited_by: Option<&'static str>,
}

impl RateLimitState {
    fn of((limit, d): (Limit, Decision)) -> Self {
        Self {
            limit: limit.max,
            remaining: d.remaining,
            reset: keyward_domain::clock::truncate_millis(d.reset),
        }
    }
}

impl<'a> From<&'a Verdict> for VerifyKeyResponse<'a> {
    fn from(v: &'a Verdict) -> Self {
        let key = v.key.as_deref();
        Self {
            valid: v.code == VerifyCode::Valid,
            code: v.code,
            key_id: key.map(|k| k.id),
            tenant_id: key.and_then(|k| k.tenant_id),
            owner_id: key.map(|k| k.owner_id),
            name: key.and_then(|k| k.name.as_deref()),
            scopes: key.map(|k| &k.scopes),
            metadata: key.map(|k| &k.metadata),
            expires_at: key.and_then(|k| k.expires_at),
            ratelimit: v.ratelimit.map(RateLimitState::of),
            remaining: v.remaining,
            owner_ratelimit: v.owner_ratelimit.map(RateLimitState::of),
            owner_remaining: v.owner_remaining,
            limited_by: v.limited_by.map(|h| h.as_str()),
        }
    }
}

/// Verify a key: valid? whose? may it do these scopes? over its rate limit? The caller needs a
/// credential with `keyward:verify` unless keyward runs with `--public-verify`.
#[utoipa::path(post, path = "/api/v1/keys/verify", tag = "Verify", operation_id = "verifyKey", request_body = VerifyKeyInput,
    responses(
        (status = 200, description = "The verdict", body = VerifyKeyResponse),
        (status = 400, description = "Malformed request", body = super::Error),
        (status = 401, description = "No valid verifier credential", body = super::Error),
        (status = 403, description = "The credential lacks keyward:verify", body = super::Error),
        (status = 503, description = "Storage is unreachable and the key is not cached: code UNAVAILABLE (fail closed)", body = VerifyKeyResponse),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    _: NoQuery,
    Verifier(verifier): Verifier,
    JsonBody(input): JsonBody<VerifyKeyInput>,
) -> ApiResult<Response> {
    // The metrics' latency: a duration measured, not a time of day.
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    let permission = input.scopes.permission()?;
    let ip = input
        .ip
        .as_deref()
        .map(|ip| verify::client_ip(ip, "ip"))
        .transpose()?;
    let request = VerifyRequest {
        cost: input.cost.unwrap_or(1),
        ip,
        ..VerifyRequest::new(&input.key, &permission)
    };
    let verdict = verify::verify(&state, verifier.as_deref(), &request).await?;
    state
        .metrics
        .verified(VerifyRoute::Verify, verdict.code, started.elapsed());
    if verdict.code == VerifyCode::Unavailable {
        return Ok(unavailable());
    }
    Ok(Json(VerifyKeyResponse::from(&verdict)).into_response())
}

/// Fail closed, in the verify answer's own shape so that clients read `code` as usual.
fn unavailable() -> Response {
    let verdict = Verdict::unavailable();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        Json(VerifyKeyResponse::from(&verdict)),
    )
        .into_response()
}

/// Verify's caller, checked before its body is read (so that nobody without a credential is
/// invited to send one): the principal of its credential, `None` under `--public-verify`. A
/// credential that could not be re-read answers 503 in the verify answer's shape.
pub struct Verifier(pub Option<std::sync::Arc<Principal>>);

impl FromRequestParts<AppState> for Verifier {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let peer = crate::auth::peer_ip(&parts.extensions);
        match verifier(state, presented_credential(&parts.headers), peer).await {
            Ok(principal) => Ok(Self(principal)),
            // The verifier's own credential could not be re-read: no answer either way.
            Err(keyward_core::Error::Unavailable) => Err(unavailable()),
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}
