//! Hostile requests over a raw socket, for the hostile-input tests of every service: bytes no
//! HTTP client library would send (invalid UTF-8 in the request line, oversize headers, a body
//! shorter than announced), each answered within a bounded time or counted as a hang.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one hostile request may take before it counts as a hang.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A status line with this code.
    Status(u16),
    /// The server closed the connection without an answer (acceptable for what HTTP cannot
    /// even parse).
    Closed,
    /// Nothing within [`ANSWER_WITHIN`].
    Hang,
}

impl Outcome {
    /// No 5xx and no hang.
    pub fn is_acceptable(&self) -> bool {
        match self {
            Outcome::Status(s) => *s < 500,
            Outcome::Closed => true,
            Outcome::Hang => false,
        }
    }
}

/// Sends `bytes` as they are on a new connection and reads the status line of the answer.
pub async fn send_raw(port: u16, bytes: &[u8]) -> Outcome {
    let work = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        // A server may answer (413, 431) before it has read everything: a failed write is fine.
        let _ = s.write_all(bytes).await;
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = got.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&got[..end]).to_string();
                return Some(line.split(' ').nth(1).and_then(|c| c.parse().ok()).map_or(Outcome::Closed, Outcome::Status));
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return Some(Outcome::Closed),
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    match tokio::time::timeout(ANSWER_WITHIN, work).await {
        Ok(Some(outcome)) => outcome,
        Ok(None) => Outcome::Closed,
        Err(_) => Outcome::Hang,
    }
}

/// A complete HTTP/1.1 request; `target` and `body` are raw bytes (they may be invalid UTF-8).
/// `Content-Length` is added unless `headers` frame the body themselves.
pub fn request(method: &str, target: &[u8], headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    let framed = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("Content-Length") || k.eq_ignore_ascii_case("Transfer-Encoding")
    });
    if !framed && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// JSON bodies that are wrong in every way the services must survive; `fields` are the field
/// names the endpoint reads, so each wrong value reaches its validation.
pub fn bad_bodies(fields: &[&str]) -> Vec<(String, Vec<u8>)> {
    let each = |value: &str| -> Vec<u8> {
        let members: Vec<String> = fields.iter().map(|f| format!("\"{f}\":{value}")).collect();
        format!("{{{}}}", members.join(",")).into_bytes()
    };
    let mut out: Vec<(String, Vec<u8>)> = vec![
        ("truncated JSON".into(), b"{\"a\":".to_vec()),
        ("not JSON".into(), b"<xml/>".to_vec()),
        ("a JSON array".into(), b"[1,2,3]".to_vec()),
        ("JSON null".into(), b"null".to_vec()),
        ("empty object".into(), b"{}".to_vec()),
        ("invalid UTF-8".into(), b"{\"title\":\"\xff\xfe\xfd\",\"type\":\"\xc3\x28\"}".to_vec()),
        ("deep nesting".into(), format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)).into_bytes()),
        ("duplicate keys".into(), b"{\"type\":\"msg.text\",\"type\":\"create\"}".to_vec()),
        ("lone surrogate".into(), b"{\"title\":\"\\ud800\"}".to_vec()),
    ];
    for (name, value) in [
        ("numbers", "12345"),
        ("huge numbers", "1e999"),
        ("huge integers", "123456789012345678901234567890"),
        ("negative numbers", "-9223372036854775809"),
        ("booleans", "true"),
        ("arrays", "[\"x\"]"),
        ("objects", "{\"x\":{\"y\":1}}"),
        ("nulls", "null"),
        ("NUL characters", "\"a\\u0000b\""),
        ("control characters", "\"\\u001b[31m\\u0007\\u0085\""),
        ("empty strings", "\"\""),
        ("long strings", &format!("\"{}\"", "é".repeat(20_000))),
        ("non-uuid strings", "\"../../etc/passwd\""),
    ] {
        out.push((format!("fields as {name}"), each(value)));
    }
    out
}

/// Path segments that are not what a route expects.
pub const BAD_IDS: &[&str] = &[
    "not-a-uuid",
    "00000000-0000-0000-0000-00000000000g",
    "%00",
    "%FF%FE",
    "..%2F..%2Fetc",
    "%20",
    "-1",
    "99999999999999999999999999999999999999",
];

/// Query strings for paged lists and other query parameters.
pub const BAD_QUERIES: &[&str] = &[
    "offset=-1&limit=-5",
    "offset=99999999999999999999&limit=99999999999999999999",
    "limit=1e9&offset=1.5",
    "limit=abc&offset=%FF",
    "limit=0",
    "limit=%00",
    "other_share_hash=%00%FF&identifier_value=%C3%28",
    "a=%zz&&&==",
];
