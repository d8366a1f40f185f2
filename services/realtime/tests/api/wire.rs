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
    raw_frame(0x80 | opcode, payload)
}

fn text_frame(text: &str) -> Vec<u8> {
    client_frame(0x1, text.as_bytes())
}

fn handshake_request(app: &TestApp, s: &Session) -> Vec<u8> {
    handshake_request_at(app.port, s)
}

async fn raw_handshake(app: &TestApp, first: &[u8]) -> (TcpStream, Vec<u8>) {
    raw_handshake_at(app.port, first).await
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
    let echo = without_position(&next_text(&mut watcher, WAIT).await.expect("first echo"));
    assert_eq!(echo, serde_json::from_str::<Value>(&first_ack).unwrap());

    let second_ack = ack(&s);
    let frame = text_frame(&second_ack);
    for part in [&frame[..1], &frame[1..5], &frame[5..40], &frame[40..]] {
        tcp.write_all(part).await.unwrap();
        tcp.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let echo = without_position(&next_text(&mut watcher, WAIT).await.expect("second echo"));
    assert_eq!(echo, serde_json::from_str::<Value>(&second_ack).unwrap());

    // The raw socket got its `ready` and both echoes, as a client would.
    let mut ws = as_client(tcp, leftover).await;
    expect_ready(&mut ws, s.identity).await;
    for sent in [first_ack, second_ack] {
        let echo = without_position(&next_text(&mut ws, WAIT).await.expect("echo"));
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

#[tokio::test]
async fn an_ack_sent_as_three_frames_is_reassembled_around_a_ping() {
    let app = spawn_app().await;
    let s = app.session();
    let mut watcher = app.open(&app.keys.session(s.identity)).await;
    let (mut tcp, leftover) = raw_handshake(&app, &handshake_request(&app, &s)).await;

    let sent = ack(&s);
    let bytes = sent.as_bytes();
    let (a, rest) = bytes.split_at(10);
    let (b, c) = rest.split_at(30);
    // Text without FIN, a control frame in between (allowed), continuation, final continuation.
    for frame in [raw_frame(0x01, a), client_frame(0x9, b"between"), raw_frame(0x00, b), raw_frame(0x80, c)] {
        tcp.write_all(&frame).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let echo = without_position(&next_text(&mut watcher, WAIT).await.expect("echo of the split ack"));
    assert_eq!(echo, serde_json::from_str::<Value>(&sent).unwrap());
    // The socket stays open and usable.
    let mut ws = as_client(tcp, leftover).await;
    expect_ready(&mut ws, s.identity).await;
    assert_eq!(next_text(&mut ws, WAIT).await.map(|t| without_position(&t)), Some(echo));
}

#[tokio::test]
async fn a_split_message_over_the_limit_closes_with_1009() {
    let app = spawn_app().await;
    let s = app.session();
    let (mut tcp, leftover) = raw_handshake(&app, &handshake_request(&app, &s)).await;
    // Three fragments of 3 KiB each: every frame is within 8 KiB, the message is not.
    let part = vec![b'x'; 3 * 1024];
    for frame in [raw_frame(0x01, &part), raw_frame(0x00, &part), raw_frame(0x80, &part)] {
        tcp.write_all(&frame).await.unwrap();
    }
    let (mut reader, _writer) = tcp.into_split();
    assert_eq!(raw_close_code(&mut reader, leftover, WAIT).await, Some(1009));
}

#[tokio::test]
async fn protocol_violations_close_with_1002() {
    let app = spawn_app().await;
    let ack_text = ack(&app.session());
    let unmasked = [&[0x81, 5][..], b"hello"].concat();
    let violations: Vec<(&str, Vec<u8>)> = vec![
        ("RSV1", raw_frame(0x80 | 0x40 | 0x1, ack_text.as_bytes())),
        ("RSV2", raw_frame(0x80 | 0x20 | 0x1, b"{}")),
        ("RSV3", raw_frame(0x80 | 0x10 | 0x9, b"")),
        ("unmasked frame", unmasked),
        ("continuation without a first frame", raw_frame(0x80, b"{}")),
        ("new message inside a fragmented one", [raw_frame(0x01, b"{"), raw_frame(0x81, b"{}")].concat()),
        ("fragmented ping", raw_frame(0x09, b"")),
        ("ping over 125 bytes", raw_frame(0x89, &[0u8; 126])),
        ("reserved opcode", raw_frame(0x83, b"")),
    ];
    for (what, frame) in violations {
        let s = app.session();
        let (mut tcp, leftover) = raw_handshake(&app, &handshake_request(&app, &s)).await;
        tcp.write_all(&frame).await.unwrap();
        let (mut reader, _writer) = tcp.into_split();
        assert_eq!(raw_close_code(&mut reader, leftover, WAIT).await, Some(1002), "{what}");
    }
}

#[tokio::test]
async fn a_frame_announcing_more_than_the_limit_is_refused_by_its_header() {
    let app = spawn_app().await;
    let s = app.session();
    let (tcp, leftover) = raw_handshake(&app, &handshake_request(&app, &s)).await;
    let (mut reader, mut writer) = tcp.into_split();
    // 2^40 bytes announced; the client keeps sending payload until the server hangs up.
    let streamer = tokio::spawn(async move {
        let header = [&[0x81][..], &length_field(1 << 40), &[1, 2, 3, 4]].concat();
        writer.write_all(&header).await.unwrap();
        let chunk = vec![0x55u8; 64 * 1024];
        while writer.write_all(&chunk).await.is_ok() {}
    });
    let started = std::time::Instant::now();
    assert_eq!(raw_close_code(&mut reader, leftover, WAIT).await, Some(1009));
    assert!(started.elapsed() < Duration::from_secs(1), "1009 after {:?}", started.elapsed());
    // The server ends the connection soon after, whatever the client still sends.
    let abort = streamer.abort_handle();
    let ended = tokio::time::timeout(Duration::from_secs(5), streamer).await;
    abort.abort();
    assert!(ended.is_ok(), "the server still reads the oversized frame");
}
