//! realtime's websocket (§9): the handshake, `ready` (with what a `?since=` reconnection
//! replayed before it), and waiting for envelopes.

use std::collections::VecDeque;
use std::time::Duration;

use domain::event::{Event, EventType};
use domain::realtime::{types, Envelope, Position, Ready};
use domain::{EventId, IdentityId};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::error::{Error, Result};
use crate::Auth;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long [`Socket::next_of`] and its kin wait by default.
pub const WAIT: Duration = Duration::from_secs(5);

/// An open socket, past its `ready`.
pub struct Socket {
    ws: Ws,
    pub ready: Ready,
    /// The frames a `?since=` reconnection replayed before `ready` (what was missed), oldest
    /// first, as sent: each ends with its history position. Handed out before anything later.
    replayed: VecDeque<String>,
}

impl Socket {
    /// Opens `/box-users/{identity}/ws` on the realtime at `base` (`http://…` or `ws://…`) and
    /// waits for `ready`; `since` asks for recovery from a history position, and what it replays
    /// is kept ([`Socket::take_replayed`], [`Socket::next_within`]).
    pub async fn connect(base: &str, identity: IdentityId, auth: &Auth, since: Option<&str>) -> Result<Socket> {
        let mut req = ws_url(base, identity, since, None).into_client_request()?;
        let (name, value) = match auth {
            Auth::Bearer(header) => (reqwest::header::AUTHORIZATION, header.as_str()),
            Auth::Cookies { cookie, .. } => (reqwest::header::COOKIE, cookie.as_str()),
        };
        let value = HeaderValue::from_str(value).map_err(|_| Error::Stream("unusable credentials".into()))?;
        req.headers_mut().insert(name, value);
        Socket::open(req, identity).await
    }

    /// [`Socket::connect`] with the access token in the query (`?access_token=`), as a browser
    /// does, since it cannot set a header on a websocket (§3.2).
    pub async fn connect_with_query_token(
        base: &str,
        identity: IdentityId,
        access_token: &str,
        since: Option<&str>,
    ) -> Result<Socket> {
        let req = ws_url(base, identity, since, Some(access_token)).into_client_request()?;
        Socket::open(req, identity).await
    }

    async fn open(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
        identity: IdentityId,
    ) -> Result<Socket> {
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        // Replaced by the `ready` the server sends once the replay, if any, is sent.
        let placeholder = Ready { identity_id: identity, position: Position { ms: 0, seq: 0 }, recovered: None };
        let mut socket = Socket { ws, ready: placeholder, replayed: VecDeque::new() };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let text = match socket.next_text_within(left).await {
                Ok(Some(text)) => text,
                Ok(None) => return Err(Error::Stream(format!("closed while waiting for {}", types::READY))),
                Err(Error::Stream(_)) => return Err(Error::Stream(format!("no {} within {WAIT:?}", types::READY))),
                Err(e) => return Err(e),
            };
            let envelope: Envelope = serde_json::from_str(&text).map_err(bad_envelope)?;
            if envelope.kind == types::READY {
                socket.ready =
                    serde_json::from_value(envelope.object).map_err(|e| Error::Stream(format!("ready: {e}")))?;
                return Ok(socket);
            }
            socket.replayed.push_back(text);
        }
    }

    /// The replayed frames not handed out yet (see [`Socket`]), as sent, oldest first.
    pub fn take_replayed(&mut self) -> Vec<String> {
        self.replayed.drain(..).collect()
    }

    /// The next text frame within `wait`, answering pings; `None` when the socket closed.
    async fn next_text_within(&mut self, wait: Duration) -> Result<Option<String>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| Error::Stream(format!("nothing within {wait:?}")))?;
            match msg {
                Some(Ok(Message::Text(t))) => return Ok(Some(t.to_string())),
                Some(Ok(Message::Ping(p))) => self.ws.send(Message::Pong(p)).await?,
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// The next envelope within `wait` (the replay first), answering pings; `None` when the
    /// socket closed.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<Envelope>> {
        let text = match self.replayed.pop_front() {
            Some(text) => Some(text),
            None => self.next_text_within(wait).await?,
        };
        match text {
            Some(t) => serde_json::from_str(&t).map(Some).map_err(bad_envelope),
            None => Ok(None),
        }
    }

    /// The next envelope of `kind`, skipping others, within [`WAIT`].
    pub async fn next_of(&mut self, kind: &str) -> Result<Envelope> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Ok(Some(e)) if e.kind == kind => return Ok(e),
                Ok(Some(_)) => {}
                Ok(None) => return Err(Error::Stream(format!("closed while waiting for {kind}"))),
                Err(Error::Stream(_)) => return Err(Error::Stream(format!("no {kind} within {WAIT:?}"))),
                Err(e) => return Err(e),
            }
        }
    }

    /// The event of the next `event.new` for which `pick` holds.
    async fn next_event_where(&mut self, pick: impl Fn(&Event) -> bool) -> Result<Event> {
        loop {
            let e = self.next_of(types::EVENT_NEW).await?;
            let event: Event = serde_json::from_value(e.object).map_err(|e| Error::Stream(format!("event: {e}")))?;
            if pick(&event) {
                return Ok(event);
            }
        }
    }

    /// The next `event.new` of type `kind`.
    pub async fn next_event(&mut self, kind: EventType) -> Result<Event> {
        self.next_event_where(|e| e.kind == kind).await
    }

    /// The `event.new` of event `id` (a sender's own events reach its sockets too).
    pub async fn event_with_id(&mut self, id: EventId) -> Result<Event> {
        self.next_event_where(|e| e.id == id).await
    }

    /// The code of the close frame that arrives within `wait`, skipping other messages.
    pub async fn close_code(&mut self, wait: Duration) -> Result<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Err(Error::Stream(format!("no close within {wait:?}"))),
                Ok(Some(Ok(Message::Close(Some(frame))))) => return Ok(u16::from(frame.code)),
                Ok(Some(Ok(Message::Close(None)))) => return Ok(1005),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(e.into()),
                Ok(None) => return Err(Error::Stream("ended without a close frame".into())),
            }
        }
    }

    /// Sends a text frame (an `ack`, say).
    pub async fn send_text(&mut self, text: String) -> Result<()> {
        Ok(self.ws.send(Message::Text(text.into())).await?)
    }

    /// Closes the socket from this side.
    pub async fn close(&mut self) -> Result<()> {
        Ok(self.ws.close(None).await?)
    }

    /// The raw stream, for what this type does not cover; take the replay first
    /// ([`Socket::take_replayed`]), or it is dropped.
    pub fn into_inner(self) -> Ws {
        self.ws
    }
}

fn bad_envelope(e: serde_json::Error) -> Error {
    Error::Stream(format!("envelope: {e}"))
}

/// The socket's URL: `ws://…/box-users/{identity}/ws`, with `since` and `access_token` in the
/// query when given (both are URL-safe: a history position and a JWT).
fn ws_url(base: &str, identity: IdentityId, since: Option<&str>, access_token: Option<&str>) -> String {
    let base = base.trim_end_matches('/').replacen("http", "ws", 1);
    let query: Vec<String> = [("since", since), ("access_token", access_token)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect();
    let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
    format!("{base}/box-users/{identity}/ws{query}")
}
