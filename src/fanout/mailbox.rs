//! A connection's bounded outbound queue: the sending half ([`Mailbox`], cloned into every
//! group the connection joins) and the receiving half ([`Inbox`], owned by the socket task).
//!
//! The queue is bounded twice: in frames (`WS_OUTBOUND_QUEUE`) and in bytes
//! (`WS_OUTBOUND_QUEUE_BYTES`). The byte bound is what protects memory (a slow reader keeps
//! frames alive that everyone else has released); the frame bound can then be generous, so a
//! reader that loses its core for a few milliseconds during a burst is not cut off.
//!
//! The queue is also how its connection is woken, for anything: one lock guards the frames,
//! a set of [`Wake`] bits and the task's waker. A delivery sets [`Wake::FRAMES`], an overflow
//! [`Wake::OVERFLOW`]; the connection gives the other bits their meaning (its socket is
//! readable, a keep-alive ping is due, its session was revoked, …) and raises them through a
//! [`Signal`] or a waker from [`Inbox::waker`]. So a connection asleep costs nothing to check,
//! and when it wakes it takes, under one lock, its frames and the reasons it was woken: it
//! polls only what changed (issue 12: polling every source on every wake was most of the cost
//! of a delivery). A new delivery wakes the task only if it is not already awake.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Wake as StdWake, Waker};

use crate::chat::protocol::Frame;

/// Identifies one connection within a process.
pub type ConnId = u64;

/// Why a connection was woken: a set of bits. Bits 0 and 1 are the queue's; the connection
/// defines the others for its own sources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wake(pub u32);

impl Wake {
    /// Frames were queued.
    pub const FRAMES: Wake = Wake(1);
    /// A delivery was dropped because the queue was full: the connection must close.
    pub const OVERFLOW: Wake = Wake(1 << 1);
    /// The first bit free for the connection's own sources.
    pub const FIRST_FREE: u32 = 2;

    pub fn contains(self, other: Wake) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Wake {
    type Output = Wake;
    fn bitor(self, rhs: Wake) -> Wake {
        Wake(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Wake {
    fn bitor_assign(&mut self, rhs: Wake) {
        self.0 |= rhs.0;
    }
}

struct Shared {
    id: ConnId,
    capacity: usize,
    max_bytes: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Frame>,
    /// Bytes of the frames queued now.
    bytes: usize,
    /// Raised and not yet taken.
    raised: Wake,
    /// Stays set once the queue overflowed.
    overflowed: bool,
    /// The inbox is gone: deliveries are refused.
    closed: bool,
    /// The task to wake, registered by its last [`Inbox::take`]; taken by the first wake.
    waker: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets `bits` and wakes the task if it is asleep (outside the lock); false once the
    /// inbox is gone.
    fn raise(&self, bits: Wake) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        state.raised |= bits;
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }
}

/// The sending half: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Mailbox(Arc<Shared>);

/// The receiving half, owned by the connection's task.
pub struct Inbox(Arc<Shared>);

/// Raises bits on a connection's queue, waking it; holds no more than a weak reference, so a
/// registry of signals (keep-alive, revocation) keeps no connection alive.
#[derive(Clone)]
pub struct Signal(Weak<Shared>);

/// A new queue holding at most `capacity` frames and `max_bytes` bytes of frames (one frame
/// larger than `max_bytes` is still accepted into an empty queue).
pub fn mailbox(id: ConnId, capacity: usize, max_bytes: usize) -> (Mailbox, Inbox) {
    let shared = Arc::new(Shared {
        id,
        capacity: capacity.max(1),
        max_bytes,
        state: Mutex::new(State::default()),
    });
    (Mailbox(shared.clone()), Inbox(shared))
}

impl Mailbox {
    pub fn id(&self) -> ConnId {
        self.0.id
    }

    /// Queues a frame. Returns false when it was dropped: the queue is full (the member is then
    /// flagged as overflowed and will be closed) or the connection is gone.
    pub fn deliver(&self, frame: Frame) -> bool {
        let shared = &*self.0;
        let len = frame.len();
        let mut state = shared.lock();
        if state.closed {
            return false;
        }
        let full = state.frames.len() >= shared.capacity
            || (state.bytes > 0 && state.bytes + len > shared.max_bytes);
        let bit = if full {
            state.overflowed = true;
            Wake::OVERFLOW
        } else {
            state.frames.push_back(frame);
            state.bytes += len;
            Wake::FRAMES
        };
        state.raised |= bit;
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        !full
    }
}

impl Inbox {
    /// Moves every queued frame to the back of `out` (when `frames` is true; a connection that
    /// cannot write leaves them queued, where they count against the bounds) and returns the
    /// bits raised since the last take. Registers the task's waker: the next delivery or raised
    /// bit wakes it. [`Wake::OVERFLOW`] is returned on every take once the queue overflowed.
    pub fn take(&mut self, cx: &Context<'_>, out: &mut VecDeque<Frame>, frames: bool) -> Wake {
        let mut state = self.0.lock();
        let mut raised = std::mem::take(&mut state.raised);
        if state.overflowed {
            raised |= Wake::OVERFLOW;
        }
        if frames && !state.frames.is_empty() {
            if out.is_empty() {
                // The two buffers trade places: no copy, and both allocations are reused.
                std::mem::swap(&mut state.frames, out);
            } else {
                out.extend(state.frames.drain(..));
            }
            state.bytes = 0;
        } else if !state.frames.is_empty() {
            // Still queued: a later take must see them even without a new delivery.
            raised |= Wake::FRAMES;
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        raised
    }

    /// A queued frame, if one is ready now (for tests).
    pub fn try_recv(&mut self) -> Option<Frame> {
        let mut state = self.0.lock();
        let frame = state.frames.pop_front()?;
        state.bytes -= frame.len();
        Some(frame)
    }

    pub fn is_overflowed(&self) -> bool {
        self.0.lock().overflowed
    }

    /// A handle that raises bits on this queue.
    pub fn signal(&self) -> Signal {
        Signal(Arc::downgrade(&self.0))
    }

    /// A waker that raises `bits` (for an I/O source or a timer of the connection's own).
    pub fn waker(&self, bits: Wake) -> Waker {
        Waker::from(Arc::new(BitWaker {
            signal: self.signal(),
            bits,
        }))
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.closed = true;
        state.frames = VecDeque::new();
        state.bytes = 0;
        state.waker = None;
    }
}

impl Signal {
    /// Raises `bits` and wakes the connection; false once the connection is gone.
    pub fn raise(&self, bits: Wake) -> bool {
        self.0.upgrade().is_some_and(|shared| shared.raise(bits))
    }
}

struct BitWaker {
    signal: Signal,
    bits: Wake,
}

impl StdWake for BitWaker {
    fn wake(self: Arc<Self>) {
        self.signal.raise(self.bits);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.signal.raise(self.bits);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A waker that counts its wakes.
    struct Count(AtomicUsize);

    impl StdWake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    fn frame(s: &str) -> Frame {
        Frame::from_string(s.into())
    }

    #[test]
    fn a_full_queue_flags_overflow_and_drops() {
        let (mb, mut inbox) = mailbox(1, 2, usize::MAX);
        assert!(mb.deliver(frame("a")));
        assert!(mb.deliver(frame("b")));
        assert!(!inbox.is_overflowed());
        assert!(!mb.deliver(frame("c")));
        assert!(inbox.is_overflowed());
        assert_eq!(inbox.try_recv().unwrap().as_str(), "a");
        assert_eq!(inbox.try_recv().unwrap().as_str(), "b");
        assert!(inbox.try_recv().is_none());
        let (_, waker) = counting();
        let mut out = VecDeque::new();
        let woke = inbox.take(&Context::from_waker(&waker), &mut out, true);
        assert!(woke.contains(Wake::OVERFLOW));
        // It stays overflowed.
        assert!(
            inbox
                .take(&Context::from_waker(&waker), &mut out, true)
                .contains(Wake::OVERFLOW)
        );
    }

    #[test]
    fn the_byte_bound_flags_overflow_too() {
        let (mb, mut inbox) = mailbox(1, 100, 10);
        // One frame larger than the bound still fits an empty queue.
        assert!(mb.deliver(frame(&"x".repeat(12))));
        assert!(!mb.deliver(frame("y")));
        assert!(inbox.is_overflowed());
        assert_eq!(inbox.try_recv().unwrap().len(), 12);
        let (mb, mut inbox) = mailbox(2, 100, 10);
        for _ in 0..5 {
            assert!(mb.deliver(frame("ab")));
        }
        assert!(!mb.deliver(frame("c")));
        let (mb, mut inbox2) = mailbox(3, 100, 10);
        for _ in 0..5 {
            assert!(mb.deliver(frame("ab")));
        }
        // Taking frees the bytes again.
        let (_, waker) = counting();
        let mut out = VecDeque::new();
        inbox2.take(&Context::from_waker(&waker), &mut out, true);
        assert_eq!(out.len(), 5);
        assert!(mb.deliver(frame("c")));
        assert!(!inbox2.is_overflowed());
        assert_eq!(inbox.try_recv().unwrap().as_str(), "ab");
    }

    #[test]
    fn take_moves_frames_in_order_and_reports_why() {
        let (mb, mut inbox) = mailbox(1, 8, usize::MAX);
        let (count, waker) = counting();
        let cx = Context::from_waker(&waker);
        let mut out = VecDeque::new();
        assert!(inbox.take(&cx, &mut out, true).is_empty());
        mb.deliver(frame("a"));
        mb.deliver(frame("b"));
        // One wake for the first delivery after a take, none for the next.
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        let why = inbox.take(&cx, &mut out, true);
        assert_eq!(why, Wake::FRAMES);
        mb.deliver(frame("c"));
        inbox.take(&cx, &mut out, true);
        let got: Vec<&str> = out.iter().map(Frame::as_str).collect();
        assert_eq!(got, ["a", "b", "c"]);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn frames_left_queued_are_reported_again() {
        let (mb, mut inbox) = mailbox(1, 8, usize::MAX);
        let (_, waker) = counting();
        let cx = Context::from_waker(&waker);
        let mut out = VecDeque::new();
        mb.deliver(frame("a"));
        assert_eq!(inbox.take(&cx, &mut out, false), Wake::FRAMES);
        assert!(out.is_empty());
        assert_eq!(inbox.take(&cx, &mut out, false), Wake::FRAMES);
        assert_eq!(inbox.take(&cx, &mut out, true), Wake::default());
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn signals_and_bit_wakers_wake_with_their_bits() {
        let (_mb, mut inbox) = mailbox(1, 8, usize::MAX);
        let (count, waker) = counting();
        let cx = Context::from_waker(&waker);
        let mut out = VecDeque::new();
        inbox.take(&cx, &mut out, true);
        let signal = inbox.signal();
        assert!(signal.raise(Wake(1 << 5)));
        inbox.waker(Wake(1 << 6)).wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(inbox.take(&cx, &mut out, true), Wake(1 << 5 | 1 << 6));
        drop(inbox);
        assert!(!signal.raise(Wake(1 << 5)));
    }

    #[test]
    fn a_closed_inbox_refuses_deliveries() {
        let (mb, inbox) = mailbox(1, 8, usize::MAX);
        drop(inbox);
        assert!(!mb.deliver(frame("a")));
    }
}
