//! A row that cannot be read is a server fault: 500 with the §4 body, never a default value.

use serde_json::{json, Value};

use crate::helpers::{db, spawn_app};

async fn assert_internal(res: reqwest::Response) {
    assert_eq!(res.status().as_u16(), 500, "status");
    let body: Value = res.json().await.expect("error json");
    assert_eq!(body["code"], "internal", "{body}");
    assert_eq!(body["details"], json!({}), "{body}");
    assert!(body["origin"].is_string() && body["desc"].is_string(), "{body}");
}

#[tokio::test]
async fn an_event_of_an_unknown_type_answers_500() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bx = app.create_box(&alice, "Corrupt").await;
    let box_id = bx["id"].as_str().expect("box id");
    let said = app.say(&alice, box_id, "aGVsbG8").await;
    let event_id = uuid::Uuid::parse_str(said["id"].as_str().expect("event id")).expect("uuid");
    db(&app)
        .await
        .execute("UPDATE boxes.events SET type = 'msg.bogus' WHERE id = $1", &[&event_id])
        .await
        .expect("corrupt the event");

    // Listings select the visible types and never meet it; an edit reads the event by its id.
    let edit = json!({"type": "msg.edit", "referrer_id": event_id, "content": {"new_encrypted": "aGk", "new_public_key": "bmV3S2V5"}});
    assert_internal(app.post_event(&alice, box_id, edit).await).await;
}

#[tokio::test]
async fn a_box_with_an_unknown_access_mode_answers_500() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bx = app.create_box(&alice, "Corrupt").await;
    let box_id = uuid::Uuid::parse_str(bx["id"].as_str().expect("box id")).expect("uuid");
    let c = db(&app).await;
    // The column's CHECK constraint keeps the service's own writes valid; a corrupt row gets past it.
    c.batch_execute("ALTER TABLE boxes.boxes DROP CONSTRAINT boxes_access_mode_check").await.expect("drop the check");
    c.execute("UPDATE boxes.boxes SET access_mode = 'sideways' WHERE id = $1", &[&box_id])
        .await
        .expect("corrupt the box");

    assert_internal(app.get(&alice, &format!("/boxes/{box_id}")).await).await;
}
