//! Webhooks over real HTTP: the `keyward` binary sends to a receiver process on loopback that
//! checks every signature with the Standard Webhooks specification's own Python library
//! (`crates/server/tests/webhooks/receiver.py`). Failures are retried after backoff (a short
//! schedule set by flag), a `kill -9` mid-send still delivers after restart, and two nodes on
//! one PostgreSQL deliver each event exactly once.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::process::{start_with, Server, ADMIN_EMAIL, ADMIN_PASSWORD};

/// The receiver: a Python process checking signatures with `standardwebhooks`.
struct Receiver {
    child: Child,
    base: String,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    fn start() -> Self {
        let python = crate::support::venv_tool(
            "KEYWARD_WEBHOOKS_PYTHON",
            "webhooks-venv",
            "python",
            "the Standard Webhooks library (crates/server/tests/webhooks/requirements.txt)",
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webhooks/receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().unwrap();
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn configure(&self, path: &str, secret: &str, fail: u32, hang: u32) {
        let r = reqwest::Client::new()
            .post(format!("{}/_config", self.base))
            .json(&json!({"path": path, "secret": secret, "fail": fail, "hang": hang}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    async fn events(&self) -> Vec<Value> {
        reqwest::get(format!("{}/_events", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until `done` holds of what arrived, or fails after `within`.
    async fn until(&self, within: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let events = self.events().await;
            if done(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "not delivered in time: {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The receiver's records of event `type`.
fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

const FAST: &[&str] = &[
    "--webhook-allow-private",
    "--webhook-retry-schedule",
    "1s,1s,1s,1s",
    "--webhook-lease",
    "3s",
];

/// An endpoint at `path` of the receiver, made by the admin on `node`; the receiver learns its
/// secret and what to answer.
async fn hook(
    node: &Server,
    admin: &str,
    rx: &Receiver,
    path: &str,
    fail: u32,
    hang: u32,
) -> String {
    let (status, body) = node
        .call(
            Method::POST,
            "/api/v1/webhooks",
            Some(admin),
            Some(json!({"url": format!("{}{path}", rx.base)})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    rx.configure(path, body["secret"].as_str().unwrap(), fail, hang)
        .await;
    body["id"].as_str().unwrap().to_owned()
}

async fn make_key(node: &Server, token: &str) -> String {
    let (status, body) = node
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(token),
            Some(json!({"name": "hooked"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_arrive_and_failures_are_retried_after_backoff() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), true, &[], FAST).await;
    let admin = node.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let member = node.tenant_and_member(&admin).await;
    // Answers 500 three times, then 200.
    let id = hook(&node, &admin, &rx, "/flaky", 3, 0).await;
    let key = make_key(&node, &member).await;
    let started = Instant::now();
    let events = rx
        .until(Duration::from_secs(20), |e| {
            e.iter()
                .any(|e| e["type"] == "key.created" && e["answered"] == 200)
        })
        .await;
    let created = of_type(&events, "key.created");
    assert_eq!(
        created.len(),
        4,
        "three failures and one success: {created:#?}"
    );
    assert!(
        created.iter().all(|e| e["verified"] == true),
        "{created:#?}"
    );
    assert!(
        created.iter().all(|e| e["id"] == created[0]["id"]),
        "one webhook-id"
    );
    // Three waits of about a second each (±20%) passed between the first try and the last.
    assert!(
        started.elapsed() >= Duration::from_millis(2_000),
        "{:?}",
        started.elapsed()
    );
    let body: Value = serde_json::from_str(created[3]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["key"]["id"], key);
    // The delivery's record: succeeded after four attempts.
    let (status, deliveries) = node
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/deliveries"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let d = &deliveries[0];
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(d["attempts"], 4);
    assert_eq!(d["response_status"], 200);
    assert!(d["duration_ms"].is_u64());

    // Every later action's event arrives too, verified: revoke, and a test event.
    let (status, _) = node
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{key}"),
            Some(&member),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = node
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/test"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 202);
    let events = rx
        .until(Duration::from_secs(10), |e| {
            of_type(e, "key.revoked").len() == 1 && of_type(e, "webhook.test").len() == 1
        })
        .await;
    assert!(events.iter().all(|e| e["verified"] == true));

    // A receiver that never succeeds: the delivery fails for good after the schedule.
    let never = hook(&node, &admin, &rx, "/down", 100, 0).await;
    let (status, _) = node
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/{never}/test"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, d) = node
            .call(
                Method::GET,
                &format!("/api/v1/webhooks/{never}/deliveries"),
                Some(&admin),
                None,
            )
            .await;
        if d[0]["status"] == "failed" {
            assert_eq!(d[0]["attempts"], 5, "one try and four retries: {d}");
            assert_eq!(d[0]["response_status"], 500);
            assert_eq!(d[0]["next_attempt_at"], Value::Null);
            break;
        }
        assert!(Instant::now() < deadline, "never failed: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The attempts are counted in /metrics: at least the three failures and the success of
    // key.created, the five failures of /down, and that one delivery given up on.
    let metrics = reqwest::get(format!("{}/metrics", node.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    assert!(count("keyward_webhook_attempts_total{outcome=\"failed\"}") >= 8);
    assert!(count("keyward_webhook_attempts_total{outcome=\"succeeded\"}") >= 3);
    assert_eq!(count("keyward_webhook_deliveries_failed_total"), 1);
    // Nothing secret in the server's log.
    assert!(!node.logs().contains("whsec_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_acknowledged_before_a_kill_9_is_delivered_after_restart() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(dir.path(), true, &[], FAST).await;
    let admin = node.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let member = node.tenant_and_member(&admin).await;
    // The receiver holds the first delivery without answering: keyward is mid-send.
    hook(&node, &admin, &rx, "/slow", 0, 1).await;
    let key = make_key(&node, &member).await;
    rx.until(Duration::from_secs(10), |e| {
        !of_type(e, "key.created").is_empty()
    })
    .await;
    node.kill_9();
    let node = start_with(dir.path(), false, &[], FAST).await;
    let events = rx
        .until(Duration::from_secs(20), |e| {
            e.iter()
                .any(|e| e["type"] == "key.created" && e["answered"] == 200)
        })
        .await;
    let created = of_type(&events, "key.created");
    assert_eq!(created.len(), 2, "{created:#?}");
    assert_eq!(created[0]["id"], created[1]["id"]);
    let body: Value = serde_json::from_str(created[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["key"]["id"], key);
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgresql_deliver_each_event_once() {
    if crate::support::on_postgres() {
        return; // Runs once, in the SQLite pass: it makes its own PostgreSQL database.
    }
    let rx = Receiver::start();
    let url = keyward_pg_testkit::shared()
        .fresh_database("webhooks")
        .await;
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let env = [
        ("KEYWARD_DATABASE_URL", url.as_str()),
        (
            "KEYWARD_JWT_SECRET",
            "webhooks-test-secret-webhooks-test-secret",
        ),
    ];
    let a = start_with(dir_a.path(), true, &env, FAST).await;
    let b = start_with(dir_b.path(), false, &env, FAST).await;
    let admin = a.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let member = a.tenant_and_member(&admin).await;
    hook(&a, &admin, &rx, "/count", 0, 0).await;
    const KEYS: usize = 30;
    for i in 0..KEYS {
        let node = if i % 2 == 0 { &a } else { &b };
        make_key(node, &member).await;
    }
    rx.until(Duration::from_secs(20), |e| {
        of_type(e, "key.created").len() >= KEYS
    })
    .await;
    // Time for any duplicate to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = rx.events().await;
    let created = of_type(&events, "key.created");
    let mut ids: Vec<&str> = created.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(created.len(), KEYS, "each event exactly once");
    assert_eq!(ids.len(), KEYS);
    assert!(created.iter().all(|e| e["verified"] == true));
}
