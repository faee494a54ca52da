//! The OpenAPI document, generated from the handlers' annotations, and Swagger UI on it (`/docs/`).

use axum::response::IntoResponse;
use keyward_core::keys::{GRACE_PATTERN, MAX_CREDITS, MAX_RATE_LIMIT};
use keyward_domain::duration;
use keyward_domain::model::{email_pattern, MAX_EMAIL_CHARS};
use keyward_domain::scope::{MAX_SCOPES, MAX_SCOPE_LEN};
use keyward_domain::text;
use keyward_store::CURSOR_PATTERN;
use serde_json::{json, Value};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "keyward", description = "Self-hosted API key service: native v1 API."),
    // Relative: "Try it out" on /docs/ talks to the keyward that serves the page.
    servers((url = "/", description = "The keyward serving this document")),
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
            "verifierKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Keyward-Verifier",
                "Forward auth: the proxy's own credential (a key with `keyward:verify`, or a \
                 session of a user allowed to verify), beside the client's key; not needed when \
                 keyward runs with `--public-verify`",
            ))),
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

/// `GET /api/v1/openapi.json`: [`document`], made once.
pub async fn openapi_json(_: crate::extract::NoQuery) -> axum::response::Response {
    static DOCUMENT: std::sync::OnceLock<axum::body::Bytes> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        serde_json::to_vec(&document())
            .map(Into::into)
            .unwrap_or_default()
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.clone(),
    )
        .into_response()
}

/// The OpenAPI document: what the handlers' annotations say, then what the server enforces that
/// annotations cannot say (see [`state_what_is_enforced`]).
pub fn document() -> Value {
    // The paths, from the route table the router is made from; the rest from `ApiDoc`.
    let mut openapi = ApiDoc::openapi();
    openapi.merge(crate::app::route_table(|management| management).into_openapi());
    let mut doc = serde_json::to_value(openapi).unwrap_or_default();
    state_what_is_enforced(&mut doc);
    doc
}

/// Completes the generated document with the rules the server enforces, taken from the code
/// that enforces them (the domain's patterns and limits), so that the two cannot drift:
///
/// - each input field's length, pattern, range or values;
/// - the answers every route may give besides its own: the body policy's 400, 408, 413 and 415,
///   the header limits' 414 and 431, a refused credential's 429, and 503 while storage is
///   unreachable or too many sign-ins wait;
/// - forward auth once per method it answers, each with its own operation id;
/// - nullable fields with a format written as `anyOf`, so that no tool reads `""` as valid.
pub fn state_what_is_enforced(doc: &mut Value) {
    let name = json!({"maxLength": 255, "pattern": text::KEY_NAME.pattern()});
    let tenant_name =
        json!({"minLength": 1, "maxLength": 255, "pattern": text::TENANT_NAME.pattern()});
    let filter = json!({"minLength": 1, "maxLength": 255, "pattern": text::FILTER.pattern()});
    let scopes = json!({"maxItems": MAX_SCOPES, "items": {
        "type": "string", "minLength": 1, "maxLength": MAX_SCOPE_LEN,
        "pattern": "^[A-Za-z0-9:._/*-]{1,128}$"}});
    let short = json!({"pattern": duration::SHORT_PATTERN});
    let window = json!({"pattern": duration::WINDOW_PATTERN});
    let credits = json!({"minimum": 0, "maximum": MAX_CREDITS});
    let allowed_ips = json!({"maxItems": keyward_domain::network::MAX_ALLOWED_IPS,
        "items": {"type": "string", "minLength": 2, "maxLength": 49}});
    let events = json!({"minItems": 1, "items": {"type": "string",
        "enum": keyward_domain::EventType::ALL.map(keyward_domain::EventType::as_str)}});
    let description = json!({"maxLength": keyward_core::webhooks::MAX_DESCRIPTION_CHARS,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"});
    let fields: &[(&str, &str, Value)] = &[
        ("CreateApiKeyInput", "name", name.clone()),
        ("CreateApiKeyInput", "scopes", scopes.clone()),
        ("CreateApiKeyInput", "rate_limit_window", window.clone()),
        (
            "CreateApiKeyInput",
            "rate_limit_max",
            json!({"minimum": 1, "maximum": MAX_RATE_LIMIT}),
        ),
        ("CreateApiKeyInput", "expires_in", short.clone()),
        ("CreateApiKeyInput", "allowed_ips", allowed_ips.clone()),
        ("UpdateApiKeyInput", "allowed_ips", allowed_ips),
        ("PolicyInput", "max_key_lifetime", short.clone()),
        ("PolicyInput", "allowed_scopes", scopes.clone()),
        (
            "RateLimitInput",
            "max",
            json!({"minimum": 1, "maximum": MAX_RATE_LIMIT}),
        ),
        ("RateLimitInput", "window", window.clone()),
        ("SetOwnerLimitsInput", "rate_limit_window", window.clone()),
        ("SetOwnerLimitsInput", "remaining", credits.clone()),
        ("CreateApiKeyInput", "remaining", credits.clone()),
        ("UpdateApiKeyInput", "name", name.clone()),
        ("UpdateApiKeyInput", "scopes", scopes.clone()),
        ("UpdateApiKeyInput", "rate_limit_window", window),
        (
            "UpdateApiKeyInput",
            "rate_limit_max",
            json!({"minimum": 1, "maximum": MAX_RATE_LIMIT}),
        ),
        ("UpdateApiKeyInput", "remaining", credits),
        ("RotateApiKeyInput", "name", name),
        (
            "RotateApiKeyInput",
            "grace_period",
            json!({"pattern": GRACE_PATTERN}),
        ),
        (
            "RefillInput",
            "interval",
            json!({"enum": ["daily", "monthly"]}),
        ),
        (
            "RefillInput",
            "amount",
            json!({"minimum": 1, "maximum": MAX_CREDITS}),
        ),
        ("RefillInput", "day", json!({"minimum": 1, "maximum": 31})),
        ("CreateTenantInput", "name", tenant_name.clone()),
        (
            "CreateTenantInput",
            "slug",
            json!({"pattern": "^[a-z0-9-]{1,63}$"}),
        ),
        (
            "CreateTenantInput",
            "key_prefix",
            json!({"pattern": "^[a-z0-9]{1,16}$"}),
        ),
        ("UpdateTenantInput", "name", tenant_name),
        (
            "UpdateTenantInput",
            "slug",
            json!({"pattern": "^[a-z0-9-]{1,63}$"}),
        ),
        (
            "UpdateTenantInput",
            "key_prefix",
            json!({"pattern": "^[a-z0-9]{1,16}$"}),
        ),
        (
            "CreateUserInput",
            "email",
            json!({"maxLength": MAX_EMAIL_CHARS, "pattern": email_pattern()}),
        ),
        (
            "CreateUserInput",
            "role",
            json!({"enum": ["admin", "tenant_admin", "member"]}),
        ),
        (
            "UpdateUserInput",
            "role",
            json!({"enum": ["admin", "tenant_admin", "member"]}),
        ),
        (
            "LoginInput",
            "email",
            json!({"maxLength": MAX_EMAIL_CHARS, "pattern": email_pattern()}),
        ),
        (
            "VerifyKeyInput",
            "cost",
            json!({"minimum": 0, "maximum": keyward_core::verify::MAX_COST}),
        ),
        (
            "PolicyInput",
            "expiry_reminders",
            json!({"maxItems": keyward_domain::model::MAX_EXPIRY_REMINDERS, "uniqueItems": true,
                "items": {"type": "string", "pattern": duration::SHORT_PATTERN}}),
        ),
        ("CreateWebhookInput", "events", events.clone()),
        ("UpdateWebhookInput", "events", events),
        (
            "CreateWebhookInput",
            "url",
            json!({"maxLength": keyward_core::webhooks::MAX_URL_LEN, "pattern": "^https?://"}),
        ),
        (
            "UpdateWebhookInput",
            "url",
            json!({"maxLength": keyward_core::webhooks::MAX_URL_LEN, "pattern": "^https?://"}),
        ),
        ("CreateWebhookInput", "description", description.clone()),
        ("UpdateWebhookInput", "description", description),
    ];
    for (schema, field, rules) in fields {
        if let Some(Value::Object(property)) =
            doc.pointer_mut(&format!("/components/schemas/{schema}/properties/{field}"))
        {
            merge(property, rules);
        }
    }
    // Verify's scopes: a list, or an expression (whose grammar no JSON Schema states).
    let scopes_input = [
        ("0", scopes),
        (
            "1",
            json!({"minLength": 1, "maxLength": keyward_domain::permission::MAX_EXPRESSION_LEN}),
        ),
    ];
    for (variant, rules) in scopes_input {
        if let Some(Value::Object(schema)) =
            doc.pointer_mut(&format!("/components/schemas/ScopesInput/oneOf/{variant}"))
        {
            merge(schema, &rules);
        }
    }
    let page = [
        (
            "limit",
            json!({"minimum": 1, "maximum": keyward_core::page::MAX_PAGE}),
        ),
        ("cursor", json!({"pattern": CURSOR_PATTERN})),
        ("days", json!({"minimum": 1, "maximum": 365})),
        ("status", json!({"enum": ["active", "expired", "revoked"]})),
        ("action", filter.clone()),
        ("actor_id", filter.clone()),
        ("resource_type", filter.clone()),
        ("resource_id", filter),
    ];
    let Some(Value::Object(paths)) = doc.get_mut("paths") else {
        return;
    };
    // The router's catch-all segment, in OpenAPI's syntax (a path parameter holds one segment
    // there; this one holds the rest of the forwarded path).
    if let Some(item) = paths.remove("/api/v1/auth/forward/{*path}") {
        paths.insert("/api/v1/auth/forward/{path}".into(), item);
    }
    for (path, id) in [
        ("/api/v1/auth/forward", "forwardAuth"),
        ("/api/v1/auth/forward/{path}", "forwardAuthPath"),
    ] {
        let Some(Value::Object(forward)) = paths.get_mut(path) else {
            continue;
        };
        // One handler answers every method: each operation gets an id of its own.
        for (method, op) in forward.iter_mut().filter(|(method, _)| *method != "get") {
            op["operationId"] = json!(format!(
                "{id}{}{}",
                method[..1].to_uppercase(),
                &method[1..]
            ));
        }
    }
    for (path, item) in paths.iter_mut() {
        let Value::Object(item) = item else { continue };
        for (method, op) in item.iter_mut() {
            let params = op.get_mut("parameters").and_then(Value::as_array_mut);
            for param in params.into_iter().flatten() {
                if param["in"] != "query" {
                    continue;
                }
                let Some(name) = param["name"].as_str() else {
                    continue;
                };
                // The users' list filters by its own statuses and roles.
                let users_status = json!({"enum": ["active", "disabled"]});
                let roles = json!({"enum": ["admin", "tenant_admin", "member"]});
                let email_prefix = json!({"maxLength": MAX_EMAIL_CHARS,
                    "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"});
                let rules = match (path.as_str(), name) {
                    ("/api/v1/users", "status") => Some(&users_status),
                    ("/api/v1/users", "role") => Some(&roles),
                    ("/api/v1/users", "email_prefix") => Some(&email_prefix),
                    _ => page.iter().find(|(n, _)| *n == name).map(|(_, r)| r),
                };
                if let Some(rules) = rules {
                    if let Some(Value::Object(schema)) = param.get_mut("schema") {
                        merge(schema, rules);
                    }
                }
            }
            add_common_answers(path, method, op);
        }
    }
    // An operation that takes no credential says `security: []` (utoipa writes `[{}]`, which
    // generators read as "a credential, of no scheme": openapi-python-client then asks for an
    // authenticated client to sign in with).
    for item in paths.values_mut() {
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            if op["security"] == json!([{}]) {
                op["security"] = json!([]);
            }
        }
    }
    nullable_formats_as_any_of(doc);
}

/// Adds `rules` to a schema object (a nullable one keeps its `null`: enums gain it).
fn merge(schema: &mut serde_json::Map<String, Value>, rules: &Value) {
    let nullable = schema
        .get("type")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|t| t == "null"));
    for (key, value) in rules.as_object().into_iter().flatten() {
        let mut value = value.clone();
        if key == "enum" && nullable {
            if let Value::Array(values) = &mut value {
                values.push(Value::Null);
            }
        }
        if key == "items" {
            if let Some(Value::Object(items)) = schema.get_mut("items") {
                merge(items, &value);
                continue;
            }
        }
        schema.insert(key.clone(), value);
    }
}

/// The answers a route may give besides those its annotation names.
fn add_common_answers(path: &str, method: &str, op: &mut Value) {
    let forward = path.starts_with("/api/v1/auth/forward");
    let signs_in = path == "/api/v1/auth/login";
    let anonymous = op["security"].as_array().is_some_and(|s| {
        s.iter()
            .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
    });
    let mut common: Vec<(&str, &str)> = vec![
        ("414", "The request target is longer than keyward reads"),
        (
            "431",
            "The header fields are more or larger than keyward reads",
        ),
        (
            "503",
            "Storage is unreachable (or, signing in, too many sign-ins wait); see Retry-After",
        ),
    ];
    if !forward {
        common.extend([
            ("400", "A malformed request, a body on a route that takes none, or more than one credential"),
            ("408", "The request body did not arrive within the body-read timeout"),
            ("413", "The request body is larger than 64 KiB (refused before it is read)"),
            ("415", "The body's media type is not the route's, or it is compressed"),
        ]);
    }
    if !anonymous || signs_in {
        common.push((
            "429",
            "Too many failed credentials (or sign-ins) from this address; see Retry-After",
        ));
    }
    let Some(Value::Object(responses)) = op.get_mut("responses") else {
        return;
    };
    for (status, description) in common {
        responses.entry(status.to_owned()).or_insert_with(|| {
            let mut answer = json!({
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            });
            if matches!(status, "429" | "503") {
                answer["headers"] = json!({"Retry-After": {"schema": {"type": "integer"}}});
            }
            if method == "head" {
                answer.as_object_mut().map(|a| a.remove("content"));
            }
            answer
        });
    }
    if method == "head" {
        for answer in responses.values_mut() {
            answer.as_object_mut().map(|a| a.remove("content"));
        }
    }
}

/// `{"type": ["string", "null"], "format": F}` becomes `{"anyOf": [{"type": "string",
/// "format": F, ...}, {"type": "null"}]}` wherever it stands: the same schema, in the form that
/// tools read as "a string of format F, or null" (some take `""` for valid in the other).
fn nullable_formats_as_any_of(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let nullable_format = map.contains_key("format")
                && map
                    .get("type")
                    .and_then(Value::as_array)
                    .is_some_and(|t| t.len() == 2 && t.iter().any(|t| t == "null"));
            if nullable_format {
                let kind = map["type"]
                    .as_array()
                    .and_then(|t| t.iter().find(|t| *t != "null").cloned())
                    .unwrap_or(Value::Null);
                let mut inner = serde_json::Map::new();
                inner.insert("type".into(), kind);
                for key in ["format", "pattern", "minLength", "maxLength"] {
                    if let Some(v) = map.remove(key) {
                        inner.insert(key.into(), v);
                    }
                }
                map.remove("type");
                map.insert(
                    "anyOf".into(),
                    json!([Value::Object(inner), {"type": "null"}]),
                );
            }
            for v in map.values_mut() {
                nullable_formats_as_any_of(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_formats_as_any_of),
        _ => {}
    }
}

/// `GET /docs`: to `/docs/` (the page's assets are relative to it), 308.
pub async fn docs_redirect(_: crate::extract::NoQuery) -> axum::response::Redirect {
    axum::response::Redirect::permanent("/docs/")
}

/// `GET /docs/` and `GET /docs/{file}`: Swagger UI (the `swagger-ui-dist` release that
/// `utoipa-swagger-ui`'s `vendored` feature carries, inside the binary: no CDN, so it works on a
/// machine with no internet), set up to read `/api/v1/openapi.json` and to send "Try it out" to
/// this keyward. 404 for a file Swagger UI does not have.
///
/// Its own Content-Security-Policy: scripts, styles, fonts and requests from this origin only
/// (Swagger UI sets inline styles on its elements, and draws some images as `data:` URLs).
pub async fn docs(
    _: crate::extract::NoQuery,
    file: Option<axum::extract::Path<String>>,
) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    static CONFIG: std::sync::OnceLock<std::sync::Arc<utoipa_swagger_ui::Config<'static>>> =
        std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        std::sync::Arc::new(
            utoipa_swagger_ui::Config::new(["/api/v1/openapi.json"])
                // Swagger UI's default checks the document at validator.swagger.io, a third
                // party (and offline, an error): off.
                .validator_url("none")
                .try_it_out_enabled(true)
                .display_operation_id(true)
                .persist_authorization(false),
        )
    });
    let path = file.as_ref().map_or("", |p| p.0.as_str());
    match utoipa_swagger_ui::serve(path, config.clone()) {
        Ok(Some(found)) => {
            let mut response = (
                [(header::CONTENT_TYPE, found.content_type)],
                found.bytes.into_owned(),
            )
                .into_response();
            let headers = response.headers_mut();
            if found.gzpipped {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                     frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
                ),
            );
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            response
        }
        Ok(None) => crate::error::ApiError::NotFound("no such page").into_response(),
        Err(e) => {
            crate::error::ApiError::Internal(format!("Swagger UI's setup: {e}")).into_response()
        }
    }
}
