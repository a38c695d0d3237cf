//! Password hashing off the async threads, on a small pool of low-priority threads.
//!
//! One Django 5.2 PBKDF2 check is 1,000,000 HMAC rounds (~0.1 s of a core). A login flood must
//! not stall chat: at most `PASSWORD_HASHING_CONCURRENCY` checks run at once (a semaphore), on
//! dedicated threads of the lowest scheduling class (`SCHED_IDLE` on Linux, and nice 19), so the
//! threads that carry chat frames preempt them whenever they wake. Logins still get every idle
//! cycle.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use tokio::sync::{Semaphore, oneshot};

/// The nice value of the hashing threads (0 is normal, 19 the lowest priority), kept where
/// `SCHED_IDLE` is refused. Measured with `./manage bench --scenario 5` (chat p99 during 50
/// logins): 10.5 ms at 0, 8.7 ms at 10, 5.4–5.8 ms at 19 (2026-12-02). On Linux 6.18 (EEVDF) a
/// nice-19 thread keeps the core for the rest of its slice when a chat thread wakes, on every
/// hop of a delivery; a `SCHED_IDLE` thread is preempted at once: 2.5–8.0 ms, median 4.5 ms,
/// over seven runs against 3.8–9.5 ms, median 5.3 ms, over eight at nice 19 (2026-12-07; three
/// pairs on one binary), with the 50 logins no slower (2.9–3.1 s). On a saturated machine logins slow
/// down before chat does, which is the order users notice least.
const NICENESS: i32 = 19;

type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct HashingPool {
    permits: Semaphore,
    jobs: Mutex<std_mpsc::Sender<Job>>,
}

impl HashingPool {
    /// Starts `threads` hashing threads; they end when the pool is dropped.
    pub fn new(threads: usize) -> HashingPool {
        let (tx, rx) = std_mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = thread::Builder::new()
                .name(format!("whisper-hash-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-hashing thread");
            }
        }
        HashingPool {
            permits: Semaphore::new(threads),
            jobs: Mutex::new(tx),
        }
    }

    /// Runs `f` on a hashing thread once a slot is free; `None` if the pool is gone.
    pub async fn run<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let _permit = self.permits.acquire().await.ok()?;
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .ok()?;
        rx.await.ok()
    }
}

/// Lowers the calling thread's scheduling priority (Linux: per thread): nice 19, then the
/// `SCHED_IDLE` class. Best effort: a failure (e.g. a sandbox forbidding it) only means hashing
/// competes with chat at a higher priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid, setpriority and sched_setscheduler only read their arguments (the
        // sched_param lives across the call); PRIO_PROCESS with a thread id, and pid 0, change
        // the calling thread alone on Linux.
        let (nice, idle) = unsafe {
            let tid = libc::gettid();
            let nice = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICENESS);
            let param = libc::sched_param { sched_priority: 0 };
            (nice, libc::sched_setscheduler(0, libc::SCHED_IDLE, &param))
        };
        if nice != 0 || idle != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "cannot lower the password-hashing threads' priority"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_low_priority_threads_with_bounded_concurrency() {
        let pool = Arc::new(HashingPool::new(2));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..8u64 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    use std::sync::atomic::Ordering::SeqCst;
                    let now = running.fetch_add(1, SeqCst) + 1;
                    peak.fetch_max(now, SeqCst);
                    thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, SeqCst);
                    let name = thread::current().name().unwrap_or("").to_string();
                    #[cfg(target_os = "linux")]
                    // SAFETY: reads the calling thread's nice value and scheduling policy.
                    let (nice, policy) = unsafe {
                        (
                            libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t),
                            libc::sched_getscheduler(0),
                        )
                    };
                    #[cfg(not(target_os = "linux"))]
                    let (nice, policy) = (NICENESS, 5);
                    (i * 2, name, nice, policy)
                })
                .await
            }));
        }
        for (i, task) in tasks.into_iter().enumerate() {
            let (doubled, name, nice, policy) = task.await.unwrap().unwrap();
            assert_eq!(doubled, i as u64 * 2);
            assert!(name.starts_with("whisper-hash-"), "{name}");
            assert_eq!(nice, NICENESS);
            // SCHED_IDLE is 5 on every Linux architecture.
            assert_eq!(policy, 5, "the hashing threads run in SCHED_IDLE");
        }
        let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=2).contains(&peak), "{peak} jobs at once");
    }
}
