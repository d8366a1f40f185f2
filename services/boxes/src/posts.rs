//! Group commit of message events (`msg.text`, `msg.file`, `msg.edit`, `msg.delete`): concurrent
//! posts share transactions.
//!
//! One transaction per post costs PostgreSQL a commit (and its WAL flush) and six statements per
//! message; under load that, not boxes, bounds the rate of posts (`BENCHMARKS.md`, scenario 1).
//! Here every post of the process goes through one queue. A single task takes whatever is
//! waiting, up to `POST_BATCH_MAX` messages, and runs them as one transaction of set-based
//! statements (`store::pipelined::post_messages`), with up to `POST_BATCH_CONCURRENCY` such
//! transactions in flight. It never waits for more posts to arrive: a lone post leaves at once,
//! as a batch of one, in one round trip; posts arriving while transactions are in flight wait
//! for a free one and leave together.
//!
//! What a post is promised does not change (§6, §13.1): the box row is locked before its
//! membership is read and its sequence number taken, so the order of a box is the order of its
//! sequence numbers and of the commits; nothing is answered 201 before the commit; the realtime
//! effects (§6.4) are sent after it, for the whole batch in one round trip to Redis, in the
//! order of the batch, and the answers do not wait for them. Posts are validated before they are
//! queued, so a batch fails only when PostgreSQL does: a batch whose transaction PostgreSQL
//! refused is run again one post at a time, so each post gets its own answer. An edit or a
//! deletion the batch's statement does not let in goes back to its request, which runs it on its
//! own through `rules::messages` (for the precise refusal, or the deletion of a file); a batch
//! never holds two changes of the same message, so the statement's view of a message (before
//! the batch) is the one each change needs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use domain::event::EventType;
use domain::identity::IdentityRecord;
use domain::{EventId, IdentityId};
use tokio::sync::{mpsc, oneshot, Semaphore};
use web_kit::telemetry::TraceContext;

use crate::error::ApiError;
use crate::load::{self, EventContext};
use crate::notify::{self, Outbox};
use crate::store;
use crate::store::boxes::BoxRow;
use crate::store::events::EventRow;
use crate::store::pipelined::{post_messages, NewMessage, PostedMessage};
use crate::store::sql::JsonText;

/// `POST_BATCH_*`: how posts are grouped.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct BatchSettings {
    /// Messages one post transaction carries at most.
    #[arg(long, env = "POST_BATCH_MAX", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub post_batch_max: u16,

    /// Post transactions in flight at once; posts arriving while all are busy wait and leave
    /// together in the next. Fewer means larger groups and less PostgreSQL work per post, more
    /// means more overlap; 2 posted the most at 32 clients of the 1, 2 and 4 measured
    /// (`BENCHMARKS.md`, "posts committed in groups").
    #[arg(long, env = "POST_BATCH_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub post_batch_concurrency: u16,

    /// Posts waiting for a transaction at most; further posts wait to be queued (within their
    /// request's time limit).
    #[arg(long, env = "POST_QUEUE_MAX", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub post_queue_max: u32,
}

/// A committed message: what its sender is answered.
#[derive(Debug)]
pub struct Posted {
    pub sender: IdentityRecord,
    pub bx: BoxRow,
    /// The event, its content as stored (passed through to the answer and the envelopes).
    pub event: EventRow<JsonText>,
}

/// Why a message was not posted, besides a failure of PostgreSQL.
#[derive(Debug)]
pub enum Refused {
    /// The token's identity does not exist (§3.3 step 3).
    UnknownSender,
    /// The sender is not a member, or the box does not exist.
    NotMember,
    /// An edit or a deletion the group's rules did not let in: to be posted on its own.
    Alone,
}

type Outcome = Result<Result<Posted, Refused>, ApiError>;

struct Job {
    message: NewMessage,
    waiter: Waiter,
}

/// The request waiting for a post.
struct Waiter {
    /// When PostgreSQL must have reached the end of the transaction (`web_kit::limits::deadline`).
    deadline: Option<SystemTime>,
    trace: Option<TraceContext>,
    /// Told when the transaction is past its point of no return (only `COMMIT` left).
    no_return: Option<oneshot::Sender<()>>,
    reply: oneshot::Sender<Outcome>,
}

/// The queue of posts; cloned into every worker.
#[derive(Clone)]
pub struct Posts {
    queue: mpsc::Sender<Job>,
}

impl Posts {
    /// Starts the task that batches posts; it runs as long as a handle to the queue exists.
    pub fn start(
        db: deadpool_postgres::Pool,
        redis: web_kit::redis::Redis,
        history: web_kit::history::HistoryLimits,
        settings: BatchSettings,
    ) -> Posts {
        web_kit::metrics::record(web_kit::metrics::Group::Posts);
        let (queue, jobs) = mpsc::channel(settings.post_queue_max as usize);
        let batcher = Batcher { db, redis, history, max: usize::from(settings.post_batch_max) };
        tokio::spawn(batcher.run(jobs, usize::from(settings.post_batch_concurrency)));
        Posts { queue }
    }

    /// Posts `message` and waits for its commit. Marks the request in doubt
    /// (`web_kit::limits::in_doubt`) once its transaction is past the point of no return.
    pub async fn post(&self, message: NewMessage, deadline: Option<SystemTime>) -> Outcome {
        let (reply, mut answer) = oneshot::channel();
        let (no_return, mut committing) = oneshot::channel();
        let waiter = Waiter { deadline, trace: web_kit::telemetry::current(), no_return: Some(no_return), reply };
        let job = Job { message, waiter };
        self.queue.send(job).await.map_err(|_| ApiError::internal(anyhow::anyhow!("the post queue is closed")))?;
        tokio::select! {
            biased;
            outcome = &mut answer => return outcome.unwrap_or_else(|_| Err(lost())),
            told = &mut committing => if told.is_ok() {
                web_kit::limits::in_doubt();
            },
        }
        answer.await.unwrap_or_else(|_| Err(lost()))
    }
}

fn lost() -> ApiError {
    ApiError::internal(anyhow::anyhow!("the post batcher dropped a post"))
}

struct Batcher {
    db: deadpool_postgres::Pool,
    redis: web_kit::redis::Redis,
    history: web_kit::history::HistoryLimits,
    max: usize,
}

impl Batcher {
    async fn run(self, mut jobs: mpsc::Receiver<Job>, concurrency: usize) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(concurrency));
        // A post that changes a message already changed in the batch being formed starts the next.
        let mut held: Option<Job> = None;
        loop {
            // A slot first: while every transaction is busy, posts gather in the queue.
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let first = match held.take() {
                Some(job) => job,
                None => match jobs.recv().await {
                    Some(job) => job,
                    None => return,
                },
            };
            let mut changed: HashSet<EventId> = first.message.referrer_id.into_iter().collect();
            let mut batch = vec![first];
            while batch.len() < this.max {
                let Ok(job) = jobs.try_recv() else { break };
                if job.message.referrer_id.is_some_and(|r| !changed.insert(r)) {
                    held = Some(job);
                    break;
                }
                batch.push(job);
            }
            let this = this.clone();
            tokio::spawn(async move {
                this.commit(batch).await;
                drop(slot);
            });
        }
    }

    /// One transaction for `batch`; the answers, then the realtime effects.
    async fn commit(&self, batch: Vec<Job>) {
        if web_kit::metrics::enabled() {
            web_kit::metrics::FAMILIES.post_batch_size.observe(batch.len() as f64);
        }
        let (messages, mut waiters): (Vec<NewMessage>, Vec<Waiter>) =
            batch.into_iter().map(|j| (j.message, j.waiter)).unzip();
        let client = match web_kit::metrics::pool_get(&self.db).await {
            Ok(client) => client,
            Err(e) => return fail_all(waiters, ApiError::from(e)),
        };
        let deadline = waiters.iter().filter_map(|w| w.deadline).min();
        let mut no_return: Vec<_> = waiters.iter_mut().map(|w| w.no_return.take()).collect();
        let posted = post_messages(&client, &messages, deadline, || no_return.iter_mut().for_each(tell)).await;
        let posted = match posted {
            Ok(posted) => posted,
            // PostgreSQL refused the transaction (it was rolled back): each post alone.
            Err(e) if messages.len() > 1 && refused(&e) => {
                tracing::warn!(
                    error = format!("{:#}", anyhow::Error::from(e)),
                    posts = messages.len(),
                    "a post batch failed; posting one at a time"
                );
                let mut outboxes = Vec::new();
                for ((message, waiter), mut no_return) in messages.iter().zip(waiters).zip(no_return) {
                    let single = std::slice::from_ref(message);
                    match post_messages(&client, single, waiter.deadline, || tell(&mut no_return)).await {
                        Ok(mut posted) => outboxes.extend(answer(waiter, message, posted.pop())),
                        Err(e) => {
                            let _ = waiter.reply.send(Err(ApiError::from(e)));
                        }
                    }
                }
                drop(client);
                notify::send_all(outboxes, &self.redis, self.history).await;
                return;
            }
            Err(e) => return fail_all(waiters, ApiError::from(e)),
        };
        drop(client);
        let outboxes: Vec<Outbox> = waiters
            .into_iter()
            .zip(&messages)
            .zip(posted)
            .filter_map(|((waiter, message), posted)| answer(waiter, message, Some(posted)))
            .collect();
        notify::send_all(outboxes, &self.redis, self.history).await;
    }
}

fn tell(no_return: &mut Option<oneshot::Sender<()>>) {
    if let Some(told) = no_return.take() {
        let _ = told.send(());
    }
}

/// Whether PostgreSQL answered the failed statement (so the transaction was rolled back), rather
/// than the connection failing (outcome unknown) or a row not decoding.
fn refused(e: &store::Error) -> bool {
    e.postgres().is_some_and(|e| e.as_db_error().is_some())
}

/// The same failure for every post of a batch.
fn fail_all(waiters: Vec<Waiter>, e: ApiError) {
    let unavailable = matches!(e, ApiError::Unavailable(_));
    let message = match &e {
        ApiError::Unavailable(cause) | ApiError::Internal(cause) => format!("{cause:#}"),
        other => other.to_string(),
    };
    for waiter in waiters {
        let e = anyhow::anyhow!("{message}").context("posting a batch of messages");
        let _ = waiter.reply.send(Err(if unavailable { ApiError::unavailable(e) } else { ApiError::internal(e) }));
    }
}

/// Answers a post's request and returns its realtime effects: `event.new` to the members and the
/// sender, and for a new message unread counters +1 for the members other than the sender that
/// did not mute the box (edits and deletions count for nobody).
fn answer(waiter: Waiter, message: &NewMessage, posted: Option<PostedMessage>) -> Option<Outbox> {
    let Some(PostedMessage { sender, bx, event, members }) = posted else {
        let _ = waiter.reply.send(Err(lost()));
        return None;
    };
    let (sender, bx, event) = match (sender, bx, event) {
        (None, _, _) => {
            let _ = waiter.reply.send(Ok(Err(Refused::UnknownSender)));
            return None;
        }
        (Some(sender), Some(bx), Some(event)) => (sender, bx, event),
        _ if message.referrer_id.is_some() => {
            let _ = waiter.reply.send(Ok(Err(Refused::Alone)));
            return None;
        }
        _ => {
            let _ = waiter.reply.send(Ok(Err(Refused::NotMember)));
            return None;
        }
    };
    let me = sender.id;
    let mut outbox = Outbox::traced(waiter.trace);
    let ctx = EventContext::of_identities([sender.clone()]);
    let mut recipients: Vec<IdentityId> = members.iter().map(|(m, _)| *m).collect();
    recipients.push(me);
    load::announce(&mut outbox, |t| ctx.render_stored(&event, t), bx.creator_id, &recipients);
    if matches!(event.kind, EventType::MsgText | EventType::MsgFile) {
        for (m, _) in members.iter().filter(|(m, muted)| *m != me && !muted) {
            outbox.increment(*m, bx.id);
        }
    }
    let _ = waiter.reply.send(Ok(Ok(Posted { sender, bx, event })));
    Some(outbox)
}
