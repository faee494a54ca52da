//! Forward auth end to end behind a real nginx (`auth_request`), in front of a static upstream:
//! valid, missing, revoked, wrong-scope and rate-limited keys. nginx comes from Debian's package
//! (`scripts/test.sh` installs it when missing).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{app, As};

fn nginx_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("KEYWARD_NGINX") {
        return PathBuf::from(p);
    }
    let found = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    found.expect("nginx is missing: run `bash scripts/test.sh`, which installs Debian's nginx")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The configuration README.md shows, with ports, paths and the verifier filled in.
fn config(dir: &Path, port: u16, upstream: u16, keyward: &str, verifier: &str) -> String {
    let d = dir.display();
    format!(
        r#"
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    # The API keyward guards (here a static stand-in that echoes who called).
    server {{
        listen 127.0.0.1:{upstream};
        location / {{ return 200 "upstream ok, owner=$http_x_keyward_owner_id\n"; }}
    }}

    server {{
        listen 127.0.0.1:{port};
        location / {{
            auth_request /_keyward;
            auth_request_set $keyward_owner $upstream_http_x_keyward_owner_id;
            auth_request_set $keyward_status $upstream_status;
            auth_request_set $keyward_retry_after $upstream_http_retry_after;
            proxy_set_header X-Keyward-Owner-Id $keyward_owner;
            proxy_pass http://127.0.0.1:{upstream};
            # auth_request passes 401 and 403 on; any other status (429) arrives as a 500.
            error_page 500 = @keyward_error;
        }}
        location = /_keyward {{
            internal;
            proxy_pass {keyward}/api/v1/auth/forward?scopes=orders:read;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Keyward-Verifier "{verifier}";
        }}
        location @keyward_error {{
            if ($keyward_status = 429) {{
                add_header Retry-After $keyward_retry_after always;
                return 429;
            }}
            return 500;
        }}
    }}
}}
"#
    )
}

struct Nginx {
    child: std::process::Child,
}

impl Drop for Nginx {
    /// SIGTERM, nginx's fast shutdown, which takes its workers down with it (a SIGKILL to the
    /// master left them running after the test); SIGKILL only if it is still there after 5 s.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_behind_a_real_nginx() {
    let app = app().await;
    let t = app.tenant("nginx").await;
    let (member, member_id) = app.user_in(t, keyward_domain::Role::Member).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let (_, good) = app.key_with(&member, &["orders:read"]).await;
    let (_, wrong_scope) = app.key_with(&member, &["orders:write"]).await;
    let (revoked_id, revoked) = app.key_with(&member, &["orders:read"]).await;
    let (_, limited) = app
        .key_from(
            &member,
            json!({"scopes": ["orders:read"], "rate_limit_max": 1, "rate_limit_window": "1 hour"}),
        )
        .await;
    let keyward = app.live().await;

    let dir = tempfile::tempdir().unwrap();
    let (port, upstream) = (free_port(), free_port());
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        config(dir.path(), port, upstream, &keyward.base, &verifier),
    )
    .unwrap();
    let child = std::process::Command::new(nginx_binary())
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nginx");
    let _nginx = Nginx { child };
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let get = |key: Option<&str>| {
        let mut req = client.get(format!("{base}/orders"));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        req.send()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(None).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let ok = get(Some(&good)).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.text().await.unwrap(),
        format!("upstream ok, owner={member_id}\n"),
        "the upstream sees the key's owner"
    );
    let bearer = client
        .get(format!("{base}/orders"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    assert_eq!(get(None).await.unwrap().status(), 401);
    assert_eq!(get(Some("kw_not_a_key")).await.unwrap().status(), 401);
    assert_eq!(get(Some(&wrong_scope)).await.unwrap().status(), 403);

    assert_eq!(get(Some(&revoked)).await.unwrap().status(), 200);
    app.delete(
        &format!("/api/v1/api-keys/{revoked_id}"),
        As::Bearer(&member),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        get(Some(&revoked)).await.unwrap().status(),
        401,
        "revoked: rejected on the very next request"
    );

    assert_eq!(get(Some(&limited)).await.unwrap().status(), 200);
    let over = get(Some(&limited)).await.unwrap();
    assert_eq!(over.status(), 429);
    let retry: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3000..=3600).contains(&retry), "{retry}");
}
