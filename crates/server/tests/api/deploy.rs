//! Running keyward as a service: `deploy/keyward.service` passes `systemd-analyze verify` and
//! scores "OK" (at most 2.0) in `systemd-analyze security --offline`, and its command line and
//! settings start the real binary; the `Dockerfile`'s settings are ones the binary takes.
//! The image's command and settings start it too.
//! `systemd-analyze` is Debian's systemd package (`scripts/test.sh` installs it when missing).

use std::path::PathBuf;
use std::time::{Duration, Instant};

fn repo_file(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn systemd_analyze() -> PathBuf {
    crate::support::debian_program(
        "KEYWARD_SYSTEMD_ANALYZE",
        &["/usr/bin/systemd-analyze"],
        "systemd",
    )
}

/// The unit's `NAME=value` lines, in order.
fn settings(unit: &str) -> Vec<(&str, &str)> {
    unit.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .collect()
}

#[test]
fn the_systemd_unit_passes_systemd_analyze() {
    let unit = repo_file("deploy/keyward.service");
    for hardening in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "StateDirectory=keyward",
    ] {
        assert!(
            unit.contains(&format!("\n{hardening}\n")),
            "{hardening} is missing"
        );
    }
    // verify checks that the command exists: the binary under test stands in for /usr/local/bin.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyward.service");
    let binary = env!("CARGO_BIN_EXE_keyward");
    assert!(unit.contains("ExecStart=/usr/local/bin/keyward "));
    std::fs::write(&file, unit.replace("/usr/local/bin/keyward", binary)).unwrap();
    let out = std::process::Command::new(systemd_analyze())
        .arg("verify")
        .arg(&file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    let out = std::process::Command::new(systemd_analyze())
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&file)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let level: f64 = report
        .split("Overall exposure level for keyward.service: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{report}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(
        level <= 2.0,
        "exposure {level} (at most 2.0, systemd's \"OK\"):\n{report}"
    );
}

/// Runs `cmd` (keyward serve on `port`, its data in `dir`) until it answers `/readyz`: 200, and
/// its SQLite database in `dir`.
async fn serves(mut cmd: std::process::Command, port: u16, dir: &std::path::Path) {
    let log = dir.join("log");
    cmd.current_dir(dir)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            break r.status();
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            panic!(
                "keyward did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(ready, 200);
    assert!(
        dir.join("keyward.db").exists(),
        "the database is in the data directory"
    );
}

/// The unit's command line and settings, with its state directory a temporary one, start
/// keyward: every flag and setting it names is one the binary takes. (Not under systemd's
/// sandbox: no systemd runs here; `systemd-analyze` above checks the unit itself.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_units_command_starts_keyward() {
    let unit = repo_file("deploy/keyward.service");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().display().to_string();
    let exec = settings(&unit)
        .into_iter()
        .find(|(name, _)| *name == "ExecStart")
        .map(|(_, v)| v.to_owned())
        .expect("ExecStart");
    let port = crate::support::free_port();
    let exec = exec.replace("127.0.0.1:3000", &format!("127.0.0.1:{port}"));
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/keyward"));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(words);
    for (name, value) in settings(&unit) {
        if name == "Environment" {
            let (key, value) = value.split_once('=').unwrap();
            cmd.env(key, value.replace("/var/lib/keyward", &state));
        }
    }
    serves(cmd, port, dir.path()).await;
}

/// The image's command and settings (its final stage's `ENV`, `ENTRYPOINT` and `CMD`), with its
/// data volume a temporary folder and its 0.0.0.0:3000 a local port, start keyward. (The image
/// itself is not built here: this machine has no Docker daemon, nor the base images.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_images_command_starts_keyward() {
    let dockerfile = repo_file("Dockerfile");
    let last_stage = dockerfile
        .rsplit("\nFROM ")
        .next()
        .unwrap()
        .replace("\\\n", " ");
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let local = |v: &str| {
        v.replace("/var/lib/keyward", &dir.path().display().to_string())
            .replace("0.0.0.0:3000", &format!("127.0.0.1:{port}"))
    };
    let json_words = |line: &str| -> Vec<String> { serde_json::from_str(line.trim()).unwrap() };
    let mut env = Vec::new();
    let (mut entrypoint, mut command) = (Vec::new(), Vec::new());
    for line in last_stage.lines() {
        if let Some(pairs) = line.strip_prefix("ENV ") {
            for pair in pairs.split_whitespace() {
                let (k, v) = pair.split_once('=').unwrap();
                env.push((k.to_owned(), local(v)));
            }
        } else if let Some(words) = line.strip_prefix("ENTRYPOINT ") {
            entrypoint = json_words(words);
        } else if let Some(words) = line.strip_prefix("CMD ") {
            command = json_words(words);
        }
    }
    assert_eq!(entrypoint, ["/usr/local/bin/keyward"]);
    assert!(env.iter().any(|(k, _)| k == "KEYWARD_LISTEN"), "{env:?}");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(&command).envs(env);
    serves(cmd, port, dir.path()).await;
}

/// Every `KEYWARD_*` setting the Dockerfile and the unit name is one `keyward serve --help` names.
#[test]
fn the_dockerfile_and_the_unit_name_settings_keyward_reads() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let dockerfile = repo_file("Dockerfile");
    assert!(
        dockerfile.contains("\nUSER 65532:65532\n"),
        "the image runs as a non-root user"
    );
    assert!(
        dockerfile.matches("\nFROM ").count() >= 2,
        "a multi-stage build"
    );
    for file in [dockerfile, repo_file("deploy/keyward.service")] {
        let named: Vec<&str> = file
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("KEYWARD_"))
            .collect();
        assert!(!named.is_empty());
        for setting in named {
            // A flag's variable (`[env: NAME=]`), or the bootstrap admin's, named by the example.
            assert!(
                help.contains(setting),
                "{setting} is not read by keyward serve"
            );
        }
    }
}
