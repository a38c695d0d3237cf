//! The latest receipt of each message, for scenario 9's latency from a send to the room's last
//! member: every receiver raises the message's slot to its own latency, lock-free.

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use crate::load::histogram;

/// The latest receipt of each message of one sender, for the latency to a room's last member
/// (scenario 9): indexed by the message's sequence number, the largest latency seen (µs).
pub struct Lasts {
    step: AtomicU64,
    latest: Vec<AtomicU64>,
}

/// Messages a step may send and still have their last receipts tracked.
const LAST_SEQS: usize = 1 << 16;

impl Lasts {
    pub fn new() -> Lasts {
        Lasts {
            step: AtomicU64::new(0),
            latest: (0..LAST_SEQS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn record(&self, step: u32, seq: u64, latency: u64) {
        if self.step.load(Ordering::Relaxed) == u64::from(step)
            && let Some(slot) = self.latest.get(seq as usize)
        {
            slot.fetch_max(latency, Ordering::Relaxed);
        }
    }

    pub fn begin(&self, step: u32) {
        for slot in &self.latest {
            slot.store(0, Ordering::Relaxed);
        }
        self.step.store(u64::from(step), Ordering::Release);
    }

    /// The histogram of the first `sent` messages' last-receipt latencies (those received).
    pub fn histogram(&self, sent: u64) -> Histogram<u64> {
        let mut hist = histogram();
        for slot in self.latest.iter().take(sent as usize) {
            let latency = slot.load(Ordering::Relaxed);
            if latency > 0 {
                hist.saturating_record(latency);
            }
        }
        hist
    }
}
