//! The acceptance tests of the compatibility surfaces, with real clients on a real socket:
//! the published `estuary-client` (Python, unmodified, in the venv `scripts/test.sh` makes) and
//! the curl examples of the form-encoded surface's documentation, run as written.

use std::path::PathBuf;

use axum::http::StatusCode;
use keyward_domain::Role;
use serde_json::Value;
use uuid::Uuid;

use crate::support::{app, As};

fn compat_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/compat")
}

/// The venv's Python: `KEYWARD_COMPAT_PYTHON`, or `target/compat-venv` as `scripts/test.sh`
/// makes it.
fn compat_python() -> PathBuf {
    crate::support::venv_tool(
        "KEYWARD_COMPAT_PYTHON",
        "compat-venv",
        "python",
        "the published estuary-client (crates/server/tests/compat/requirements.txt)",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_estuary_client_works_unchanged() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_test_writer()
        .try_init();
    let app = app().await;
    let tenant = app.tenant("estuary").await;
    let email = format!("ann-{}@example.com", Uuid::new_v4().simple());
    app.user(&email, Role::Member, Some(tenant)).await;
    let jwt = app.login(&email).await;
    let other = app.member_of(tenant).await;
    let server = app.live().await;

    let out = tokio::process::Command::new(compat_python())
        .arg(compat_dir().join("estuary_client_test.py"))
        .env("KEYWARD_URL", &server.base)
        .env("KEYWARD_JWT", &jwt)
        .env("KEYWARD_OTHER_JWT", &other)
        .env("KEYWARD_EMAIL", &email)
        .output()
        .await
        .expect("run the estuary-client test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "estuary-client test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("estuary-client: all UserApi methods pass"));
}

/// The published client, unchanged, with an Estuary token keyward imported rather than issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_estuary_client_uses_an_imported_token() {
    let app = app().await;
    let tenant = app.tenant("estuary").await;
    let admin = app.admin().await;
    let email = format!("imported-{}@example.com", Uuid::new_v4().simple());
    let token = format!("EST{}ARY", Uuid::new_v4());
    let row = serde_json::json!({"token": token, "owner_email": email, "tenant": "estuary",
        "label": "from estuary", "expiry": "2099-01-01T00:00:00Z"});
    let req =
        axum::http::Request::post("/api/v1/api-keys/import?format=estuary&create_owners=true")
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/jsonl")
            .body(axum::body::Body::from(format!("{row}\n")))
            .unwrap();
    let r = app.send(req).await.expect(StatusCode::OK);
    assert_eq!(r.body["imported"], 1, "{}", r.body);
    let _ = tenant;
    let server = app.live().await;
    let out = tokio::process::Command::new(compat_python())
        .arg(compat_dir().join("estuary_imported_token_test.py"))
        .env("KEYWARD_URL", &server.base)
        .env("KEYWARD_TOKEN", &token)
        .output()
        .await
        .expect("run the estuary-client test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "estuary-client test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("estuary-client: an imported token works unchanged"));
}

/// One curl example of the seed: the command as documented and the response it shows.
struct SeedExample {
    command: String,
    response: Value,
}

/// Every `curl ...` command of the seed (with its `\` continuation lines) and the JSON shown
/// right after it.
fn seed_examples() -> Vec<SeedExample> {
    let text = std::fs::read_to_string(compat_dir().join("apikey_seed_003.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut examples = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].starts_with("curl ") {
            i += 1;
            continue;
        }
        let mut command = String::new();
        while lines[i].trim_end().ends_with('\\') {
            command.push_str(lines[i].trim_end().trim_end_matches('\\'));
            command.push(' ');
            i += 1;
        }
        command.push_str(lines[i]);
        i += 1;
        // The response: from the next `{` until the braces balance.
        let mut json = String::new();
        let mut depth = 0i32;
        while i < lines.len() {
            let line = lines[i];
            i += 1;
            if json.is_empty() && !line.starts_with('{') {
                continue;
            }
            depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            json.push_str(line);
            json.push('\n');
            if depth == 0 {
                break;
            }
        }
        examples.push(SeedExample {
            command,
            response: serde_json::from_str(&json).expect("the seed's response is JSON"),
        });
    }
    examples
}

/// The command with the seed's host, token and id placeholder swapped for real ones.
fn as_written(command: &str, base: &str, token: &str, id: &str) -> String {
    let command = command.replace("https://www.example.com/api", &format!("{base}/api"));
    // The seed's tokens run from `Bearer ` to the closing quote.
    let mut out = String::new();
    let mut rest = command.as_str();
    while let Some(start) = rest.find("Bearer ") {
        out.push_str(&rest[..start]);
        out.push_str("Bearer ");
        out.push_str(token);
        let after = &rest[start..];
        rest = &after[after.find('\'').unwrap_or(after.len())..];
    }
    out.push_str(rest);
    out.replace(":apikey_id", id)
}

async fn run_curl(command: &str) -> Value {
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("{command} --silent --show-error"))
        .output()
        .await
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Same JSON shape as the seed's example: the same fields (recursively; array items against
/// the seed's first item), the same `code` and `message` texts.
#[track_caller]
fn assert_same_shape(expected: &Value, actual: &Value, path: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let mut ek: Vec<_> = e.keys().collect();
            let mut ak: Vec<_> = a.keys().collect();
            ek.sort();
            ak.sort();
            assert_eq!(ek, ak, "fields of {path}");
            for (k, ev) in e {
                if k == "code" || k == "message" {
                    assert_eq!(ev, &a[k], "{path}.{k}");
                }
                assert_same_shape(ev, &a[k], &format!("{path}.{k}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert!(!a.is_empty(), "{path} is empty");
            for item in a {
                assert_same_shape(&e[0], item, &format!("{path}[]"));
            }
        }
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        _ => panic!("{path}: expected something like {expected}, got {actual}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_curl_examples_run_as_written() {
    let app = app().await;
    let tenant = app.tenant("formapi").await;
    let (jwt, user_id) = app.user_in(tenant, Role::Member).await;
    let (id, _) = app
        .key_from(
            &jwt,
            serde_json::json!({"name": "Test 1234", "expires_in": "90d"}),
        )
        .await;
    let server = app.live().await;
    let examples = seed_examples();
    let methods: Vec<&str> = examples
        .iter()
        .map(|e| {
            e.command
                .split("--request ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        methods,
        ["GET", "GET", "POST", "PATCH", "DELETE"],
        "the seed's five examples"
    );

    let mut answers = Vec::new();
    for example in &examples {
        let command = as_written(&example.command, &server.base, &jwt, &id);
        assert!(!command.contains("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI1"));
        let answer = run_curl(&command).await;
        assert_same_shape(&example.response, &answer, "response");
        answers.push(answer);
    }
    // GET list: the key made before, as this user's.
    let listed = &answers[0]["apiKeys"];
    assert_eq!(answers[0]["total"], 1);
    assert_eq!(listed[0]["_id"], id.as_str());
    assert_eq!(listed[0]["user"], user_id.to_string().as_str());
    assert_eq!(listed[0]["isNever"], false);
    assert_eq!(answers[1]["apiKey"]["label"], "Test 1234");
    // POST made a working key, expiring in a month: `One Month` is not a key that never expires.
    let created = answers[2]["api_key"].as_str().unwrap();
    let me = app
        .get("/api/v1/users/me", As::ApiKey(created))
        .await
        .expect(StatusCode::OK);
    assert_eq!(me.body["id"], user_id.to_string().as_str());
    let r = app
        .get("/api/apikey", As::Bearer(&jwt))
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["total"], 1, "the DELETE removed the first key");
    let new_key = &r.body["apiKeys"][0];
    assert_eq!(new_key["label"], "Test 123");
    assert_eq!(new_key["isNever"], false);
    let made = crate::support::rfc3339(&new_key["createdAt"]);
    let expires = crate::support::rfc3339(&new_key["expireAt"]);
    assert_eq!(
        expires.date(),
        made.date().replace_month(time::Month::April).unwrap()
    );
    // After DELETE, the GET example answers the seed's 404 shape.
    let again = run_curl(&as_written(&examples[1].command, &server.base, &jwt, &id)).await;
    assert_eq!(again["code"], "NOT_FOUND");
    assert!(again["message"].is_string());
}
