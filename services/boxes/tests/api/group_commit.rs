//! Messages posted at the same time share transactions (`boxes::posts`): every post still gets
//! its own answer, a box's events keep one order (sequence numbers, times, realtime envelopes),
//! and a transaction PostgreSQL refuses is run again one post at a time.
//!
//! The app runs with one post transaction in flight (`POST_BATCH_CONCURRENCY=1`), so posts sent
//! together wait for it and leave in groups.

use std::collections::HashMap;
use std::time::Duration;

use domain::realtime::user_channel;
use futures_util::future::join_all;
use serde_json::{json, Value};
use test_support::Subscriber;

use crate::helpers::{db, spawn_app_with, TestApp, User};

const KEY: &str = "SXvalkvhuhcj2UiaS4d0Q3OeuHOhMVeQT7ZGfCH2YCw";

async fn grouped_app() -> TestApp {
    spawn_app_with(|s| s.batch.post_batch_concurrency = 1).await
}

fn text(ciphertext: &str) -> Value {
    json!({"type": "msg.text", "content": {"encrypted": ciphertext, "public_key": KEY}})
}

/// The sum and count of the `post_batch_size` histogram (`/metrics`).
async fn batches(app: &TestApp) -> (f64, f64) {
    let text = app.client.get(app.internal_url("/metrics")).send().await.unwrap().text().await.unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .trim()
            .parse()
            .unwrap()
    };
    (value("post_batch_size_sum "), value("post_batch_size_count "))
}

async fn post_all(app: &TestApp, posts: &[(&User, String, Value)]) -> Vec<(u16, Value)> {
    join_all(posts.iter().map(|(user, box_id, body)| async move {
        let res = app.post_event(user, box_id, body.clone()).await;
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap_or(Value::Null))
    }))
    .await
}

#[tokio::test]
async fn concurrent_posts_share_transactions_and_keep_one_order_per_box() {
    let app = grouped_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let id = crate::boxes::box_id(&app.create_box(&alice, "Busy").await);
    app.add_member(&alice, &bob, &id).await;
    app.add_member(&alice, &carol, &id).await;
    let other = crate::boxes::box_id(&app.create_box(&bob, "Other").await);
    let mut sub = Subscriber::new(&[user_channel(carol.id)]).await.unwrap();
    let (sum0, count0) = batches(&app).await;

    let mut posts = Vec::new();
    for i in 0..20 {
        for (user, box_id) in [(&alice, &id), (&bob, &id), (&carol, &id), (&bob, &other)] {
            posts.push((user, box_id.clone(), text(&format!("bTE{i:03}"))));
        }
    }
    let answers = post_all(&app, &posts).await;
    for (status, body) in &answers {
        assert_eq!(*status, 201, "{body}");
    }
    // Rows inserted by one transaction share its id (`xmin`).
    let transactions: i64 = db(&app)
        .await
        .query_one("SELECT count(DISTINCT xmin::text) FROM boxes.events WHERE type = 'msg.text'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(transactions < 80, "posts sent together shared transactions: {transactions} for 80");
    // The histogram is the process's, shared with the tests running beside this one.
    let (sum1, count1) = batches(&app).await;
    assert!(sum1 - sum0 >= 80.0 && count1 - count0 >= transactions as f64, "{sum0} {count0} -> {sum1} {count1}");

    // Each answer is its own post, with its box's next sequence numbers, in time order.
    let rows = db(&app)
        .await
        .query(
            "SELECT id::text, box_id::text, seq, created_at FROM boxes.events WHERE type = 'msg.text' ORDER BY box_id, seq",
            &[],
        )
        .await
        .unwrap();
    let mut by_box: HashMap<String, Vec<(i64, chrono::DateTime<chrono::Utc>)>> = HashMap::new();
    let mut seq_of: HashMap<String, i64> = HashMap::new();
    for r in &rows {
        by_box.entry(r.get(1)).or_default().push((r.get(2), r.get(3)));
        seq_of.insert(r.get(0), r.get(2));
    }
    for ((_, box_id, body), (_, answer)) in posts.iter().zip(&answers) {
        assert_eq!(answer["box_id"], *box_id);
        assert_eq!(answer["content"]["encrypted"], body["content"]["encrypted"]);
        assert_eq!(answer["seq"], seq_of[answer["id"].as_str().unwrap()], "{answer}");
    }
    for (box_id, events) in &by_box {
        let first = events[0].0;
        for (k, w) in events.windows(2).enumerate() {
            assert_eq!(w[1].0, first + k as i64 + 1, "box {box_id}: consecutive sequence numbers");
            assert!(w[1].1 >= w[0].1, "box {box_id}: times never go backwards");
        }
    }
    assert_eq!(by_box[&id].len(), 60);
    assert_eq!(by_box[&other].len(), 20);

    // Carol's envelopes come in the box's order, one per message.
    let mut seqs = Vec::new();
    while seqs.len() < 60 {
        let Some((_, envelope)) = sub.next_json(Duration::from_secs(5)).await else { break };
        if envelope["type"] == "event.new" && envelope["object"]["type"] == "msg.text" {
            seqs.push(envelope["object"]["seq"].as_i64().unwrap());
        }
    }
    assert_eq!(seqs.len(), 60, "{seqs:?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "envelopes in sequence order: {seqs:?}");
}

#[tokio::test]
async fn each_post_of_a_group_gets_its_own_answer() {
    let app = grouped_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let eve = app.user("Eve").await;
    let id = crate::boxes::box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &bob, &id).await;
    // A session whose identity boxes does not know (§3.3 step 3).
    let ghost_id = domain::IdentityId::new_v4();
    let ghost = User { id: ghost_id, session: app.keys.session(ghost_id), ..bob.clone() };
    let nowhere = domain::BoxId::new_v4().to_string();

    let mut posts = Vec::new();
    for i in 0..10 {
        posts.push((&alice, id.clone(), text(&format!("YTE{i:03}"))));
        posts.push((&eve, id.clone(), text("ZXZl")));
        posts.push((&bob, nowhere.clone(), text("Ym9i")));
        posts.push((&ghost, id.clone(), text("Z2hvc3Q")));
        posts.push((&bob, id.clone(), text(&format!("YjE{i:03}"))));
    }
    let answers = post_all(&app, &posts).await;
    for ((user, box_id, _), (status, body)) in posts.iter().zip(&answers) {
        let expected = match () {
            _ if user.id == ghost.id => 401,
            _ if user.id == eve.id || *box_id == nowhere => 403,
            _ => 201,
        };
        assert_eq!(*status, expected, "{} into {box_id}: {body}", user.name);
        if expected == 403 {
            assert_eq!(body["details"]["reason"], "not_member", "{body}");
        }
    }
    let count: i64 = db(&app)
        .await
        .query_one("SELECT count(*) FROM boxes.events WHERE type = 'msg.text'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 20, "only the members' messages were stored");
}

#[tokio::test]
async fn a_refused_group_is_posted_again_one_message_at_a_time() {
    let app = grouped_app().await;
    let alice = app.user("Alice").await;
    let id = crate::boxes::box_id(&app.create_box(&alice, "Box").await);
    // PostgreSQL refuses any transaction that carries this ciphertext.
    db(&app)
        .await
        .batch_execute(
            "CREATE FUNCTION boxes.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.content->>'encrypted' = 'cG9pc29u' THEN RAISE EXCEPTION 'poisoned'; END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON boxes.events
                 FOR EACH ROW EXECUTE FUNCTION boxes.refuse_poison();",
        )
        .await
        .unwrap();

    let mut posts = Vec::new();
    for i in 0..30 {
        let ciphertext = if i % 3 == 0 { "cG9pc29u".to_owned() } else { format!("b2s{i:03}") };
        posts.push((&alice, id.clone(), text(&ciphertext)));
    }
    let answers = post_all(&app, &posts).await;
    let mut stored = 0;
    for ((_, _, body), (status, answer)) in posts.iter().zip(&answers) {
        if body["content"]["encrypted"] == "cG9pc29u" {
            assert_eq!(*status, 500, "{answer}");
            assert_eq!(answer["code"], "internal", "{answer}");
        } else {
            assert_eq!(*status, 201, "a good message is not failed by its neighbour: {answer}");
            stored += 1;
        }
    }
    let rows = db(&app)
        .await
        .query("SELECT seq FROM boxes.events WHERE box_id = $1::text::uuid ORDER BY seq", &[&id])
        .await
        .unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(seqs.len(), 1 + stored, "the creation and the good messages");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "no gap left by a refused group: {seqs:?}");
}

#[tokio::test]
async fn edits_and_deletions_in_a_group_follow_the_rules() {
    let app = grouped_app().await;
    let alice = app.user("Alice").await;
    let bob = app.user("Bob").await;
    let id = crate::boxes::box_id(&app.create_box(&alice, "Box").await);
    app.add_member(&alice, &bob, &id).await;
    let mut mine = Vec::new();
    for i in 0..8 {
        mine.push(app.say(&bob, &id, &format!("Ym9i{i:02}")).await["id"].as_str().unwrap().to_owned());
    }
    let gone = app.say(&bob, &id, "Z29uZQ").await["id"].as_str().unwrap().to_owned();
    let res = app.post_event(&bob, &id, json!({"type": "msg.delete", "referrer_id": gone})).await;
    assert_eq!(res.status(), 201);
    let file = app
        .post_event(
            &bob,
            &id,
            json!({"type":"msg.file","content":{"encrypted":"ZmlsZQ","public_key":KEY,"encrypted_file_id": uuid::Uuid::new_v4().to_string()}}),
        )
        .await;
    assert_eq!(file.status(), 201);
    let file = file.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let edit = |m: &str, text: &str| json!({"type": "msg.edit", "referrer_id": m, "content": {"new_encrypted": text, "new_public_key": KEY}});
    let delete = |m: &str| json!({"type": "msg.delete", "referrer_id": m});
    assert_eq!(app.post_event(&bob, &id, edit(&mine[7], "ZWFybHk")).await.status(), 201);

    // (who, body, status, reason or field of the refusal)
    let cases: Vec<(&User, Value, u16, &str)> = vec![
        (&bob, edit(&mine[0], "ZWRpdDA"), 201, ""),
        (&bob, edit(&mine[1], "ZWRpdDE"), 201, ""),
        (&bob, delete(&mine[2]), 201, ""),
        (&alice, delete(&mine[3]), 201, ""), // the admin deletes anyone's message
        (&alice, edit(&mine[4], "YWxpY2U"), 403, "not_author"),
        (&bob, edit(&gone, "bGF0ZQ"), 410, "referrer_id"),
        (&bob, delete(&gone), 410, "referrer_id"),
        (&bob, edit(&file, "ZmlsZQ"), 403, "not_editable"),
        (&bob, delete(&file), 201, ""), // a file's deletion runs alone, its blob with it
        (&bob, edit(&uuid::Uuid::new_v4().to_string(), "bm9uZQ"), 404, "referrer_id"),
        // A second change of one message waits for the next group.
        (&bob, edit(&mine[5], "Zmlyc3Q"), 201, ""),
        (&bob, edit(&mine[5], "c2Vjb25k"), 201, ""),
        (&bob, delete(&mine[7]), 201, ""),
        (&bob, delete(&mine[6]), 201, ""),
        (&bob, delete(&mine[6]), 410, "referrer_id"),
    ];
    let posts: Vec<(&User, String, Value)> =
        cases.iter().map(|(u, body, _, _)| (*u, id.clone(), body.clone())).collect();
    let answers = post_all(&app, &posts).await;
    for ((who, body, status, why), (got, answer)) in cases.iter().zip(&answers) {
        // Two deletions of one message: either may come first, the other finds it gone.
        let (status, why) = match *body == delete(&mine[6]) {
            true if *got == 201 => (201, ""),
            true => (410, "referrer_id"),
            false => (*status, *why),
        };
        assert_eq!(*got, status, "{} {body}: {answer}", who.name);
        match status {
            201 => {
                assert_eq!(answer["type"], body["type"]);
                assert_eq!(answer["referrer_id"], body["referrer_id"]);
            }
            403 => assert_eq!(answer["details"]["reason"], why, "{answer}"),
            _ => assert!(answer["details"][why].is_string(), "{answer}"),
        }
    }
    let deletions_of_6 =
        answers.iter().zip(&cases).filter(|((s, _), (_, b, _, _))| *s == 201 && *b == delete(&mine[6])).count();
    assert_eq!(deletions_of_6, 1, "one deletion of a message goes in");

    // What the box holds: edited, deleted and wiped as the rules say.
    let client = db(&app).await;
    let content = |m: &str| {
        let client = &client;
        let m = m.to_owned();
        async move {
            client
                .query_one("SELECT content FROM boxes.events WHERE id = $1::text::uuid", &[&m])
                .await
                .unwrap()
                .get::<_, Option<Value>>(0)
        }
    };
    for m in [&mine[2], &mine[3], &mine[6], &mine[7], &file] {
        assert_eq!(content(m).await, None, "a deleted message's ciphertext is wiped");
    }
    assert!(
        content(&mine[0]).await.is_some() && content(&mine[4]).await.is_some() && content(&mine[5]).await.is_some()
    );
    let wiped_edits: i64 = client
        .query_one(
            "SELECT count(*) FROM boxes.events WHERE type = 'msg.edit' AND referrer_id = $1::text::uuid AND content IS NULL",
            &[&mine[7]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(wiped_edits, 1, "the edits of a deleted message are wiped with it");
    let page = app.get(&alice, &format!("/boxes/{id}/events?limit=50")).await.json::<Value>().await.unwrap();
    let shown = |m: &str| page.as_array().unwrap().iter().find(|e| e["id"] == m).cloned().unwrap();
    assert_eq!(shown(&mine[0])["content"]["encrypted"], "ZWRpdDA", "the page folds the edit");
    let both = ["Zmlyc3Q", "c2Vjb25k"];
    assert!(both.contains(&shown(&mine[5])["content"]["encrypted"].as_str().unwrap()), "{}", shown(&mine[5]));
    assert!(shown(&mine[2])["content"]["deleted"].is_object(), "{}", shown(&mine[2]));
}
