//! The GCRA script against the real Redis: budgets shared by several instances (connections),
//! all-or-nothing charging of several budgets, refill over time, `Retry-After`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use web_kit::ratelimit::{enforce, Check, LimitError, Quota};

async fn instance() -> web_kit::redis::Redis {
    let target = web_kit::redis::Target::new(&test_support::redis_url(), &[]).unwrap();
    web_kit::redis::connect(&target).await.unwrap()
}

fn subject() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test]
async fn two_instances_share_one_budget_and_never_exceed_it() {
    let (a, b) = (instance().await, instance().await);
    let quota = Quota::new(20, Duration::from_secs(60));
    let who = subject();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let conn = if i % 2 == 0 { a.clone() } else { b.clone() };
        let check = Check::new("test_shared", &who, quota);
        tasks.push(tokio::spawn(async move { enforce(&conn, &[check]).await }));
    }
    let mut allowed = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => allowed += 1,
            Err(LimitError::Limited(l)) => {
                assert_eq!(l.limit, "test_shared");
                assert!((1..=3).contains(&l.retry_after_secs), "retry after {}", l.retry_after_secs);
                limited += 1;
            }
            Err(LimitError::Redis(e)) => panic!("{e}"),
        }
    }
    assert_eq!((allowed, limited), (20, 40));
}

#[tokio::test]
async fn a_refused_request_charges_none_of_its_budgets() {
    let conn = instance().await;
    let wide = Quota::new(100, Duration::from_secs(60));
    let narrow = Quota::new(2, Duration::from_secs(60));
    let (w, n) = (subject(), subject());
    for _ in 0..2 {
        enforce(&conn, &[Check::new("test_wide", &w, wide), Check::new("test_narrow", &n, narrow)]).await.unwrap();
    }
    for _ in 0..5 {
        let err = enforce(&conn, &[Check::new("test_wide", &w, wide), Check::new("test_narrow", &n, narrow)]).await;
        assert!(matches!(err, Err(LimitError::Limited(ref l)) if l.limit == "test_narrow"), "{err:?}");
    }
    // The wide budget paid for the two accepted requests only: 98 are left.
    for _ in 0..98 {
        enforce(&conn, &[Check::new("test_wide", &w, wide)]).await.unwrap();
    }
    assert!(enforce(&conn, &[Check::new("test_wide", &w, wide)]).await.is_err());
}

#[tokio::test]
async fn the_budget_refills_at_its_rate_and_off_never_limits() {
    let conn = instance().await;
    let quota = Quota::new(2, Duration::from_secs(1));
    let who = subject();
    for _ in 0..2 {
        enforce(&conn, &[Check::new("test_refill", &who, quota)]).await.unwrap();
    }
    assert!(enforce(&conn, &[Check::new("test_refill", &who, quota)]).await.is_err());
    tokio::time::sleep(Duration::from_millis(550)).await;
    enforce(&conn, &[Check::new("test_refill", &who, quota)]).await.unwrap();
    assert!(enforce(&conn, &[Check::new("test_refill", &who, quota)]).await.is_err());

    let key = format!("{}test_refill:{who}", web_kit::ratelimit::KEY_PREFIX);
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn.clone()).await.unwrap();
    assert!(ttl > 0 && ttl <= 1100, "the key expires once the budget is full again: {ttl} ms");

    for _ in 0..1000 {
        enforce(&conn, &[Check::new("test_off", &who, Quota::OFF)]).await.unwrap();
    }
}
