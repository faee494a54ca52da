//! Kind 11 of issue 14: a slow or incomplete client cannot hold the server. The real binary, with
//! short limits, against raw sockets: a head sent a byte at a time, a body that never completes,
//! a declared oversized body behind `Expect: 100-continue`, idle connections, and more
//! connections than the server serves at once.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::{start_with, Server};

async fn server(dir: &std::path::Path, max_connections: &str) -> Server {
    start_with(
        dir,
        false,
        &[],
        &[
            "--write-timeout",
            "1s",
            "--header-read-timeout",
            "1s",
            "--body-read-timeout",
            "1s",
            "--idle-timeout",
            "2s",
            "--max-connections",
            max_connections,
        ],
    )
    .await
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Everything the server sends until it closes the connection (or `within` passes: then
/// `None`).
async fn until_closed(conn: &mut TcpStream, within: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&seen).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_sent_a_byte_at_a_time_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "100").await;
    let mut conn = connect(&server).await;
    let started = Instant::now();
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n" {
        if conn.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let answer = until_closed(&mut conn, Duration::from_secs(3)).await;
    assert!(answer.is_some(), "the connection is still open");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "closed after {took:?}, limit 1 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_answered_408() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "100").await;
    for (path, content_type) in [
        ("/api/v1/auth/login", "application/json"),
        ("/api/v1/tenants", "application/json"),
        ("/api/apikey", "application/x-www-form-urlencoded"),
    ] {
        let mut conn = connect(&server).await;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n\
             Content-Length: 100\r\n\r\n{{\"email\":\"a@b.c\"}}"
        );
        conn.write_all(request.as_bytes()).await.unwrap();
        let answer = until_closed(&mut conn, Duration::from_secs(4))
            .await
            .unwrap_or_else(|| panic!("{path}: no answer"));
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_oversized_body_is_refused_before_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "100").await;
    for path in ["/api/v1/auth/login", "/api/v1/tenants", "/user/api-keys"] {
        let mut conn = connect(&server).await;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 10000000\r\nExpect: 100-continue\r\n\r\n"
        );
        conn.write_all(request.as_bytes()).await.unwrap();
        let answer = until_closed(&mut conn, Duration::from_secs(2))
            .await
            .unwrap_or_else(|| panic!("{path}: no answer without the body"));
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(!answer.contains("100 Continue"), "{path}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_the_cap_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "4").await;
    let started = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect(&server).await);
    }
    // A fifth connection is not served while four are open...
    let mut fifth = connect(&server).await;
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let early = until_closed(&mut fifth, Duration::from_millis(800)).await;
    assert!(early.is_none(), "served past the cap: {early:?}");
    // ... until the idle ones are closed (2 s), and then it is.
    let answer = until_closed(&mut fifth, Duration::from_secs(4))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for conn in &mut idle {
        let closed = until_closed(conn, Duration::from_secs(1)).await;
        assert_eq!(
            closed.as_deref(),
            Some(""),
            "an idle connection stayed open"
        );
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A connection idle after a request is closed too.
    let mut conn = connect(&server).await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut conn, Duration::from_secs(4))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Peak resident memory of a process, in bytes (Linux `VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Kind 14: the work a caller without credentials can cause is bounded. 400 failed sign-ins at
/// once from one address (each a different email, real argon2id parameters): attempts are counted
/// before any password is hashed, so at most the address's 50 are hashed (the rest are 429, or
/// 503 when too many wait for a core), and memory stays far from what 400 hashes at once take
/// (19 MiB each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_failed_sign_ins_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), false, &[], &[]).await;
    let client = reqwest::Client::new();
    let before = peak_rss(server.pid());
    let attempts = (0..400).map(|i| {
        let client = client.clone();
        let url = format!("{}/api/v1/auth/login", server.base);
        async move {
            client
                .post(url)
                .json(&serde_json::json!({"email": format!("guess-{i}@example.com"), "password": "a guessed password"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let count = |s: u16| statuses.iter().filter(|&&x| x == s).count();
    assert!(count(401) <= 50, "{} hashed, the limit is 50", count(401));
    assert!(count(401) >= 1, "some were answered");
    assert_eq!(count(401) + count(429) + count(503), 400, "{statuses:?}");
    let grown = peak_rss(server.pid()).saturating_sub(before);
    assert!(
        grown < 200 * 1024 * 1024,
        "peak memory grew by {} MiB",
        grown / (1024 * 1024)
    );
}

/// Kind 13: what hyper refuses before any router sees it (a head that is not HTTP/1.1, a header
/// section larger than hyper reads) is answered in the shape of the surface its path names,
/// also after an earlier request on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_heads_are_answered_in_the_surfaces_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "100").await;
    let huge = format!(
        "GET /api/apikey HTTP/1.1\r\nHost: x\r\nX-A: {}\r\n\r\n",
        "a".repeat(500_000)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"GARBAGE\r\n\r\n".to_vec(), "\"code\":\"malformed_request\""),
        (
            "a bad header line",
            b"GET /user/api-keys HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(),
            "\"reason\":\"ERR_INVALID_INPUT\"",
        ),
        (
            "an unknown version",
            b"GET /api/apikey HTTP/2.0\r\n\r\n".to_vec(),
            "\"code\":\"MALFORMED_REQUEST\"",
        ),
        ("a huge header", huge.into_bytes(), "\"code\":\"HEADERS_TOO_LARGE\""),
        (
            "garbage after a good request",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /user/x HTTP/1.1\r\nContent-Length: x\r\n\r\n"
                .to_vec(),
            "\"reason\":\"ERR_INVALID_INPUT\"",
        ),
        (
            "two lengths, and a body",
            b"GET /user/api-keys HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
                .to_vec(),
            "\"reason\":\"ERR_INVALID_INPUT\"",
        ),
        (
            "a byte that is no text in the target",
            b"GET /api/apikey/\xff HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "\"code\":\"MALFORMED_REQUEST\"",
        ),
    ];
    for (what, request, shape) in cases {
        let mut conn = connect(&server).await;
        let _ = conn.write_all(&request).await;
        let answer = until_closed(&mut conn, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("{what}: no answer"));
        let last = answer
            .rfind("HTTP/1.1 ")
            .map_or(answer.as_str(), |i| &answer[i..]);
        assert!(last.starts_with("HTTP/1.1 4"), "{what}: {answer}");
        assert!(
            last.contains("content-type: application/json"),
            "{what}: {last}"
        );
        assert!(last.contains(shape), "{what}: {last}");
    }
}

/// A client that sends requests and never reads the answers cannot hold its connection: once
/// writes make no progress for the write timeout (1 s), the connection is closed, and the one
/// connection the server serves here is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "1").await;
    let address: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(address).await.unwrap();
    let request = "GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(300);
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        stalled.write_all(request.as_bytes()),
    )
    .await;
    let started = Instant::now();
    let mut next = connect(&server).await;
    next.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut next, Duration::from_secs(6))
        .await
        .expect("the stalled client still holds the only connection");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(stalled);
}

/// Kind 11/14: a request that asks `Expect: 100-continue` is not invited to send its body before
/// its credential is checked: without one it is refused at once, with no `100 Continue`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_body_is_invited_before_the_credential_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "100").await;
    for path in ["/api/v1/api-keys", "/api/apikey", "/api/v1/keys/verify"] {
        let mut conn = connect(&server).await;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 60000\r\nExpect: 100-continue\r\n\r\n"
        );
        conn.write_all(request.as_bytes()).await.unwrap();
        let answer = until_closed(&mut conn, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("{path}: no answer without the body"));
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
        assert!(!answer.contains("100 Continue"), "{path}: {answer}");
    }
}
