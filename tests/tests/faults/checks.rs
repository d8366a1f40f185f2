//! What every scenario asserts, computed from the recorded timeline and the database afterwards,
//! and the figures each scenario reports.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::client::{Answer, Post, WsEnd, WsSession};
use crate::infra::{BOXES, BRIDGE, REALTIME};

/// After a fault ends, every service answers normally again within this.
pub const RECOVERY: Duration = Duration::from_secs(2);

/// The fixes each tag names, from the faults issue; a check tagged with one fails until it is merged.
pub mod defect {
    /// Every Redis call has a bounded wait; reconnects do not hold requests (item 1).
    pub const REDIS_WAITS: &str = "redis-waits";
    /// Revocation state survives a Redis that restarts empty (item 2).
    pub const REVOCATION_RESEED: &str = "revocation-reseed";
    /// A frame is refused from its header, before its payload is read (item 3).
    pub const FRAME_LIMIT: &str = "frame-limit";
    /// Continuation frames are reassembled; RSV1 gets a 1002 close (item 4).
    pub const CONTINUATION: &str = "continuation";
    /// Request bodies that never arrive are timed out (item 5).
    pub const BODY_TIMEOUT: &str = "body-timeout";
    /// Pool waits and queries have a client-side deadline (item 5).
    pub const PG_DEADLINE: &str = "pg-deadline";
    /// No 503 "broken pipe" after a Redis restart; 57P01 answers 503, not 500 (item 6).
    pub const RESTART_ERRORS: &str = "restart-errors";
    /// realtime's Redis calls and its subscriber's reconnect are bounded too: handshakes answer
    /// within 2 s while Redis is down and sockets open again within 2 s of its return (item 1,
    /// found by this suite in realtime, whose reconnect back-off grows to 5 s).
    pub const REALTIME_REDIS_WAITS: &str = "realtime-redis-waits";
    /// realtime exits as soon as its sockets are closed after SIGTERM (item 7).
    pub const REALTIME_SHUTDOWN: &str = "realtime-shutdown";
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    /// The fix this check waits for, if it fails without one.
    pub defect: Option<&'static str>,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub fn new(name: impl Into<String>, defect: Option<&'static str>, ok: bool, detail: impl Into<String>) -> Check {
        Check { name: name.into(), defect, ok, detail: detail.into() }
    }
}

/// One fault: from when it was injected to when the faulty part was back (restarted, thawed).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
    /// Redis is down from the window's start until this instant (when it was started again,
    /// before which it cannot answer): nothing authenticated may be accepted meanwhile.
    pub redis_down: Option<Instant>,
}

/// One row of `boxes.events`.
#[derive(Debug, Clone)]
pub struct DbEvent {
    pub id: String,
    pub box_id: String,
    pub seq: i64,
    pub payload: Option<String>,
    pub created_at: f64,
}

pub async fn read_events(database_url: &str) -> anyhow::Result<Vec<DbEvent>> {
    let (client, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT id::text, box_id::text, seq, content->>'encrypted', extract(epoch FROM created_at)::float8 \
             FROM boxes.events ORDER BY box_id, seq",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DbEvent { id: r.get(0), box_id: r.get(1), seq: r.get(2), payload: r.get(3), created_at: r.get(4) })
        .collect())
}

/// What a scenario expects of the services while a fault lasts.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Longest answer allowed from each service during a window, and the fix that needs.
    pub budgets: Vec<(&'static str, Duration, Option<&'static str>)>,
    /// Services whose recovery is measured, and the fix a recovery within 2 s needs.
    pub recovers: Vec<(&'static str, Option<&'static str>)>,
    /// Close codes a listening socket may get; `dropped_ok`: it may also lose its connection.
    pub close_codes: Vec<u16>,
    pub dropped_ok: bool,
    /// The fix that keeps a revoked token revoked through this fault, if any is needed.
    pub revoked_defect: Option<&'static str>,
    /// The fix that keeps 5xx other than 503 away (and 503 right after the fault).
    pub errors_defect: Option<&'static str>,
    /// No 503 from boxes once the faulty part is back (the broken-pipe defect after Redis restarts).
    pub no_503_after: bool,
    /// The fix sockets need to reopen within 2 s of the fault's end, if any.
    pub reopen_defect: Option<&'static str>,
}

/// Everything a scenario recorded.
pub struct Observed {
    pub posts: Vec<Post>,
    pub answers: Vec<Answer>,
    pub sockets: Vec<Vec<WsSession>>,
    pub rss: HashMap<&'static str, u64>,
    pub events: Vec<DbEvent>,
    pub box_ids: Vec<String>,
}

/// Answers that say something about a service's health (not probes meant to be refused).
fn health(a: &Answer) -> bool {
    matches!(a.what, "post" | "readyz" | "joined" | "ws")
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

impl Observed {
    /// Every answer, without the requests abandoned at the end of the run before they could be
    /// answered (one abandoned after waiting longer than the recovery budget still counts).
    fn all(&self) -> impl Iterator<Item = &Answer> {
        self.posts.iter().map(|p| &p.answer).chain(self.answers.iter()).filter(|a| !a.cancelled || a.dur > RECOVERY)
    }

    pub fn standard_checks(&self, windows: &[Window], expect: &Expect) -> Vec<Check> {
        let mut checks = self.database_checks();

        // A revoked token is refused, whatever happens.
        let revoked: Vec<&Answer> = self.all().filter(|a| a.what.starts_with("revoked")).collect();
        let accepted: Vec<&&Answer> = revoked.iter().filter(|a| a.ok()).collect();
        checks.push(Check::new(
            "revoked-token-stays-revoked",
            expect.revoked_defect,
            !revoked.is_empty() && accepted.is_empty(),
            format!("{} of {} requests with a logged-out token accepted", accepted.len(), revoked.len()),
        ));

        // While Redis is down nobody's revocation state is known: nothing authenticated passes.
        let down: Vec<(Instant, Instant)> = windows.iter().filter_map(|w| w.redis_down.map(|d| (w.start, d))).collect();
        if !down.is_empty() {
            let inside = |a: &Answer| {
                down.iter().any(|(from, to)| a.start >= *from + Duration::from_millis(100) && a.end() <= *to)
            };
            let auth: Vec<&Answer> =
                self.all().filter(|a| matches!(a.what, "post" | "joined" | "ws") && inside(a)).collect();
            let passed: HashMap<(&str, &str), usize> =
                auth.iter().filter(|a| a.ok()).fold(HashMap::new(), |mut m, a| {
                    *m.entry((a.target, a.what)).or_default() += 1;
                    m
                });
            checks.push(Check::new(
                "fails-closed-while-redis-down",
                None,
                passed.is_empty(),
                format!("{passed:?} of {} authenticated requests accepted while Redis was down", auth.len()),
            ));
        }

        // Each service answers within its budget while the fault lasts.
        for (svc, budget, defect) in &expect.budgets {
            let during: Vec<&Answer> = self
                .all()
                .filter(|a| {
                    a.target == *svc && health(a) && windows.iter().any(|w| a.start >= w.start && a.start <= w.end)
                })
                .collect();
            let worst = during.iter().map(|a| a.dur).max().unwrap_or_default();
            let slow: Vec<&&Answer> = during.iter().filter(|a| a.dur > *budget).collect();
            let kinds: HashSet<&str> = slow.iter().map(|a| a.what).collect();
            checks.push(Check::new(
                format!("{svc}-answers-within-{}ms", budget.as_millis()),
                *defect,
                slow.is_empty(),
                format!("{} of {} answers slower ({kinds:?}), slowest {}", slow.len(), during.len(), ms(worst)),
            ));
        }

        // ... and is back within 2 s once the fault ends.
        for (svc, defect) in &expect.recovers {
            let rec = recovery(self.all().filter(|a| a.target == *svc && health(a)), windows);
            let (ok, detail) = match rec {
                Some((d, last_bad)) => {
                    let last_bad = last_bad
                        .map(|a| format!(" (last abnormal: {} {:?} after {})", a.what, a.status, ms(a.dur)))
                        .unwrap_or_default();
                    (d <= RECOVERY, format!("recovered in {}{last_bad}", ms(d)))
                }
                None => (false, "never answered normally after the fault".to_owned()),
            };
            checks.push(Check::new(format!("{svc}-recovers-within-2s"), *defect, ok, detail));
        }

        // 504 only for a post whose COMMIT was on its way when its time ran out (outcome unknown).
        let errors: Vec<u16> = self
            .all()
            .filter(|a| !(a.what == "post" && a.status == Some(504)))
            .filter_map(|a| a.status)
            .filter(|s| *s >= 500 && *s != 503)
            .collect();
        checks.push(Check::new(
            "no-5xx-but-503-or-504",
            expect.errors_defect,
            errors.is_empty(),
            format!("{} answers with {:?}", errors.len(), errors.iter().collect::<HashSet<_>>()),
        ));
        if expect.no_503_after {
            let after = self
                .all()
                .filter(|a| {
                    a.target == BOXES
                        && health(a)
                        && a.status == Some(503)
                        && windows.iter().any(|w| a.start >= w.end + Duration::from_millis(100))
                        && !windows.iter().any(|w| a.start >= w.start && a.start <= w.end)
                })
                .count();
            checks.push(Check::new(
                "boxes-no-503-once-redis-is-back",
                Some(defect::RESTART_ERRORS),
                after == 0,
                format!("{after} answers 503 after Redis answered again"),
            ));
        }

        checks.extend(self.socket_checks(windows, expect));
        checks
    }

    /// Every 201 stored once, no refused post stored, per-box order.
    pub fn database_checks(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        let by_payload: HashMap<&str, Vec<&DbEvent>> = self
            .events
            .iter()
            .filter_map(|e| Some((e.payload.as_deref()?, e)))
            .fold(HashMap::new(), |mut m, (p, e)| {
                m.entry(p).or_default().push(e);
                m
            });
        let created: Vec<&Post> = self.posts.iter().filter(|p| p.answer.status == Some(201)).collect();
        let missing = created
            .iter()
            .filter(|p| {
                let rows = by_payload.get(p.payload.as_str()).map(Vec::as_slice).unwrap_or_default();
                !(rows.len() == 1 && Some(&rows[0].id) == p.event_id.as_ref())
            })
            .count();
        checks.push(Check::new(
            "every-201-in-database-once",
            None,
            missing == 0 && !created.is_empty(),
            format!("{missing} of {} accepted posts missing, duplicated or under another id", created.len()),
        ));
        let dups = by_payload.values().filter(|v| v.len() > 1).count();
        checks.push(Check::new("no-post-stored-twice", None, dups == 0, format!("{dups} ciphertexts stored twice")));
        // A post answered with an error must not have been stored: a client would retry it. A 504
        // says the outcome is unknown (its COMMIT was on its way): stored or not, at most once.
        let refused: Vec<&Post> =
            self.posts.iter().filter(|p| p.answer.status.is_some_and(|s| s != 201 && s != 504)).collect();
        let in_doubt: Vec<&Post> = self.posts.iter().filter(|p| p.answer.status == Some(504)).collect();
        let in_doubt_stored = in_doubt.iter().filter(|p| by_payload.contains_key(p.payload.as_str())).count();
        let stored_anyway: Vec<&&Post> =
            refused.iter().filter(|p| by_payload.contains_key(p.payload.as_str())).collect();
        checks.push(Check::new(
            "no-refused-post-stored",
            None,
            stored_anyway.is_empty(),
            format!(
                "{} of {} posts answered with an error were stored (statuses {:?}); {in_doubt_stored} of {} answered 504 (outcome unknown) were",
                stored_anyway.len(),
                refused.len(),
                stored_anyway.iter().filter_map(|p| p.answer.status).collect::<HashSet<_>>(),
                in_doubt.len(),
            ),
        ));
        // Each box's poster waits for one answer before the next post: seq follows that order,
        // and event times never go backwards within a box.
        let seq_of: HashMap<&str, (&str, i64)> =
            self.events.iter().map(|e| (e.id.as_str(), (e.box_id.as_str(), e.seq))).collect();
        let mut per_box: BTreeMap<usize, Vec<(u64, i64)>> = BTreeMap::new();
        for p in &created {
            if let Some((_, seq)) = p.event_id.as_deref().and_then(|id| seq_of.get(id)) {
                per_box.entry(p.box_idx).or_default().push((p.n, *seq));
            }
        }
        let mut disorder = 0;
        for v in per_box.values_mut() {
            v.sort_unstable();
            disorder += v.windows(2).filter(|w| w[1].1 <= w[0].1).count();
        }
        let mut time_back = 0;
        for w in self.events.windows(2) {
            if w[0].box_id == w[1].box_id && self.box_ids.contains(&w[0].box_id) {
                if w[1].seq != w[0].seq + 1 {
                    disorder += 1;
                }
                if w[1].created_at < w[0].created_at {
                    time_back += 1;
                }
            }
        }
        checks.push(Check::new(
            "per-box-order",
            None,
            disorder == 0 && time_back == 0,
            format!("{disorder} events out of order or seq gaps, {time_back} times going backwards"),
        ));
        checks
    }

    fn socket_checks(&self, windows: &[Window], expect: &Expect) -> Vec<Check> {
        let last_end = windows.iter().map(|w| w.end).max();
        let mut bad_close = Vec::new();
        let mut slow_reconnect = Vec::new();
        let mut silent = 0;
        for sessions in &self.sockets {
            for s in sessions {
                match &s.ended {
                    Some((_, WsEnd::Close(c))) if expect.close_codes.contains(c) => {}
                    Some((_, WsEnd::Dropped)) if expect.dropped_ok => {}
                    Some((_, end)) => bad_close.push(format!("{end:?}")),
                    None => {}
                }
            }
            // After the last time it ended, the socket is open again within 2 s of the fault's end.
            for (i, s) in sessions.iter().enumerate() {
                let Some((ended, _)) = s.ended else { continue };
                let from = last_end.map_or(ended, |e| e.max(ended));
                match sessions.get(i + 1) {
                    Some(next) if next.ready <= from + RECOVERY => {}
                    Some(next) => slow_reconnect.push(ms(next.ready.saturating_duration_since(from))),
                    None => slow_reconnect.push("never".to_owned()),
                }
            }
            let got_after = sessions.iter().flat_map(|s| &s.received).any(|(t, _)| last_end.is_none_or(|e| *t > e));
            if !got_after {
                silent += 1;
            }
        }
        vec![
            Check::new(
                "sockets-close-with-documented-codes",
                None,
                bad_close.is_empty(),
                if bad_close.is_empty() {
                    format!("allowed {:?}{}", expect.close_codes, if expect.dropped_ok { " or dropped" } else { "" })
                } else {
                    format!("unexpected ends {bad_close:?}")
                },
            ),
            Check::new(
                "sockets-reopen-within-2s",
                expect.reopen_defect,
                slow_reconnect.is_empty(),
                format!("late reopenings: {slow_reconnect:?}"),
            ),
            Check::new(
                "sockets-keep-receiving",
                None,
                silent == 0 && !self.sockets.is_empty(),
                format!("{silent} of {} sockets received nothing after the fault", self.sockets.len()),
            ),
        ]
    }

    /// Answers by status, e.g. `201:1520 503:88 none:3`.
    pub fn statuses(&self) -> String {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for a in self.all().filter(|a| !a.what.starts_with("revoked")) {
            *m.entry(a.status.map_or("none".to_owned(), |s| s.to_string())).or_default() += 1;
        }
        m.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ")
    }

    /// The slowest answer to a request started during a window.
    pub fn max_latency(&self, windows: &[Window]) -> Duration {
        self.all()
            .filter(|a| health(a) && windows.iter().any(|w| a.start >= w.start && a.start <= w.end))
            .map(|a| a.dur)
            .max()
            .unwrap_or_default()
    }

    pub fn recoveries(&self, windows: &[Window]) -> Vec<(&'static str, Option<Duration>)> {
        [BOXES, REALTIME, BRIDGE]
            .into_iter()
            .map(|svc| (svc, recovery(self.all().filter(|a| a.target == svc && health(a)), windows).map(|(d, _)| d)))
            .collect()
    }
}

/// The longest time, over the windows, from a window's end to the end of the last abnormal
/// answer (an error, no answer, or slower than the recovery budget) to a request started after
/// it and ended before the next window, with that answer; `None` if a window is followed by no normal answer at all.
fn recovery<'a>(
    answers: impl Iterator<Item = &'a Answer>,
    windows: &[Window],
) -> Option<(Duration, Option<&'a Answer>)> {
    let answers: Vec<&Answer> = answers.collect();
    let mut worst: (Duration, Option<&Answer>) = (Duration::ZERO, None);
    for (i, w) in windows.iter().enumerate() {
        let until = windows.get(i + 1).map(|n| n.start);
        // An answer still open when the next fault starts is that fault's: a probe sent just
        // before a SIGKILL fails because of it, not because the service had not recovered.
        let after: Vec<&Answer> =
            answers.iter().copied().filter(|a| a.start >= w.end && until.is_none_or(|u| a.end() <= u)).collect();
        if !after.iter().any(|a| a.ok() && a.dur <= RECOVERY) {
            return None;
        }
        let last_bad = after.iter().copied().filter(|a| !a.ok() || a.dur > RECOVERY).max_by_key(|a| a.end());
        if let Some(a) = last_bad {
            let late = a.end().saturating_duration_since(w.end);
            if worst.1.is_none() || late > worst.0 {
                worst = (late, Some(a));
            }
        }
    }
    Some(worst)
}
