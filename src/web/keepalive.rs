//! Keep-alive pings (`WS_PING_INTERVAL`, Daphne's `--ping-interval`, 20 s by default): one
//! wheel per process, not a timer per socket.
//!
//! The interval is cut into steps of [`STEP`]. Each socket is placed in one step as it opens,
//! round-robin, and once per interval, when the wheel reaches its step, it is woken with
//! [`conn::PING`](crate::web::conn::PING): it sends a ping, or, silent for longer than
//! `WS_PING_INTERVAL` + `WS_PING_TIMEOUT`, ends. However sockets arrive (a reconnect wave after
//! a restart included), the pings of N sockets fall evenly, N ÷ steps per step: 100,000 members
//! at the defaults make 250 pings every 50 ms, never a burst (issue 12). A socket costs the
//! wheel one weak reference and no timer; a closed socket's entry goes at its next turn.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::fanout::Signal;
use crate::web::AppState;
use crate::web::conn::PING;

/// The wheel's step: how often it wakes, and how finely pings are spread.
pub const STEP: Duration = Duration::from_millis(50);

pub struct PingWheel {
    inner: Mutex<Wheel>,
}

struct Wheel {
    slots: Vec<Vec<Signal>>,
    /// The slot the next socket goes to.
    next: usize,
    /// The slot the wheel rings next.
    cursor: usize,
}

impl PingWheel {
    /// A wheel that rings each socket once per `interval` (a whole number of steps, at least
    /// one).
    pub fn new(interval: Duration) -> PingWheel {
        let steps = (interval.as_secs_f64() / STEP.as_secs_f64())
            .round()
            .max(1.0) as usize;
        PingWheel {
            inner: Mutex::new(Wheel {
                slots: vec![Vec::new(); steps],
                next: 0,
                cursor: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Wheel> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The time between two pings of one socket.
    pub fn interval(&self) -> Duration {
        STEP * self.lock().slots.len() as u32
    }

    /// Places a socket on the wheel: the step after the last socket's.
    pub fn add(&self, signal: Signal) {
        let mut wheel = self.lock();
        let slot = wheel.next;
        wheel.next = (slot + 1) % wheel.slots.len();
        wheel.slots[slot].push(signal);
    }

    /// Rings the next step's sockets; returns how many were rung (the closed ones leave).
    pub fn turn(&self) -> usize {
        let mut due = {
            let mut wheel = self.lock();
            let slot = wheel.cursor;
            wheel.cursor = (slot + 1) % wheel.slots.len();
            (slot, std::mem::take(&mut wheel.slots[slot]))
        };
        // Rung outside the lock, so sockets opening meanwhile do not wait.
        due.1.retain(|signal| signal.raise(PING));
        let rung = due.1.len();
        let mut wheel = self.lock();
        let slot = &mut wheel.slots[due.0];
        if slot.is_empty() {
            *slot = due.1;
        } else {
            slot.append(&mut due.1);
        }
        rung
    }

    /// Sockets on the wheel, closed ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.lock().slots.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Turns the wheel every [`STEP`] until the server shuts down.
pub async fn run(app: AppState) {
    let mut shutdown = app.shutdown.clone();
    let mut tick = tokio::time::interval(STEP);
    // Late steps are rung at once, so no socket misses its ping.
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                app.keepalive.turn();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::task::{Context, Waker};

    use super::*;
    use crate::fanout::mailbox;

    #[test]
    fn sockets_spread_evenly_and_each_is_rung_once_per_interval() {
        let wheel = PingWheel::new(Duration::from_secs(1));
        assert_eq!(wheel.interval(), Duration::from_secs(1));
        let steps = 20;
        let mut inboxes: Vec<_> = (0..3 * steps)
            .map(|i| mailbox(i as u64, 4, 1024).1)
            .collect();
        for inbox in &inboxes {
            wheel.add(inbox.signal());
        }
        let cx = Context::from_waker(Waker::noop());
        let mut out = VecDeque::new();
        let mut rung = vec![0; inboxes.len()];
        for _ in 0..2 * steps {
            assert_eq!(wheel.turn(), 3, "each step rings its share");
            for (i, inbox) in inboxes.iter_mut().enumerate() {
                if inbox.take(&cx, &mut out, true).contains(PING) {
                    rung[i] += 1;
                }
            }
        }
        assert!(rung.iter().all(|&n| n == 2), "{rung:?}");
        // Closed sockets leave the wheel at their turn.
        inboxes.truncate(1);
        for _ in 0..steps {
            wheel.turn();
        }
        assert_eq!(wheel.len(), 1);
    }

    #[test]
    fn an_interval_shorter_than_a_step_is_one_step() {
        assert_eq!(PingWheel::new(Duration::from_millis(10)).interval(), STEP);
        assert_eq!(
            PingWheel::new(Duration::from_millis(1100)).interval(),
            STEP * 22
        );
    }
}
