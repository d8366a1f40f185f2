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
                return Some(
                    line.split(' ').nth(1).and_then(|c| c.parse().ok()).map_or(Outcome::Closed, Outcome::Status),
                );
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
    let framed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("Content-Length") || k.eq_ignore_ascii_case("Transfer-Encoding"));
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

/// A listener to attack and the headers that authenticate there.
pub struct Target<'a> {
    pub port: u16,
    pub auth: Vec<(&'a str, String)>,
}

/// Every hostile variant of one endpoint (`ids` name the placeholders of `path` and their real
/// values); returns what went wrong, and counts the outcomes in `seen`. A closed connection
/// without an answer is accepted only for what HTTP itself cannot carry (oversize or invalid
/// header bytes); anything else must be answered below 500.
pub async fn attack(
    t: &Target<'_>,
    method: &str,
    path: &str,
    fields: &[&str],
    ids: &[(&str, String)],
    seen: &mut std::collections::BTreeMap<String, usize>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let fill = |p: &str, with: Option<&str>| {
        ids.iter().fold(p.to_owned(), |acc, (name, value)| acc.replace(name, with.unwrap_or(value)))
    };
    let real = fill(path, None);
    let auth: Vec<(&str, &str)> = t.auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let json_headers: Vec<(&str, &str)> = auth.iter().copied().chain([("Content-Type", "application/json")]).collect();
    let mut cases: Vec<(String, Vec<u8>, bool)> = Vec::new();

    let mut bodies = bad_bodies(if fields.is_empty() { &["x"] } else { fields });
    bodies.push(("a valid-looking body".into(), br#"{"title":"t"}"#.to_vec()));
    for (name, body) in &bodies {
        cases.push((format!("body with {name}"), request(method, real.as_bytes(), &json_headers, body), false));
    }
    cases.push((
        "no authentication".into(),
        request(method, real.as_bytes(), &[("Content-Type", "application/json")], b"{}"),
        false,
    ));
    cases.push((
        "text/plain body".into(),
        request(
            method,
            real.as_bytes(),
            &[auth.first().copied().unwrap_or(("X-None", "1")), ("Content-Type", "text/plain")],
            b"{}",
        ),
        false,
    ));
    cases.push((
        "oversize body".into(),
        request(
            method,
            real.as_bytes(),
            &json_headers,
            format!("{{\"title\":\"{}\"}}", "a".repeat(70 * 1024)).as_bytes(),
        ),
        false,
    ));
    let announced: Vec<(&str, &str)> = json_headers.iter().copied().chain([("Content-Length", "100000000")]).collect();
    cases.push((
        "a 100 MB body announced, never sent".into(),
        request(method, real.as_bytes(), &announced, b""),
        false,
    ));
    cases.push((
        "oversize header".into(),
        request(
            method,
            real.as_bytes(),
            &[auth.first().copied().unwrap_or(("X-None", "1")), ("X-Big", &"b".repeat(100 * 1024))],
            b"",
        ),
        true,
    ));
    cases.push((
        "oversize Authorization".into(),
        request(method, real.as_bytes(), &[("Authorization", &format!("Bearer {}", "a".repeat(20 * 1024)))], b""),
        true,
    ));
    cases.push((
        "garbage bearer".into(),
        request(method, real.as_bytes(), &[("Authorization", "Bearer a.b.c")], b""),
        false,
    ));
    cases.push((
        "garbage cookies".into(),
        request(
            method,
            real.as_bytes(),
            &[("Cookie", "accesstoken=%FF%00; tokentype=\u{7f}"), ("X-CSRF-Token", "x")],
            b"",
        ),
        false,
    ));
    let mut bad_header = request(method, real.as_bytes(), &auth, b"");
    let at = bad_header.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
    bad_header.splice(at..at, b"\r\nX-Csrf-Token: \xff\xfe".iter().copied());
    cases.push(("invalid UTF-8 in a header".into(), bad_header, true));
    cases.push((
        "invalid UTF-8 in the query".into(),
        request(
            method,
            format!("{real}?limit=").as_bytes().iter().copied().chain(*b"\xff\xfe").collect::<Vec<u8>>().as_slice(),
            &auth,
            b"",
        ),
        true,
    ));
    let chunked: Vec<(&str, &str)> = json_headers.iter().copied().chain([("Transfer-Encoding", "chunked")]).collect();
    cases.push(("a bad chunk size".into(), request(method, real.as_bytes(), &chunked, b"zz\r\n{}\r\n0\r\n\r\n"), true));
    for q in BAD_QUERIES {
        cases.push((
            format!("query {q}"),
            request(method, format!("{real}?{q}").as_bytes(), &json_headers, b"{}"),
            false,
        ));
    }
    for (name, _) in ids.iter().filter(|(name, _)| path.contains(name)) {
        for bad in BAD_IDS.iter().map(|b| b.to_string()).chain(["9".repeat(5000)]) {
            let p = ids.iter().fold(path.to_owned(), |acc, (n, v)| acc.replace(n, if n == name { &bad } else { v }));
            cases.push((format!("{name} = {:.40}", bad), request(method, p.as_bytes(), &json_headers, b"{}"), false));
        }
    }
    let raw_path: Vec<u8> = real.as_bytes().iter().copied().chain(*b"/\xff").collect();
    cases.push(("invalid UTF-8 in the path".into(), request(method, &raw_path, &auth, b""), true));

    for (name, bytes, may_close) in cases {
        let outcome = send_raw(t.port, &bytes).await;
        *seen.entry(format!("{outcome:?}")).or_default() += 1;
        let ok = match outcome {
            Outcome::Closed => may_close,
            ref o => o.is_acceptable(),
        };
        if !ok {
            failures.push(format!("{method} {path}: {name}: {outcome:?}"));
        }
    }
    failures
}
