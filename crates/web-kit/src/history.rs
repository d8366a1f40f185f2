//! The per-identity history behind recovery on reconnect (issue 17, README "Recovery on
//! reconnect"): every envelope published to `user_{id}:ws` is also appended to the Redis stream
//! `user_{id}:history`, by one script that appends, trims and publishes, so an envelope is never
//! published without a position nor recorded without being published. The published text carries
//! its position (`"position":"<stream id>"`, last field); realtime replays the stream after a
//! `?since=` position. A publish made while serving a request also carries the request's trace
//! (`"trace":"<traceparent>"`, just before the position) for realtime to log; clients never see it.
//!
//! Each entry also records the id of the entry before it (`p`). A reconnection from position P is
//! covered only when the first entry after P says its predecessor is P: trimming (by length or
//! age), a key that expired, or a Redis that restarted without the entries all break that chain,
//! and the answer is then "not recovered" rather than a silent gap. A stream that does not exist
//! when a socket becomes ready gets an empty marker entry, so the position handed out is always
//! a real entry of the chain.
//!
//! The scripts touch one key each. On a Redis Cluster the history is named
//! `{user_{id}:ws}:history` (`KeyScheme::Cluster`): its hash tag is the channel's name, so the key
//! and the shard channel share a slot and the script, run on that slot's master, `SPUBLISH`es
//! there; only the nodes of that shard carry the message.

use domain::realtime::{user_channel, KeyScheme, Position};
use domain::IdentityId;

/// Bounds of one identity's history.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLimits {
    /// Entries kept at least (`MAXLEN ~`: Redis may keep a few more).
    pub max_len: u64,
    /// Entries older than this are trimmed, and the whole key expires after this long without a
    /// publish, in milliseconds.
    pub max_age_ms: u64,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits { max_len: 1000, max_age_ms: 600_000 }
    }
}

/// KEYS[1] the stream; ARGV: channel, envelope, max length, max age (ms), traceparent ('' for
/// none), publish command (`PUBLISH` or `SPUBLISH`). Returns the position. The trace rides on the published text only, never in the history.
const PUBLISH: &str = r#"
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0-0'
if #last > 0 then prev = last[1][1] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'p', prev, 'e', ARGV[2])
local t = redis.call('TIME')
local floor = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[4])
if floor > 0 then redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d', floor)) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local env = ARGV[2]
if string.sub(env, -1) == '}' then
  local trace = ''
  if ARGV[5] and ARGV[5] ~= '' then trace = ',"trace":"' .. ARGV[5] .. '"' end
  env = string.sub(env, 1, -2) .. trace .. ',"position":"' .. id .. '"}'
end
redis.call(ARGV[6], ARGV[1], env)
return id
"#;

/// KEYS[1] the stream; ARGV: since ('' for none), most entries, most bytes, max age (ms).
/// Returns {head} or {head, entries} or {head, 'too_much'}.
const READ: &str = r#"
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local head
if #last == 0 then
  head = redis.call('XADD', KEYS[1], '*', 'p', '0-0', 'e', '')
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  head = last[1][1]
end
if ARGV[1] == '' then return {head} end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', tonumber(ARGV[2]) + 1)
if #entries > tonumber(ARGV[2]) then return {head, 'too_much'} end
local bytes = 0
for _, entry in ipairs(entries) do
  for i = 1, #entry[2], 2 do bytes = bytes + #entry[2][i + 1] end
end
if bytes > tonumber(ARGV[3]) then return {head, 'too_much'} end
return {head, entries}
"#;

/// The command that appends `envelope` to the history of `to` and publishes it with its
/// position, keys named by `keys`; it can go into a pipeline. Replies with the position.
pub fn publish_cmd(keys: KeyScheme, to: IdentityId, envelope: &str, limits: HistoryLimits) -> redis::Cmd {
    publish_traced_cmd(keys, to, envelope, limits, None)
}

/// [`publish_cmd`], the published text also carrying `traceparent` as a `"trace"` field before
/// its position, which realtime logs and takes out before delivery
/// (`domain::realtime::split_trace`). Anything but a valid `traceparent` is left out.
pub fn publish_traced_cmd(
    keys: KeyScheme,
    to: IdentityId,
    envelope: &str,
    limits: HistoryLimits,
    traceparent: Option<&str>,
) -> redis::Cmd {
    let trace = traceparent.filter(|t| crate::telemetry::parse_traceparent(t).is_some()).unwrap_or_default();
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(PUBLISH)
        .arg(1)
        .arg(keys.history(to))
        .arg(user_channel(to))
        .arg(envelope)
        .arg(limits.max_len.max(1))
        .arg(limits.max_age_ms.max(1))
        .arg(trace)
        .arg(keys.publish());
    cmd
}

/// Bounds of one replay.
#[derive(Debug, Clone, Copy)]
pub struct ReplayLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
}

/// What the history says to a socket becoming ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The newest position: whatever is published after it reaches the socket live.
    pub head: Position,
    /// `None` without `since`; otherwise whether the history covered it and the envelopes after
    /// it, positions included, oldest first (empty when not recovered).
    pub replay: Option<(bool, Vec<String>)>,
}

/// The command behind [`recovery`], for callers with their own connection handling.
pub fn read_cmd(
    keys: KeyScheme,
    identity: IdentityId,
    since: Option<Position>,
    limits: ReplayLimits,
    max_age_ms: u64,
) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(READ)
        .arg(1)
        .arg(keys.history(identity))
        .arg(since.map(|p| p.to_string()).unwrap_or_default())
        .arg(limits.max_entries)
        .arg(limits.max_bytes)
        .arg(max_age_ms.max(1));
    cmd
}

/// Reads the head of `identity`'s history and, with `since`, what follows it.
pub async fn recovery(
    conn: &crate::redis::Redis,
    identity: IdentityId,
    since: Option<Position>,
    limits: ReplayLimits,
    max_age_ms: u64,
) -> anyhow::Result<Recovery> {
    let reply: redis::Value =
        crate::redis::query(conn, &read_cmd(conn.keys(), identity, since, limits, max_age_ms)).await?;
    parse_recovery(reply, since)
}

type Entry = (String, Vec<(String, String)>);

fn parse_recovery(reply: redis::Value, since: Option<Position>) -> anyhow::Result<Recovery> {
    use anyhow::Context;
    let redis::Value::Array(mut parts) = reply else { anyhow::bail!("unexpected history reply") };
    if parts.is_empty() {
        anyhow::bail!("empty history reply");
    }
    let rest = parts.split_off(1);
    let head: String = redis::from_redis_value(&parts[0]).context("history head")?;
    let head = Position::parse(&head).context("history head is not a stream id")?;
    let Some(since) = since else { return Ok(Recovery { head, replay: None }) };
    let Some(found) = rest.into_iter().next() else { anyhow::bail!("history reply without entries") };
    if matches!(&found, redis::Value::SimpleString(s) if s == "too_much")
        || matches!(&found, redis::Value::BulkString(b) if b == b"too_much")
    {
        return Ok(Recovery { head, replay: Some((false, Vec::new())) });
    }
    let entries: Vec<Entry> = redis::from_redis_value(&found).context("history entries")?;
    let field = |fields: &[(String, String)], name: &str| {
        fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
    };
    let covered = match entries.first() {
        None => head == since,
        Some((_, fields)) => Position::parse(&field(fields, "p")) == Some(since),
    };
    if !covered {
        return Ok(Recovery { head, replay: Some((false, Vec::new())) });
    }
    let replay = entries
        .into_iter()
        .filter_map(|(id, fields)| {
            let envelope = field(&fields, "e");
            // Empty entries are the markers of a history created by a reader.
            (!envelope.is_empty()).then(|| domain::realtime::with_position(&envelope, &id))
        })
        .collect();
    Ok(Recovery { head, replay: Some((true, replay)) })
}
