//! Time limits of a request, so that neither a slow client nor a stalled dependency holds a
//! connection without bound:
//!
//! - the body must arrive within `BODY_READ_TIMEOUT_MS` (408 `{"body":"timed_out"}`, and the
//!   connection is closed), and at most `BODY_READS_MAX` bodies are read at once per process
//!   (503 beyond), so slow senders cannot pile up;
//! - the rest of the request (authentication, PostgreSQL, Redis) must finish within
//!   `REQUEST_TIMEOUT_MS`, or the answer is 503. Time spent waiting for the body, and time in
//!   [`paused`] sections (calls with limits of their own, such as a hostapp's), is not counted.
//!   A request past its point of no return ([`in_doubt`]: a COMMIT that may be applied) answers
//!   504 `{"commit":"timed_out"}` instead: its change may or may not be saved, so a client must
//!   look before it retries, while a 503 always means nothing was changed.
//!
//! [`enforce`] is the middleware; it finds the [`Limits`] in the app data.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use domain::ErrorBody;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

/// The settings, flattened into each service's own.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitSettings {
    /// Longest time a request body may take to arrive, in milliseconds (then 408).
    #[arg(long, env = "BODY_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_read_timeout_ms: u64,

    /// Request bodies read at the same time, per process; more answer 503 at once.
    #[arg(long, env = "BODY_READS_MAX", default_value_t = 512)]
    pub body_reads_max: usize,

    /// Longest time a request may take, in milliseconds, not counting its body's arrival or
    /// calls bounded by limits of their own (then 503).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 6_000)]
    pub request_timeout_ms: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings { body_read_timeout_ms: 10_000, body_reads_max: 512, request_timeout_ms: 6_000 }
    }
}

/// The limits in force, shared by the workers of one process (`App::app_data`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub body_read_timeout: Duration,
    pub request_timeout: Duration,
    body_reads: Arc<Semaphore>,
}

impl Limits {
    pub fn new(s: &LimitSettings) -> Self {
        Limits {
            body_read_timeout: Duration::from_millis(s.body_read_timeout_ms),
            request_timeout: Duration::from_millis(s.request_timeout_ms),
            body_reads: Arc::new(Semaphore::new(s.body_reads_max)),
        }
    }

    /// A place among the bodies being read, if one is free.
    pub fn body_read_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.body_reads.clone().try_acquire_owned().ok()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(&LimitSettings::default())
    }
}

/// The request budget: what is left of it, and since when it is being spent (`None`: paused).
struct Budget {
    left: Cell<Duration>,
    since: Cell<Option<Instant>>,
    changed: Notify,
    /// Past the point of no return: a change may be committed even if the answer is not sent.
    in_doubt: Cell<bool>,
}

impl Budget {
    fn deadline(&self) -> Option<Instant> {
        self.since.get().map(|since| since + self.left.get())
    }

    fn pause(&self) {
        if let Some(since) = self.since.take() {
            self.left.set(self.left.get().saturating_sub(since.elapsed()));
        }
    }

    fn resume(&self) {
        self.since.set(Some(Instant::now()));
        self.changed.notify_one();
    }
}

tokio::task_local! {
    static BUDGET: Rc<Budget>;
}

/// The wall-clock time at which the current request runs out of time, less `margin`: a deadline
/// to hand to PostgreSQL, so a transaction that reaches its end later than that (after a freeze,
/// say) fails there instead of committing behind a 503. `None` outside [`enforce`] or while paused.
pub fn deadline(margin: Duration) -> Option<SystemTime> {
    let at = BUDGET.try_with(|b| b.deadline()).ok().flatten()?;
    let left = at.saturating_duration_since(Instant::now()).saturating_sub(margin);
    Some(SystemTime::now() + left)
}

/// Marks the current request as past its point of no return (a COMMIT is on its way): if it runs
/// out of time from now on, the answer is 504 (outcome unknown) rather than 503 (nothing done).
pub fn in_doubt() {
    let _ = BUDGET.try_with(|b| b.in_doubt.set(true));
}

/// Awaits a COMMIT (or any write whose outcome a lost answer would leave unknown) as [`in_doubt`].
pub async fn committing<T>(commit: impl std::future::Future<Output = T>) -> T {
    in_doubt();
    commit.await
}

/// Runs `work` without counting its time against the request budget: for waits that have a
/// limit of their own. Outside [`enforce`] it simply runs `work`.
pub async fn paused<T>(work: impl std::future::Future<Output = T>) -> T {
    let budget = BUDGET.try_with(Rc::clone).ok();
    if let Some(b) = &budget {
        b.pause();
    }
    let out = work.await;
    if let Some(b) = &budget {
        b.resume();
    }
    out
}

/// Middleware (`actix_web::middleware::from_fn(web_kit::limits::enforce)`): the request budget,
/// and a 408 that closes the connection, so the unread rest of a stalled body is not waited for.
pub async fn enforce<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let Some(limits) = req.app_data::<Limits>().cloned() else {
        return next.call(req).await;
    };
    let budget = Rc::new(Budget {
        left: Cell::new(limits.request_timeout),
        since: Cell::new(Some(Instant::now())),
        changed: Notify::new(),
        in_doubt: Cell::new(false),
    });
    let work = BUDGET.scope(budget.clone(), next.call(req));
    tokio::pin!(work);
    loop {
        let deadline = budget.deadline();
        tokio::select! {
            res = &mut work => {
                let mut res = res?;
                if res.status() == actix_web::http::StatusCode::REQUEST_TIMEOUT {
                    res.response_mut().head_mut().set_connection_type(ConnectionType::Close);
                }
                return Ok(res);
            }
            _ = budget.changed.notified() => {}
            _ = sleep_until(deadline) => {
                if budget.deadline().is_some_and(|d| d <= Instant::now()) {
                    let in_doubt = budget.in_doubt.get();
                    tracing::warn!(budget_ms = limits.request_timeout.as_millis() as u64, in_doubt, "request ran out of time");
                    return Err(OutOfTime { in_doubt }.into());
                }
            }
        }
    }
}

/// The answer of a request that ran out of time (an error, since the request itself went to
/// the handler that was dropped).
#[derive(Debug)]
struct OutOfTime {
    in_doubt: bool,
}

impl std::fmt::Display for OutOfTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.in_doubt {
            f.write_str("the request did not complete in time; its change may or may not have been saved")
        } else {
            f.write_str("the request did not complete in time")
        }
    }
}

impl actix_web::ResponseError for OutOfTime {
    fn status_code(&self) -> actix_web::http::StatusCode {
        if self.in_doubt {
            actix_web::http::StatusCode::GATEWAY_TIMEOUT
        } else {
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.in_doubt {
            HttpResponse::GatewayTimeout().json(ErrorBody::commit_unknown(self.to_string()))
        } else {
            HttpResponse::ServiceUnavailable().json(ErrorBody::unavailable(self.to_string()))
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
