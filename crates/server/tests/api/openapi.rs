//! The generated OpenAPI document: covers every native route, stays compatible with the
//! reference's API-key paths, and is snapshotted so a wire change shows in review.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::Value;

use crate::support::{app, As};

fn reference() -> Value {
    serde_json::from_str(include_str!("../fixtures/stratum-api-keys.openapi.json")).unwrap()
}

async fn generated() -> Value {
    let app = app().await;
    app.get("/api/v1/openapi.json", As::Nobody)
        .await
        .expect(StatusCode::OK)
        .body
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => schema,
    }
}

fn required(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = resolve(doc, schema);
    let schema = if schema["type"] == "array" {
        resolve(doc, &schema["items"])
    } else {
        schema
    };
    schema["required"]
        .as_array()
        .map(|r| r.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn api_key_paths_are_compatible_with_the_reference() {
    let ours = generated().await;
    let theirs = reference();
    for (path, item) in theirs["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let mine = &ours["paths"][path][method];
            assert!(mine.is_object(), "{method} {path} missing");
            for (status, response) in op["responses"].as_object().unwrap() {
                let my_response = &mine["responses"][status];
                assert!(
                    my_response.is_object(),
                    "{method} {path} lacks status {status}"
                );
                if let Some(schema) = response.pointer("/content/application~1json/schema") {
                    let my_schema = my_response
                        .pointer("/content/application~1json/schema")
                        .expect("a body");
                    let missing: Vec<_> = required(&theirs, schema)
                        .difference(&required(&ours, my_schema))
                        .cloned()
                        .collect();
                    assert!(
                        missing.is_empty(),
                        "{method} {path} {status}: required fields missing {missing:?}"
                    );
                }
            }
            // Every request the reference takes, keyward takes: it requires no field the
            // reference does not (it may require fewer).
            if let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") {
                let my_schema = mine
                    .pointer("/requestBody/content/application~1json/schema")
                    .expect("a request body");
                let extra: Vec<_> = required(&ours, my_schema)
                    .difference(&required(&theirs, schema))
                    .cloned()
                    .collect();
                assert!(
                    extra.is_empty(),
                    "{method} {path} requires fields the reference does not: {extra:?}"
                );
            }
        }
    }
    for scheme in ["apiKey", "bearerAuth"] {
        assert!(
            ours["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
}

/// Whether the router serves `method path` (with any `{param}` filled in): anything but the
/// fallback's "route not found" and 405.
async fn served(app: &crate::support::TestApp, method: &str, path: &str) -> bool {
    let path = path
        .replace("{id}", &uuid::Uuid::now_v7().to_string())
        .replace("{path}", "orders/1");
    let method = axum::http::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let r = app.call(method, &path, As::Nobody, None).await;
    let fallback = r.status == StatusCode::NOT_FOUND
        && r.body["error"]["message"].as_str() == Some("route not found");
    !fallback && r.status != StatusCode::METHOD_NOT_ALLOWED
}

#[tokio::test]
async fn every_native_route_is_documented() {
    // The router and the document come from one table; this holds them to each other, from
    // both sides, through the router itself.
    let app = app().await;
    let ours = generated().await;
    let methods = ["get", "head", "post", "put", "patch", "delete", "options"];
    let mut documented = 0;
    for (path, item) in ours["paths"].as_object().unwrap() {
        for method in methods {
            let is_documented = item[method].is_object();
            documented += usize::from(is_documented);
            // HEAD is served wherever GET is (axum answers it); only forward auth documents it.
            if method == "head" && item["get"].is_object() && !is_documented {
                continue;
            }
            assert_eq!(
                served(&app, method, path).await,
                is_documented,
                "{method} {path}: served and documented must agree"
            );
        }
    }
    // The native surface's routes that are not operations of the API: pages about it, and the
    // operator's probes.
    for path in [
        "/api/v1/openapi.json",
        "/docs",
        "/docs/",
        "/docs/swagger-initializer.js",
        // Forward auth's path form with an empty rest, described with forwardAuthPath.
        "/api/v1/auth/forward/",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            ours["paths"].get(path).is_none(),
            "{path} is not an operation"
        );
        assert!(served(&app, "get", path).await, "{path} is served");
    }
    assert!(documented >= 27, "{documented} operations");
    let mut ids = BTreeSet::new();
    for item in ours["paths"].as_object().unwrap().values() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method}: no id"));
            assert!(ids.insert(id.to_owned()), "operation id {id} is used twice");
        }
    }
    insta::assert_json_snapshot!("openapi", ours);
}

#[tokio::test]
async fn docs_serve_swagger_ui_from_the_binary() {
    let app = app().await;
    let moved = app
        .get("/docs", As::Nobody)
        .await
        .expect(StatusCode::PERMANENT_REDIRECT);
    assert_eq!(moved.header("location"), Some("/docs/"));
    let page = app.get("/docs/", As::Nobody).await.expect(StatusCode::OK);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let csp = page.header("content-security-policy").unwrap().to_owned();
    assert!(csp.starts_with("default-src 'self';"), "{csp}");
    let html = page.body.as_str().unwrap().to_owned();
    assert!(html.contains("swagger-ui-bundle.js"), "{html}");
    // No asset from elsewhere: every script and style the page names is served here.
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        assert!(
            html.contains(&format!("./{asset}")),
            "{asset} is not local: {html}"
        );
        let r = app
            .get(&format!("/docs/{asset}"), As::Nobody)
            .await
            .expect(StatusCode::OK);
        assert!(
            r.body.as_str().is_some_and(|b| !b.is_empty()),
            "{asset} is empty"
        );
    }
    assert!(
        !html.contains("https://"),
        "the page loads nothing from the internet: {html}"
    );
    let init = app
        .get("/docs/swagger-initializer.js", As::Nobody)
        .await
        .expect(StatusCode::OK);
    let init = init.body.as_str().unwrap();
    assert!(init.contains("\"/api/v1/openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");
    app.get("/docs/no-such-file.js", As::Nobody)
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn error_bodies_are_stable() {
    let app = app().await;
    let unauth = app.get("/api/v1/api-keys", As::Nobody).await.body;
    let not_found = app.get("/nope", As::Nobody).await.body;
    insta::assert_json_snapshot!(
        "error_bodies",
        serde_json::json!({"unauthenticated": unauth, "route_not_found": not_found})
    );
}
