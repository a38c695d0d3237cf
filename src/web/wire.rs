//! A WebSocket connection after its opening handshake: the TCP stream, tungstenite's protocol
//! state for what the peer sends, and a writer of Whisper's own for what the server sends.
//!
//! Reading — frame parsing, masks, UTF-8, fragments, control frames, the close handshake — is
//! tungstenite's (`WebSocketContext`), checked by the Autobahn|Testsuite run
//! (`tests/autobahn.rs`). The frames tungstenite writes itself (pong replies, close frames) are
//! not written to the socket by it: they are captured here ([`CONTROL_LIMIT`] bytes at most;
//! past that tungstenite keeps them and retries) and go out at the next frame boundary.
//!
//! Writing data frames is this module's. A frame's payload is the event's shared buffer, the
//! same bytes for every member of the room; the 2–10 byte header is made on the stack, and one
//! `writev` sends the headers and payloads of everything queued, with no copy into a
//! per-socket write buffer. So a socket keeps no write buffer at all between writes (a
//! tungstenite write buffer grows to its largest batch and never shrinks: kilobytes per
//! member, issue 12), and a message of any size goes out whole.
//!
//! Nothing here waits on its own: [`Wire::poll_read`] and [`Wire::poll_write`] take the
//! context to wake, so the connection's loop (`web::conn`) can give reading and writing wakers
//! of their own; the `async` helpers below serve the goodbye and the conformance run.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Message, Utf8Bytes};

use crate::chat::protocol::Frame;
use crate::web::listener::Counted;

/// Bytes of control frames (pongs, close) held for writing; a pong or close frame is at most
/// 127 bytes, and a peer that sends pings faster than it reads gets its later pongs deferred
/// by tungstenite (which answers only the latest ping, as RFC 6455 §5.5.3 allows).
pub const CONTROL_LIMIT: usize = 512;
/// Frames gathered into one `writev` when many are queued (more go out in further calls): a
/// member of a busy big room gets its backlog in few system calls (scenario 9 of the bench:
/// 16 here cost half the big room's rate: 1.50 M against 3.04 M deliveries/s).
const MAX_FRAMES_PER_WRITE: usize = 64;
/// Frames of the small gather used when at most this many are queued, the usual delivery: its
/// arrays are made on every call, and 64 frames' worth made a third of a delivery's
/// instructions.
const FEW_FRAMES: usize = 2;
/// The keep-alive ping the server sends (opcode 0x9, 8 bytes of payload), unmasked.
const PING: &[u8] = b"\x89\x08whisper!";
/// How long the close frame may take once a connection ends.
pub const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection the server closed waits for the peer to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// Why the connection ended, and the close frame to send if any.
pub type Close = Option<(u16, &'static str)>;

/// What a data frame carries: its opcode and payload.
pub trait Payload {
    /// 0x1 text, 0x2 binary.
    fn opcode(&self) -> u8;
    fn payload(&self) -> &[u8];
}

impl Payload for Frame {
    fn opcode(&self) -> u8 {
        0x1
    }
    fn payload(&self) -> &[u8] {
        self.as_str().as_bytes()
    }
}

/// A message echoed as it came (the conformance run's echo).
pub enum Echo {
    Text(Utf8Bytes),
    Binary(Bytes),
}

/// The stream under a socket: the accepted TCP connection itself (with its connection slot),
/// or, for a connection that is not one of the listener's, hyper's upgraded stream.
pub enum Io {
    Tcp(Counted),
    Upgraded(TokioIo<Upgraded>),
}

impl Io {
    /// The connection hyper hands over, unwrapped to the TCP stream when it is one of the
    /// listener's; `leftover` is what hyper read past the request (a frame sent early).
    pub fn from_upgraded(upgraded: Upgraded) -> (Io, Bytes) {
        match upgraded.downcast::<TokioIo<Counted>>() {
            Ok(parts) => (Io::Tcp(parts.io.into_inner()), parts.read_buf),
            Err(upgraded) => (Io::Upgraded(TokioIo::new(upgraded)), Bytes::new()),
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Upgraded(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Io::Upgraded(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Upgraded(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Upgraded(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Upgraded(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// One WebSocket connection (server side).
pub struct Wire {
    io: Io,
    ws: WebSocketContext,
    /// Control frames tungstenite wrote, not yet on the socket.
    control: Vec<u8>,
    /// Bytes of the first queued data frame (header and payload) already written.
    front_written: usize,
    /// Bytes written to the socket since the connection opened.
    written: u64,
}

/// tungstenite's view of the stream: reads come from the socket (waking `cx`), writes go to
/// the control buffer.
struct Capture<'a, 'b> {
    io: &'a mut Io,
    cx: &'a mut Context<'b>,
    control: &'a mut Vec<u8>,
}

impl Read for Capture<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut *self.io).poll_read(self.cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Capture<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // All or nothing, so the buffer only ever holds whole frames.
        if self.control.len() + buf.len() > CONTROL_LIMIT {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.control.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The header of an unmasked, final data frame of `len` bytes (RFC 6455 §5.2); its length.
fn header(opcode: u8, len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = 0x80 | opcode;
    if len < 126 {
        out[1] = len as u8;
    } else if len <= usize::from(u16::MAX) {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
    }
    header_len(len)
}

fn header_len(len: usize) -> usize {
    match len {
        0..126 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

impl Wire {
    /// `leftover`: bytes read past the handshake, the start of the peer's first frames.
    pub fn new(io: Io, leftover: Bytes, config: WebSocketConfig) -> Wire {
        let ws = if leftover.is_empty() {
            WebSocketContext::new(Role::Server, Some(config))
        } else {
            WebSocketContext::from_partially_read(leftover.to_vec(), Role::Server, Some(config))
        };
        Wire {
            io,
            ws,
            control: Vec::new(),
            front_written: 0,
            written: 0,
        }
    }

    /// The next message from the peer; `Pending` once the socket has nothing more (`cx` is
    /// woken when it has). A ping's pong is queued as it is read.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, tungstenite::Error>> {
        let mut capture = Capture {
            io: &mut self.io,
            cx,
            control: &mut self.control,
        };
        match self.ws.read(&mut capture) {
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                Poll::Pending
            }
            done => Poll::Ready(done),
        }
    }

    /// Queues a keep-alive ping; false when the control buffer is full (the peer reads
    /// nothing: its write deadline will end it).
    pub fn queue_ping(&mut self) -> bool {
        if self.control.len() + PING.len() > CONTROL_LIMIT {
            return false;
        }
        self.control.extend_from_slice(PING);
        true
    }

    /// Whether anything is waiting to be written (control frames or `queue`).
    pub fn has_output<T>(&self, queue: &VecDeque<T>) -> bool {
        !self.control.is_empty() || !queue.is_empty()
    }

    /// Bytes written to the socket so far: a write that advanced is not stuck.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes the control frames and every frame of `queue` (removing each once written);
    /// `Pending` when the socket takes no more (`cx` is woken when it does). A control frame
    /// never goes into the middle of a data frame.
    pub fn poll_write<T: Payload>(
        &mut self,
        cx: &mut Context<'_>,
        queue: &mut VecDeque<T>,
    ) -> Poll<io::Result<()>> {
        loop {
            if queue.is_empty() {
                self.front_written = 0;
            }
            let written = if queue.len() <= FEW_FRAMES {
                self.write_once::<T, FEW_FRAMES, { 2 * FEW_FRAMES + 1 }>(cx, queue)
            } else {
                self.write_once::<T, MAX_FRAMES_PER_WRITE, { 2 * MAX_FRAMES_PER_WRITE + 1 }>(
                    cx, queue,
                )
            };
            if !ready!(written)? || (queue.is_empty() && self.control.is_empty()) {
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// One `writev` of the control frames and up to `F` frames of `queue` (`S` = 2F + 1
    /// slices); `false` when there was nothing to write.
    fn write_once<T: Payload, const F: usize, const S: usize>(
        &mut self,
        cx: &mut Context<'_>,
        queue: &mut VecDeque<T>,
    ) -> Poll<io::Result<bool>> {
        debug_assert_eq!(S, 2 * F + 1);
        let mut headers = [[0u8; 10]; F];
        let mut slices = [IoSlice::new(&[]); S];
        let frames = queue.len().min(F);
        let mut lens = [0u8; F];
        for (i, frame) in queue.iter().take(frames).enumerate() {
            lens[i] = header(frame.opcode(), frame.payload().len(), &mut headers[i]) as u8;
        }
        let mut n = 0;
        let control_first = self.front_written == 0 && !self.control.is_empty();
        if control_first {
            slices[n] = IoSlice::new(&self.control);
            n += 1;
        }
        let mut skip = self.front_written;
        for (i, frame) in queue.iter().take(frames).enumerate() {
            for part in [&headers[i][..usize::from(lens[i])], frame.payload()] {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                slices[n] = IoSlice::new(&part[skip..]);
                skip = 0;
                n += 1;
            }
        }
        if n == 0 {
            return Poll::Ready(Ok(false));
        }
        let wrote = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]))?;
        if wrote == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.written += wrote as u64;
        let mut left = wrote;
        if control_first {
            let taken = left.min(self.control.len());
            self.control.drain(..taken);
            left -= taken;
        }
        while left > 0 {
            let Some(front) = queue.front() else { break };
            let len = front.payload().len();
            let total = len + header_len(len);
            let rest = total - self.front_written;
            if left >= rest {
                queue.pop_front();
                self.front_written = 0;
                left -= rest;
            } else {
                self.front_written += left;
                left = 0;
            }
        }
        Poll::Ready(Ok(true))
    }

    /// Drops the queued frames that have not started; one already partly written stays, so
    /// the stream stays well-formed for the close frame.
    pub fn keep_started<T>(&self, queue: &mut VecDeque<T>) {
        queue.truncate(usize::from(self.front_written > 0));
    }

    /// Queues the close frame (or, after the peer's close, tungstenite's reply to it).
    fn queue_close(&mut self, close: Close) {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut capture = Capture {
            io: &mut self.io,
            cx: &mut cx,
            control: &mut self.control,
        };
        // The control buffer holds at most a pong besides, so a close frame fits; what does
        // not (an earlier reply still queued) is kept by tungstenite and flushed on retry.
        let _ = match close {
            Some((code, reason)) => self.ws.close(
                &mut capture,
                Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                }),
            ),
            None => self.ws.flush(&mut capture),
        };
    }

    /// Ends the connection: writes what was started, then `close` (or, when the peer closed,
    /// the reply tungstenite queued) within [`CLOSE_WRITE_TIMEOUT`]; a peer that cannot take
    /// even that is dropped with its TCP connection. After a close of the server's own the
    /// connection lingers: its side of TCP is shut and what the peer still sends is read and
    /// dropped, until the peer closes or for at most [`LINGER`]. Closed at once instead, a
    /// connection with unread bytes (the rest of a frame over the limit, say) ends in a TCP
    /// reset, which can throw away the close frame before the peer reads it (RFC 6455 §7.1.1).
    pub async fn goodbye<T: Payload>(&mut self, mut queue: VecDeque<T>, close: Close) {
        self.keep_started(&mut queue);
        let send = async {
            self.queue_close(close);
            poll_fn(|cx| self.poll_write(cx, &mut queue)).await?;
            // Once more for a close frame tungstenite kept because pongs filled the control
            // buffer (now written); otherwise this writes nothing.
            self.queue_close(close);
            poll_fn(|cx| self.poll_write(cx, &mut queue)).await
        };
        match tokio::time::timeout(CLOSE_WRITE_TIMEOUT, send).await {
            Ok(Ok(())) if close.is_some() => self.linger().await,
            _ => {}
        }
    }

    async fn linger(&mut self) {
        use tokio::io::AsyncReadExt;
        let io = &mut self.io;
        let drain = async {
            io.shutdown().await?;
            let mut sink = [0u8; 4096];
            while io.read(&mut sink).await? > 0 {}
            Ok::<(), io::Error>(())
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }

    /// The next message, waiting for it (`None` once the connection is closed).
    pub async fn next(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        let mut none: VecDeque<Frame> = VecDeque::new();
        let read = poll_fn(|cx| {
            // Pongs queued by reading go out as they come.
            if !self.control.is_empty() {
                let _ = self.poll_write(cx, &mut none);
            }
            self.poll_read(cx)
        })
        .await;
        match read {
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => None,
            other => Some(other),
        }
    }

    /// Writes `queue` and everything pending.
    pub async fn send_all<T: Payload>(&mut self, queue: &mut VecDeque<T>) -> io::Result<()> {
        poll_fn(|cx| self.poll_write(cx, queue)).await
    }
}

impl Payload for Echo {
    fn opcode(&self) -> u8 {
        match self {
            Echo::Text(_) => 0x1,
            Echo::Binary(_) => 0x2,
        }
    }
    fn payload(&self) -> &[u8] {
        match self {
            Echo::Text(t) => t.as_bytes(),
            Echo::Binary(b) => b,
        }
    }
}
