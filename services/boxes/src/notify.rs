//! Realtime side effects (§6.4): envelopes published to `user_{id}:ws` and unread counters.
//!
//! Handlers collect effects in an [`Outbox`] while their transaction runs and send it only after
//! commit. Sending is best effort: a Redis failure is logged and never fails the request. Each
//! envelope is recorded in its recipient's history and published by one script
//! (`web_kit::history`), so a client that was offline can recover it on reconnect. The published
//! text carries the trace of the request that made it (`"trace"`), which realtime logs and strips
//! before delivery. Outboxes of several requests (a batch of posts, `crate::posts`) go out in one
//! round trip with [`send_all`], each with its own trace.

use std::sync::Arc;

use domain::notification::Notification;
use domain::realtime::{types, Envelope};
use domain::{BoxId, IdentityId};
use web_kit::telemetry::TraceContext;

#[derive(Debug, Default)]
pub struct Outbox {
    /// Each recipient with its envelope's text, shared by the recipients of one envelope.
    publishes: Vec<(IdentityId, Arc<str>)>,
    increments: Vec<(IdentityId, BoxId)>,
    resets: Vec<(IdentityId, BoxId)>,
    /// The trace of the request the effects belong to.
    trace: Option<TraceContext>,
}

impl Outbox {
    /// An outbox of the current request (its trace, if any).
    pub fn new() -> Self {
        Outbox::traced(web_kit::telemetry::current())
    }

    /// An outbox of the request with this trace, filled outside of it.
    pub fn traced(trace: Option<TraceContext>) -> Self {
        Outbox { trace, ..Outbox::default() }
    }

    pub fn publish(&mut self, to: IdentityId, envelope: &Envelope) {
        self.publish_text([to], envelope.to_json());
    }

    /// The same envelope to each of `to`, serialised once: a message's ciphertext is written out
    /// once per box, not once per member.
    pub fn publish_all(&mut self, to: impl IntoIterator<Item = IdentityId>, envelope: &Envelope) {
        self.publish_text(to, envelope.to_json());
    }

    /// An envelope's text ([`Envelope::text`]) to each of `to`.
    pub fn publish_text(&mut self, to: impl IntoIterator<Item = IdentityId>, text: String) {
        let text: Arc<str> = Arc::from(text);
        self.publishes.extend(to.into_iter().map(|who| (who, text.clone())));
    }

    /// A `notification` envelope for each stored notification, to its identity.
    pub fn notify(&mut self, stored: &[(IdentityId, Notification)]) {
        for (to, n) in stored {
            self.publish(*to, &Envelope::new(types::NOTIFICATION, n));
        }
    }

    /// Unread counter +1 for `who` in `box_id`.
    pub fn increment(&mut self, who: IdentityId, box_id: BoxId) {
        self.increments.push((who, box_id));
    }

    /// Unread counter back to 0 (the key is deleted: a missing counter reads as 0).
    pub fn reset(&mut self, who: IdentityId, box_id: BoxId) {
        self.resets.push((who, box_id));
    }

    pub fn is_empty(&self) -> bool {
        self.publishes.is_empty() && self.increments.is_empty() && self.resets.is_empty()
    }

    /// One pipelined round trip (on a Redis Cluster, one per slot, at once): counters first, so a
    /// client reacting to a message reads fresh counts.
    pub async fn send(self, redis: &web_kit::redis::Redis, history: web_kit::history::HistoryLimits) {
        send_all(vec![self], redis, history).await;
    }
}

/// The outboxes in one pipelined round trip, in their order, each with its counters before its
/// envelopes.
pub async fn send_all(outboxes: Vec<Outbox>, redis: &web_kit::redis::Redis, history: web_kit::history::HistoryLimits) {
    let outboxes: Vec<Outbox> = outboxes.into_iter().filter(|o| !o.is_empty()).collect();
    if outboxes.is_empty() {
        return;
    }
    let keys = redis.keys();
    let mut pipe = redis::pipe();
    // Each outbox's trace rides along as a child of its request, so realtime logs the delivery
    // in that trace; the spans stay open for the round trip.
    let mut calls = Vec::with_capacity(outboxes.len());
    let mut spans = Vec::new();
    for outbox in &outboxes {
        for (who, box_id) in &outbox.resets {
            pipe.del(keys.counter(*who, *box_id)).ignore();
        }
        for (who, box_id) in &outbox.increments {
            pipe.incr(keys.counter(*who, *box_id), 1).ignore();
        }
        let call = outbox.trace.as_ref().map(TraceContext::child);
        let trace = call.as_ref().map(TraceContext::traceparent);
        for (to, payload) in &outbox.publishes {
            pipe.add_command(web_kit::history::publish_traced_cmd(keys, *to, payload, history, trace.as_deref()))
                .ignore();
        }
        if let Some(call) = call.as_ref().filter(|_| !outbox.publishes.is_empty()) {
            spans.push(web_kit::telemetry::otlp::call_span(call, "publish"));
        }
        calls.push((call, trace));
    }
    let result = web_kit::redis::exec(redis, &pipe).await;
    drop(spans);
    for (outbox, (call, trace)) in outboxes.iter().zip(&calls) {
        let publishes = outbox.publishes.len();
        let request_id = call.as_ref().map(|c| c.request_id.as_str());
        let trace_id = call.as_ref().map(|c| c.trace_id.as_str());
        match &result {
            Ok(()) if publishes > 0 => {
                tracing::debug!(publishes, request_id, trace_id, trace = trace.as_deref(), "realtime published");
            }
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, publishes, request_id, trace_id, "realtime publish failed"),
        }
    }
}
