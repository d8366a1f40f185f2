//! A websocket connection over the TCP stream itself, once the 101 has been sent.
//!
//! actix-http's HTTP/1 dispatcher keeps an 8 KiB read buffer and an 8 KiB write buffer for the
//! whole life of a connection, which would make them most of an idle socket's memory. Here the
//! socket holds no buffer while it waits: it awaits readiness on the stream, reads into a buffer
//! only when bytes are there and lets the buffer go once every frame in it is decoded; an outgoing
//! frame is encoded into a buffer of its own size and written at once. The frame codec is
//! actix-http's (framing, masking, reserved bits, control frame rules); this module adds what it
//! leaves to its caller: refusing a frame by its header, reassembling fragmented messages and
//! bounding the buffers.
//!
//! Bounds: a frame whose header announces more than the message limit, or a continuation that
//! would take the message past it, is refused before its payload is read; the read buffer never
//! holds more than one frame header, the limit and one read chunk; a fragmented message is kept
//! only up to the limit.

use std::io;

use actix_codec::{Decoder, Encoder};
use actix_http::ws::{Codec, Frame, Item};
use actix_web::web::{BufMut, BytesMut};
use actix_ws::{Message, ProtocolError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// How much is read at a time when the client has sent something.
const READ_CHUNK: usize = 4096;
/// Longest frame header: 2 bytes, a 64-bit length and the mask.
const MAX_HEADER: usize = 14;
/// Largest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Why a connection cannot go on.
#[derive(Debug)]
pub enum RecvError {
    /// A frame or a message over the limit (close 1009).
    TooBig,
    /// A violation of RFC 6455 (close 1002).
    Protocol(ProtocolError),
    /// The stream failed.
    Io(io::Error),
}

/// A message being reassembled from continuation frames.
struct Partial {
    text: bool,
    data: BytesMut,
}

pub struct Conn {
    io: TcpStream,
    codec: Codec,
    max_message: usize,
    /// Bytes read but not yet decoded; unallocated between frames.
    read_buf: BytesMut,
    /// The fragments of a message received so far; `None` between messages.
    partial: Option<Partial>,
}

/// Opcode and announced payload length of the frame at the start of `buf`, once its length
/// field has arrived.
fn announced(buf: &[u8]) -> Option<(u8, u64)> {
    let (first, second) = (*buf.first()?, *buf.get(1)?);
    let len = match second & 0x7f {
        126 => u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
        127 => u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?),
        n => u64::from(n),
    };
    Some((first & 0x0f, len))
}

impl Conn {
    /// `pending` is what the client sent after its handshake request and was already read.
    /// `max_message` bounds a frame's payload and a reassembled message alike.
    pub fn new(io: TcpStream, pending: &[u8], max_message: usize) -> Self {
        // Frames are small and latency matters more than packet count.
        let _ = io.set_nodelay(true);
        Conn {
            io,
            codec: Codec::new().max_size(max_message),
            max_message,
            read_buf: BytesMut::from(pending),
            partial: None,
        }
    }

    /// The next complete message or control frame from the client (never a `Continuation`), or
    /// `None` once it has closed the stream. After an error the connection is unusable.
    ///
    /// Cancel-safe: the only await is for readiness, so a call dropped by a `select!` loses no
    /// bytes.
    pub async fn recv(&mut self) -> Option<Result<Frame, RecvError>> {
        loop {
            match self.codec.decode(&mut self.read_buf) {
                Ok(Some(frame)) => {
                    self.release_read_buf();
                    match self.assemble(frame) {
                        Ok(Some(frame)) => return Some(Ok(frame)),
                        Ok(None) => continue,
                        Err(e) => return Some(Err(e)),
                    }
                }
                Ok(None) => {}
                Err(ProtocolError::Overflow) => return Some(Err(RecvError::TooBig)),
                Err(e) => return Some(Err(RecvError::Protocol(e))),
            }
            if let Err(e) = self.check_header() {
                return Some(Err(e));
            }
            self.release_read_buf();
            // Poll-style readiness, not `readable()`: it replaces the waker the HTTP dispatcher
            // left on the stream, which would otherwise keep that finished connection task's
            // memory alive for as long as the socket is idle.
            if let Err(e) = std::future::poll_fn(|cx| self.io.poll_read_ready(cx)).await {
                return Some(Err(RecvError::Io(e)));
            }
            // The frame in progress is within the limit (checked above), so this only stops a
            // read from going past the frame by more than one chunk.
            let room = (MAX_HEADER + self.max_message + READ_CHUNK).saturating_sub(self.read_buf.len());
            if room == 0 {
                return Some(Err(RecvError::TooBig));
            }
            let want = room.min(READ_CHUNK);
            self.read_buf.reserve(want);
            match self.io.try_read_buf(&mut (&mut self.read_buf).limit(want)) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Some(Err(RecvError::Io(e))),
            }
        }
    }

    /// Refuses the incomplete frame at the start of the buffer by its header: a data frame that
    /// would take its message past the limit, a control frame over 125 bytes.
    fn check_header(&self) -> Result<(), RecvError> {
        let Some((opcode, len)) = announced(&self.read_buf) else { return Ok(()) };
        if opcode & 0x8 != 0 {
            if len > MAX_CONTROL_PAYLOAD {
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                return Err(RecvError::Protocol(ProtocolError::InvalidLength(len)));
            }
            return Ok(());
        }
        let before = match (&self.partial, opcode) {
            (Some(partial), 0) => partial.data.len() as u64,
            _ => 0,
        };
        if before.saturating_add(len) > self.max_message as u64 {
            return Err(RecvError::TooBig);
        }
        Ok(())
    }

    /// Joins continuation frames into one message; `Ok(None)` while the message is incomplete.
    fn assemble(&mut self, frame: Frame) -> Result<Option<Frame>, RecvError> {
        let Frame::Continuation(item) = frame else { return Ok(Some(frame)) };
        let (first, fragment, last) = match item {
            Item::FirstText(b) => (Some(true), b, false),
            Item::FirstBinary(b) => (Some(false), b, false),
            Item::Continue(b) => (None, b, false),
            Item::Last(b) => (None, b, true),
        };
        // The codec refuses a continuation outside a message and a new message inside one.
        let partial = match first {
            Some(text) => self.partial.insert(Partial { text, data: BytesMut::new() }),
            None => self.partial.as_mut().ok_or(RecvError::Protocol(ProtocolError::ContinuationNotStarted))?,
        };
        if partial.data.len() + fragment.len() > self.max_message {
            self.partial = None;
            return Err(RecvError::TooBig);
        }
        partial.data.extend_from_slice(&fragment);
        if !last {
            return Ok(None);
        }
        let Some(Partial { text, data }) = self.partial.take() else { return Ok(None) };
        let data = data.freeze();
        Ok(Some(if text { Frame::Text(data) } else { Frame::Binary(data) }))
    }

    /// Encodes `message` as one frame and writes it out.
    pub async fn send(&mut self, message: Message) -> io::Result<()> {
        let mut frame = BytesMut::new();
        self.codec.encode(message, &mut frame).map_err(io::Error::other)?;
        self.io.write_all(&frame).await
    }

    /// Sends FIN after everything written so far.
    pub async fn shutdown(&mut self) {
        let _ = self.io.shutdown().await;
    }

    /// After [`Conn::shutdown`]: reads and discards what the client still sends until it closes
    /// its side. Closing a socket with unread bytes makes the kernel reset the connection, which
    /// can destroy the close frame before the client has read it.
    pub async fn discard_until_eof(&mut self) {
        self.partial = None;
        let mut sink = BytesMut::with_capacity(READ_CHUNK);
        loop {
            sink.clear();
            if std::future::poll_fn(|cx| self.io.poll_read_ready(cx)).await.is_err() {
                return;
            }
            match self.io.try_read_buf(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }

    fn release_read_buf(&mut self) {
        if self.read_buf.is_empty() && self.read_buf.capacity() > 0 {
            self.read_buf = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::announced;

    #[test]
    fn reads_the_announced_length_from_every_header_form() {
        assert_eq!(announced(&[0x81]), None);
        assert_eq!(announced(&[0x81, 0x85]), Some((1, 5)));
        assert_eq!(announced(&[0x02, 0xfe, 0x01]), None);
        assert_eq!(announced(&[0x02, 0xfe, 0x01, 0x00]), Some((2, 256)));
        assert_eq!(announced(&[0x01, 0xff, 0, 0, 0x01, 0, 0, 0, 0]), None);
        assert_eq!(announced(&[0x01, 0xff, 0, 0, 0x01, 0, 0, 0, 0, 0]), Some((1, 1 << 40)));
        assert_eq!(announced(&[0x89, 0xfe, 0x00, 0x7e]), Some((9, 126)));
    }
}
