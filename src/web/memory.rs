//! Gives memory back to the system once many sockets have closed (issue 10: memory per socket
//! is returned after disconnect).
//!
//! Freed memory stays in glibc's per-thread arenas: after 10,000 sockets closed, the process
//! kept all 96 MiB they had used (BENCHMARKS.md, scenario 4). It was reused by the next sockets,
//! so nothing grew, but a server that once had a crowd kept its memory. Every [`EVERY`], if at
//! least [`AFTER_CLOSED`] sockets have closed since the highest count seen, `malloc_trim` hands
//! the free pages back. Allocators other than glibc's (musl builds) skip this.

use std::time::Duration;

use crate::web::AppState;

/// How often the socket count is looked at.
pub const EVERY: Duration = Duration::from_secs(5);
/// Sockets that must have closed since the high mark before memory is trimmed.
pub const AFTER_CLOSED: u64 = 500;

pub async fn run(app: AppState) {
    let mut shutdown = app.shutdown.clone();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut high = app.open_sockets();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        // The peak is counted at every open: a crowd that came and went between two looks
        // counts too (sampled here alone, 3,000 sockets open for 2 s were never seen).
        let open = app.open_sockets();
        high = high.max(app.take_open_peak());
        if high >= open + AFTER_CLOSED {
            // Off the runtime's threads: the walk over the arenas takes milliseconds.
            let _ = tokio::task::spawn_blocking(trim).await;
            tracing::debug!(closed = high - open, "memory trimmed after sockets closed");
            high = open;
        } else {
            high = high.max(open);
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas; it takes
    // glibc's arena locks and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
