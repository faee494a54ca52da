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

#[tokio::test]
async fn every_native_route_is_documented() {
    let ours = generated().await;
    let routes = [
        ("get", "/api/v1/health"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/tenants"),
        ("get", "/api/v1/tenants"),
        ("get", "/api/v1/tenants/{id}"),
        ("patch", "/api/v1/tenants/{id}"),
        ("delete", "/api/v1/tenants/{id}"),
        ("post", "/api/v1/users"),
        ("get", "/api/v1/users/me"),
        ("post", "/api/v1/api-keys"),
        ("get", "/api/v1/api-keys"),
        ("get", "/api/v1/api-keys/dormant"),
        ("get", "/api/v1/api-keys/{id}"),
        ("patch", "/api/v1/api-keys/{id}"),
        ("delete", "/api/v1/api-keys/{id}"),
        ("post", "/api/v1/api-keys/{id}/rotate"),
        ("post", "/api/v1/keys/verify"),
        ("get", "/api/v1/auth/forward"),
        ("head", "/api/v1/auth/forward"),
        ("post", "/api/v1/auth/forward"),
        ("put", "/api/v1/auth/forward"),
        ("patch", "/api/v1/auth/forward"),
        ("delete", "/api/v1/auth/forward"),
        ("options", "/api/v1/auth/forward"),
        ("get", "/api/v1/audit-logs"),
        ("get", "/api/v1/stats"),
        ("get", "/api/v1/export"),
    ];
    for (method, path) in routes {
        assert!(
            ours["paths"][path][method].is_object(),
            "{method} {path} undocumented"
        );
    }
    let documented: usize = ours["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|i| i.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        routes.len(),
        "a documented route is not in this list"
    );
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
async fn docs_page_renders_the_document() {
    let app = app().await;
    let r = app.get("/docs", As::Nobody).await.expect(StatusCode::OK);
    let html = r.body.as_str().unwrap();
    assert!(html.contains("/api/v1/openapi.json"));
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
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
