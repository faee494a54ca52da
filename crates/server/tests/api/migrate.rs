//! `keyward migrate`: a SQLite installation with keys, credits, usage, an imported key, users,
//! sessions and its audit log, moved to PostgreSQL (the real binary, a real cluster), where a
//! node started on it answers as the old one did; and back to SQLite.

use std::path::Path;

use reqwest::Method;
use serde_json::{json, Value};

use crate::process::{keyward, start_with, Server, ADMIN_EMAIL, ADMIN_PASSWORD};

fn migrate(dir: &Path, from: &str, to: &str) -> (Option<i32>, String, String) {
    let out = keyward(dir)
        .args(["migrate", "--from", from, "--to", to])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

async fn verify(node: &Server, verifier: &str, key: &str) -> Value {
    let (status, body) = node
        .call(
            Method::POST,
            "/api/v1/keys/verify",
            Some(verifier),
            Some(json!({"key": key})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A row count of the comparison table `keyward migrate` prints.
fn count_of(report: &str, table: &str) -> u64 {
    let cells = |l: &str| -> Vec<String> {
        l.trim_matches(|c| c == '│' || c == ' ')
            .split('┆')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let line = report
        .lines()
        .map(cells)
        .find(|c| c.first().is_some_and(|c| c == table))
        .unwrap_or_else(|| panic!("no {table} in\n{report}"));
    line[2].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_installation_moves_to_postgres_and_back_and_its_keys_verify() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let sqlite = format!("sqlite://{}", dir.join("old.db").display());
    let secret = format!("{}.jwt-secret", dir.join("old.db").display());
    // The session secret named outright: under KEYWARD_TEST_DATABASE=postgres the test binary
    // points every server at another file.
    let on_sqlite = [
        ("KEYWARD_DATABASE_URL", sqlite.as_str()),
        ("KEYWARD_JWT_SECRET_FILE", secret.as_str()),
    ];
    let old = start_with(dir, true, &on_sqlite, &["--webhook-allow-private"]).await;
    let admin = old.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, tenant) = old
        .call(
            Method::POST,
            "/api/v1/tenants",
            Some(&admin),
            Some(json!({"name": "Acme", "slug": "acme"})),
        )
        .await;
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let key_of = |body: Value| {
        let (old, admin) = (&old, &admin);
        async move {
            let (status, created) = old
                .call(Method::POST, "/api/v1/api-keys", Some(admin), Some(body))
                .await;
            assert_eq!(status, 201, "{created}");
            created["key"].as_str().unwrap().to_owned()
        }
    };
    let verifier = key_of(json!({"tenant_id": tenant_id, "scopes": ["keyward:verify"]})).await;
    let (status, hook) = old
        .call(
            Method::POST,
            "/api/v1/webhooks",
            Some(&admin),
            Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["key.created"]})),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let metered = key_of(json!({"tenant_id": tenant_id, "remaining": 5})).await;
    for left in [4, 3] {
        assert_eq!(verify(&old, &verifier, &metered).await["remaining"], left);
    }
    let (status, _) = old
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"email": "ann@acme.test", "password": ADMIN_PASSWORD, "tenant_id": tenant_id})),
        )
        .await;
    assert_eq!(status, 201);
    let token = format!("EST{}ARY", uuid::Uuid::new_v4());
    let row = json!({"token": token, "owner_email": "ann@acme.test", "tenant": "acme"});
    let file = dir.join("estuary.jsonl");
    std::fs::write(&file, format!("{row}\n")).unwrap();
    let out = keyward(dir)
        .args(["--database", &sqlite, "import", "--format", "estuary"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(verify(&old, &verifier, &token).await["code"], "VALID");
    // Stopped: the usage it counted is flushed on the way out.
    assert!(old.terminate().success());

    let postgres = keyward_pg_testkit::shared().fresh_database("migrate").await;
    // A mistyped source is not made and copied as an empty installation.
    let typo = format!("sqlite://{}", dir.join("olf.db").display());
    let (code, _, stderr) = migrate(dir, &typo, &postgres);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("does not exist"), "{stderr}");
    let (code, report, stderr) = migrate(dir, &sqlite, &postgres);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(report.contains("copied"), "{report}");
    for table in [
        "tenants",
        "users",
        "api_keys",
        "key_usage",
        "audit_log",
        "api_sessions",
        "key_shapes",
    ] {
        assert!(
            count_of(&report, table) > 0,
            "{table} copied nothing:\n{report}"
        );
    }
    assert!(!report.contains("DIFFERS"), "{report}");
    assert!(!stderr.contains(ADMIN_PASSWORD), "{stderr}");

    // A node on PostgreSQL, with the installation's session secret: the same answers.
    let on_postgres = [
        ("KEYWARD_DATABASE_URL", postgres.as_str()),
        ("KEYWARD_JWT_SECRET_FILE", secret.as_str()),
    ];
    let new = start_with(dir, false, &on_postgres, &[]).await;
    let answer = verify(&new, &verifier, &metered).await;
    assert_eq!(answer["code"], "VALID", "{answer}");
    assert_eq!(answer["remaining"], 2, "credits carry over: {answer}");
    assert_eq!(verify(&new, &verifier, &token).await["code"], "VALID");
    let (status, _) = new
        .call(Method::GET, "/api/v1/users/me", Some(&admin), None)
        .await;
    assert_eq!(status, 200, "the old session carries over");
    let (_, hooks) = new
        .call(Method::GET, "/api/v1/webhooks", Some(&admin), None)
        .await;
    assert_eq!(hooks[0]["url"], "http://127.0.0.1:9/hook", "{hooks}");
    new.login("ann@acme.test", ADMIN_PASSWORD).await;
    let (_, audit) = new
        .call(
            Method::GET,
            "/api/v1/audit-logs?action=api_key.create",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(audit.as_array().unwrap().len(), 2, "{audit}");
    let (_, stats) = new
        .call(Method::GET, "/api/v1/stats", Some(&admin), None)
        .await;
    assert!(
        stats.to_string().contains("VALID"),
        "usage carries over: {stats}"
    );

    // Never into a database that holds an installation.
    let (code, _, stderr) = migrate(dir, &sqlite, &postgres);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("not empty"), "{stderr}");
    assert!(new.terminate().success());

    // And back, to a new SQLite file.
    let back = format!("sqlite://{}", dir.join("back.db").display());
    let (code, report_back, stderr) = migrate(dir, &postgres, &back);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!report_back.contains("DIFFERS"), "{report_back}");
    assert_eq!(
        count_of(&report_back, "api_keys"),
        count_of(&report, "api_keys")
    );
    // The node on PostgreSQL added to the log (a sign-in, at least).
    assert!(count_of(&report_back, "audit_log") > count_of(&report, "audit_log"));
    let on_back = [
        ("KEYWARD_DATABASE_URL", back.as_str()),
        ("KEYWARD_JWT_SECRET_FILE", secret.as_str()),
    ];
    let again = start_with(dir, false, &on_back, &[]).await;
    assert_eq!(verify(&again, &verifier, &metered).await["code"], "VALID");
    assert!(again.terminate().success());
}
