//! A connection's bounded outbound queue: the sending half ([`Mailbox`], cloned into every
//! group the connection joins) and the receiving half ([`Inbox`], owned by the socket task).
//!
//! The queue is bounded twice: in frames (`WS_OUTBOUND_QUEUE`) and in bytes
//! (`WS_OUTBOUND_QUEUE_BYTES`). The byte bound is what protects memory (a slow reader keeps
//! frames alive that everyone else has released); the frame bound can then be generous, so a
//! reader that loses its core for a few milliseconds during a burst is not cut off.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};

use crate::chat::protocol::Frame;

/// Identifies one connection within a process.
pub type ConnId = u64;

struct Overflow {
    flagged: AtomicBool,
    notify: Notify,
    /// Bytes of the frames queued now, and the most allowed.
    queued_bytes: AtomicUsize,
    max_bytes: usize,
}

/// The sending half: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Mailbox {
    id: ConnId,
    tx: mpsc::Sender<Frame>,
    overflow: Arc<Overflow>,
}

/// The receiving half, owned by the connection's task.
pub struct Inbox {
    rx: mpsc::Receiver<Frame>,
    overflow: Arc<Overflow>,
}

/// A new queue holding at most `capacity` frames and `max_bytes` bytes of frames (one frame
/// larger than `max_bytes` is still accepted into an empty queue).
pub fn mailbox(id: ConnId, capacity: usize, max_bytes: usize) -> (Mailbox, Inbox) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let overflow = Arc::new(Overflow {
        flagged: AtomicBool::new(false),
        notify: Notify::new(),
        queued_bytes: AtomicUsize::new(0),
        max_bytes,
    });
    (
        Mailbox {
            id,
            tx,
            overflow: overflow.clone(),
        },
        Inbox { rx, overflow },
    )
}

impl Mailbox {
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Queues a frame. Returns false when it was dropped: the queue is full (the member is then
    /// flagged as overflowed and will be closed) or the connection is gone.
    pub fn deliver(&self, frame: Frame) -> bool {
        let o = &self.overflow;
        let len = frame.len();
        let before = o.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > o.max_bytes {
            o.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.flag();
            return false;
        }
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(e) => {
                o.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                if matches!(e, mpsc::error::TrySendError::Full(_)) {
                    self.flag();
                }
                false
            }
        }
    }

    fn flag(&self) {
        if !self.overflow.flagged.swap(true, Ordering::AcqRel) {
            self.overflow.notify.notify_one();
        }
    }
}

impl Inbox {
    /// The next queued frame; `None` only once every mailbox clone is gone.
    pub async fn recv(&mut self) -> Option<Frame> {
        let frame = self.rx.recv().await?;
        self.taken(&frame);
        Some(frame)
    }

    /// A queued frame, if one is ready now.
    pub fn try_recv(&mut self) -> Option<Frame> {
        let frame = self.rx.try_recv().ok()?;
        self.taken(&frame);
        Some(frame)
    }

    fn taken(&self, frame: &Frame) {
        self.overflow
            .queued_bytes
            .fetch_sub(frame.len(), Ordering::AcqRel);
    }

    /// Resolves once a delivery to this connection was dropped because its queue was full.
    pub async fn overflowed(&self) {
        self.overflow_signal().wait().await
    }

    pub fn is_overflowed(&self) -> bool {
        self.overflow.flagged.load(Ordering::Acquire)
    }

    /// A handle to wait for overflow while the inbox itself is borrowed for receiving.
    pub fn overflow_signal(&self) -> OverflowSignal {
        OverflowSignal(self.overflow.clone())
    }
}

/// Resolves when the connection's queue overflowed (see [`Inbox::overflow_signal`]).
pub struct OverflowSignal(Arc<Overflow>);

impl OverflowSignal {
    pub async fn wait(&self) {
        // Register interest before checking the flag, so a notification in between is kept.
        let notified = self.0.notify.notified();
        if self.0.flagged.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_flags_overflow_and_drops() {
        let (mb, mut inbox) = mailbox(1, 2, usize::MAX);
        assert!(mb.deliver(Frame::from_string("a".into())));
        assert!(mb.deliver(Frame::from_string("b".into())));
        assert!(!inbox.is_overflowed());
        assert!(!mb.deliver(Frame::from_string("c".into())));
        assert!(inbox.is_overflowed());
        inbox.overflowed().await;
        assert_eq!(inbox.try_recv().unwrap().as_str(), "a");
        assert_eq!(inbox.recv().await.unwrap().as_str(), "b");
        assert!(inbox.try_recv().is_none());
    }

    #[tokio::test]
    async fn the_byte_bound_flags_overflow_too() {
        let (mb, mut inbox) = mailbox(1, 100, 10);
        // One frame larger than the bound still fits an empty queue.
        assert!(mb.deliver(Frame::from_string("x".repeat(12))));
        assert!(!mb.deliver(Frame::from_string("y".into())));
        assert!(inbox.is_overflowed());
        assert_eq!(inbox.try_recv().unwrap().len(), 12);
        let (mb, mut inbox) = mailbox(2, 100, 10);
        for _ in 0..5 {
            assert!(mb.deliver(Frame::from_string("ab".into())));
        }
        assert!(!mb.deliver(Frame::from_string("c".into())));
        // Reading frees the bytes again.
        assert_eq!(inbox.recv().await.unwrap().as_str(), "ab");
        assert!(mb.deliver(Frame::from_string("c".into())));
    }
}
