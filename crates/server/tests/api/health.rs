//! `/healthz`, `/readyz`, `/api/v1/health`.

use axum::http::StatusCode;

use crate::support::{app, As};

#[tokio::test]
async fn health_endpoints() {
    let app = app().await;
    let r = app.get("/healthz", As::Nobody).await.expect(StatusCode::OK);
    assert_eq!(r.body["status"], "ok");
    let r = app.get("/readyz", As::Nobody).await.expect(StatusCode::OK);
    assert_eq!(r.body["status"], "ready");
    let r = app
        .get("/api/v1/health", As::Nobody)
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["status"], "ok");
    assert_eq!(r.body["database"], "ok");
    assert_eq!(r.body["version"], env!("CARGO_PKG_VERSION"));
    assert!(r.body["uptime_seconds"].is_u64());
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = app().await;
    app.state.store.close().await;
    let r = app
        .get("/readyz", As::Nobody)
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["status"], "unavailable");
    let r = app
        .get("/api/v1/health", As::Nobody)
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["status"], "degraded");
    let r = app
        .post(
            "/api/v1/auth/login",
            As::Nobody,
            serde_json::json!({"email": "a@b.c", "password": "whatever-whatever"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.error_code(), "unavailable");
}

/// `/metrics` is what Prometheus' own checker accepts, every metric is in the README's table,
/// and the Grafana dashboard in `docs/` names only metrics that exist.
#[tokio::test]
async fn metrics_pass_promtool_and_are_documented() {
    let app = crate::support::app().await;
    let admin = app.admin().await;
    let acme = app.tenant("acme").await;
    let (_, verifier) = app
        .key_from(
            &admin,
            serde_json::json!({"scopes": ["keyward:verify"], "tenant_id": acme}),
        )
        .await;
    app.verify(&verifier, "kw_not_a_key").await;
    let r = app
        .get("/metrics", crate::support::As::Nobody)
        .await
        .expect(axum::http::StatusCode::OK);
    let text = r.body.as_str().unwrap().to_owned();
    let promtool = std::path::Path::new("/usr/bin/promtool");
    assert!(
        promtool.exists(),
        "promtool is missing: run `bash scripts/test.sh`, which installs Debian's prometheus"
    );
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let names: std::collections::BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 12, "{names:?}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for name in &names {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} is not in the README's table of metrics"
        );
    }
    let dashboard = std::fs::read_to_string(root.join("docs/grafana-dashboard.json")).unwrap();
    let _: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let used = regex::Regex::new(r"keyward_[a-z_]+").unwrap();
    for found in used.find_iter(&dashboard) {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .fold(found.as_str(), |n, suffix| {
                n.strip_suffix(suffix).unwrap_or(n)
            });
        assert!(
            names.contains(base),
            "the dashboard names {} which /metrics lacks",
            found.as_str()
        );
    }
}
