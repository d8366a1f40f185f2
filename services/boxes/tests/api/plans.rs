//! The statements of a post transaction run with generic plans (`store::pipelined`): each is
//! planned once per connection, for any parameters, so each must reach its rows through an
//! index whatever the parameters are, never by reading a whole table.

use crate::helpers::{db, spawn_app};

/// Every table a post reads or writes, large enough that reading one whole costs the planner
/// more than an index: 4,000 identities, 2,000 boxes of four members with settings, 40,000
/// events (one in ten an edit, one in fifty a deletion) and 4,000 stored answers.
const SEED: &str = "
    INSERT INTO boxes.identities (id, display_name) SELECT gen_random_uuid(), 'u' || g FROM generate_series(1, 4000) g;
    CREATE TEMP TABLE people AS SELECT id, row_number() OVER (ORDER BY id) AS n FROM boxes.identities;
    INSERT INTO boxes.boxes (id, creator_id, title, public_key, created_at, last_event_at, last_visible_at)
        SELECT gen_random_uuid(), p.id, 't', 'k', now(), now(), now() FROM people p WHERE p.n <= 2000;
    CREATE TEMP TABLE numbered AS SELECT b.id, b.creator_id, p.n FROM boxes.boxes b JOIN people p ON p.id = b.creator_id;
    INSERT INTO boxes.members (box_id, identity_id, joined_seq)
        SELECT b.id, p.id, k FROM numbered b, generate_series(0, 3) k JOIN people p ON true
        WHERE p.n = (b.n + 1000 * k - 1) % 4000 + 1;
    INSERT INTO boxes.box_settings (identity_id, box_id, muted) SELECT identity_id, box_id, joined_seq = 2 FROM boxes.members;
    INSERT INTO boxes.events (id, box_id, seq, type, sender_id, content, referrer_id, created_at)
        SELECT gen_random_uuid(), b.id, s,
               CASE WHEN s % 50 = 0 THEN 'msg.delete' WHEN s % 10 = 0 THEN 'msg.edit' ELSE 'msg.text' END,
               b.creator_id, '{\"encrypted\": \"x\"}', CASE WHEN s % 10 = 0 THEN gen_random_uuid() END, now()
        FROM numbered b, generate_series(1, 20) s;
    UPDATE boxes.boxes SET last_seq = 20;
    INSERT INTO boxes.idempotency_keys (identity_id, key, request_hash, status, body, box_id, event_id)
        SELECT e.sender_id, e.id::text, '\\x00', 201, '{}', e.box_id, e.id FROM boxes.events e WHERE e.seq % 10 = 1;
    ANALYZE;
";

/// The highest `$n` of `sql`: how many parameters it takes.
fn parameters(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn the_statements_of_a_post_reach_their_rows_through_indexes_with_generic_plans() {
    let app = spawn_app().await;
    let db = db(&app).await;
    db.batch_execute(SEED).await.unwrap();
    let events: i64 = db.query_one("SELECT count(*) FROM boxes.events", &[]).await.unwrap().get(0);
    assert_eq!(events, 40_000);
    db.batch_execute("SET plan_cache_mode = force_generic_plan").await.unwrap();
    for (n, sql) in boxes::store::pipelined::POST_STATEMENTS.iter().enumerate() {
        db.batch_execute(&format!("PREPARE s{n} AS {sql}")).await.unwrap();
        let nulls = vec!["NULL"; parameters(sql)].join(", ");
        let plan: Vec<String> =
            db.query(&format!("EXPLAIN EXECUTE s{n}({nulls})"), &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        let plan = plan.join("\n");
        assert!(!plan.contains("Seq Scan"), "{sql}\nreads a whole table:\n{plan}");
    }
}

#[test]
fn parameters_counts_the_highest_placeholder() {
    assert_eq!(parameters("SELECT $1, $12::uuid[], $3"), 12);
    assert_eq!(parameters("SELECT 1"), 0);
}

#[tokio::test]
async fn a_post_transaction_plans_its_statements_once_per_connection() {
    let app = spawn_app().await;
    let db = db(&app).await;
    db.batch_execute(SEED).await.unwrap();
    let row = db.query_one("SELECT b.id, b.creator_id FROM boxes.boxes b ORDER BY b.id LIMIT 1", &[]).await.unwrap();
    let (box_id, sender): (uuid::Uuid, uuid::Uuid) = (row.get(0), row.get(1));
    let pool = web_kit::postgres::pool(web_kit::postgres::config(&app.database_url, 5_000).unwrap(), 1).unwrap();
    let conn = pool.get().await.unwrap();
    let posts = 8;
    for n in 0..posts {
        let message = boxes::store::pipelined::NewMessage {
            id: domain::EventId::new_v4(),
            box_id: box_id.into(),
            sender: sender.into(),
            kind: domain::event::EventType::MsgText,
            content: Some(serde_json::json!({"encrypted": format!("c{n}"), "public_key": "k"})),
            referrer_id: None,
        };
        let posted = boxes::store::pipelined::post_messages(&conn, &[message], None, || {}).await.unwrap();
        assert_eq!(posted[0].event.as_ref().map(|e| e.seq), Some(21 + n));
    }
    // Without a plan mode of their own, PostgreSQL planned these statements anew for every post.
    let plans: Vec<(String, i64, i64)> = conn
        .query("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    // Every statement of a post without deletions: five.
    let used: Vec<&(String, i64, i64)> =
        plans.iter().filter(|(s, ..)| boxes::store::pipelined::POST_STATEMENTS.contains(&s.as_str())).collect();
    assert_eq!(used.len(), 5, "{plans:?}");
    for (sql, generic, custom) in used {
        assert_eq!((*generic, *custom), (posts, 0), "{sql}");
    }
}
