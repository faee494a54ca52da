//! Throwaway PostgreSQL clusters for tests: `initdb` into a fresh temporary directory (trust
//! auth, loopback TCP on a free port, its socket inside that directory), then `pg_ctl start`.
//! Tests get a new database each ([`Cluster::fresh_database`]), so they stay isolated and run
//! in parallel on one shared cluster ([`shared`]); a test that stops and restarts the server
//! starts a cluster of its own ([`Cluster::start`]).
//!
//! Cleanup cannot be skipped: a small `sh` supervisor holds the read end of a pipe whose write end
//! only the test process holds. When that process ends, however it ends, the pipe closes and the
//! supervisor stops the server and deletes the directory. It must never skip a test: without the
//! PostgreSQL binaries, starting fails and says how to install them.

// A test kit: a cluster that cannot start is a failed test, said as loudly as a test says it;
// the wall clock only names its directories.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;

/// Waits for end of file on stdin (the test process is gone), then stops the server and removes
/// its directory. `$1` is the directory, the rest is the `pg_ctl` command line (as the server's
/// user).
const SUPERVISOR: &str = r#"dir=$1; shift
cat >/dev/null
"$@" stop -D "$dir/data" -m immediate >/dev/null 2>&1
rm -rf "$dir""#;

/// How long the server may take to start or stop on a slow, shared machine (seconds).
const PG_CTL_WAIT: &str = "60";

pub struct Cluster {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    root: bool,
    /// Kept open (never written) for the life of the process; see [`SUPERVISOR`].
    _supervisor: Mutex<Child>,
}

static SHARED: OnceLock<Cluster> = OnceLock::new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

/// The cluster every test of this process shares, started on first use.
pub fn shared() -> &'static Cluster {
    SHARED.get_or_init(|| Cluster::start().unwrap_or_else(|e| panic!("{e}")))
}

impl Cluster {
    /// The URL of `database` on this cluster (user `postgres`, no password: trust auth), in
    /// plain TCP.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// `plain_url` (from [`Cluster::url`] or [`Cluster::fresh_database`]) over TLS, with the
    /// server's certificate verified against the cluster's own certificate authority (and its
    /// name, 127.0.0.1).
    pub fn tls_url(&self, plain_url: &str) -> String {
        plain_url.replace(
            "sslmode=disable",
            &format!(
                "sslmode=verify-full&sslrootcert={}",
                self.ca_file().display()
            ),
        )
    }

    /// The certificate authority that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls").join("ca.crt")
    }

    /// Creates a new, empty database named `<prefix>_<n>` and returns its URL.
    pub async fn fresh_database(&self, prefix: &str) -> String {
        let name = format!("{prefix}_{}", NEXT_DATABASE.fetch_add(1, Ordering::Relaxed));
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to the test cluster");
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create a database for the test");
        admin.close().await.expect("close the admin connection");
        self.url(&name)
    }

    /// [`Cluster::fresh_database`] for callers outside an async runtime (through `psql`).
    pub fn fresh_database_blocking(&self, prefix: &str) -> String {
        let name = format!("{prefix}_{}", NEXT_DATABASE.fetch_add(1, Ordering::Relaxed));
        let mut psql = Command::new(self.bin.join("psql"));
        psql.args(["-q", "-d"])
            .arg(self.url("postgres"))
            .args(["-c", &format!("CREATE DATABASE {name}")]);
        run(psql, "psql").unwrap_or_else(|e| panic!("create a database for the test: {e}"));
        self.url(&name)
    }

    /// Starts a new cluster of its own.
    pub fn start() -> Result<Cluster, String> {
        let bin = find_bin_dir()?;
        let root = running_as_root();
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("keyward-pg-{}-{stamp}", std::process::id()));
        let data = dir.join("data");
        std::fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        std::fs::create_dir(dir.join("sockets"))
            .map_err(|e| format!("create the socket directory: {e}"))?;
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

        // The supervisor first, so that even a failed initdb is cleaned up.
        let pg_ctl = as_server_user(&bin.join("pg_ctl"), root);
        let supervisor = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("keyward-pg-supervisor")
            .arg(&dir)
            .arg(pg_ctl.get_program())
            .args(pg_ctl.get_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C on `cargo test` must not kill the supervisor
            // before it has stopped the server and cleaned up.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start the PostgreSQL supervisor: {e}"))?;

        let mut initdb = as_server_user(&bin.join("initdb"), root);
        initdb
            .arg("--pgdata")
            .arg(&data)
            .args([
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .current_dir(&dir);
        run(initdb, "initdb")?;
        make_certificates(&dir.join("tls"), root)?;
        let cluster = Cluster {
            port: free_port()?,
            dir,
            bin,
            root,
            _supervisor: Mutex::new(supervisor),
        };
        cluster.start_server()?;
        Ok(cluster)
    }

    /// Starts the server (again, after [`Cluster::stop_server`]) on the same port and data.
    pub fn start_server(&self) -> Result<(), String> {
        let tls = self.dir.join("tls");
        let options = format!(
            "-p {} -h 127.0.0.1 -k {} \
             -c fsync=off -c full_page_writes=off -c shared_buffers=32MB -c max_connections=300 \
             -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            self.port,
            self.dir.join("sockets").display(),
            tls.join("server.crt").display(),
            tls.join("server.key").display()
        );
        // fsync is off (a throwaway cluster); synchronous_commit stays on, so a commit is
        // acknowledged only once the server has it: a server stop loses nothing acknowledged.
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            PG_CTL_WAIT,
            "-o",
            &options,
            "-l",
            "server.log",
        ])
    }

    /// Stops the server (fast shutdown: clients are disconnected, committed work is kept).
    pub fn stop_server(&self) -> Result<(), String> {
        self.pg_ctl(&["stop", "-w", "-t", PG_CTL_WAIT, "-m", "fast"])
    }

    /// Runs `pg_ctl` on this cluster's data, in its directory (where `server.log` lives).
    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let mut cmd = as_server_user(&self.bin.join("pg_ctl"), self.root);
        cmd.args(args)
            .arg("-D")
            .arg(self.dir.join("data"))
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        run(cmd, "pg_ctl").map_err(|e| {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            format!("{e}\n{log}")
        })
    }
}

/// Runs `cmd` to its end; an error names `what` and carries its output.
fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("run {what} (is it installed?): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A certificate authority and a server certificate for 127.0.0.1 signed by it, made with the
/// `openssl` command line (the server key readable by the server's user only, as PostgreSQL
/// demands).
fn make_certificates(dir: &Path, root: bool) -> Result<(), String> {
    std::fs::create_dir(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let openssl = |args: &str| {
        let mut cmd = Command::new("openssl");
        cmd.args(args.split(' ')).current_dir(dir);
        run(cmd, "openssl")
    };
    // A P-256 key made with each request: `<key file> <request file> <subject>`.
    let new_key = |key: &str, out: &str, subject: &str| {
        let mut cmd = Command::new("openssl");
        cmd.args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-keyout", key, "-out", out, "-subj", subject])
        .current_dir(dir);
        cmd
    };
    let mut ca = new_key("ca.key", "ca.crt", "/CN=keyward test CA");
    ca.args(["-x509", "-days", "2"]);
    run(ca, "openssl req (CA)")?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| format!("write server.ext: {e}"))?;
    run(
        new_key("server.key", "server.csr", "/CN=127.0.0.1"),
        "openssl req (server)",
    )?;
    openssl(
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
         -out server.crt -days 2 -extfile server.ext",
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .map_err(|e| format!("chmod server.key: {e}"))?;
    if root {
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !chown.success() {
            return Err("could not hand the TLS files to the postgres user".into());
        }
    }
    Ok(())
}

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "postgres", "pg_ctl", "psql"]
        .iter()
        .all(|b| dir.join(b).is_file())
}

/// `KEYWARD_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`, else `PATH`.
fn find_bin_dir() -> Result<PathBuf, String> {
    const HOW: &str = "run `bash scripts/test.sh`, which installs PostgreSQL, \
                       or point KEYWARD_PG_BIN at a directory holding initdb, pg_ctl, psql and postgres";
    if let Some(dir) = std::env::var_os("KEYWARD_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_server_binaries(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "KEYWARD_PG_BIN={} lacks initdb, pg_ctl, psql or postgres; {HOW}",
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
                "the PostgreSQL tests need initdb, pg_ctl, psql and postgres, found none under \
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

/// A port nothing listens on right now.
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    Ok(listener
        .local_addr()
        .map_err(|e| format!("no free port: {e}"))?
        .port())
}
