//! The web console in a real browser: the flows of `tests/browser/console_flows.py` (sign-in,
//! tenants and users, a key created, shown once, verified, rotated and revoked, its usage chart,
//! another member's key, a form without its CSRF token, sign-out; `/docs/`, Swagger UI from the
//! binary with every operation of the OpenAPI document, nothing loaded from another origin, and
//! "Try it out" answered by this keyward, with a member's key through Authorize; again with
//! JavaScript off), with axe-core in every page (but Swagger UI's own markup) and a screenshot of
//! each under `target/browser-screenshots/`, against the real binary on the suite's backend.
//!
//! Debian's chromium and chromedriver, the Selenium venv and axe-core are what `scripts/test.sh`
//! installs; when one is missing this test fails and says so, it never skips.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::process::{start_with, ADMIN_EMAIL, ADMIN_PASSWORD};

/// The whole run, chromium's starts included, takes well under a minute; past this it hangs.
const FLOWS_TIMEOUT: Duration = Duration::from_secs(300);

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace's `target/`, where `scripts/test.sh` installs what the flows need.
fn target_dir() -> PathBuf {
    manifest_dir().join("../../target")
}

/// axe-core's `axe.min.js`: `KEYWARD_AXE_JS`, or the copy `scripts/test.sh` installs from npm.
fn axe_js() -> PathBuf {
    if let Some(set) = std::env::var_os("KEYWARD_AXE_JS") {
        return set.into();
    }
    let path = target_dir().join("browser-npm/node_modules/axe-core/axe.min.js");
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/test.sh`, which installs axe-core from npm into \
         target/browser-npm",
        path.display()
    );
    path
}

/// Where the screenshots go: `target/browser-screenshots/`, and a folder of its own there for
/// the PostgreSQL pass of the suite, so that both runs' pictures stay.
fn screenshots() -> PathBuf {
    let dir = target_dir().join("browser-screenshots");
    if crate::support::on_postgres() {
        dir.join("postgres")
    } else {
        dir
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_flows_pass_in_a_real_browser() {
    let python = crate::support::venv_tool(
        "KEYWARD_BROWSER_PYTHON",
        "browser-venv",
        "python",
        "Selenium (crates/server/tests/browser/requirements.txt)",
    );
    let chromium =
        crate::support::debian_program("KEYWARD_CHROMIUM", &["/usr/bin/chromium"], "chromium");
    let chromedriver = crate::support::debian_program(
        "KEYWARD_CHROMEDRIVER",
        &["/usr/bin/chromedriver"],
        "chromium-driver",
    );
    let axe = axe_js();
    let shots = screenshots();
    std::fs::create_dir_all(&shots).unwrap();
    let shots = shots.canonicalize().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), true, &[], &[]).await;
    let started = Instant::now();
    let flows = manifest_dir().join("tests/browser/console_flows.py");
    let run = tokio::process::Command::new(&python)
        .arg(&flows)
        .current_dir(dir.path())
        .env("KEYWARD_URL", &server.base)
        .env("KEYWARD_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("KEYWARD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("KEYWARD_SCREENSHOTS", &shots)
        .env("KEYWARD_AXE_JS", &axe)
        .env("KEYWARD_CHROMIUM", &chromium)
        .env("KEYWARD_CHROMEDRIVER", &chromedriver)
        // Selenium Manager would look for a browser and driver online; the ones named are used.
        .env("SE_OFFLINE", "true")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(FLOWS_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("the browser flows ran past {FLOWS_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("could not run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "browser flows took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "the console's browser flows failed ({}); screenshots in {}:\n{stdout}\n{stderr}\n\
         last lines of the server's log:\n{}",
        out.status,
        shots.display(),
        tail(&server.logs(), 40)
    );
    assert!(
        stdout.contains(" 0 failed, 0 skipped"),
        "the flows did not all run:\n{stdout}"
    );
    println!("{stdout}");
    if std::env::var_os("KEYWARD_BROWSER_FLOWS").is_none() {
        assert_screenshots_written(&shots);
    }
}

/// The run left a PNG of each page (the flows name them; here a few that every run visits).
fn assert_screenshots_written(shots: &Path) {
    for page in [
        "js-sign-in",
        "js-keys",
        "js-key",
        "js-key-created",
        "js-docs",
        "nojs-key-created",
    ] {
        let png = shots.join(format!("{page}.png"));
        let bytes =
            std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot {}: {e}", png.display()));
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "{} is not a PNG",
            png.display()
        );
    }
}
