//! Hostile input over every endpoint (issue 14): malformed JSON, wrong types, huge numbers,
//! control characters, invalid UTF-8, oversize bodies and headers, non-uuid ids, negative and
//! huge paging values, sent over raw sockets to the real service. No answer may be a 5xx, none
//! may take longer than `hostile::ANSWER_WITHIN`, and the service must still serve afterwards.

use test_support::hostile::{attack, Target};

use crate::helpers::{spawn_app, TestApp, User, INTERNAL_TOKEN};

/// Method, path (with `{me}` the caller, `{box}` a box of the caller, `{other}` any uuid) and
/// the body fields the endpoint reads.
const PUBLIC: &[(&str, &str, &[&str])] = &[
    ("POST", "/boxes", &["title", "public_key", "key_share"]),
    ("GET", "/boxes/joined", &[]),
    ("HEAD", "/boxes/joined", &[]),
    ("GET", "/boxes/{box}", &[]),
    ("GET", "/boxes/{box}/public", &[]),
    ("POST", "/boxes/{box}/events", &["type", "content", "referrer_id", "extra", "invitation_data"]),
    ("POST", "/boxes/{box}/batch-events", &["batch_type", "events"]),
    ("GET", "/boxes/{box}/events", &[]),
    ("HEAD", "/boxes/{box}/events", &[]),
    ("GET", "/boxes/{box}/members", &[]),
    ("GET", "/boxes/{box}/accesses", &[]),
    ("PUT", "/boxes/{box}/new-events-count/ack", &[]),
    ("POST", "/boxes/{box}/encrypted-files", &["msg_encrypted_content", "msg_public_key", "encrypted_file"]),
    ("GET", "/boxes/{box}/used-space", &[]),
    ("GET", "/encrypted-files/{other}", &[]),
    ("POST", "/box-key-shares", &["box_id", "misakey_share", "other_share_hash", "encrypted_invitation_key_share"]),
    ("GET", "/box-key-shares/encrypted-invitation-key-share", &[]),
    ("GET", "/box-key-shares/{other}", &[]),
    ("GET", "/box-users/{me}/boxes/{box}/settings", &[]),
    ("PUT", "/box-users/{me}/boxes/{box}/settings", &["muted"]),
    ("POST", "/box-users/{me}/contact", &["contacted_identity_id", "box", "key_share", "extra", "invitation_data"]),
    ("GET", "/identities/pubkey", &[]),
    ("GET", "/identities/{me}", &[]),
    ("GET", "/identities/{me}/profile", &[]),
    ("PUT", "/identities/{me}/public-keys", &["pubkey", "non_identified_pubkey"]),
    ("GET", "/identities/{me}/crypto/actions", &[]),
    ("GET", "/identities/{me}/crypto/actions/{other}", &[]),
    ("DELETE", "/identities/{me}/crypto/actions/{other}", &[]),
    ("GET", "/identities/{me}/notifications", &[]),
    ("HEAD", "/identities/{me}/notifications", &[]),
    ("PUT", "/identities/{me}/notifications/acknowledgement", &["until_id"]),
    ("POST", "/identities/{me}/saved-files", &["encrypted_file_id", "encrypted_metadata", "key_fingerprint"]),
    ("GET", "/identities/{me}/saved-files", &[]),
    ("DELETE", "/identities/{me}/saved-files/{other}", &[]),
    ("GET", "/identities/{me}/storage-quota", &[]),
    ("GET", "/healthz", &[]),
    ("GET", "/readyz", &[]),
    ("PATCH", "/boxes", &[]),
    ("GET", "/no/such/route", &[]),
    // Last: it may delete the box the others use.
    ("DELETE", "/boxes/{box}", &[]),
];

const INTERNAL: &[(&str, &str, &[&str])] = &[(
    "PUT",
    "/internal/identities/{other}",
    &["display_name", "identifier_value", "identifier_kind", "identifier_verified"],
)];

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port")
}

async fn still_serves(app: &TestApp, user: &User) {
    let res = app.client.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(res.status(), 200, "healthz after the attack");
    let res = app.get(user, "/boxes/joined").await;
    assert_eq!(res.status(), 200, "an ordinary request after the attack");
}

#[tokio::test]
async fn no_hostile_request_gets_a_5xx_or_hangs_or_crashes_boxes() {
    let app = spawn_app().await;
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
    let internal =
        Target { port: port_of(&app.internal_address), auth: vec![("X-Internal-Token", INTERNAL_TOKEN.to_owned())] };
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
