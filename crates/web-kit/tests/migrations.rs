//! Migrations against a real PostgreSQL: the history lands in the service's schema, and a history
//! kept where auth-bridge first kept it is adopted rather than run again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use refinery::{Migration, Runner};

fn runner() -> Runner {
    let v1 = Migration::unapplied("V1__first", "CREATE SCHEMA IF NOT EXISTS svc; CREATE TABLE svc.t (id int)").unwrap();
    let v2 = Migration::unapplied("V2__second", "ALTER TABLE svc.t ADD COLUMN name text").unwrap();
    Runner::new(&[v1, v2])
}

async fn versions(url: &str, table: &str) -> Vec<i32> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let rows = client.query(&format!("SELECT version FROM {table} ORDER BY version"), &[]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn the_history_lives_in_the_schema_and_a_legacy_one_is_adopted() {
    let url = test_support::fresh_database().await.unwrap();
    let config = web_kit::postgres::config(&url, 5000).unwrap();
    web_kit::postgres::migrate(&config, "svc", runner()).await.unwrap();
    web_kit::postgres::migrate(&config, "svc", runner()).await.unwrap();
    assert_eq!(versions(&url, "svc.refinery_schema_history").await, [1, 2]);

    // A database whose first migration was recorded in public.svc_refinery_schema_history.
    let url = test_support::fresh_database().await.unwrap();
    let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let mut old = Runner::new(&[Migration::unapplied(
        "V1__first",
        "CREATE SCHEMA IF NOT EXISTS svc; CREATE TABLE svc.t (id int)",
    )
    .unwrap()]);
    old.set_migration_table_name("svc_refinery_schema_history");
    old.run_async(&mut client).await.unwrap();
    let config = web_kit::postgres::config(&url, 5000).unwrap();
    web_kit::postgres::migrate(&config, "svc", runner()).await.unwrap();
    assert_eq!(versions(&url, "svc.refinery_schema_history").await, [1, 2]);
    let left = client.query_one("SELECT to_regclass('public.svc_refinery_schema_history')::text", &[]).await.unwrap();
    assert_eq!(left.get::<_, Option<String>>(0), None);
}
