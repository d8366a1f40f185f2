//! A websocket connection over the TCP stream itself, once the 101 has been sent.
//!
//! actix-http's HTTP/1 dispatcher keeps an 8 KiB read buffer and an 8 KiB write buffer for the
//! whole life of a connection, which would make them most of an idle socket's memory. Here the
//! socket holds no buffer while it waits: it awaits readiness on the stream, reads into a buffer
//! only when bytes are there and lets the buffer go once every frame in it is decoded; an outgoing
//! frame is encoded into a buffer of its own size and written at once. The frame codec is
//! actix-http's, so framing, masking and size limits are the same as actix-ws's.

use std::io;

use actix_codec::{Decoder, Encoder};
use actix_http::ws::{Codec, Frame};
use actix_web::web::BytesMut;
use actix_ws::{Message, ProtocolError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// How much is read at a time when the client has sent something.
const READ_CHUNK: usize = 4096;

pub struct Conn {
    io: TcpStream,
    codec: Codec,
    /// Bytes read but not yet decoded; unallocated between frames.
    read_buf: BytesMut,
}

impl Conn {
    /// `pending` is what the client sent after its handshake request and was already read.
    pub fn new(io: TcpStream, pending: &[u8], max_frame_bytes: usize) -> Self {
        // Frames are small and latency matters more than packet count.
        let _ = io.set_nodelay(true);
        Conn { io, codec: Codec::new().max_size(max_frame_bytes), read_buf: BytesMut::from(pending) }
    }

    /// The next frame from the client, or `None` once it has closed the stream.
    ///
    /// Cancel-safe: the only await is for readiness, so a call dropped by a `select!` loses no
    /// bytes.
    pub async fn recv(&mut self) -> Option<Result<Frame, ProtocolError>> {
        loop {
            match self.codec.decode(&mut self.read_buf) {
                Ok(Some(frame)) => {
                    self.release_read_buf();
                    return Some(Ok(frame));
                }
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            self.release_read_buf();
            // Poll-style readiness, not `readable()`: it replaces the waker the HTTP dispatcher
            // left on the stream, which would otherwise keep that finished connection task's
            // memory alive for as long as the socket is idle.
            if let Err(e) = std::future::poll_fn(|cx| self.io.poll_read_ready(cx)).await {
                return Some(Err(ProtocolError::Io(e)));
            }
            self.read_buf.reserve(READ_CHUNK);
            match self.io.try_read_buf(&mut self.read_buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Some(Err(ProtocolError::Io(e))),
            }
        }
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

    fn release_read_buf(&mut self) {
        if self.read_buf.is_empty() && self.read_buf.capacity() > 0 {
            self.read_buf = BytesMut::new();
        }
    }
}
