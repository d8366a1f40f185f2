//! Realtime side effects (§6.4): envelopes published to `user_{id}:ws` and unread counters.
//!
//! Handlers collect effects in an [`Outbox`] while their transaction runs and send it only after
//! commit. Sending is best effort: a Redis failure is logged and never fails the request. Each
//! envelope is recorded in its recipient's history and published by one script
//! (`web_kit::history`), so a client that was offline can recover it on reconnect. The published
//! text carries the request's trace (`"trace"`), which realtime logs and strips before delivery.

use domain::notification::Notification;
use domain::realtime::{types, Envelope};
use domain::{BoxId, IdentityId};

#[derive(Debug, Default)]
pub struct Outbox {
    publishes: Vec<(IdentityId, String)>,
    increments: Vec<(IdentityId, BoxId)>,
    resets: Vec<(IdentityId, BoxId)>,
}

impl Outbox {
    pub fn new() -> Self {
        Outbox::default()
    }

    pub fn publish(&mut self, to: IdentityId, envelope: &Envelope) {
        self.publishes.push((to, envelope.to_json()));
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
        if self.is_empty() {
            return;
        }
        let keys = redis.keys();
        let mut pipe = redis::pipe();
        for (who, box_id) in &self.resets {
            pipe.del(keys.counter(*who, *box_id)).ignore();
        }
        for (who, box_id) in &self.increments {
            pipe.incr(keys.counter(*who, *box_id), 1).ignore();
        }
        // The request's trace rides along, so realtime logs the delivery in the same trace.
        let call = web_kit::telemetry::current().map(|ctx| ctx.child());
        let trace = call.as_ref().map(web_kit::telemetry::TraceContext::traceparent);
        for (to, payload) in &self.publishes {
            pipe.add_command(web_kit::history::publish_traced_cmd(keys, *to, payload, history, trace.as_deref()))
                .ignore();
        }
        let span = match &call {
            Some(call) if !self.publishes.is_empty() => web_kit::telemetry::otlp::call_span(call, "publish"),
            _ => tracing::Span::none(),
        };
        match tracing::Instrument::instrument(web_kit::redis::exec(redis, &pipe), span).await {
            Ok(()) if !self.publishes.is_empty() => {
                tracing::info!(publishes = self.publishes.len(), trace = trace.as_deref(), "realtime published");
            }
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, publishes = self.publishes.len(), "realtime publish failed"),
        }
    }
}
