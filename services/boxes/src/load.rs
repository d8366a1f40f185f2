//! Loading what the JSON objects of §5.3 and §5.5 need (rows from PostgreSQL, unread counters
//! from Redis) and building them for one viewer.
//!
//! Events are rendered in two steps: [`EventContext::load`] fetches, for a whole page of events,
//! the latest edit and the deletion of every message and every identity the page mentions (a
//! fixed number of queries, whatever the page size); [`EventContext::render`] is then pure, so
//! one context serves both the admin's transparent copy and everyone else's.

use std::collections::{HashMap, HashSet};

use domain::boxes::{BoxSetting, BoxView};
use domain::event::{fold_message, kick_content, EditState, Event, EventType};
use domain::identity::{IdentityRecord, IdentityView};
use domain::{BoxId, EventId, IdentityId, Timestamp};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::ApiResult;
use crate::store::boxes::BoxRow;
use crate::store::events::EventRow;
use crate::store::pipelined::FoldedRow;
use crate::store::sql::JsonText;
use crate::store::{self, GenericClient};

/// What rendering a set of events needs besides the rows.
#[derive(Debug, Default)]
pub struct EventContext {
    identities: HashMap<IdentityId, IdentityRecord>,
    edits: HashMap<EventId, EditState>,
    deletions: HashMap<EventId, (Timestamp, IdentityId)>,
}

fn kicker_of(e: &EventRow) -> Option<IdentityId> {
    e.content.as_ref()?.get("kicker_id")?.as_str().and_then(|s| IdentityId::parse(s).ok())
}

/// The view of an identity that may have been removed meanwhile: never fails.
fn view_of(identities: &HashMap<IdentityId, IdentityRecord>, id: IdentityId, transparent: bool) -> IdentityView {
    match identities.get(&id) {
        Some(r) => r.view(transparent),
        None => IdentityView {
            id,
            display_name: String::new(),
            avatar_url: None,
            identifier_value: String::new(),
            identifier_kind: String::new(),
        },
    }
}

impl EventContext {
    /// Loads what `rows` need. With `fold` false, messages are shown as stored (a message that
    /// was just posted has no edit or deletion yet).
    pub async fn load<C: GenericClient>(c: &C, rows: &[EventRow], fold: bool) -> ApiResult<Self> {
        let messages: Vec<EventId> = rows.iter().filter(|e| fold && e.kind.is_message()).map(|e| e.id).collect();
        let edits = store::events::latest_edits(c, &messages).await?;
        let deletions = store::events::deletions(c, &messages).await?;
        let mut ids: HashSet<IdentityId> = rows.iter().map(|e| e.sender_id).collect();
        ids.extend(rows.iter().filter_map(kicker_of));
        ids.extend(deletions.values().map(|(_, by)| *by));
        let ids: Vec<IdentityId> = ids.into_iter().collect();
        let identities = store::identities::get_many(c, &ids).await?.into_iter().map(|r| (r.id, r)).collect();
        Ok(EventContext { identities, edits, deletions })
    }

    /// A context for events that fold nothing (a message that was just posted) and name only
    /// these identities.
    pub fn of_identities(records: impl IntoIterator<Item = IdentityRecord>) -> Self {
        EventContext { identities: records.into_iter().map(|r| (r.id, r)).collect(), ..EventContext::default() }
    }

    /// The event as one viewer sees it; identity views are transparent only for the admin.
    pub fn render(&self, e: &EventRow, transparent: bool) -> Event {
        let content = match e.kind {
            EventType::MsgText | EventType::MsgFile => {
                let deleted =
                    self.deletions.get(&e.id).map(|(at, by)| (*at, view_of(&self.identities, *by, transparent)));
                Some(fold_message(e.content.clone(), self.edits.get(&e.id).cloned(), deleted))
            }
            EventType::MemberKick => match kicker_of(e) {
                Some(k) => Some(kick_content(&view_of(&self.identities, k, transparent))),
                None => e.content.clone(),
            },
            _ => e.content.clone(),
        };
        self.event(e, transparent, content)
    }

    /// The event of row `e` with `content` as the viewer sees it.
    fn event<S, T>(&self, e: &EventRow<S>, transparent: bool, content: Option<T>) -> Event<T> {
        Event {
            id: e.id,
            kind: e.kind,
            box_id: e.box_id,
            seq: e.seq,
            server_event_created_at: e.created_at,
            sender: view_of(&self.identities, e.sender_id, transparent),
            content,
            referrer_id: e.referrer_id,
        }
    }
}

/// Renders a page of events for one viewer, folded (§6.5).
pub async fn events_for<C: GenericClient>(c: &C, rows: &[EventRow], transparent: bool) -> ApiResult<Vec<Event>> {
    let ctx = EventContext::load(c, rows, true).await?;
    Ok(rows.iter().map(|e| ctx.render(e, transparent)).collect())
}

/// The content of an event in a page: a message's stored JSON passed through with only
/// `last_edited_at` added, or the folded value.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum PageContent {
    Stored(Box<RawValue>),
    Folded(Value),
}

/// The stored content of a message that no edit or deletion folds, with `"last_edited_at": null`
/// added as [`fold_message`] adds it; `None` when the text is not a JSON object. Stored message
/// content never holds `last_edited_at` (`NewEvent::stored_content` writes only its own keys).
fn unfolded_message(stored: &JsonText) -> Option<Box<RawValue>> {
    let body = stored.0.trim_end().strip_suffix('}')?.trim_end();
    if !body.starts_with('{') {
        return None;
    }
    let mut text = String::with_capacity(body.len() + 24);
    text.push_str(body);
    text.push_str(if body == "{" { "\"last_edited_at\": null}" } else { ", \"last_edited_at\": null}" });
    RawValue::from_string(text).ok()
}

impl EventContext {
    /// [`EventContext::render`] for a row whose content was read as text: a message that nothing
    /// folds keeps its stored JSON, without parsing or re-encoding it.
    pub fn render_stored(&self, e: &EventRow<JsonText>, transparent: bool) -> Event<PageContent> {
        let folds = self.edits.contains_key(&e.id) || self.deletions.contains_key(&e.id);
        if e.kind.is_message() && !folds {
            if let Some(content) = e.content.as_ref().and_then(unfolded_message) {
                return self.event(e, transparent, Some(PageContent::Stored(content)));
            }
        }
        self.render(&e.parsed(), transparent).map_content(PageContent::Folded)
    }
}

/// Renders a page read with its folding data and identities ([`store::pipelined::page_folded`]);
/// the identities of kickers, which the page does not carry, are loaded when there are any.
pub async fn folded_page_for<C: GenericClient>(
    c: &C,
    page: Vec<FoldedRow>,
    transparent: bool,
) -> ApiResult<Vec<Event<PageContent>>> {
    let mut ctx = EventContext::default();
    let mut rows = Vec::with_capacity(page.len());
    for r in page {
        for record in r.sender.into_iter().chain(r.deleter) {
            ctx.identities.entry(record.id).or_insert(record);
        }
        if let Some(edit) = r.edit {
            ctx.edits.insert(r.event.id, edit);
        }
        if let Some(deletion) = r.deletion {
            ctx.deletions.insert(r.event.id, deletion);
        }
        rows.push(r.event);
    }
    let mut kickers: Vec<IdentityId> = rows
        .iter()
        .filter(|e| e.kind == EventType::MemberKick)
        .filter_map(|e| kicker_of(&e.parsed()))
        .filter(|k| !ctx.identities.contains_key(k))
        .collect();
    if !kickers.is_empty() {
        kickers.sort_unstable();
        kickers.dedup();
        ctx.identities.extend(store::identities::get_many(c, &kickers).await?.into_iter().map(|r| (r.id, r)));
    }
    Ok(rows.iter().map(|e| ctx.render_stored(e, transparent)).collect())
}

/// Reads the unread counters of `who` for `boxes` in one MGET (on a Redis Cluster the counters of
/// one identity share a slot); a missing key is 0.
/// Counters are best effort (§6.4), so a Redis failure reads as zeros.
async fn counters(redis: &web_kit::redis::Redis, who: IdentityId, boxes: &[BoxId]) -> HashMap<BoxId, i64> {
    if boxes.is_empty() {
        return HashMap::new();
    }
    let keys: Vec<String> = boxes.iter().map(|b| redis.keys().counter(who, *b)).collect();
    match web_kit::redis::query::<Vec<Option<i64>>>(redis, redis::cmd("MGET").arg(&keys)).await {
        Ok(values) => boxes.iter().copied().zip(values.into_iter().map(|v| v.unwrap_or(0))).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "reading unread counters failed");
            HashMap::new()
        }
    }
}

/// The Box objects of §5.3 for `caller`, in the order of `rows`, with a fixed number of queries.
pub async fn boxes_for<C: GenericClient>(
    c: &C,
    redis: &web_kit::redis::Redis,
    caller: IdentityId,
    rows: &[BoxRow],
) -> ApiResult<Vec<BoxView>> {
    let ids: Vec<BoxId> = rows.iter().map(|b| b.id).collect();
    let creators: Vec<IdentityId> = rows.iter().map(|b| b.creator_id).collect();
    let creators: HashMap<IdentityId, IdentityRecord> =
        store::identities::get_many(c, &creators).await?.into_iter().map(|r| (r.id, r)).collect();
    let mut settings = store::boxes::settings_for(c, caller, &ids).await?;
    let mut last = store::events::last_visible(c, &ids).await?;
    let last_rows: Vec<EventRow> = ids.iter().filter_map(|id| last.remove(id)).collect();
    let ctx = EventContext::load(c, &last_rows, true).await?;
    let mut last_events: HashMap<BoxId, Event> = last_rows.iter().map(|e| (e.box_id, ctx.render(e, false))).collect();
    let counts = counters(redis, caller, &ids).await;
    Ok(rows
        .iter()
        .map(|b| BoxView {
            id: b.id,
            server_created_at: b.created_at,
            public_key: b.public_key.clone(),
            title: b.title.clone(),
            access_mode: b.access_mode,
            creator: view_of(&creators, b.creator_id, b.is_admin(caller)),
            events_count: counts.get(&b.id).copied().unwrap_or(0),
            settings: settings.remove(&b.id).unwrap_or(BoxSetting { identity_id: caller, box_id: b.id, muted: false }),
            last_event: last_events.remove(&b.id),
        })
        .collect())
}

/// The Box object of one box for `caller`.
pub async fn box_for<C: GenericClient>(
    c: &C,
    redis: &web_kit::redis::Redis,
    caller: IdentityId,
    row: &BoxRow,
) -> ApiResult<BoxView> {
    let mut views = boxes_for(c, redis, caller, std::slice::from_ref(row)).await?;
    views.pop().ok_or_else(|| anyhow::anyhow!("building the view of box {}", row.id).into())
}

/// Queues `event.new` of an event to each of `recipients` (duplicates are sent once), the event
/// as `render(transparent)` gives it ([`EventContext::render`], or [`EventContext::render_stored`]
/// for a row read as text). The admin's copy has transparent identity views, everyone else's
/// not; each of the two is serialised once, whatever the number of recipients.
pub fn announce<C: Serialize>(
    outbox: &mut crate::notify::Outbox,
    render: impl Fn(bool) -> Event<C>,
    admin: IdentityId,
    recipients: &[IdentityId],
) {
    use domain::realtime::{types, Envelope};
    let mut seen = HashSet::new();
    let (admins, others): (Vec<IdentityId>, Vec<IdentityId>) =
        recipients.iter().copied().filter(|r| seen.insert(*r)).partition(|r| *r == admin);
    if !admins.is_empty() {
        outbox.publish_text(admins, Envelope::text(types::EVENT_NEW, &render(true)));
    }
    if !others.is_empty() {
        outbox.publish_text(others, Envelope::text(types::EVENT_NEW, &render(false)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unfolded(stored: &str) -> Option<Value> {
        unfolded_message(&JsonText(stored.to_owned())).and_then(|raw| serde_json::from_str(raw.get()).ok())
    }

    #[test]
    fn an_unfolded_message_is_its_stored_object_with_a_null_edit_time() {
        let stored = serde_json::json!({"encrypted": "YWJj", "public_key": "a2V5"});
        let mut expected = stored.clone();
        expected["last_edited_at"] = Value::Null;
        assert_eq!(unfolded(&stored.to_string()), Some(expected.clone()));
        assert_eq!(unfolded(r#"{"encrypted": "YWJj", "public_key": "a2V5"}  "#), Some(expected));
        assert_eq!(unfolded("{}"), Some(serde_json::json!({"last_edited_at": null})));
        assert_eq!(unfolded("{ }"), Some(serde_json::json!({"last_edited_at": null})));
    }

    #[test]
    fn stored_content_that_is_not_an_object_is_left_to_folding() {
        assert_eq!(unfolded("null"), None);
        assert_eq!(unfolded("[1]"), None);
        assert_eq!(unfolded(r#""}""#), None);
    }
}
