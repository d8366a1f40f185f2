//! Memory per idle socket, measured on the real binary in its own process: open many sockets
//! (one identity each, the worst case: one subscription and one registry entry per socket), wait
//! for every `ready`, and divide the growth of the server's resident memory by the count.
//!
//! Ignored by default (it opens thousands of sockets). Run with
//! `cargo test -p realtime --release --test memory -- --ignored --nocapture`;
//! `MEMORY_SOCKETS` sets the count (default 5000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use boxes_client::Socket;
use domain::IdentityId;
use futures_util::StreamExt;
use test_support::{redis_url, TestKeys};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn open_many(port: u16, keys: &TestKeys, count: usize) -> Vec<impl Sized> {
    let mut sockets = Vec::with_capacity(count);
    let mut pending = futures_util::stream::iter(0..count)
        .map(|_| {
            let s = keys.session(IdentityId::new_v4());
            async move {
                let base = format!("http://127.0.0.1:{port}");
                let socket = Socket::connect_with_query_token(&base, s.identity, &s.token, None);
                socket.await.unwrap_or_else(|e| panic!("no ready: {e}"))
            }
        })
        .buffer_unordered(64);
    while let Some(ws) = pending.next().await {
        sockets.push(ws);
    }
    sockets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opens thousands of sockets; run on demand"]
async fn memory_per_idle_socket() {
    let count: usize = std::env::var("MEMORY_SOCKETS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let keys = TestKeys::generate();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_realtime"))
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("REDIS_URL", redis_url())
            .env("JWT_PUBLIC_KEY_FILE", keys.public_file.path())
            .env("WORKERS", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = server.0.id();
    let ready = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(ready.elapsed() < Duration::from_secs(20), "server not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // For comparison, first: idle keep-alive HTTP connections (one GET /healthz each), which keep
    // actix-http's whole connection state (buffers included) that an upgraded socket gives back.
    // They stay open so the websocket measurement below cannot reuse their memory.
    let http_count = count.min(4000);
    let before_http = rss_kib(pid);
    let mut idle_http = Vec::with_capacity(http_count);
    for _ in 0..http_count {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        idle_http.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_http = rss_kib(pid);
    let per_http = (after_http.saturating_sub(before_http) as f64) * 1024.0 / http_count as f64;
    println!("idle keep-alive http connections={http_count} per_connection={per_http:.0}B");

    // Warm up the registry and worker state before the baseline.
    let warm = open_many(port, &keys, 200).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let started = Instant::now();
    let sockets = open_many(port, &keys, count).await;
    let opened_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid);
    let per_socket = (after.saturating_sub(before) as f64) * 1024.0 / count as f64;
    println!(
        "sockets={count} rss_before={before}KiB rss_after={after}KiB per_idle_socket={per_socket:.0}B opened_in={opened_in:?} ({:.0}/s)",
        count as f64 / opened_in.as_secs_f64()
    );
    drop((warm, sockets, idle_http));
    // The target of the realtime issue: under 10 KiB per idle socket.
    assert!(per_socket < 10.0 * 1024.0, "{per_socket:.0} bytes per idle socket");
}
