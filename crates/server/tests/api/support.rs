//! Test helpers: a fresh keyward with a manual clock, on a temp SQLite file or, with
//! `KEYWARD_TEST_DATABASE=postgres`, on a new database of a throwaway PostgreSQL cluster (the
//! README's test command runs the suite both ways); and shortcuts (`admin()`, `member_of()`,
//! `key_with()`) that keep tests short.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use keyward_core::jwt::JwtKeys;
use keyward_core::password::Passwords;
use keyward_core::users::{self, NewUser};
use keyward_core::Settings;
use keyward_domain::{Actor, ManualClock, Role};
use keyward_server::AppState;
use keyward_store::Store;
use keyward_store_postgres::PgStore;
use keyward_store_sqlite::SqliteStore;
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";
pub const JWT_SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
/// Sessions in tests outlive the clock jumps that expiry and dormancy tests make; the default
/// one-hour lifetime is covered by the JWT unit tests.
pub const SESSION_TTL: time::Duration = time::Duration::days(400);

pub struct TestApp {
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    /// The change-feed watcher of an in-process app on PostgreSQL; [`TestApp::live`] stops it,
    /// since `serve` runs its own (one listening connection per store).
    watcher: Option<tokio::task::AbortHandle>,
    _dir: tempfile::TempDir,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// Asserts the native error shape and returns its code.
    #[track_caller]
    pub fn error_code(&self) -> &str {
        let code = self.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {}", self.body));
        assert!(
            self.body["error"]["message"].is_string(),
            "error without message: {}",
            self.body
        );
        code
    }
}

/// An RFC 3339 time in a JSON body.
#[track_caller]
pub fn rfc3339(value: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a time: {value}")),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

pub fn start_time() -> time::OffsetDateTime {
    time::macros::datetime!(2026-03-01 12:00 UTC)
}

/// Whether the suite runs on PostgreSQL: `KEYWARD_TEST_DATABASE` is `postgres`; it is
/// `sqlite` (the default) otherwise.
pub fn on_postgres() -> bool {
    match std::env::var("KEYWARD_TEST_DATABASE").as_deref() {
        Err(_) | Ok("sqlite") => false,
        Ok("postgres") => true,
        Ok(other) => panic!("KEYWARD_TEST_DATABASE={other}: use sqlite or postgres"),
    }
}

/// A fresh store on the suite's backend.
async fn test_store(dir: &std::path::Path) -> Arc<dyn Store> {
    if on_postgres() {
        let url = keyward_pg_testkit::shared().fresh_database("http").await;
        Arc::new(PgStore::open(&url).await.unwrap())
    } else {
        let url = format!("sqlite://{}", dir.join("test.db").display());
        Arc::new(SqliteStore::open(&url).await.unwrap())
    }
}

pub async fn app() -> TestApp {
    app_with(Settings::default()).await
}

/// An app whose console believes it is reached over HTTPS (`https`) or not.
pub async fn app_with_http(https: bool) -> TestApp {
    app_served(keyward_server::Settings {
        https,
        ..keyward_server::Settings::default()
    })
    .await
}

pub async fn app_with(settings: Settings) -> TestApp {
    app_served(keyward_server::Settings {
        core: settings,
        ..keyward_server::Settings::default()
    })
    .await
}

/// An app with the server's settings as given.
pub async fn app_served(settings: keyward_server::Settings) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = test_store(dir.path()).await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let jwt = JwtKeys::new(JWT_SECRET.to_vec(), SESSION_TTL).unwrap();
    let state = AppState::new(
        Arc::clone(&store),
        clock.clone(),
        jwt,
        Passwords::fast_insecure_for_tests().unwrap(),
        settings,
    );
    let mut watcher = None;
    if store.publishes_changes() {
        // As `serve` does: the cache trusts nothing until the change feed listens.
        watcher = Some(keyward_server::serve::spawn_change_watcher(&state).abort_handle());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !state.cache.is_coherent() {
            assert!(
                std::time::Instant::now() < deadline,
                "the change feed never listened"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    TestApp {
        state,
        clock,
        watcher,
        _dir: dir,
    }
}

/// Who a request is sent as.
#[derive(Clone, Copy)]
pub enum As<'a> {
    Nobody,
    Bearer(&'a str),
    ApiKey(&'a str),
}

impl TestApp {
    pub fn router(&self) -> Router {
        keyward_server::router(self.state.clone())
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        let res = self.router().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn call(&self, method: Method, path: &str, who: As<'_>, body: Option<Value>) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        req = match who {
            As::Nobody => req,
            As::Bearer(t) => req.header("authorization", format!("Bearer {t}")),
            As::ApiKey(k) => req.header("x-api-key", k),
        };
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.send(req.unwrap()).await
    }

    pub async fn get(&self, path: &str, who: As<'_>) -> Resp {
        self.call(Method::GET, path, who, None).await
    }

    pub async fn post(&self, path: &str, who: As<'_>, body: Value) -> Resp {
        self.call(Method::POST, path, who, Some(body)).await
    }

    pub async fn patch(&self, path: &str, who: As<'_>, body: Value) -> Resp {
        self.call(Method::PATCH, path, who, Some(body)).await
    }

    pub async fn delete(&self, path: &str, who: As<'_>) -> Resp {
        self.call(Method::DELETE, path, who, None).await
    }

    /// `POST /api/v1/keys/verify` of `key`, with the `verifier` key as the credential.
    pub async fn verify(&self, verifier: &str, key: &str) -> Resp {
        self.post(
            "/api/v1/keys/verify",
            As::ApiKey(verifier),
            json!({"key": key}),
        )
        .await
    }

    /// Creates a user straight through the service (as the CLI does) and returns its id.
    pub async fn user(&self, email: &str, role: Role, tenant_id: Option<Uuid>) -> Uuid {
        let req = NewUser {
            email: email.into(),
            password: PASSWORD.into(),
            role,
            tenant_id,
        };
        users::create_as(&self.state, &Actor::system(), req)
            .await
            .unwrap()
            .id
    }

    pub async fn login(&self, email: &str) -> String {
        let r = self
            .post(
                "/api/v1/auth/login",
                As::Nobody,
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        let r = r.expect(StatusCode::OK);
        r.body["access_token"].as_str().unwrap().to_owned()
    }

    /// An admin's session token.
    pub async fn admin(&self) -> String {
        let email = format!("admin-{}@example.com", Uuid::new_v4().simple());
        self.user(&email, Role::Admin, None).await;
        self.login(&email).await
    }

    /// A new tenant's id.
    pub async fn tenant(&self, slug: &str) -> Uuid {
        let admin = self.admin().await;
        let r = self
            .post(
                "/api/v1/tenants",
                As::Bearer(&admin),
                json!({"name": slug, "slug": slug}),
            )
            .await;
        r.expect(StatusCode::CREATED).body["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// A session token of a new user with `role` in `tenant`, and that user's id.
    pub async fn user_in(&self, tenant: Uuid, role: Role) -> (String, Uuid) {
        let email = format!("{}-{}@example.com", role.as_str(), Uuid::new_v4().simple());
        let id = self.user(&email, role, Some(tenant)).await;
        (self.login(&email).await, id)
    }

    pub async fn member_of(&self, tenant: Uuid) -> String {
        self.user_in(tenant, Role::Member).await.0
    }

    pub async fn tenant_admin_of(&self, tenant: Uuid) -> String {
        self.user_in(tenant, Role::TenantAdmin).await.0
    }

    /// Creates a key as `token` with `scopes`; returns (id, plaintext).
    pub async fn key_with(&self, token: &str, scopes: &[&str]) -> (String, String) {
        self.key_from(token, json!({"name": "test", "scopes": scopes}))
            .await
    }

    pub async fn key_from(&self, token: &str, body: Value) -> (String, String) {
        let r = self
            .post("/api/v1/api-keys", As::Bearer(token), body)
            .await
            .expect(StatusCode::CREATED);
        (
            r.body["id"].as_str().unwrap().to_owned(),
            r.body["key"].as_str().unwrap().to_owned(),
        )
    }

    pub fn advance(&self, by: time::Duration) {
        self.clock.advance(by);
    }
}

/// A port free on 127.0.0.1 now (a process started next binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A program of Debian's package `package`: the path in `env`, or the first of `paths` there.
/// Missing, the test fails and names the package `scripts/test.sh` installs.
pub fn debian_program(env: &str, paths: &[&str], package: &str) -> std::path::PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return p.into();
    }
    let found = paths
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!(
            "{package} is missing: run `bash scripts/test.sh`, which installs Debian's {package} \
             (or `apt-get install {package}`; {env} names another)"
        )
    })
}

/// A program of a test virtualenv that `scripts/test.sh` makes under `target/` (`venv/bin/…`), or
/// the one the environment variable `env` names; `installs` says what the venv holds.
pub fn venv_tool(env: &str, venv: &str, program: &str, installs: &str) -> std::path::PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return path.into();
    }
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .join(venv)
        .join("bin")
        .join(program);
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/test.sh`, which installs {installs}",
        path.display()
    );
    path
}

/// The app on a real socket (port 0), for clients that speak HTTP themselves (the published
/// Estuary client, curl). Stops, flushing buffered writes, when dropped.
pub struct LiveServer {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestApp {
    pub async fn live(&self) -> LiveServer {
        if let Some(watcher) = &self.watcher {
            watcher.abort();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = self.state.clone();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            keyward_server::serve(listener, state, shutdown)
                .await
                .unwrap();
        });
        LiveServer {
            base,
            stop: Some(stop),
        }
    }
}
