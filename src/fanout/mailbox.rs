//! A connection's bounded outbound queue: the sending half ([`Mailbox`], cloned into every
//! group the connection joins) and the receiving half ([`Inbox`], owned by the socket task).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, mpsc};

use crate::chat::protocol::Frame;

/// Identifies one connection within a process.
pub type ConnId = u64;

struct Overflow {
    flagged: AtomicBool,
    notify: Notify,
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

/// A new queue holding at most `capacity` frames.
pub fn mailbox(id: ConnId, capacity: usize) -> (Mailbox, Inbox) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let overflow = Arc::new(Overflow {
        flagged: AtomicBool::new(false),
        notify: Notify::new(),
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
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.overflow.flagged.swap(true, Ordering::AcqRel) {
                    self.overflow.notify.notify_one();
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

impl Inbox {
    /// The next queued frame; `None` only once every mailbox clone is gone.
    pub async fn recv(&mut self) -> Option<Frame> {
        self.rx.recv().await
    }

    /// A queued frame, if one is ready now.
    pub fn try_recv(&mut self) -> Option<Frame> {
        self.rx.try_recv().ok()
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
        let (mb, mut inbox) = mailbox(1, 2);
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
}
