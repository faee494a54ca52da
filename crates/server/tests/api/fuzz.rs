//! schemathesis, the property-based API fuzzer, against the real binary on the suite's backend
//! (the README's test command runs the HTTP suite on SQLite, then on PostgreSQL): every check
//! and every phase (examples, coverage, fuzzing, and the stateful phase that follows create ->
//! get -> rotate -> revoke through the document's links), once as an admin and once as a member.
//! Any failure fails the test.
//!
//! Bounded and reproducible: a fixed seed and 25 examples per operation (`KEYWARD_FUZZ_EXAMPLES`
//! sets another number for a longer run). The configuration, with the few semantic rules it
//! relaxes and why, is `tests/fuzz/schemathesis.toml`; `scripts/test.sh` installs schemathesis
//! from `tests/fuzz/requirements.txt` into `target/fuzz-venv`.

use std::path::PathBuf;
use std::process::Command;

use crate::process::{start_with, ADMIN_EMAIL, ADMIN_PASSWORD};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz")
}

/// The schemathesis of `KEYWARD_FUZZ_SCHEMATHESIS`, or of the venv `scripts/test.sh` makes.
fn schemathesis() -> PathBuf {
    crate::support::venv_tool(
        "KEYWARD_FUZZ_SCHEMATHESIS",
        "fuzz-venv",
        "schemathesis",
        "it from tests/fuzz/requirements.txt",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_fuzzer_finds_nothing_as_admin_or_member() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), true, &[], &[]).await;
    let admin = server.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let member = server.tenant_and_member(&admin).await;
    let examples = std::env::var("KEYWARD_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    for (who, token) in [("admin", admin), ("member", member)] {
        let junit = dir.path().join(format!("junit-{who}.xml"));
        let output = Command::new(schemathesis())
            .current_dir(dir.path())
            .env("KEYWARD_FUZZ_AUTH", format!("Bearer {token}"))
            .arg("--config-file")
            .arg(fuzz_dir().join("schemathesis.toml"))
            .arg("run")
            .arg(format!("{}/api/v1/openapi.json", server.base))
            .args(["--url", &server.base])
            .args(["--phases", "examples,coverage,fuzzing,stateful"])
            .args(["--max-examples", &examples])
            .args(["--report", "junit", "--report-junit-path"])
            .arg(&junit)
            .arg("--no-color")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "schemathesis as {who} failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("passed"),
            "schemathesis as {who} tested nothing:\n{stdout}"
        );
    }
    let logs = server.logs();
    assert!(
        !logs.contains("internal error"),
        "a 5xx was logged:\n{logs}"
    );
}
