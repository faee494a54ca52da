//! The OpenAPI document, generated from the handlers' annotations, and a page that renders it.

use axum::response::Html;
use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::v1;

#[derive(OpenApi)]
#[openapi(
    info(title = "keyward", description = "Self-hosted API key service: native v1 API."),
    servers((url = "http://localhost:3000", description = "Local development")),
    paths(
        super::health::health,
        v1::auth::login,
        v1::tenants::create, v1::tenants::list, v1::tenants::get, v1::tenants::update, v1::tenants::delete,
        v1::users::create, v1::users::me,
        v1::keys::create, v1::keys::list, v1::keys::dormant, v1::keys::get, v1::keys::update,
        v1::keys::revoke, v1::keys::rotate,
        v1::verify::verify, v1::forward::forward,
        v1::audit::list,
        v1::stats::stats, v1::stats::export,
    ),
    modifiers(&Security),
    security(("apiKey" = []), ("bearerAuth" = [])),
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// `GET /docs`: a self-contained page (no CDN: keyward runs offline too) that lists every
/// operation of the document with its parameters and responses.
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
