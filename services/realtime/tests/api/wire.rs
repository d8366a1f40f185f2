//! The websocket framing after the 101, written byte by byte: frames that arrive with the
//! handshake request, frames split across writes, a text frame that is not UTF-8, and upgrade
//! requests for paths other than the socket's.

use std::time::Duration;

use serde_json::{json, Value};
use test_support::Session;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::*;

/// A client frame (FIN set, masked) with `opcode` and `payload`.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

fn text_frame(text: &str) -> Vec<u8> {
    client_frame(0x1, text.as_bytes())
}

fn handshake_request(app: &TestApp, s: &Session) -> Vec<u8> {
    format!(
        "GET /box-users/{}/ws?access_token={} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        s.identity, s.token, app.port
    )
    .into_bytes()
}

/// Sends `first` (the handshake request, possibly followed by frames), reads the response head
/// and asserts the 101. Returns the stream and whatever was read past the head.
async fn raw_handshake(app: &TestApp, first: &[u8]) -> (TcpStream, Vec<u8>) {
    let mut tcp = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    tcp.write_all(first).await.unwrap();
    let mut read = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "connection closed during the handshake");
        read.extend_from_slice(&chunk[..n]);
        if let Some(i) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&read[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
    (tcp, read.split_off(head_end))
}

/// Continues on a raw stream as a regular client.
async fn as_client(tcp: TcpStream, leftover: Vec<u8>) -> Ws {
    WebSocketStream::from_partially_read(MaybeTlsStream::Plain(tcp), leftover, Role::Client, None).await
}

fn ack(s: &Session) -> String {
    json!({"type": "ack", "object": {"sender_id": s.identity, "box_id": uuid::Uuid::new_v4()}}).to_string()
}

#[tokio::test]
async fn a_frame_sent_with_the_handshake_and_a_frame_split_across_writes_are_both_read() {
    let app = spawn_app().await;
    let s = app.session();
    // A second socket of the identity sees the ack echoes (§9.5).
    let mut watcher = app.open(&app.keys.session(s.identity)).await;

    let first_ack = ack(&s);
    let mut first = handshake_request(&app, &s);
    first.extend(text_frame(&first_ack));
    let (mut tcp, leftover) = raw_handshake(&app, &first).await;
    let echo: Value = serde_json::from_str(&next_text(&mut watcher, WAIT).await.expect("first echo")).unwrap();
    assert_eq!(echo, serde_json::from_str::<Value>(&first_ack).unwrap());

    let second_ack = ack(&s);
    let frame = text_frame(&second_ack);
    for part in [&frame[..1], &frame[1..5], &frame[5..40], &frame[40..]] {
        tcp.write_all(part).await.unwrap();
        tcp.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let echo: Value = serde_json::from_str(&next_text(&mut watcher, WAIT).await.expect("second echo")).unwrap();
    assert_eq!(echo, serde_json::from_str::<Value>(&second_ack).unwrap());

    // The raw socket got its `ready` and both echoes, as a client would.
    let mut ws = as_client(tcp, leftover).await;
    expect_ready(&mut ws, s.identity).await;
    for sent in [first_ack, second_ack] {
        let echo: Value = serde_json::from_str(&next_text(&mut ws, WAIT).await.expect("echo")).unwrap();
        assert_eq!(echo, serde_json::from_str::<Value>(&sent).unwrap());
    }
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    let app = spawn_app().await;
    let s = app.session();
    let (mut tcp, leftover) = raw_handshake(&app, &handshake_request(&app, &s)).await;
    tcp.write_all(&client_frame(0x1, &[0x61, 0xff, 0xfe])).await.unwrap();
    let mut ws = as_client(tcp, leftover).await;
    assert_eq!(expect_close(&mut ws, WAIT).await.0, 1007);
}

#[tokio::test]
async fn client_pings_are_answered_with_their_payload() {
    let app = spawn_app().await;
    let s = app.session();
    let (mut tcp, mut read) = raw_handshake(&app, &handshake_request(&app, &s)).await;
    tcp.write_all(&client_frame(0x9, b"are you there")).await.unwrap();
    // Server frames are unmasked: skip the `ready` text frame, then expect the pong.
    let pong = [&[0x8a, 13][..], b"are you there"].concat();
    let found = tokio::time::timeout(WAIT, async {
        loop {
            if read.windows(pong.len()).any(|w| w == pong.as_slice()) {
                return;
            }
            let mut chunk = [0u8; 512];
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the pong");
            read.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(found.is_ok(), "no pong with the ping's payload");
}

#[tokio::test]
async fn upgrade_requests_for_other_paths_or_methods_get_the_error_body() {
    let app = spawn_app().await;
    let (status, body) = refused(app.upgrade_request(&app.http_url("/nowhere")).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, body) = refused(app.upgrade_request(&app.http_url("/healthz/ws")).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let s = app.session();
    let response = reqwest::Client::new()
        .post(app.ws_url(s.identity).replace("ws://", "http://"))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Cookie", s.cookie())
        .send()
        .await
        .unwrap();
    let (status, body) = refused(response).await;
    assert_eq!(status, 405);
    assert_eq!(body["code"], "method_not_allowed");
    // A refused upgrade closes the connection rather than waiting for another request on it.
    let response = app.upgrade_request(&app.ws_url(s.identity)).send().await.unwrap();
    assert_eq!(response.headers().get("connection").and_then(|v| v.to_str().ok()), Some("close"));
}
