//! The story a user lives, across the four separately started binaries: alice and bob log in
//! through the reference host app, publish keys, alice contacts bob, bob joins, messages, an edit
//! and a deletion flow both ways over the websockets, alice rotates the key share, bob leaves
//! (and, to be told of the deletion, joins again), alice deletes the box, bob logs out and his
//! socket is closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use boxes_client::body::{Contact, KeyShare, NewBox, NewEvent, PublicKeys};
use boxes_client::{Boxes, Login, Socket};
use domain::crypto_action::CryptoActionType;
use domain::event::EventType;
use domain::realtime::types;
use e2e::system::System;

fn key(seed: &str) -> String {
    use base64::Engine;
    let digest: Vec<u8> = (0..32u8)
        .map(|i| {
            i.wrapping_mul(31).wrapping_add(seed.len() as u8).wrapping_add(seed.as_bytes()[i as usize % seed.len()])
        })
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

async fn socket(sys: &System, user: &Login) -> Socket {
    let ws = Socket::connect(&sys.realtime.url(), user.identity(), &user.auth(), None).await.unwrap();
    assert_eq!(ws.ready.identity_id, user.identity());
    ws
}

#[tokio::test]
async fn alice_and_bob_live_the_whole_story() {
    let sys = System::start().await;
    let http = reqwest::Client::new();
    let api = sys.boxes_api(&http);

    let alice = sys.login(&http, "alice").await;
    let bob = sys.login(&http, "bob").await;
    assert_ne!(alice.identity(), bob.identity());
    for user in [&alice, &bob] {
        assert!(user.cookie("accesstoken").is_some() && user.cookie("tokentype").is_some());
    }
    let (as_alice, as_bob): (Boxes, Boxes) = (api.as_user(alice.auth()), api.as_user(bob.auth()));

    let (alice_key, bob_key) = (key("alice-identity"), key("bob-identity"));
    for (user, as_user, k) in [(&alice, &as_alice, &alice_key), (&bob, &as_bob, &bob_key)] {
        let keys = PublicKeys { non_identified_pubkey: Some(k.clone()), ..Default::default() };
        as_user.set_public_keys(user.identity(), &keys).await.unwrap();
    }

    let mut alice_ws = socket(&sys, &alice).await;
    let mut bob_ws = socket(&sys, &bob).await;

    // alice contacts bob with the seed's endpoint and body shape.
    let box_key = key("alice-bob-box");
    let contact = Contact {
        contacted_identity_id: bob.identity(),
        new_box: NewBox::new("Alice - Bob", &box_key),
        key_share: KeyShare {
            misakey_share: "lBHT1vfwFAIBig5Nj+sD+w==".into(),
            other_share_hash: key("other-share-1"),
            encrypted_invitation_key_share: Some("cGYMzgIO9rc03WoSLAyoiQdLu7he5VbMRImLhRPmwTQ=".into()),
        },
        extra: [(bob_key.clone(), "ZW5jcnlwdGVkIGludml0YXRpb24=".to_owned())].into(),
    };
    let bx = as_alice.contact(alice.identity(), &contact).await.unwrap();
    let box_id = bx.id;
    assert_eq!(bx.last_event.as_ref().map(|e| e.kind), Some(EventType::Create));
    assert_eq!(alice_ws.next_event(EventType::Create).await.unwrap().box_id, box_id);

    let invite = bob_ws.next_of(types::NOTIFICATION).await.unwrap();
    assert_eq!(invite.object["type"], "box.auto_invite");
    assert_eq!(invite.object["details"]["box_id"], box_id.to_string());
    let actions = as_bob.crypto_actions(bob.identity()).await.unwrap();
    assert_eq!(actions[0].kind, CryptoActionType::Invitation);
    assert_eq!(actions[0].encrypted, "ZW5jcnlwdGVkIGludml0YXRpb24=");

    as_bob.post_event(box_id, &NewEvent::MemberJoin).await.unwrap();
    assert_eq!(alice_ws.next_event(EventType::MemberJoin).await.unwrap().sender.id, bob.identity());

    // Messages both ways, an edit and a deletion.
    let hello = as_alice.post_event(box_id, &NewEvent::text("aGVsbG8tYm9i", &box_key)).await.unwrap();
    let got = bob_ws.event_with_id(hello.id).await.unwrap();
    assert_eq!(got.kind, EventType::MsgText);
    assert_eq!(got.content.unwrap()["encrypted"], "aGVsbG8tYm9i");

    let reply = as_bob.post_event(box_id, &NewEvent::text("aGktYWxpY2U", &box_key)).await.unwrap();
    assert_eq!(alice_ws.event_with_id(reply.id).await.unwrap().sender.id, bob.identity());

    let edit =
        as_alice.post_event(box_id, &NewEvent::edit(hello.id, "aGVsbG8tYm9iLWVkaXRlZA", &box_key)).await.unwrap();
    assert_eq!(bob_ws.event_with_id(edit.id).await.unwrap().referrer_id, Some(hello.id));

    let delete = as_bob.post_event(box_id, &NewEvent::MsgDelete { referrer_id: reply.id }).await.unwrap();
    assert_eq!(alice_ws.event_with_id(delete.id).await.unwrap().referrer_id, Some(reply.id));

    let list = as_bob.events(box_id, "").await.unwrap();
    let content_of = |id| list.iter().find(|e| e.id == id).and_then(|e| e.content.clone()).unwrap();
    assert_eq!(content_of(hello.id)["encrypted"], "aGVsbG8tYm9iLWVkaXRlZA");
    assert!(content_of(reply.id)["deleted"].is_object());

    // alice rotates the key share: bob is told and gets the new share as a crypto action.
    let rotate = NewEvent::StateKeyShare {
        extra: KeyShare {
            misakey_share: "bmV3LXNoYXJl".into(),
            other_share_hash: key("other-share-2"),
            encrypted_invitation_key_share: Some("bmV3LWludml0YXRpb24".into()),
        },
    };
    as_alice.post_event(box_id, &rotate).await.unwrap();
    bob_ws.next_event(EventType::StateKeyShare).await.unwrap();
    let actions = as_bob.crypto_actions(bob.identity()).await.unwrap();
    assert!(actions.iter().any(|a| a.kind == CryptoActionType::SetBoxKeyShare && a.encrypted == "bmV3LWludml0YXRpb24"));

    // bob leaves; his access rule stays, so he can come back.
    as_bob.post_event(box_id, &NewEvent::MemberLeave).await.unwrap();
    assert_eq!(alice_ws.next_event(EventType::MemberLeave).await.unwrap().sender.id, bob.identity());
    as_bob.post_event(box_id, &NewEvent::MemberJoin).await.unwrap();

    // alice deletes the box; bob is told.
    as_alice.delete_box(box_id).await.unwrap();
    let gone = bob_ws.next_of(types::BOX_DELETE).await.unwrap();
    let gone: domain::realtime::BoxDelete = serde_json::from_value(gone.object).unwrap();
    assert_eq!((gone.id, gone.sender_id), (box_id, alice.identity()));

    // bob logs out: his socket is closed with 4001 and his token stops working.
    sys.bridge_api(&http).logout(&bob.auth()).await.unwrap();
    assert_eq!(bob_ws.close_code(Duration::from_secs(5)).await.unwrap(), 4001);
    assert_eq!(as_bob.joined_boxes().await.unwrap_err().status(), Some(401));
    assert!(!bob.tokens.refresh_token.is_empty());

    // No service logged a token, a CSRF token or ciphertext.
    let csrf = |u: &Login| u.tokens.csrf_token.clone().unwrap();
    let access = alice.cookie("accesstoken").unwrap().to_owned();
    for svc in [&sys.boxes, &sys.realtime, &sys.bridge, &sys.hostapp] {
        let log = svc.log_text();
        for secret in [
            csrf(&alice),
            csrf(&bob),
            bob.tokens.refresh_token.clone(),
            "aGVsbG8tYm9i".into(),
            "ZW5jcnlwdGVkIGludml0YXRpb24=".into(),
        ] {
            assert!(!log.contains(secret.as_str()), "{} logged a secret", svc.name);
        }
        assert!(!log.contains(&access), "{} logged an access token", svc.name);
    }
}
