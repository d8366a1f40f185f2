//! The binary started as a process: what only a real process shows, its resident memory while a
//! client streams an oversized frame, and how long it takes to exit after SIGTERM.
//!
//! `REALTIME_BIN` runs these against another build (a release binary, for instance).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use boxes_client::Socket;
use domain::IdentityId;
use test_support::{redis_url, TestKeys};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

struct Server {
    child: Child,
    port: u16,
    keys: TestKeys,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(keys: TestKeys) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let bin = std::env::var("REALTIME_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_realtime").to_owned());
        let child = Command::new(bin)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("REDIS_URL", redis_url())
            .env("JWT_PUBLIC_KEY_FILE", keys.public_file.path())
            .env("WORKERS", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server { child, port, keys };
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
                if r.status().is_success() {
                    return server;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(20), "server not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `VmRSS` and `VmHWM` (peak), KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

#[tokio::test]
async fn a_frame_announcing_2_40_bytes_is_refused_with_1009_and_memory_stays_bounded() {
    let server = Server::start(TestKeys::generate()).await;
    let (_, peak_before) = server.memory_kib();
    let s = server.keys.session(IdentityId::new_v4());
    let (tcp, leftover) = raw_handshake_at(server.port, &handshake_request_at(server.port, &s)).await;
    let (mut reader, mut writer) = tcp.into_split();
    let streamer = tokio::spawn(async move {
        let header = [&[0x81][..], &length_field(1 << 40), &[1, 2, 3, 4]].concat();
        writer.write_all(&header).await.unwrap();
        let chunk = vec![0x55u8; 64 * 1024];
        let mut sent = 0u64;
        while sent < 256 << 20 && writer.write_all(&chunk).await.is_ok() {
            sent += chunk.len() as u64;
        }
    });
    let started = Instant::now();
    assert_eq!(raw_close_code(&mut reader, leftover, WAIT).await, Some(1009));
    let closed_after = started.elapsed();
    assert!(closed_after < Duration::from_secs(1), "1009 after {closed_after:?}");
    let _ = tokio::time::timeout(Duration::from_secs(5), streamer).await;
    let (rss, peak_after) = server.memory_kib();
    println!("1009 after {closed_after:?}; VmHWM {peak_before} -> {peak_after} KiB, VmRSS {rss} KiB");
    assert!(peak_after < peak_before + 8 * 1024, "peak resident memory grew from {peak_before} to {peak_after} KiB");
}

#[tokio::test]
async fn sigterm_closes_every_socket_with_1001_and_the_process_exits_at_once() {
    let mut server = Server::start(TestKeys::generate()).await;
    let port = server.port;
    let mut sockets = Vec::new();
    for _ in 0..20 {
        let s = server.keys.session(IdentityId::new_v4());
        let base = format!("http://127.0.0.1:{port}");
        let ws = Socket::connect_with_query_token(&base, s.identity, &s.token, None).await.expect("handshake");
        assert_eq!((ws.ready.identity_id, ws.ready.recovered), (s.identity, None));
        sockets.push(ws);
    }
    // An idle keep-alive HTTP connection, as a load balancer's health checks leave behind.
    let mut idle_http = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    idle_http.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 512];
    let n = idle_http.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let status = Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().unwrap();
    assert!(status.success());
    let signalled = Instant::now();
    // Every client reads its close frame (and answers it, as tungstenite does).
    let closes = futures_util::future::join_all(sockets.iter_mut().map(|ws| ws.close_code(WAIT))).await;
    assert!(closes.iter().all(|c| matches!(c, Ok(1001))), "{closes:?}");
    let exited = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(signalled.elapsed() < Duration::from_secs(10), "still running 10 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = signalled.elapsed();
    println!("exited with {exited} {took:?} after SIGTERM");
    assert!(exited.success(), "{exited}");
    assert!(took < Duration::from_secs(2), "exited {took:?} after SIGTERM");
}
