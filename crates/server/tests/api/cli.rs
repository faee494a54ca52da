//! The operator's commands of the real `keyward` binary (`tenant`, `user`, `key`, `backup`),
//! straight on the test database, beside a server on it when the test needs one: their tables
//! and JSON, the keys they make working over HTTP, their refusals as one line on stderr, their
//! audit trail as `system`, and a backup taken under write load that restores.
//!
//! A running server learns of the command line's changes from the database: at once through
//! PostgreSQL's change feed, within its cache TTL on SQLite (1s here, so waits are short).

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::process::{keyward, start_with, Server, ADMIN_EMAIL, ADMIN_PASSWORD};
use crate::support::{on_postgres, rfc3339};

/// What a finished command said.
struct Said {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn said(mut cmd: Command, stdin: Option<&str>) -> Said {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    Said {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `keyward ARGS` on the test database of `dir`; its standard output, once it succeeded.
#[track_caller]
fn ok(dir: &Path, args: &[&str]) -> String {
    let mut cmd = keyward(dir);
    cmd.args(args);
    let out = said(cmd, None);
    assert_eq!(out.code, Some(0), "keyward {args:?}: {}", out.stderr);
    out.stdout
}

#[track_caller]
fn ok_json(dir: &Path, args: &[&str]) -> Value {
    let stdout = ok(dir, args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("keyward {args:?}: {e}: {stdout}"))
}

/// `keyward ARGS`, which must fail with status 1 and say why in one line `error: ...`, all it
/// writes to stderr (no log line, no panic, no backtrace, nothing on stdout); that line.
#[track_caller]
fn refused(dir: &Path, args: &[&str]) -> String {
    let mut cmd = keyward(dir);
    cmd.args(args);
    let out = said(cmd, None);
    assert_eq!(out.code, Some(1), "keyward {args:?}: {}", out.stderr);
    assert_eq!(out.stdout, "", "keyward {args:?}");
    let errors: Vec<&str> = out.stderr.lines().collect();
    assert!(
        errors.len() == 1 && errors[0].starts_with("error: "),
        "keyward {args:?} explains itself in one line: {:?}",
        out.stderr
    );
    errors[0].to_owned()
}

fn tenant(dir: &Path, slug: &str) -> String {
    let name = slug.to_uppercase();
    ok(dir, &["tenant", "create", "--name", &name, "--slug", slug])
        .trim()
        .to_owned()
}

/// A user made by `keyward user create`, in the tenant `slug` when one is named; their id.
fn user(dir: &Path, email: &str, slug: Option<&str>, role: &str) -> String {
    let mut cmd = keyward(dir);
    cmd.args(["user", "create", "--email", email, "--password-stdin"])
        .args(["--role", role]);
    if let Some(slug) = slug {
        cmd.args(["--tenant", slug]);
    }
    let out = said(cmd, Some("a user password that is long\n"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout.trim().to_owned()
}

/// `keyward key create --json ARGS`, checked to print its plaintext once and to stdout alone;
/// the created key (with `key`).
#[track_caller]
fn key_create(dir: &Path, args: &[&str]) -> Value {
    let mut cmd = keyward(dir);
    cmd.args(["key", "create", "--json"]).args(args);
    let out = said(cmd, None);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let created: Value = serde_json::from_str(&out.stdout).unwrap();
    let key = created["key"].as_str().unwrap();
    assert_eq!(out.stdout.matches(key).count(), 1, "{}", out.stdout);
    assert!(!out.stderr.contains(key), "a key on stderr");
    created
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect()
}

/// A server on the test database of `dir` with the admin, trusting cached keys for one second.
async fn server(dir: &Path) -> (Server, String) {
    let server = start_with(dir, true, &[], &["--cache-ttl", "1s"]).await;
    let admin = server.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    (server, admin)
}

/// The verify code of `key`, asked by `admin`.
async fn verdict(server: &Server, admin: &str, key: &str) -> String {
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/keys/verify",
            Some(admin),
            Some(json!({"key": key})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["code"].as_str().unwrap().to_owned()
}

/// Waits until the server's verdict on `key` is `code`.
async fn verdict_becomes(server: &Server, admin: &str, key: &str, code: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = verdict(server, admin, key).await;
        if now == code {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the key stayed {now}, never {code}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status of `GET /api/v1/users/me` with `key` in `X-API-Key`, and its body.
async fn me_by_key(server: &Server, key: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/users/me", server.base))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[test]
fn tenant_and_user_lists_show_what_the_cli_made() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let acme = tenant(dir, "acme");
    let globex = tenant(dir, "globex");
    let root = user(dir, "root@example.com", None, "admin");
    let ann = user(dir, "ann@example.com", Some("acme"), "member");
    let bob = user(dir, "bob@example.com", Some("globex"), "tenant_admin");

    let tenants = ok_json(dir, &["tenant", "list", "--json"]);
    assert_eq!(
        ids(&tenants),
        [acme.as_str(), globex.as_str()],
        "oldest first"
    );
    assert_eq!(tenants[1]["slug"], "globex");
    assert_eq!(tenants[1]["name"], "GLOBEX");
    let table = ok(dir, &["tenant", "list"]);
    for text in ["slug", "acme", "globex", &acme, &globex] {
        assert!(table.contains(text), "{text} missing from\n{table}");
    }

    let users = ok_json(dir, &["user", "list", "--json"]);
    assert_eq!(ids(&users), [root.as_str(), ann.as_str(), bob.as_str()]);
    assert_eq!(users[0]["role"], "admin");
    assert_eq!(users[0]["tenant_id"], Value::Null);
    assert_eq!(users[2]["role"], "tenant_admin");
    assert_eq!(users[2]["tenant_id"], globex.as_str());
    assert!(users[1].get("password_hash").is_none(), "{}", users[1]);
    let in_acme = ok_json(dir, &["user", "list", "--tenant", "acme", "--json"]);
    assert_eq!(ids(&in_acme), [ann.as_str()]);
    assert_eq!(in_acme[0]["email"], "ann@example.com");
    let table = ok(dir, &["user", "list", "--tenant", "globex"]);
    assert!(
        table.contains("bob@example.com") && table.contains(&bob),
        "{table}"
    );
    assert!(
        !table.contains("ann@example.com") && !table.contains("root@"),
        "{table}"
    );
    assert!(refused(dir, &["user", "list", "--tenant", "nope"]).contains("\"nope\""));
}

/// Waits until `GET /api/v1/users/me` with the session `token` answers `status`.
async fn session_becomes(server: &Server, token: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (now, body) = server
            .call(reqwest::Method::GET, "/api/v1/users/me", Some(token), None)
            .await;
        if now == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the session stayed {now}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn users_are_disabled_enabled_given_passwords_and_deleted_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (server, admin) = server(dir).await;
    tenant(dir, "acme");
    let ann = user(dir, "ann@example.com", Some("acme"), "member");
    let session = server
        .login("ann@example.com", "a user password that is long")
        .await;
    let (status, created) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/api-keys",
            Some(&session),
            Some(json!({"name": "anns"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(verdict(&server, &admin, &key).await, "VALID");

    let said_ = ok(dir, &["user", "disable", "ann@example.com"]);
    assert_eq!(said_.trim(), "ann@example.com disabled");
    verdict_becomes(&server, &admin, &key, "OWNER_DISABLED").await;
    session_becomes(&server, &session, 401).await;
    let disabled = ok_json(dir, &["user", "list", "--disabled", "--json"]);
    assert_eq!(ids(&disabled), [ann.as_str()]);
    assert_eq!(disabled[0]["disabled"], true);
    let active = ok_json(dir, &["user", "list", "--disabled=false", "--json"]);
    assert!(!ids(&active).contains(&ann.as_str()), "{active}");
    assert!(ok(dir, &["user", "list", "--disabled"]).contains("disabled"));

    ok(dir, &["user", "enable", &ann]);
    verdict_becomes(&server, &admin, &key, "VALID").await;

    let mut cmd = keyward(dir);
    cmd.args([
        "user",
        "set-password",
        "ann@example.com",
        "--password-stdin",
    ]);
    let out = said(cmd, Some("a brand new password, long\n"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    server
        .login("ann@example.com", "a brand new password, long")
        .await;

    let said_ = ok(dir, &["user", "delete", "ann@example.com"]);
    assert_eq!(said_.trim(), "ann@example.com deleted; 1 keys revoked");
    verdict_becomes(&server, &admin, &key, "REVOKED").await;

    assert!(refused(dir, &["user", "disable", "nobody@example.com"]).contains("no user"));
    assert!(refused(dir, &["user", "enable", "not an email"]).contains("neither"));
    assert!(refused(dir, &["user", "delete", ADMIN_EMAIL]).contains("last active admin"));
    assert!(refused(dir, &["user", "disable", ADMIN_EMAIL]).contains("last active admin"));
    let mut cmd = keyward(dir);
    cmd.args(["user", "set-password", ADMIN_EMAIL, "--password-stdin"]);
    let out = said(cmd, Some("short\n"));
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("at least 12"), "{}", out.stderr);
    assert!(server.terminate().success());
}

#[tokio::test]
async fn keyward_import_reports_bad_lines_and_a_second_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (server, admin) = server(dir).await;
    tenant(dir, "acme");
    let tokens: Vec<String> = (0..3)
        .map(|_| format!("EST{}ARY", uuid::Uuid::new_v4()))
        .collect();
    let row = |t: &str| json!({"token": t, "owner_email": "ann@acme.test", "tenant": "acme"});
    let file = dir.join("keys.jsonl");
    let lines = [
        row(&tokens[0]).to_string(),
        row(&tokens[1]).to_string(),
        json!({"token": "not an estuary token", "owner_email": "ann@acme.test"}).to_string(),
        row(&tokens[2]).to_string(),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let path = file.to_str().unwrap();
    let mut cmd = keyward(dir);
    cmd.args([
        "import",
        "--format",
        "estuary",
        "--create-owners",
        "--batch",
        "2",
        path,
    ]);
    let out = said(cmd, None);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stdout.contains("2 imported"), "{}", out.stdout);
    assert!(out.stdout.contains("line 3: "), "{}", out.stdout);
    assert!(
        out.stderr.starts_with("error: 1 rows refused"),
        "{}",
        out.stderr
    );
    for t in &tokens {
        assert!(!out.stdout.contains(t.as_str()) && !out.stderr.contains(t.as_str()));
    }
    verdict_becomes(&server, &admin, &tokens[0], "VALID").await;
    assert_eq!(verdict(&server, &admin, &tokens[2]).await, "NOT_FOUND");

    std::fs::write(
        &file,
        [row(&tokens[0]), row(&tokens[1]), row(&tokens[2])]
            .map(|r| r.to_string())
            .join("\n"),
    )
    .unwrap();
    let said_ = ok(dir, &["import", "--format", "estuary", path]);
    assert!(said_.contains("1 imported, 2 already present"), "{said_}");
    let said_ = ok(dir, &["import", "--format", "estuary", path]);
    assert!(said_.contains("nothing changed"), "{said_}");
    verdict_becomes(&server, &admin, &tokens[2], "VALID").await;
    assert!(refused(
        dir,
        &["import", "--format", "estuary", "/nonexistent.jsonl"]
    )
    .contains("opening"));
    assert!(refused(dir, &["import", "--format", "sha256", path]).contains("prefix"));
    assert!(server.terminate().success());
}

#[tokio::test]
async fn keys_made_by_the_cli_authenticate_and_are_listed_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (server, admin) = server(dir).await;
    let acme = tenant(dir, "acme");
    let globex = tenant(dir, "globex");
    let ann = user(dir, "ann@example.com", Some("acme"), "member");
    let bob = user(dir, "bob@example.com", Some("globex"), "member");

    let anns = key_create(
        dir,
        &[
            "--owner",
            "ann@example.com",
            "--tenant",
            "acme",
            "--name",
            "ci",
            "--scopes",
            "keyward:read,orders",
            "--expires-in",
            "90d",
        ],
    );
    assert_eq!(anns["tenant_id"], acme.as_str());
    assert_eq!(anns["name"], "ci");
    assert_eq!(anns["scopes"], json!(["keyward:read", "orders"]));
    let lifetime = rfc3339(&anns["expires_at"]) - rfc3339(&anns["created_at"]);
    assert_eq!(lifetime.whole_days(), 90);
    let ann_key = anns["key"].as_str().unwrap();
    let (status, me) = me_by_key(&server, ann_key).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], ann.as_str());

    // Table mode: a table, then the plaintext on a line of its own, once.
    let mut cmd = keyward(dir);
    cmd.args([
        "key",
        "create",
        "--owner",
        "bob@example.com",
        "--name",
        "bobs",
    ]);
    let out = said(cmd, None);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let bob_key = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .unwrap_or_else(|| panic!("no key line in\n{}", out.stdout))
        .to_owned();
    assert_eq!(out.stdout.matches(&bob_key).count(), 1, "{}", out.stdout);
    assert!(!out.stderr.contains(&bob_key), "a key on stderr");
    assert_eq!(verdict(&server, &admin, &bob_key).await, "VALID");

    let ann_id = anns["id"].as_str().unwrap();
    let in_acme = ok_json(dir, &["key", "list", "--tenant", "acme", "--json"]);
    assert_eq!(ids(&in_acme), [ann_id]);
    let bobs = ok_json(
        dir,
        &["key", "list", "--owner", "bob@example.com", "--json"],
    );
    assert_eq!(bobs.as_array().unwrap().len(), 1);
    let bob_id = bobs[0]["id"].as_str().unwrap();
    assert_eq!(bobs[0]["owner_id"], bob.as_str());
    assert_eq!(bobs[0]["tenant_id"], globex.as_str());
    assert_eq!(
        ids(&ok_json(dir, &["key", "list", "--json"])),
        [ann_id, bob_id],
        "oldest first, as the API lists them"
    );
    let table = ok(dir, &["key", "list"]);
    for text in [ann_id, bob_id, "ci", "bobs", "active"] {
        assert!(table.contains(text), "{text} missing from\n{table}");
    }

    let shown = ok_json(dir, &["key", "show", ann_id, "--tenant", "acme", "--json"]);
    assert_eq!(ids(&shown), [ann_id]);
    assert_eq!(shown[0]["owner_id"], ann.as_str());
    assert_eq!(shown[0]["status"], "active");
    assert_eq!(shown[0]["revoked_at"], Value::Null);
    let table = ok(dir, &["key", "show", ann_id]);
    assert!(
        table.contains(ann_id) && table.contains("keyward:read,orders"),
        "{table}"
    );
    let everything = [
        ok(dir, &["key", "list", "--json"]),
        ok(dir, &["key", "list"]),
        table,
    ]
    .concat();
    for key in [ann_key, bob_key.as_str()] {
        assert!(!everything.contains(key), "a listing shows a plaintext");
    }

    let error = refused(dir, &["key", "show", ann_id, "--tenant", "globex"]);
    assert!(error.contains("not found"), "{error}");
    let error = refused(
        dir,
        &[
            "key",
            "create",
            "--owner",
            "ann@example.com",
            "--tenant",
            "globex",
            "--name",
            "x",
        ],
    );
    assert!(
        error.contains("ann@example.com") && error.contains("globex"),
        "{error}"
    );
    assert_eq!(
        ids(&ok_json(
            dir,
            &["key", "list", "--tenant", "globex", "--json"]
        )),
        [bob_id]
    );
}

#[tokio::test]
async fn rotate_and_revoke_take_keys_out_of_service() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (server, admin) = server(dir).await;
    tenant(dir, "acme");
    tenant(dir, "globex");
    user(dir, "ann@example.com", Some("acme"), "member");
    let first = key_create(
        dir,
        &[
            "--owner",
            "ann@example.com",
            "--name",
            "ci",
            "--scopes",
            "keyward:read",
        ],
    );
    let (first_id, first_key) = (
        first["id"].as_str().unwrap(),
        first["key"].as_str().unwrap(),
    );
    assert_eq!(verdict(&server, &admin, first_key).await, "VALID");

    let second = ok_json(
        dir,
        &["key", "rotate", first_id, "--tenant", "acme", "--json"],
    );
    let (second_id, second_key) = (
        second["id"].as_str().unwrap(),
        second["key"].as_str().unwrap(),
    );
    assert_ne!(second_id, first_id);
    assert_eq!(second["scopes"], json!(["keyward:read"]));
    verdict_becomes(&server, &admin, first_key, "REVOKED").await;
    // Rotated again before any use, so the verdicts below are read from the database.
    let third = ok_json(
        dir,
        &["key", "rotate", second_id, "--grace-period", "1h", "--json"],
    );
    let (third_id, third_key) = (
        third["id"].as_str().unwrap(),
        third["key"].as_str().unwrap(),
    );
    assert_eq!(
        verdict(&server, &admin, second_key).await,
        "VALID",
        "in its grace period"
    );
    assert_eq!(verdict(&server, &admin, third_key).await, "VALID");
    let second = ok_json(dir, &["key", "show", second_id, "--json"]);
    assert_eq!(second[0]["status"], "active");
    let ends = rfc3339(&second[0]["revoked_at"]) - rfc3339(&third["created_at"]);
    assert_eq!(ends.whole_minutes(), 60, "{second}");

    let error = refused(dir, &["key", "revoke", third_id, "--tenant", "globex"]);
    assert!(error.contains("not found"), "{error}");
    let (status, me) = me_by_key(&server, third_key).await;
    assert_eq!(status, 200, "still in service after a refused revoke: {me}");
    let revoked = ok_json(
        dir,
        &["key", "revoke", third_id, "--tenant", "acme", "--json"],
    );
    assert_eq!(ids(&revoked), [third_id]);
    assert_eq!(revoked[0]["status"], "revoked");
    assert!(revoked[0]["revoked_at"].is_string(), "{revoked}");
    verdict_becomes(&server, &admin, third_key, "REVOKED").await;
    let (status, _) = me_by_key(&server, third_key).await;
    assert_eq!(status, 401);
    let error = refused(dir, &["key", "revoke", third_id]);
    assert!(error.contains("already revoked"), "{error}");
    let error = refused(dir, &["key", "rotate", first_id]);
    assert!(error.contains("already revoked"), "{error}");
}

#[test]
fn bad_input_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    tenant(dir, "acme");
    user(dir, "ann@example.com", Some("acme"), "member");
    let key = key_create(dir, &["--owner", "ann@example.com", "--name", "ci"]);
    let id = key["id"].as_str().unwrap();
    let unknown = uuid::Uuid::now_v7();
    let ann = "key create --owner ann@example.com --name n";

    for (line, says) in [
        (format!("{ann} --expires-in soon"), "--expires-in"),
        (format!("{ann} --expires-in 0d"), "--expires-in"),
        (
            format!("{ann} --scopes keyward:everything"),
            "keyward:everything",
        ),
        (format!("{ann} --tenant nope"), "\"nope\""),
        (
            "key create --owner nobody@example.com --name n".into(),
            "nobody@example.com",
        ),
        (
            "key list --owner nobody@example.com".into(),
            "nobody@example.com",
        ),
        (format!("key show {unknown}"), "not found"),
        (format!("key revoke {unknown}"), "not found"),
        (format!("key rotate {unknown}"), "not found"),
        (format!("key rotate {id} --grace-period 30d"), "7d"),
        (
            format!("key rotate {id} --grace-period 1hour"),
            "--grace-period",
        ),
    ] {
        let args: Vec<&str> = line.split(' ').collect();
        let error = refused(dir, &args);
        assert!(error.contains(says), "keyward {line}: {error}");
    }
    // Nothing was made or changed by the refused commands.
    let keys = ok_json(dir, &["key", "list", "--json"]);
    assert_eq!(ids(&keys), [id]);
    assert_eq!(keys[0]["status"], "active");
}

#[tokio::test]
async fn every_change_the_cli_makes_is_audited_as_system() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (server, admin) = server(dir).await;
    let acme = tenant(dir, "acme");
    let ann = user(dir, "ann@example.com", Some("acme"), "member");
    let created = key_create(dir, &["--owner", "ann@example.com", "--name", "ci"]);
    let id = created["id"].as_str().unwrap();
    let rotated = ok_json(dir, &["key", "rotate", id, "--json"]);
    let new_id = rotated["id"].as_str().unwrap();
    ok(dir, &["key", "revoke", new_id]);

    let (status, log) = server
        .call(
            reqwest::Method::GET,
            "/api/v1/audit-logs?limit=1000",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    let entries = log.as_array().unwrap();
    for (action, resource) in [
        ("tenant.create", acme.as_str()),
        ("user.create", ann.as_str()),
        ("api_key.create", id),
        ("api_key.rotate", id),
        ("api_key.revoke", new_id),
    ] {
        let entry = entries
            .iter()
            .find(|e| e["action"] == action && e["resource_id"] == resource)
            .unwrap_or_else(|| panic!("no {action} of {resource} in {log:#}"));
        assert_eq!(entry["actor_type"], "system", "{entry}");
        assert_eq!(entry["actor_id"], "cli", "{entry}");
        assert_eq!(entry["source_ip"], Value::Null, "{entry}");
        if resource != acme {
            assert_eq!(entry["tenant_id"], acme.as_str(), "{entry}");
        }
    }
    let text = log.to_string();
    for key in [&created["key"], &rotated["key"]] {
        assert!(
            !text.contains(key.as_str().unwrap()),
            "a plaintext in the audit log"
        );
    }
}

/// A SQLite database in `dir`, whichever backend the suite runs on: backups copy SQLite files.
fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite://{}", dir.join(file).display())
}

/// `PRAGMA integrity_check` of the SQLite file `path`, and the ids in its `api_keys`.
async fn open_backup(path: &Path) -> (String, HashSet<String>) {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM api_keys")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    (check, ids.into_iter().collect())
}

/// The keys a write load got 201 for, in order: id and plaintext.
type Acked = Arc<Mutex<Vec<(String, String)>>>;

/// Creates keys in `tenant` over HTTP one after another until `stop`.
fn write_load(
    server: &Server,
    admin: &str,
    tenant: &str,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Acked, tokio::task::JoinHandle<()>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let (seen, base, admin) = (acked.clone(), server.base.clone(), admin.to_owned());
    let body = json!({"tenant_id": tenant, "name": "load"});
    let writer = tokio::spawn(async move {
        let client = reqwest::Client::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let res = client
                .post(format!("{base}/api/v1/api-keys"))
                .bearer_auth(&admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
            let created: Value = res.json().await.unwrap();
            let id = created["id"].as_str().unwrap().to_owned();
            let key = created["key"].as_str().unwrap().to_owned();
            seen.lock().unwrap().push((id, key));
        }
    });
    (acked, writer)
}

/// Waits until the writer has `n` keys acknowledged.
async fn acknowledged(acked: &Acked, writer: &tokio::task::JoinHandle<()>, n: usize) {
    while acked.lock().unwrap().len() < n {
        assert!(!writer.is_finished(), "the writer failed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_is_whole_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let url = sqlite_url(dir, "live.db");
    let server = start_with(dir, true, &[("KEYWARD_DATABASE_URL", &url)], &[]).await;
    let admin = server.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    // Enough rows that the copy takes a while, and writes land while it runs.
    let mut seed = keyward(dir);
    seed.args([
        "--database",
        &url,
        "bench-seed",
        "--count",
        "20000",
        "--batch",
        "5000",
    ])
    .args([
        "--verifier-out",
        &dir.join("verifier").display().to_string(),
    ]);
    let out = said(seed, None);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let (status, tenant) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/tenants",
            Some(&admin),
            Some(json!({"name": "Acme", "slug": "acme"})),
        )
        .await;
    assert_eq!(status, 201, "{tenant}");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (acked, writer) = write_load(
        &server,
        &admin,
        tenant["id"].as_str().unwrap(),
        stop.clone(),
    );
    acknowledged(&acked, &writer, 20).await;

    let target = dir.join("backup.db");
    let before: Vec<(String, String)> = acked.lock().unwrap().clone();
    let mut backup = keyward(dir);
    backup.args([
        "--database",
        &url,
        "backup",
        "--to",
        &target.display().to_string(),
    ]);
    let out = tokio::task::spawn_blocking(move || said(backup, None))
        .await
        .unwrap();
    let during = acked.lock().unwrap().len() - before.len();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("keyward serve --database sqlite://"),
        "{}",
        out.stdout
    );
    // The load goes on past the backup, then stops.
    let at_backup = acked.lock().unwrap().len();
    acknowledged(&acked, &writer, at_backup + 5).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    assert!(
        during > 0,
        "no write was acknowledged while the backup ran ({} before it)",
        before.len()
    );

    let (check, in_backup) = open_backup(&target).await;
    assert_eq!(check, "ok");
    for (id, _) in &before {
        assert!(
            in_backup.contains(id),
            "acknowledged key {id} is missing from the backup"
        );
    }
    assert!(
        in_backup.len() >= 20_001 + before.len(),
        "{}",
        in_backup.len()
    );
    drop(server);

    // Restored: a server on the copy alone knows the keys made before it.
    std::fs::remove_file(dir.join("live.db")).unwrap();
    let restored = sqlite_url(dir, "backup.db");
    let server = start_with(dir, false, &[], &["--database", &restored]).await;
    let admin = server.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    for (_, key) in [&before[0], &before[before.len() - 1]] {
        assert_eq!(verdict(&server, &admin, key).await, "VALID");
    }
}

#[test]
fn a_backup_never_overwrites_and_leaves_postgres_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let url = sqlite_url(dir, "live.db");
    ok(
        dir,
        &[
            "--database",
            &url,
            "tenant",
            "create",
            "--name",
            "A",
            "--slug",
            "a",
        ],
    );
    let target = dir.join("taken");
    std::fs::write(&target, "precious").unwrap();
    let target = target.display().to_string();
    let error = refused(dir, &["--database", &url, "backup", "--to", &target]);
    assert!(error.contains("exists"), "{error}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");

    // Refused before any connection: nothing listens on port 1.
    let fresh = dir.join("fresh.db").display().to_string();
    let secret = "pg-password-never-shown";
    let mut cmd = keyward(dir);
    cmd.args([
        "--database",
        &format!("postgres://kw:{secret}@127.0.0.1:1/kw"),
    ])
    .args(["backup", "--to", &fresh]);
    let out = said(cmd, None);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.starts_with("error: ") && out.stderr.contains("pg_dump"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(secret) && !out.stdout.contains(secret));
    assert!(!Path::new(&fresh).exists());

    // The suite's own database: copied when it is SQLite, sent to pg_dump when PostgreSQL.
    ok(dir, &["tenant", "list"]);
    let mut cmd = keyward(dir);
    cmd.args(["backup", "--to", &fresh]);
    let out = said(cmd, None);
    if on_postgres() {
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        assert!(out.stderr.contains("pg_dump"), "{}", out.stderr);
    } else {
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert!(Path::new(&fresh).exists());
    }
}

#[test]
fn completions_a_manual_page_and_a_version_that_names_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    for (shell, mark) in [
        ("bash", "_keyward()"),
        ("zsh", "#compdef keyward"),
        ("fish", "complete -c keyward"),
    ] {
        let script = ok(dir, &["completions", shell]);
        assert!(script.contains(mark), "{shell}: {script:.200}");
        assert!(script.contains("rotate"), "{shell} completes subcommands");
    }
    let page = ok(dir, &["man"]);
    assert!(page.contains(".TH keyward 1"), "{page:.200}");
    let version = ok(dir, &["--version"]);
    let commit = version
        .trim()
        .strip_suffix(')')
        .and_then(|v| v.split_once("(commit "))
        .map(|(_, c)| c.to_owned())
        .unwrap_or_default();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{version}"
    );
    let help = ok(dir, &["key", "rotate", "--help"]);
    assert!(help.contains("Example:\n  keyward key rotate"), "{help}");
    // Neither touches a database: none was made.
    assert!(!dir.join("kw.db").exists());
    let mut cmd = keyward(dir);
    cmd.args(["completions", "tcsh"]);
    let out = said(cmd, None);
    assert_eq!(out.code, Some(2), "an unknown shell is a usage error");
}
