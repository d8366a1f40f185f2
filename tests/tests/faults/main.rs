//! The fault suite: the release binaries against a PostgreSQL cluster and a Redis of its own, on
//! private ports (18xxx), under paced load with sockets open, while Redis, PostgreSQL, boxes and
//! realtime are killed, restarted, stopped or frozen and clients misbehave (slow readers,
//! oversized and split frames, stalled bodies). Each scenario asserts that every 201 is stored
//! exactly once and in order, that nothing is accepted while revocation state is unknown, that a
//! logged-out token stays refused, that each service answers within its budget during the fault
//! and recovers within 2 s, and that sockets get a documented close code or keep receiving.
//!
//! `cargo test -p e2e --test faults` runs the bounded form (what `scripts/test` runs); `--full`
//! or `FAULTS_FULL=1` the long one (`scripts/faults`). Free arguments select scenarios by name.
//! The suite needs `E2E_BIN_DIR` (release binaries); without it, it says so and passes.
//!
//! A check tagged with a fix listed in [`PENDING`] (or in `FAULTS_PENDING`, comma-separated,
//! `none` for none) is reported but does not fail the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod checks;
mod client;
mod infra;
mod recovery;
mod scenarios;

use std::time::{Duration, Instant};

use checks::Check;
use scenarios::{Length, Outcome, PgFault};

/// Fixes not merged yet: their checks are reported as "pending" instead of failing the run.
/// Empty now that every defect of the faults issue is fixed; `FAULTS_PENDING=a,b` sets it.
pub const PENDING: &[&str] = &[];

const SCENARIOS: &[&str] = &[
    "redis-restart-aof",
    "redis-restart-empty",
    "pg-restart",
    "pg-stop",
    "pg-freeze",
    "boxes-sigkill-loop",
    "realtime-restart",
    "realtime-recovery",
    "slow-consumer",
    "oversized-frames",
    "split-frames",
    "stalled-bodies",
];

/// Scenarios left out of the bounded run (`scripts/test`) because they still fail; `scripts/faults`
/// and explicit names run them.
const KNOWN_FAILING: &[&str] = &[];

fn pending() -> Vec<String> {
    match std::env::var("FAULTS_PENDING") {
        Ok(v) if v.trim() == "none" => Vec::new(),
        Ok(v) => v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
        Err(_) => PENDING.iter().map(|s| (*s).to_owned()).collect(),
    }
}

async fn run(name: &str, pg: &mut infra::Postgres, len: Length) -> anyhow::Result<Outcome> {
    match name {
        "redis-restart-aof" => scenarios::redis_restart(pg, len, true).await,
        "redis-restart-empty" => scenarios::redis_restart(pg, len, false).await,
        "pg-restart" => scenarios::postgres(pg, len, PgFault::Restart).await,
        "pg-stop" => scenarios::postgres(pg, len, PgFault::Stop).await,
        "pg-freeze" => scenarios::postgres(pg, len, PgFault::Freeze).await,
        "boxes-sigkill-loop" => scenarios::boxes_kill_loop(pg, len).await,
        "realtime-restart" => scenarios::realtime_restart(pg, len).await,
        "realtime-recovery" => recovery::realtime_recovery(pg, len).await,
        "slow-consumer" => scenarios::slow_consumer(pg, len).await,
        "oversized-frames" => scenarios::oversized_frames(pg, len).await,
        "split-frames" => scenarios::split_frames(pg, len).await,
        "stalled-bodies" => scenarios::stalled_bodies(pg, len).await,
        other => anyhow::bail!("no scenario {other}"),
    }
}

fn mb(b: u64) -> String {
    format!("{}", b >> 20)
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("never".to_owned(), |d| format!("{}", d.as_millis()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for s in SCENARIOS {
            println!("{s}: test");
        }
        return;
    }
    let full = args.iter().any(|a| a == "--full") || std::env::var("FAULTS_FULL").is_ok_and(|v| v == "1");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&str> = SCENARIOS
        .iter()
        .copied()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| s.contains(f.as_str())))
        .filter(|s| full || !filters.is_empty() || !KNOWN_FAILING.contains(s))
        .collect();
    if selected.is_empty() {
        return;
    }
    if std::env::var("E2E_BIN_DIR").is_err() {
        println!("fault suite skipped: set E2E_BIN_DIR to the release binaries (scripts/test and scripts/faults do)");
        return;
    }
    let busy = infra::busy_ports();
    if !busy.is_empty() {
        eprintln!("fault suite: ports {busy:?} are in use (another run?)");
        std::process::exit(1);
    }
    let pending = pending();
    let len = Length { full };
    let started = Instant::now();
    println!("fault suite ({}), pending fixes: {pending:?}", if full { "full length" } else { "bounded" });
    let mut pg = match tokio::task::block_in_place(infra::Postgres::init) {
        Ok(pg) => pg,
        Err(e) => {
            eprintln!("fault suite: cannot start PostgreSQL: {e:#}");
            std::process::exit(1);
        }
    };

    let mut rows = Vec::new();
    let mut failed = Vec::new();
    let mut known = Vec::new();
    let mut fixed = Vec::new();
    for name in selected {
        let t = Instant::now();
        println!("\n== {name}");
        let outcome = run(name, &mut pg, len).await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => Outcome {
                checks: vec![Check::new("scenario-runs", None, false, format!("{e:#}"))],
                statuses: String::new(),
                posts: (0, 0),
                max_latency: Duration::ZERO,
                recoveries: Vec::new(),
                rss: Vec::new(),
                note: "did not run".to_owned(),
            },
        };
        let mut result = "pass";
        for c in &outcome.checks {
            let tag = c.defect.map(|d| format!(" [{d}]")).unwrap_or_default();
            let is_pending = c.defect.is_some_and(|d| pending.iter().any(|p| p == d));
            let verdict = match (c.ok, is_pending) {
                (true, false) => "ok     ",
                (true, true) => {
                    fixed.push(format!("{name}/{}{tag}", c.name));
                    "ok*    "
                }
                (false, true) => {
                    known.push(format!("{name}/{}{tag}", c.name));
                    if result == "pass" {
                        result = "pending";
                    }
                    "PENDING"
                }
                (false, false) => {
                    failed.push(format!("{name}/{}{tag}: {}", c.name, c.detail));
                    result = "FAIL";
                    "FAIL   "
                }
            };
            println!("  {verdict} {}{tag}: {}", c.name, c.detail);
        }
        println!("  ({:.0} s)", t.elapsed().as_secs_f64());
        rows.push((name, outcome, result));
    }
    drop(pg);

    println!("\n| Scenario | Fault | Posts 201 / sent | Answers by status | Max latency in fault (ms) | Recovery boxes / realtime / auth-bridge (ms) | Max RSS boxes / realtime / auth-bridge (MB) | Result |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, o, result) in &rows {
        let rec = |svc: &str| ms(o.recoveries.iter().find(|(s, _)| *s == svc).and_then(|(_, d)| *d));
        let rss = |svc: &str| o.rss.iter().find(|(s, _)| *s == svc).map_or("-".to_owned(), |(_, b)| mb(*b));
        println!(
            "| {name} | {} | {} / {} | {} | {} | {} / {} / {} | {} / {} / {} | {result} |",
            o.note,
            o.posts.0,
            o.posts.1,
            o.statuses,
            o.max_latency.as_millis(),
            rec(infra::BOXES),
            rec(infra::REALTIME),
            rec(infra::BRIDGE),
            rss(infra::BOXES),
            rss(infra::REALTIME),
            rss(infra::BRIDGE),
        );
    }
    println!("\n{} scenarios in {:.0} s", rows.len(), started.elapsed().as_secs_f64());
    if !known.is_empty() {
        println!("\npending (fail until their fix is merged):");
        for k in &known {
            println!("  {k}");
        }
    }
    if !fixed.is_empty() {
        println!("\npassing although tagged pending (remove the tag from PENDING once all of a fix's checks pass):");
        for f in &fixed {
            println!("  {f}");
        }
    }
    if !failed.is_empty() {
        println!("\nFAILED:");
        for f in &failed {
            println!("  {f}");
        }
        std::process::exit(1);
    }
}
