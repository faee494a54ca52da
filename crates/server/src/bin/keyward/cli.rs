//! The `keyward` command line: `serve`, the operator's commands (`user`, `tenant`, `key`,
//! `backup`) and `bench-seed`.
//!
//! `anyhow` lives here, at the edge, with context on every I/O step. Nothing here prints a
//! password, a key, a JWT or the JWT secret.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use keyward_core::jwt::{JwtKeys, MIN_SECRET_LEN};
use keyward_core::password::Passwords;
use keyward_core::{tenants, users, Keyward};
use keyward_domain::{Actor, Role, SystemClock};
use keyward_server::serve::{init_tracing, runtime, LogFormat};
use keyward_server::{AppState, Settings};
use keyward_store::Store;
use keyward_store_postgres::{PgSettings, PgStore};
use keyward_store_sqlite::SqliteStore;

use crate::commands::{self, KeyCommand};

#[derive(Debug, Parser)]
#[command(
    name = "keyward",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("KEYWARD_COMMIT"), ")"),
    about = "Self-hosted API key service"
)]
pub struct Cli {
    /// Database URL: sqlite://FILE (created if missing), or
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE]
    /// (the database must exist; many nodes may share it).
    #[arg(
        long = "database",
        env = "KEYWARD_DATABASE_URL",
        default_value = "sqlite://keyward.db",
        global = true
    )]
    pub database_url: DatabaseUrl,

    /// PostgreSQL: most connections this node holds (plus one for the change feed).
    #[arg(
        long,
        env = "KEYWARD_DB_POOL_SIZE",
        default_value_t = 16,
        global = true
    )]
    pub db_pool_size: u32,
    /// PostgreSQL: how long a request waits for a connection before answering 503, e.g. 3s.
    #[arg(
        long,
        env = "KEYWARD_DB_ACQUIRE_TIMEOUT",
        default_value = "3s",
        global = true
    )]
    pub db_acquire_timeout: String,
    /// PostgreSQL: the server-side limit of one statement (`statement_timeout`), e.g. 5s.
    #[arg(
        long,
        env = "KEYWARD_DB_STATEMENT_TIMEOUT",
        default_value = "5s",
        global = true
    )]
    pub db_statement_timeout: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(Box<ServeArgs>),
    /// Copy a SQLite database consistently, even while a server writes to it (with
    /// PostgreSQL, use pg_dump: exits with status 2).
    Backup {
        /// The new file to write (never overwritten).
        #[arg(long)]
        to: PathBuf,
    },
    /// Print a shell completion script for bash, zsh or fish.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), generated from these definitions.
    Man,
    /// Copy a whole installation into an empty database of either kind (SQLite to PostgreSQL, or
    /// back): tenants, users with their password hashes, keys with their digests, credits,
    /// usage, the audit log, webhooks and sessions. Stop the source's servers first.
    Migrate {
        /// The installation's database now (sqlite://FILE or postgres://…).
        #[arg(long)]
        from: DatabaseUrl,
        /// The empty database to move it to (it is migrated to keyward's schema first).
        #[arg(long)]
        to: DatabaseUrl,
    },
    #[command(flatten)]
    Operate(Operation),
}

/// One example per command, shown at the end of its `--help` (`keyward help`'s paths).
pub const EXAMPLES: &[(&str, &str)] = &[
    ("serve", "KEYWARD_ADMIN_EMAIL=you@example.com KEYWARD_ADMIN_PASSWORD='a long password' keyward serve --listen 0.0.0.0:3000"),
    ("backup", "keyward --database sqlite://keyward.db backup --to keyward-backup.db"),
    ("migrate", "keyward migrate --from sqlite://keyward.db --to postgres://keyward:secret@db.internal/keyward"),
    ("completions", "keyward completions bash > ~/.local/share/bash-completion/completions/keyward"),
    ("man", "keyward man > keyward.1 && man ./keyward.1"),
    ("user", "keyward user list --tenant acme"),
    ("user create", "echo 'a long password' | keyward user create --email ann@example.com --password-stdin --tenant acme"),
    ("user list", "keyward user list --tenant acme --json"),
    ("user disable", "keyward user disable ann@example.com"),
    ("user enable", "keyward user enable ann@example.com"),
    ("user delete", "keyward user delete ann@example.com"),
    ("user set-password", "echo 'a new long password' | keyward user set-password ann@example.com --password-stdin"),
    ("import", "keyward import --format estuary --create-owners estuary-tokens.jsonl"),
    ("tenant", "keyward tenant list"),
    ("tenant create", "keyward tenant create --name Acme --slug acme"),
    ("tenant list", "keyward tenant list --json"),
    ("key", "keyward key list --tenant acme"),
    ("key create", "keyward key create --tenant acme --owner ann@example.com --name ci --scopes orders:read --expires-in 90d"),
    ("key list", "keyward key list --owner ann@example.com --json"),
    ("key show", "keyward key show 0193c3a2-5b1e-7c3d-9f00-1a2b3c4d5e6f"),
    ("key rotate", "keyward key rotate 0193c3a2-5b1e-7c3d-9f00-1a2b3c4d5e6f --grace-period 1h"),
    ("key revoke", "keyward key revoke 0193c3a2-5b1e-7c3d-9f00-1a2b3c4d5e6f"),
    ("bench-seed", "keyward --database sqlite://bench.db bench-seed --count 100000 --verifier-out verifier.txt"),
];

/// The command line's definition, each command with its example.
pub fn command() -> clap::Command {
    fn with_examples(cmd: clap::Command, path: &str) -> clap::Command {
        let cmd = match EXAMPLES.iter().find(|(at, _)| *at == path) {
            Some((_, example)) => cmd.after_help(format!("Example:\n  {example}")),
            None => cmd,
        };
        cmd.mut_subcommands(|sub| {
            let at = if path.is_empty() {
                sub.get_name().to_owned()
            } else {
                format!("{path} {}", sub.get_name())
            };
            with_examples(sub, &at)
        })
    }
    with_examples(<Cli as clap::CommandFactory>::command(), "")
}

/// What an operator does on the database through `keyward_core`, audited as `system`.
#[derive(Debug, Subcommand)]
pub enum Operation {
    /// Manage users directly in the database (works while a server runs on it).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage tenants directly in the database (works while a server runs on it).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage keys directly in the database (works while a server runs on it).
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Import another service's keys from a JSON lines file, so that they keep working.
    ///
    /// One JSON object per line with the credential (`token` or `tokenHash` for estuary; `key` or
    /// `key_hash` for stratum; `sha256` for sha256), `owner_email`, and optionally `tenant` (a
    /// slug), `name`, `scopes`, `created_at`, `expires_at`, `last_used_at`, `revoked_at`.
    /// Batches are written whole or not at all; a second run of a file changes nothing.
    Import {
        #[arg(long, value_enum)]
        format: ImportFormatArg,
        /// The JSON lines file.
        file: PathBuf,
        /// Make the users the rows name that do not exist (members, without a password).
        #[arg(long)]
        create_owners: bool,
        /// What every key starts with (sha256 imports only), e.g. `ghx_`.
        #[arg(long)]
        prefix: Option<String>,
        /// Read the HMAC-SHA256 secret that stratum `key_hash`es were made with from standard
        /// input (never on the command line).
        #[arg(long)]
        hmac_secret_stdin: bool,
        /// Rows per transaction.
        #[arg(long, default_value_t = keyward_core::import::DEFAULT_BATCH)]
        batch: usize,
    },
    /// Seed keys for the benchmark (see bench/run.sh): straight through the store, in large
    /// transactions, into the tenant `bench`.
    BenchSeed {
        /// How many keys.
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        /// Keys per transaction.
        #[arg(long, default_value_t = 20_000)]
        batch: usize,
        /// Write the plaintext keys here, one per line (for load tools to replay).
        #[arg(long)]
        keys_out: Option<PathBuf>,
        /// Write a new key with `keyward:verify` here (mode 0600), for the load's verifier.
        #[arg(long)]
        verifier_out: PathBuf,
        /// Make keys that carry verify's richer decisions: an IP allowlist (127.0.0.0/8,
        /// 10.0.0.0/8, 2001:db8::/32), scopes for an expression (`bench:read`, `bench:write`),
        /// and an owner (its own user) with a shared rate limit high enough never to refuse.
        #[arg(long)]
        with_policies: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEYWARD_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    #[arg(long, value_enum, env = "KEYWARD_LOG_FORMAT", default_value = "human")]
    pub log_format: LogFormat,
    /// Answer verify requests that present no credential.
    #[arg(long, env = "KEYWARD_PUBLIC_VERIFY")]
    pub public_verify: bool,
    /// The header in which the proxy in front of forward auth names the client's address, e.g.
    /// X-Real-IP (nginx: `proxy_set_header X-Real-IP $remote_addr;`). Name it only if that proxy
    /// sets it on every request: a client could otherwise send it. Unset: keys with an IP
    /// allowlist are refused at forward auth.
    #[arg(long, env = "KEYWARD_FORWARD_CLIENT_IP_HEADER", value_parser = header_name)]
    pub forward_client_ip_header: Option<axum::http::HeaderName>,
    /// Where the generated JWT secret is kept when KEYWARD_JWT_SECRET is not set
    /// (default: next to the SQLite file, `<file>.jwt-secret`).
    #[arg(long, env = "KEYWARD_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Lifetime of login tokens, e.g. 1h, 30m.
    #[arg(long, env = "KEYWARD_SESSION_TTL", default_value = "1h")]
    pub session_ttl: String,
    /// Most keys the verify cache holds.
    #[arg(long, env = "KEYWARD_CACHE_CAPACITY", default_value_t = 250_000)]
    pub cache_capacity: usize,
    /// How long a cached key is trusted before storage is read again, e.g. 30s; also how long it
    /// may still be answered while the database is unreachable (see --cache-stale-window).
    #[arg(long, env = "KEYWARD_CACHE_TTL", default_value = "30s")]
    pub cache_ttl: String,
    /// While storage is unreachable, how long past its TTL a cached key may still be answered
    /// (0s: fail closed with UNAVAILABLE once the TTL is over).
    #[arg(long, env = "KEYWARD_CACHE_STALE_WINDOW", default_value = "0s")]
    pub cache_stale_window: String,
    /// How long a request's head (request line and header fields) may take to arrive from its
    /// first byte; then the connection is closed.
    #[arg(long, env = "KEYWARD_HEADER_READ_TIMEOUT", default_value = "10s")]
    pub header_read_timeout: String,
    /// How long a request's body may take to arrive; then 408.
    #[arg(long, env = "KEYWARD_BODY_READ_TIMEOUT", default_value = "10s")]
    pub body_read_timeout: String,
    /// How long an idle connection is kept for its next request; then it is closed.
    #[arg(long, env = "KEYWARD_IDLE_TIMEOUT", default_value = "75s")]
    pub idle_timeout: String,
    /// Most connections served at once; more wait in the listen backlog until one closes.
    #[arg(long, env = "KEYWARD_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// How long an answer may wait for the client to take it; then the connection is closed.
    #[arg(long, env = "KEYWARD_WRITE_TIMEOUT", default_value = "30s")]
    pub write_timeout: String,
    /// keyward is reached over HTTPS (directly or through a proxy that ends TLS): the console's
    /// session cookie is then `Secure`, with the `__Host-` prefix.
    #[arg(long, env = "KEYWARD_HTTPS")]
    pub https: bool,
    /// How long a console session may sit idle before it ends, e.g. 30m.
    #[arg(long, env = "KEYWARD_CONSOLE_IDLE", default_value = "30m")]
    pub console_idle: String,
    /// How long a console session lasts at most, however busy, e.g. 12h.
    #[arg(long, env = "KEYWARD_CONSOLE_LIFETIME", default_value = "12h")]
    pub console_lifetime: String,
    /// Let webhook URLs reach loopback, private, link-local and metadata addresses (refused by
    /// default, at create and again at send time after DNS).
    #[arg(long, env = "KEYWARD_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// The waits before each retry of a failed webhook delivery, comma-separated (each drawn
    /// within ±20%); past the last, the delivery fails.
    #[arg(
        long,
        env = "KEYWARD_WEBHOOK_RETRY_SCHEDULE",
        default_value = "5s,30s,2m,10m,30m,1h,2h,4h,8h,8h"
    )]
    pub webhook_retry_schedule: String,
    /// How long a node holds a webhook delivery it is sending before another node (or this one,
    /// restarted) may send it again.
    #[arg(long, env = "KEYWARD_WEBHOOK_LEASE", default_value = "60s")]
    pub webhook_lease: String,
    /// How often keyward looks for keys due an expiry reminder or an expiry notice.
    #[arg(long, env = "KEYWARD_NOTICE_INTERVAL", default_value = "60s")]
    pub notice_interval: String,
    /// GitHub's secret-scanning public keys, as `https://api.github.com/meta/public_keys/secret_scanning`
    /// serves them (a JSON file): enables `POST /api/v1/leaks/github`.
    #[arg(long, env = "KEYWARD_GITHUB_KEYS")]
    pub github_keys: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input. Prints the new id.
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: passwords never go on a command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Slug of the user's tenant.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, value_enum, default_value = "member")]
        role: RoleArg,
    },
    /// List users (of one tenant, or all), oldest first.
    List {
        /// Slug of the tenant whose users to list.
        #[arg(long)]
        tenant: Option<String>,
        /// Only users with this role.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// Only disabled users (`--disabled`) or only active ones (`--disabled=false`).
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        disabled: Option<bool>,
        /// Only users whose email starts with this text.
        #[arg(long)]
        email_prefix: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: it cannot sign in, its sessions end, its keys stop verifying until it
    /// is enabled (servers on PostgreSQL hear it at once; on SQLite within their cache TTL).
    Disable {
        /// The user's email or id.
        user: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// The user's email or id.
        user: String,
    },
    /// Delete a user: its keys are revoked and its sessions ended at once.
    Delete {
        /// The user's email or id.
        user: String,
    },
    /// Set a user's password, read from standard input; all its sessions end.
    SetPassword {
        /// The user's email or id.
        user: String,
        /// Read the password from standard input (required: passwords never go on a command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ImportFormatArg {
    Estuary,
    Stratum,
    Sha256,
}

impl From<ImportFormatArg> for keyward_domain::import::ImportFormat {
    fn from(f: ImportFormatArg) -> Self {
        match f {
            ImportFormatArg::Estuary => Self::Estuary,
            ImportFormatArg::Stratum => Self::Stratum,
            ImportFormatArg::Sha256 => Self::Sha256,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum RoleArg {
    Admin,
    TenantAdmin,
    Member,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::TenantAdmin => Role::TenantAdmin,
            RoleArg::Member => Role::Member,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant. Prints the new id.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        slug: String,
        #[arg(long)]
        key_prefix: Option<String>,
    },
    /// List tenants, oldest first.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn main() -> std::process::ExitCode {
    let matches = command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match &cli.command {
        Command::Serve(args) => init_tracing(args.log_format, "info"),
        _ => init_tracing(LogFormat::Human, "warn"),
    }
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.is::<commands::NotSqlite>() => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Writes `bytes` to standard output; a reader that stopped early (`| head`) is no error.
fn print_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing to standard output")
        }
        _ => Ok(()),
    }
}

/// Opens the store named by the URL's scheme.
pub async fn open_store(cli: &Cli) -> anyhow::Result<Arc<dyn Store>> {
    // A bulk load keeps more pages of the keys' indexes in memory (its own process).
    let bulk = matches!(cli.command, Command::Operate(Operation::Import { .. }));
    open_store_at(cli, &cli.database_url, bulk).await
}

/// Opens the store at `database_url`, with the pool settings of `cli`; `bulk`: for a bulk
/// load (a larger SQLite page cache).
pub async fn open_store_at(
    cli: &Cli,
    database_url: &DatabaseUrl,
    bulk: bool,
) -> anyhow::Result<Arc<dyn Store>> {
    let url = database_url.expose();
    if url.starts_with("sqlite:") {
        let store = SqliteStore::open_with_cache(url, bulk.then_some(64 * 1024))
            .await
            .with_context(|| format!("opening the SQLite database {:?}", database_url))?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let settings = PgSettings {
            pool_size: cli.db_pool_size,
            acquire_timeout: std_duration("--db-acquire-timeout", &cli.db_acquire_timeout)?,
            statement_timeout: Some(std_duration(
                "--db-statement-timeout",
                &cli.db_statement_timeout,
            )?),
        };
        let store = PgStore::open_with(url, settings)
            .await
            .with_context(|| format!("opening the PostgreSQL database {:?}", database_url))?;
        Ok(Arc::new(store))
    } else {
        bail!(
            "unsupported database URL scheme in {:?}: use sqlite://FILE or postgres://…",
            database_url
        )
    }
}

/// A flag's duration (`30s`, `5m`, `1h`…), as [`keyward_domain::duration::parse_short`] reads it.
fn flag_duration(flag: &str, text: &str) -> anyhow::Result<time::Duration> {
    keyward_domain::duration::parse_short(text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

/// [`flag_duration`], where `0` (with or without a unit) means off.
fn zero_or_duration(flag: &str, text: &str) -> anyhow::Result<time::Duration> {
    let text = text.trim();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if !digits.is_empty() && digits.bytes().all(|b| b == b'0') && text.len() - digits.len() <= 1 {
        return Ok(time::Duration::ZERO);
    }
    flag_duration(flag, text)
}

/// `--console-idle`: at least 5 minutes, since a session's last use is written at most once a
/// minute (`keyward_core::console::LAST_SEEN_RESOLUTION`) and a shorter timeout would end
/// sessions in use.
fn console_idle(text: &str) -> anyhow::Result<time::Duration> {
    let idle = flag_duration("--console-idle", text)?;
    if idle < time::Duration::minutes(5) {
        bail!("--console-idle: at least 5m");
    }
    Ok(idle)
}

/// [`flag_duration`] for the standard library's timers.
fn std_duration(flag: &str, text: &str) -> anyhow::Result<std::time::Duration> {
    flag_duration(flag, text)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("{flag}: must not be negative"))
}

/// A database URL as the operator gave it. It may carry a password (in its user information or
/// as a `password` query parameter, which PostgreSQL's URLs allow), so it is only ever printed
/// redacted: its `Debug` is [`DatabaseUrl::redacted`], and reading the URL itself takes
/// [`DatabaseUrl::expose`].
#[derive(Clone)]
pub struct DatabaseUrl(secrecy::SecretString);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }

    /// The URL with every password replaced by `***`: the user information's, and the value of
    /// any query parameter whose name contains `pass` (`password`, `sslpassword`, ...). A URL
    /// that does not parse shows its scheme alone.
    pub fn redacted(&self) -> String {
        let raw = self.expose();
        let Ok(mut url) = url::Url::parse(raw) else {
            let scheme = raw.split_once("://").map_or("", |(scheme, _)| scheme);
            return format!("{scheme}://(unparsable URL, not shown)");
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(name, value)| {
                    let secret = name.to_ascii_lowercase().contains("pass");
                    let value = if secret {
                        "***".into()
                    } else {
                        value.into_owned()
                    };
                    (name.into_owned(), value)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.into()
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.into()))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // What only prints: no database.
    match &cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command(), "keyward", &mut script);
            return print_bytes(&script);
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command())
                .render(&mut page)
                .context("rendering the manual page")?;
            return print_bytes(&page);
        }
        _ => {}
    }
    // A backup opens the file itself, read-only in spirit: it must not migrate what it copies.
    if let Command::Backup { to } = cli.command {
        let to = commands::backup_target(to)?;
        return commands::backup(cli.database_url.expose(), &to).await;
    }
    if let Command::Migrate { from, to } = &cli.command {
        // Opening a SQLite URL makes the file: a mistyped source would copy an empty database.
        let path = from
            .expose()
            .strip_prefix("sqlite://")
            .or_else(|| from.expose().strip_prefix("sqlite:"));
        if let Some(path) = path.map(|p| p.split('?').next().unwrap_or(p)) {
            if !Path::new(path).exists() {
                bail!("the source database {path} does not exist");
            }
        }
        let source = open_store_at(&cli, from, false).await?;
        let target = open_store_at(&cli, to, true).await?;
        let result = crate::migrate::migrate(source.as_ref(), target.as_ref()).await;
        source.close().await;
        target.close().await;
        return result;
    }
    let store = open_store(&cli).await?;
    let result = match cli.command {
        Command::Serve(args) => return serve(store, &cli.database_url, *args).await,
        Command::Backup { .. }
        | Command::Completions { .. }
        | Command::Man
        | Command::Migrate { .. } => Ok(()),
        Command::Operate(operation) => {
            match Keyward::offline(store.clone(), Arc::new(SystemClock)) {
                Ok(kw) => operate(&kw, operation).await,
                Err(e) => Err(anyhow::anyhow!("{e}")),
            }
        }
    };
    store.close().await;
    result
}

/// A password read from standard input, without the line's end.
fn password_from_stdin() -> anyhow::Result<secrecy::SecretString> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from standard input")?;
    Ok(password
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&password)
        .into())
}

/// An operator's command, on the database through `keyward_core` (audited as `system`).
async fn operate(kw: &Keyward, operation: Operation) -> anyhow::Result<()> {
    use Operation as Command;
    match operation {
        Command::User {
            command:
                UserCommand::Create {
                    email,
                    password_stdin: _,
                    tenant,
                    role,
                },
        } => {
            let password = password_from_stdin()?;
            let tenant_id = match tenant {
                None => None,
                Some(slug) => Some(commands::tenant_by_slug(kw, &slug).await?.id),
            };
            let req = users::NewUser {
                email,
                password,
                role: role.into(),
                tenant_id,
            };
            let user = users::create_as(kw, &Actor::system(), req)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", user.id);
            Ok(())
        }
        Command::User {
            command:
                UserCommand::List {
                    tenant,
                    role,
                    disabled,
                    email_prefix,
                    json,
                },
        } => {
            let filter = users::UserFilter {
                tenant_id: None,
                role: role.map(Role::from),
                disabled,
                email_prefix,
            };
            commands::user_list(kw, tenant, filter, json).await
        }
        Command::User {
            command: UserCommand::Disable { user },
        } => commands::user_set_disabled(kw, &user, true).await,
        Command::User {
            command: UserCommand::Enable { user },
        } => commands::user_set_disabled(kw, &user, false).await,
        Command::User {
            command: UserCommand::Delete { user },
        } => commands::user_delete(kw, &user).await,
        Command::User {
            command:
                UserCommand::SetPassword {
                    user,
                    password_stdin: _,
                },
        } => commands::user_set_password(kw, &user, password_from_stdin()?).await,
        Command::Tenant {
            command:
                TenantCommand::Create {
                    name,
                    slug,
                    key_prefix,
                },
        } => {
            let changes = tenants::TenantChanges {
                policy: None,
                name: Some(name),
                slug: Some(slug),
                metadata: None,
                key_prefix: keyward_domain::Patch::from_nullable(key_prefix),
            };
            let tenant = tenants::create_as(kw, &Actor::system(), changes)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", tenant.id);
            Ok(())
        }
        Command::Tenant {
            command: TenantCommand::List { json },
        } => commands::tenant_list(kw, json).await,
        Command::Key { command } => commands::key(kw, command).await,
        Command::Import {
            format,
            file,
            create_owners,
            prefix,
            hmac_secret_stdin,
            batch,
        } => {
            let hmac_secret = if hmac_secret_stdin {
                Some(
                    secrecy::ExposeSecret::expose_secret(&password_from_stdin()?)
                        .as_bytes()
                        .to_vec(),
                )
            } else {
                None
            };
            let options = keyward_core::import::ImportOptions {
                format: format.into(),
                prefix,
                hmac_secret,
                create_owners,
                batch_size: batch,
            };
            crate::import::import(kw, &commands::operator(), &file, options).await
        }
        Command::BenchSeed {
            count,
            batch,
            keys_out,
            verifier_out,
            with_policies,
        } => {
            let report = crate::bench_seed::seed(
                kw,
                crate::bench_seed::Seeding {
                    count,
                    batch: batch.max(1),
                    keys_out: keys_out.as_deref(),
                    verifier_out: &verifier_out,
                    with_policies,
                },
            )
            .await?;
            println!(
                "seeded {} keys in {:.1} s ({:.0} keys/s)",
                report.count,
                report.seconds,
                report.count as f64 / report.seconds.max(1e-9)
            );
            Ok(())
        }
    }
}

fn random_secret() -> anyhow::Result<Vec<u8>> {
    let mut secret = vec![0u8; 48];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("OS random source: {e}"))?;
    Ok(secret)
}

/// The JWT secret: `KEYWARD_JWT_SECRET`, or a file generated once (mode 0600) and reused so
/// restarts keep sessions valid.
fn jwt_secret(database_url: &str, file: Option<PathBuf>) -> anyhow::Result<Vec<u8>> {
    if let Ok(secret) = std::env::var("KEYWARD_JWT_SECRET") {
        if secret.len() < MIN_SECRET_LEN {
            bail!("KEYWARD_JWT_SECRET must be at least 32 bytes");
        }
        return Ok(secret.into_bytes());
    }
    let path = match file {
        Some(p) => p,
        None => {
            match sqlite_file(database_url) {
                Some(db) => PathBuf::from(format!("{}.jwt-secret", db.display())),
                // Every node must sign and check sessions alike: a per-node secret would log
                // users out whenever the load balancer picks another node.
                None if !database_url.starts_with("sqlite:") => bail!(
                    "with a shared database, set KEYWARD_JWT_SECRET (the same on every node) \
                     or --jwt-secret-file (a file every node reads)"
                ),
                None => {
                    tracing::warn!("in-memory database and no KEYWARD_JWT_SECRET: sessions end with this process");
                    return random_secret();
                }
            }
        }
    };
    match std::fs::read(&path) {
        Ok(secret) if secret.len() >= MIN_SECRET_LEN => Ok(secret),
        Ok(_) => bail!(
            "the JWT secret in {} is shorter than 32 bytes",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = random_secret()?;
            write_private(&path, &secret)
                .with_context(|| format!("writing the JWT secret to {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a JWT signing secret");
            Ok(secret)
        }
        Err(e) => Err(e).with_context(|| format!("reading the JWT secret from {}", path.display())),
    }
}

pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn header_name(text: &str) -> Result<axum::http::HeaderName, String> {
    axum::http::HeaderName::try_from(text).map_err(|_| format!("{text:?} is not a header name"))
}

fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

async fn serve(
    store: Arc<dyn Store>,
    database: &DatabaseUrl,
    args: ServeArgs,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let ttl = flag_duration("--session-ttl", &args.session_ttl)?;
    let jwt = JwtKeys::new(jwt_secret(database.expose(), args.jwt_secret_file)?, ttl)?;
    let cache_ttl = flag_duration("--cache-ttl", &args.cache_ttl)?;
    let settings = Settings {
        core: keyward_core::Settings {
            public_verify: args.public_verify,
            cache: keyward_core::cache::CacheSettings {
                capacity: args.cache_capacity,
                ttl: cache_ttl,
                stale_window: zero_or_duration("--cache-stale-window", &args.cache_stale_window)?,
                ..keyward_core::cache::CacheSettings::default()
            },
            console_idle: console_idle(&args.console_idle)?,
            console_lifetime: flag_duration("--console-lifetime", &args.console_lifetime)?,
            webhooks: keyward_core::webhooks::WebhookSettings {
                allow_private: args.webhook_allow_private,
                retry_schedule: args
                    .webhook_retry_schedule
                    .split(',')
                    .map(|d| flag_duration("--webhook-retry-schedule", d.trim()))
                    .collect::<anyhow::Result<Vec<_>>>()?,
                lease: flag_duration("--webhook-lease", &args.webhook_lease)?,
                notice_interval: std_duration("--notice-interval", &args.notice_interval)?,
                ..keyward_core::webhooks::WebhookSettings::default()
            },
            github_keys: match &args.github_keys {
                None => keyward_core::leaks::GithubKeys::default(),
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("--github-keys: reading {}", path.display()))?;
                    keyward_core::leaks::GithubKeys::from_json(&text)
                        .map_err(|e| anyhow::anyhow!("--github-keys: {e}"))?
                }
            },
            ..keyward_core::Settings::default()
        },
        https: args.https,
        forward_client_ip_header: args.forward_client_ip_header,
        http: keyward_server::serve::HttpLimits {
            header_read_timeout: std_duration("--header-read-timeout", &args.header_read_timeout)?,
            body_read_timeout: std_duration("--body-read-timeout", &args.body_read_timeout)?,
            idle_timeout: std_duration("--idle-timeout", &args.idle_timeout)?,
            max_connections: args.max_connections,
            write_timeout: std_duration("--write-timeout", &args.write_timeout)?,
        },
    };
    let state = AppState::new(
        store.clone(),
        Arc::new(SystemClock),
        jwt,
        Passwords::production()?,
        settings,
    );
    bootstrap_admin(&state).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%addr, database = ?database, startup_ms = started.elapsed().as_millis() as u64, "keyward listening");
    keyward_server::serve(listener, state, keyward_server::serve::shutdown_signal())
        .await
        .context("serving")
}

/// On an empty database: create the admin named by the environment, or say how to.
async fn bootstrap_admin(state: &AppState) -> anyhow::Result<()> {
    if state.store.count_users().await? > 0 {
        return Ok(());
    }
    match (
        std::env::var("KEYWARD_ADMIN_EMAIL"),
        std::env::var("KEYWARD_ADMIN_PASSWORD"),
    ) {
        (Ok(email), Ok(password)) => {
            let req = users::NewUser {
                email,
                password: password.into(),
                role: Role::Admin,
                tenant_id: None,
            };
            match users::create_as(state, &Actor::system(), req).await {
                Ok(user) => {
                    tracing::info!(user_id = %user.id, "created the first admin from KEYWARD_ADMIN_EMAIL");
                }
                // Nodes starting together on one database: another one made it first.
                Err(keyward_core::Error::Conflict { .. }) => {
                    tracing::info!("the admin from KEYWARD_ADMIN_EMAIL already exists");
                }
                Err(e) => bail!("creating the admin from KEYWARD_ADMIN_EMAIL: {e}"),
            }
        }
        _ => {
            tracing::warn!(
                "no users yet. Create an admin with: keyward user create --email you@example.com --password-stdin --role admin \
                 (or set KEYWARD_ADMIN_EMAIL and KEYWARD_ADMIN_PASSWORD before starting)"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        let redacted = |url: &str| format!("{:?}", url.parse::<DatabaseUrl>().unwrap());
        assert_eq!(
            redacted("postgres://kw:s3cret@db:5432/kw"),
            "postgres://kw:***@db:5432/kw"
        );
        assert_eq!(
            redacted("postgres://kw@db/kw?sslmode=require&password=s3cret"),
            "postgres://kw@db/kw?sslmode=require&password=***"
        );
        assert_eq!(
            redacted("postgresql://db/kw?sslpassword=s3cret&user=kw"),
            "postgresql://db/kw?sslpassword=***&user=kw"
        );
        assert_eq!(redacted("sqlite://keyward.db"), "sqlite://keyward.db");
        assert!(!redacted("postgres://kw:s3cret@[bad/kw").contains("s3cret"));
    }

    #[test]
    fn durations_of_flags_may_be_zero_where_zero_means_off() {
        assert_eq!(zero_or_duration("f", "0s").unwrap(), time::Duration::ZERO);
        assert_eq!(zero_or_duration("f", "0").unwrap(), time::Duration::ZERO);
        assert_eq!(
            zero_or_duration("f", "90s").unwrap(),
            time::Duration::seconds(90)
        );
        assert!(zero_or_duration("f", "0ss").is_err());
        assert!(zero_or_duration("f", "soon").is_err());
        assert_eq!(
            std_duration("f", "3s").unwrap(),
            std::time::Duration::from_secs(3)
        );
    }

    #[test]
    fn every_command_has_an_example_in_its_help() {
        fn walk(cmd: &clap::Command, path: String, missing: &mut Vec<String>) {
            if !path.is_empty() && cmd.get_after_help().is_none() && cmd.get_name() != "help" {
                missing.push(path.clone());
            }
            for sub in cmd.get_subcommands() {
                let at = if path.is_empty() {
                    sub.get_name().to_owned()
                } else {
                    format!("{path} {}", sub.get_name())
                };
                walk(sub, at, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&command(), String::new(), &mut missing);
        assert_eq!(missing, Vec::<String>::new(), "commands without an example");
        command().debug_assert();
    }

    #[test]
    fn finds_the_sqlite_file() {
        assert_eq!(
            sqlite_file("sqlite://data/kw.db?mode=rwc"),
            Some(PathBuf::from("data/kw.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
    }
}
