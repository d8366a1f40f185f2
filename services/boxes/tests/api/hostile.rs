//! Hostile input over every endpoint (issue 14): malformed JSON, wrong types, huge numbers,
//! control characters, invalid UTF-8, oversize bodies and headers, non-uuid ids, negative and
//! huge paging values, sent over raw sockets to the real service. No answer may be a 5xx, none
//! may take longer than `hostile::ANSWER_WITHIN`, and the service must still serve afterwards.

use serde_json::json;
use test_support::hostile::{bad_bodies, request, send_raw, Outcome, BAD_IDS, BAD_QUERIES};

use crate::helpers::{TestApp, User, INTERNAL_TOKEN};

/// Method, path (with `{me}` the caller, `{box}` a box of the caller, `{other}` any uuid) and
/// the body fields the endpoint reads.
const PUBLIC: &[(&str, &str, &[&str])] = &[
    ("POST", "/boxes", &["title", "public_key", "key_share"]),
    ("GET", "/boxes/joined", &[]),
    ("HEAD", "/boxes/joined", &[]),
    ("GET", "/boxes/{box}", &[]),
    ("GET", "/boxes/{box}/public", &[]),
    ("POST", "/boxes/{box}/events", &["type", "content", "referrer_id", "extra", "invitation_data"]),
    ("GET", "/boxes/{box}/events", &[]),
    ("HEAD", "/boxes/{box}/events", &[]),
    ("GET", "/boxes/{box}/members", &[]),
    ("GET", "/boxes/{box}/accesses", &[]),
    ("PUT", "/boxes/{box}/new-events-count/ack", &[]),
    ("POST", "/box-key-shares", &["box_id", "misakey_share", "other_share_hash", "encrypted_invitation_key_share"]),
    ("GET", "/box-key-shares/encrypted-invitation-key-share", &[]),
    ("GET", "/box-key-shares/{other}", &[]),
    ("GET", "/box-users/{me}/boxes/{box}/settings", &[]),
    ("PUT", "/box-users/{me}/boxes/{box}/settings", &["muted"]),
    ("POST", "/box-users/{me}/contact", &["contacted_identity_id", "box", "key_share", "extra", "invitation_data"]),
    ("GET", "/identities/{me}", &[]),
    ("GET", "/identities/{me}/profile", &[]),
    ("PUT", "/identities/{me}/public-keys", &["pubkey", "non_identified_pubkey"]),
    ("GET", "/identities/{me}/crypto/actions", &[]),
    ("GET", "/identities/{me}/crypto/actions/{other}", &[]),
    ("DELETE", "/identities/{me}/crypto/actions/{other}", &[]),
    ("GET", "/healthz", &[]),
    ("GET", "/readyz", &[]),
    ("PATCH", "/boxes", &[]),
    ("GET", "/no/such/route", &[]),
    // Last: it may delete the box the others use.
    ("DELETE", "/boxes/{box}", &[]),
];

const INTERNAL: &[(&str, &str, &[&str])] =
    &[("PUT", "/internal/identities/{other}", &["display_name", "identifier_value", "identifier_kind", "identifier_verified"])];

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port")
}

struct Target<'a> {
    port: u16,
    auth: Vec<(&'a str, String)>,
}

/// Every hostile variant of one endpoint; returns what went wrong.
async fn attack(
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
    let json_headers: Vec<(&str, &str)> =
        auth.iter().copied().chain([("Content-Type", "application/json")]).collect();
    let mut cases: Vec<(String, Vec<u8>, bool)> = Vec::new();

    let mut bodies = bad_bodies(if fields.is_empty() { &["x"] } else { fields });
    bodies.push(("a valid-looking body".into(), json!({"title": "t"}).to_string().into_bytes()));
    for (name, body) in &bodies {
        cases.push((format!("body with {name}"), request(method, real.as_bytes(), &json_headers, body), false));
    }
    cases.push(("no authentication".into(), request(method, real.as_bytes(), &[("Content-Type", "application/json")], b"{}"), false));
    cases.push(("text/plain body".into(), request(method, real.as_bytes(), &[auth[0], ("Content-Type", "text/plain")], b"{}"), false));
    cases.push(("oversize body".into(), request(method, real.as_bytes(), &json_headers, format!("{{\"title\":\"{}\"}}", "a".repeat(70 * 1024)).as_bytes()), false));
    let announced: Vec<(&str, &str)> = json_headers.iter().copied().chain([("Content-Length", "100000000")]).collect();
    cases.push(("a 100 MB body announced, never sent".into(), request(method, real.as_bytes(), &announced, b""), false));
    cases.push(("oversize header".into(), request(method, real.as_bytes(), &[auth[0], ("X-Big", &"b".repeat(100 * 1024))], b""), true));
    cases.push(("oversize Authorization".into(), request(method, real.as_bytes(), &[("Authorization", &format!("Bearer {}", "a".repeat(20 * 1024)))], b""), true));
    cases.push(("garbage bearer".into(), request(method, real.as_bytes(), &[("Authorization", "Bearer a.b.c")], b""), false));
    cases.push(("garbage cookies".into(), request(method, real.as_bytes(), &[("Cookie", "accesstoken=%FF%00; tokentype=\u{7f}"), ("X-CSRF-Token", "x")], b""), false));
    let mut bad_header = request(method, real.as_bytes(), &auth, b"");
    let at = bad_header.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
    bad_header.splice(at..at, b"\r\nX-Csrf-Token: \xff\xfe".iter().copied());
    cases.push(("invalid UTF-8 in a header".into(), bad_header, true));
    cases.push(("invalid UTF-8 in the query".into(), request(method, format!("{real}?limit=").as_bytes().iter().copied().chain(*b"\xff\xfe").collect::<Vec<u8>>().as_slice(), &auth, b""), true));
    let chunked: Vec<(&str, &str)> = json_headers.iter().copied().chain([("Transfer-Encoding", "chunked")]).collect();
    cases.push(("a bad chunk size".into(), request(method, real.as_bytes(), &chunked, b"zz\r\n{}\r\n0\r\n\r\n"), true));
    for q in BAD_QUERIES {
        cases.push((format!("query {q}"), request(method, format!("{real}?{q}").as_bytes(), &json_headers, b"{}"), false));
    }
    for (name, _) in ids.iter().filter(|(name, _)| path.contains(name)) {
        for bad in BAD_IDS.iter().map(|b| b.to_string()).chain([format!("{}", "9".repeat(5000))]) {
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

async fn still_serves(app: &TestApp, user: &User) {
    let res = app.client.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(res.status(), 200, "healthz after the attack");
    let res = app.get(user, "/boxes/joined").await;
    assert_eq!(res.status(), 200, "an ordinary request after the attack");
}

#[tokio::test]
async fn no_hostile_request_gets_a_5xx_or_hangs_or_crashes_boxes() {
    let app = TestApp::spawn().await;
    let alice = app.user("Alice").await;
    let created = app.create_box(&alice, "Target").await;
    let ids = vec![
        ("{me}", alice.id.to_string()),
        ("{box}", created["id"].as_str().expect("box id").to_owned()),
        ("{other}", uuid::Uuid::new_v4().to_string()),
    ];
    let public = Target { port: port_of(&app.address), auth: vec![("Authorization", alice.session.bearer())] };
    let mut failures = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for (method, path, fields) in PUBLIC {
        failures.extend(attack(&public, method, path, fields, &ids, &mut seen).await);
    }
    let internal = Target { port: port_of(&app.internal_address), auth: vec![("X-Internal-Token", INTERNAL_TOKEN.to_owned())] };
    for (method, path, fields) in INTERNAL {
        failures.extend(attack(&internal, method, path, fields, &ids, &mut seen).await);
    }
    eprintln!("outcomes: {seen:?}");
    assert!(failures.is_empty(), "{} hostile requests failed:\n{}", failures.len(), failures.join("\n"));
    assert!(seen.len() > 3 && seen.keys().any(|k| k == "Status(400)"), "{seen:?}");
    still_serves(&app, &alice).await;
    let res = app.client.get(app.internal_url("/healthz")).send().await.expect("internal healthz");
    assert_eq!(res.status(), 200);
}
