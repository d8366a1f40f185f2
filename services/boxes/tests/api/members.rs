//! Members and access rules of a box (§7.9).

use boxes_client::body::NewEvent;
use serde_json::json;

use crate::boxes::{assert_event_shape, assert_view, box_id, get_json};
use crate::helpers::{assert_error, bid, spawn_app};

#[tokio::test]
async fn members_are_listed_admin_first_then_by_join() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let dave = app.user("Dave").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &carol, &id).await;
    app.add_member(&alice, &bob, &id).await;

    let admin_view = get_json(&app, &alice, &format!("/boxes/{id}/members")).await;
    let list = admin_view.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_view(&list[0], &alice, true);
    assert_view(&list[1], &carol, true);
    assert_view(&list[2], &bob, true);

    let member_view = get_json(&app, &bob, &format!("/boxes/{id}/members")).await;
    let list = member_view.as_array().unwrap();
    assert_view(&list[0], &alice, false);
    assert_view(&list[1], &carol, false);
    assert_view(&list[2], &bob, false);

    assert_error(app.get(&dave, &format!("/boxes/{id}/members")).await, 403, "reason", "not_member").await;
    let unknown = uuid::Uuid::new_v4();
    assert_error(app.get(&dave, &format!("/boxes/{unknown}/members")).await, 403, "reason", "not_member").await;
    assert_error(app.get(&dave, "/boxes/zzz/members").await, 400, "id", "malformed").await;
    let res = app.client.get(app.url(&format!("/boxes/{id}/members"))).send().await.unwrap();
    assert_eq!(res.status(), 401);

    // Leaving drops a member from the list.
    app.api(&carol).post_event(bid(&id), &NewEvent::MemberLeave).await.unwrap();
    let list = get_json(&app, &bob, &format!("/boxes/{id}/members")).await;
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![alice.id.to_string(), bob.id.to_string()]);
}

#[tokio::test]
async fn accesses_are_for_the_admin_only() {
    let app = spawn_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let id = box_id(&app.create_box(&alice, "Box").await);
    assert_eq!(get_json(&app, &alice, &format!("/boxes/{id}/accesses")).await, json!([]));
    app.add_member(&alice, &bob, &id).await;
    let res = app
        .post_event(
            &alice,
            &id,
            json!({"type":"access.add","content":{"restriction_type":"identity_id","value": carol.id.to_string()}}),
        )
        .await;
    assert_eq!(res.status(), 201);

    let list = get_json(&app, &alice, &format!("/boxes/{id}/accesses")).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for a in list {
        assert_event_shape(a);
        assert_eq!(a["type"], "access.add");
        assert_eq!(a["box_id"], id);
        assert_view(&a["sender"], &alice, true);
    }
    assert_eq!(
        list[0]["content"],
        json!({"restriction_type":"identity_id","value": bob.id.to_string(),"auto_invite": false})
    );
    assert_eq!(list[1]["content"]["value"], carol.id.to_string());

    assert_error(app.get(&bob, &format!("/boxes/{id}/accesses")).await, 403, "reason", "not_admin").await;
    assert_error(app.get(&carol, &format!("/boxes/{id}/accesses")).await, 403, "reason", "not_admin").await;
    let unknown = uuid::Uuid::new_v4();
    assert_error(app.get(&alice, &format!("/boxes/{unknown}/accesses")).await, 403, "reason", "not_admin").await;

    // A removed rule is no longer listed.
    let res = app.post_event(&alice, &id, json!({"type":"access.rm","referrer_id": list[1]["id"]})).await;
    assert_eq!(res.status(), 201);
    let after = get_json(&app, &alice, &format!("/boxes/{id}/accesses")).await;
    assert_eq!(after.as_array().unwrap().len(), 1);
    assert_eq!(after[0]["id"], list[0]["id"]);
}
