//! The store conformance suite on PostgreSQL, plus what only a shared database has to prove.
//!
//! Owns one throwaway PostgreSQL cluster per test binary: `initdb` into a fresh temporary
//! directory (trust auth, loopback TCP on a free port, its socket inside that directory), then
//! `postgres` under a small `sh` supervisor. Each case gets its own new database, so cases stay
//! isolated and run in parallel. The supervisor holds the read end of a pipe whose write end only
//! this process holds: when the process ends, however it ends, the pipe closes and the supervisor
//! stops the server (fast shutdown) and deletes the directory. It must never skip: without the
//! PostgreSQL binaries every case fails, saying how to install them.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyward_domain::credits::{Credits, Spend};
use keyward_domain::{Actor, ActorType, ApiKey, AuditEntry, KeyPrefix, PlainKey};
use keyward_store::{Store, StoreError};
use keyward_store_postgres::PgStore;
use sqlx::Connection;
use time::macros::datetime;
use time::OffsetDateTime;
use uuid::Uuid;

/// Stops the server and removes its directory once stdin reaches end of file, which happens
/// when the test process (the only holder of the pipe's write end) exits. `$1` is the directory,
/// the rest is the server's command line.
const SUPERVISOR: &str = r#"dir=$1; shift
"$@" </dev/null >>"$dir/server.log" 2>&1 &
server=$!
cat >/dev/null
kill -INT "$server" 2>/dev/null
wait "$server"
rm -rf "$dir""#;

/// How long the server may take to accept connections on a slow, shared machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

struct Cluster {
    port: u16,
    /// Kept open (never written) for the life of the process; see [`SUPERVISOR`].
    _supervisor: Mutex<Child>,
}

impl Cluster {
    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| start_cluster().unwrap_or_else(|e| panic!("{e}")))
}

/// A fresh, empty, migrated store on a database of its own.
async fn fresh() -> Box<dyn Store> {
    Box::new(open_fresh().await.0)
}

/// A fresh store and the URL of its database, for cases that open it a second time.
async fn open_fresh() -> (PgStore, String) {
    let cluster = cluster();
    let name = format!(
        "conformance_{}",
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .expect("connect to the test cluster");
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create a database for the case");
    admin.close().await.expect("close the admin connection");
    let url = cluster.url(&name);
    let store = PgStore::open(&url).await.expect("open the case's database");
    (store, url)
}

keyward_store::conformance_tests!(fresh);

// --- the throwaway cluster -----------------------------------------------------------------

fn has_server_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

/// `KEYWARD_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`, else `PATH`.
fn find_bin_dir() -> Result<PathBuf, String> {
    const HOW: &str = "run `bash scripts/test.sh`, which installs PostgreSQL, \
                       or point KEYWARD_PG_BIN at a directory holding initdb and postgres";
    if let Some(dir) = std::env::var_os("KEYWARD_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_server_binaries(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "KEYWARD_PG_BIN={} holds no initdb and postgres; {HOW}",
                dir.display()
            ))
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|d| has_server_binaries(d)))
        .ok_or_else(|| {
            format!(
                "the PostgreSQL tests need initdb and postgres, found neither under \
                 /usr/lib/postgresql/*/bin nor on PATH: {HOW}"
            )
        })
}

/// PostgreSQL refuses to run as root; tests here often do, so the server then runs as the
/// `postgres` system user that Debian's package creates.
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A command that runs `program` as the server's user.
fn as_server_user(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    Ok(listener
        .local_addr()
        .map_err(|e| format!("no free port: {e}"))?
        .port())
}

fn start_cluster() -> Result<Cluster, String> {
    let bin = find_bin_dir()?;
    let root = running_as_root();
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("keyward-pg-{}-{stamp}", std::process::id()));
    let data = dir.join("data");
    let sockets = dir.join("sockets");
    std::fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    std::fs::create_dir(&sockets).map_err(|e| format!("create {}: {e}", sockets.display()))?;
    if root {
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !chown.success() {
            return Err(format!(
                "could not hand {} to the postgres user (does it exist? \
                 `bash scripts/test.sh` installs PostgreSQL, which creates it)",
                dir.display()
            ));
        }
    }

    let initdb = as_server_user(&bin.join("initdb"), root)
        .arg("--pgdata")
        .arg(&data)
        .args([
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ])
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("run initdb: {e}"))?;
    if !initdb.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(format!(
            "initdb failed: {}{}",
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        ));
    }

    let port = free_port()?;
    let server = as_server_user(&bin.join("postgres"), root);
    let mut supervisor = Command::new("sh");
    supervisor
        .arg("-c")
        .arg(SUPERVISOR)
        .arg("keyward-pg-supervisor")
        .arg(&dir)
        .arg(server.get_program())
        .args(server.get_args())
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
        .arg(&sockets)
        // A throwaway cluster: durability buys nothing, and the machine is small and shared.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "shared_buffers=32MB"])
        .args(["-c", "max_connections=300"])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C on `cargo test` must not kill the supervisor before
        // it has stopped the server and cleaned up.
        .process_group(0);
    let mut child = supervisor
        .spawn()
        .map_err(|e| format!("start the PostgreSQL supervisor: {e}"))?;

    let log = dir.join("server.log");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        // postmaster.pid's eighth line becomes "ready" once connections are accepted.
        let ready = std::fs::read_to_string(data.join("postmaster.pid"))
            .is_ok_and(|pid| pid.lines().nth(7).is_some_and(|s| s.trim() == "ready"));
        if ready {
            break;
        }
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        let failed = log_text.contains("FATAL") || log_text.contains("PANIC");
        if failed || Instant::now() > deadline {
            // Closing the pipe lets the supervisor stop whatever started and clean up.
            drop(child.stdin.take());
            let _ = child.wait();
            return Err(format!(
                "PostgreSQL did not start on port {port} within {START_TIMEOUT:?}:\n{log_text}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Cluster {
        port,
        _supervisor: Mutex::new(child),
    })
}

// --- what only a shared database has to prove ------------------------------------------------

const T0: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

fn audit(action: &str, id: Uuid) -> AuditEntry {
    Actor {
        id: "tester".into(),
        kind: ActorType::Jwt,
        user_id: None,
        source_ip: None,
        request_id: None,
    }
    .entry(T0, action, "api_key", id)
}

/// Two nodes (two stores, two pools, one database) spending one key's credits at once never
/// spend more than there was, and the database ends at exactly zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_spends_on_two_nodes_spend_exactly() {
    let (first, url) = open_fresh().await;
    // Opening an up-to-date database again runs no migration twice.
    let second = PgStore::open(&url).await.expect("a second node opens it");
    let nodes: [Arc<dyn Store>; 2] = [Arc::new(first), Arc::new(second)];

    let plain = PlainKey::from_secret_bytes(&KeyPrefix::default_prefix(), [7; 32]);
    let key = ApiKey {
        credits: Some(Credits {
            remaining: 20,
            refill: None,
            set_at: T0,
        }),
        ..ApiKey::issued(
            Uuid::from_u128(0x4E07),
            &plain,
            &KeyPrefix::default_prefix(),
            Uuid::from_u128(7),
            None,
            vec![],
            T0,
        )
    };
    nodes[0]
        .create_key(&key, &audit("api_key.create", key.id))
        .await
        .unwrap();

    // 8 workers x 5 spends of 1 against 20 credits: exactly 20 succeed.
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let node = Arc::clone(&nodes[w % 2]);
            tokio::spawn(async move {
                let mut spent = 0;
                for _ in 0..5 {
                    match node.spend_credits(key.id, 1, T0).await.unwrap() {
                        Some(Spend::Spent(_)) => spent += 1,
                        Some(Spend::Exhausted(_)) => {}
                        None => panic!("the key has credits"),
                    }
                }
                spent
            })
        })
        .collect();
    let mut spent = 0;
    for w in workers {
        spent += w.await.unwrap();
    }
    assert_eq!(spent, 20, "every credit spent once, none twice");
    let left = nodes[1].get_key(key.id).await.unwrap().unwrap().credits;
    assert_eq!(left.map(|c| c.remaining), Some(0));
    for node in nodes {
        node.close().await;
    }
}

/// A server that is not there is `Unavailable` (not `Other`), and no error repeats the URL's
/// password.
#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_the_password_stays_secret() {
    let port = free_port().unwrap();
    let err = PgStore::open_with(
        &format!("postgres://keyward:s3cret-pw@127.0.0.1:{port}/keyward"),
        keyward_store_postgres::PgSettings {
            acquire_timeout: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await
    .expect_err("nothing listens there");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");

    let err = PgStore::open("postgres://keyward:s3cret-pw@127.0.0.1:notaport/keyward")
        .await
        .expect_err("not a URL");
    assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");
}

/// What a node's cache would be told, in order.
#[derive(Default)]
struct Recorder {
    heard: Mutex<Vec<String>>,
}

impl keyward_store::ChangeSink for Recorder {
    fn changed(&self, change: keyward_store::Change) {
        let text = match change {
            keyward_store::Change::Key(d) => format!("key {}", d.to_base64url()),
            keyward_store::Change::All => "all".into(),
        };
        self.heard.lock().unwrap().push(text);
    }
    fn lost(&self) {
        self.heard.lock().unwrap().push("lost".into());
    }
    fn resumed(&self) {
        self.heard.lock().unwrap().push("resumed".into());
    }
}

impl Recorder {
    async fn wait_for(&self, what: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let heard = self.heard.lock().unwrap().clone();
            if heard.iter().any(|h| h == what) {
                return heard;
            }
            assert!(
                Instant::now() < deadline,
                "never heard {what:?}; heard {heard:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn clear(&self) {
        self.heard.lock().unwrap().clear();
    }
}

/// A revoke, an edit or a rotation on one node is announced to another node's watcher when it
/// commits; a failed change announces nothing; a tenant delete says "all"; a killed listening
/// connection is reported lost, then resumed once the watcher is listening again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_every_watcher_and_a_lost_feed_is_reported() {
    let (writer, url) = open_fresh().await;
    let watcher = Arc::new(PgStore::open(&url).await.unwrap());
    let recorder = Arc::new(Recorder::default());
    let task = {
        let (watcher, sink) = (Arc::clone(&watcher), Arc::clone(&recorder));
        tokio::spawn(async move { watcher.watch(sink).await })
    };
    assert_eq!(recorder.wait_for("resumed").await, ["resumed"]);

    let plain = PlainKey::from_secret_bytes(&KeyPrefix::default_prefix(), [9; 32]);
    let key = ApiKey::issued(
        Uuid::from_u128(0xFEED),
        &plain,
        &KeyPrefix::default_prefix(),
        Uuid::from_u128(7),
        None,
        vec![],
        T0,
    );
    let said = format!("key {}", plain.digest().to_base64url());
    writer
        .create_key(&key, &audit("api_key.create", key.id))
        .await
        .unwrap();
    writer
        .update_key(&key, T0, &audit("api_key.update", key.id))
        .await
        .unwrap();
    recorder.wait_for(&said).await;
    recorder.clear();
    writer
        .revoke_key(key.id, T0, T0, &audit("api_key.revoke", key.id))
        .await
        .unwrap();
    recorder.wait_for(&said).await;
    recorder.clear();
    // Revoking it again fails and rolls back: nothing is announced.
    let again = writer
        .revoke_key(key.id, T0, T0, &audit("api_key.revoke", key.id))
        .await;
    assert_eq!(again.unwrap_err(), StoreError::NotFound);
    let tenant = keyward_domain::Tenant {
        id: Uuid::from_u128(0x7E),
        name: "Gone".into(),
        slug: "gone".into(),
        key_prefix: None,
        metadata: serde_json::json!({}),
        created_at: T0,
        updated_at: T0,
    };
    writer
        .create_tenant(&tenant, &audit("tenant.create", tenant.id))
        .await
        .unwrap();
    writer
        .delete_tenant(tenant.id, true, T0, &audit("tenant.delete", tenant.id))
        .await
        .unwrap();
    assert_eq!(
        recorder.wait_for("all").await,
        ["all"],
        "the failed revoke and the tenant's creation announced nothing"
    );
    recorder.clear();

    // Kill the watcher's listening connection, as an operator or a network might.
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name LIKE 'keyward-listener-%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, [true], "one listener, killed");
    let heard = recorder.wait_for("resumed").await;
    assert_eq!(heard, ["lost", "resumed"], "no change was made meanwhile");
    admin.close().await.unwrap();

    task.abort();
    writer.close().await;
    watcher.close().await;
}
