//! Reads in flight, shared: a caller that asks for what another caller is already reading
//! waits for that read instead of sending the same statement again. Nothing is kept once the
//! read is done, so no answer is older than the read that produced it; what is saved is the
//! crowd: a reconnect wave's sockets of one browser session, or the ten users behind a
//! benchmark's 10,000 handshakes, read each row once (issue 12: two statements per handshake,
//! each a round trip through SQLite's worker threads, were a fifth of a connect storm's CPU).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// One shared read: its answer, once there is one (`None` when it failed: each waiter then
/// reads for itself, so an error is never handed to a caller that did not cause it).
type Flight<V> = Arc<OnceCell<Option<V>>>;

pub struct Flights<K, V> {
    inflight: Mutex<HashMap<K, Flight<V>>>,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Flights {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Flights<K, V> {
    /// `read()`'s answer for `key`, shared with every caller that asks while it runs.
    pub async fn read<E, F, Fut>(&self, key: &K, read: F) -> Result<V, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let (flight, first) = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match inflight.get(key) {
                Some(flight) => (flight.clone(), false),
                None => {
                    let flight = Flight::default();
                    inflight.insert(key.clone(), flight.clone());
                    (flight, true)
                }
            }
        };
        // The first caller closes the flight when it is done or dropped; later callers start
        // a new one.
        let _close = first.then(|| Close {
            flights: self,
            key,
            flight: flight.clone(),
        });
        let mut mine = None;
        let shared = flight
            .get_or_init(|| async {
                match read().await {
                    Ok(value) => Some(value),
                    Err(e) => {
                        mine = Some(e);
                        None
                    }
                }
            })
            .await;
        match (shared, mine) {
            (Some(value), _) => Ok(value.clone()),
            (None, Some(e)) => Err(e),
            (None, None) => read().await,
        }
    }

    /// Reads in flight now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Close<'a, K: Hash + Eq, V> {
    flights: &'a Flights<K, V>,
    key: &'a K,
    flight: Flight<V>,
}

impl<K: Hash + Eq, V> Drop for Close<'_, K, V> {
    fn drop(&mut self) {
        let mut inflight = self
            .flights
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if inflight
            .get(self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            inflight.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn callers_during_a_read_share_it_and_later_ones_read_again() {
        let flights: Arc<Flights<&str, u32>> = Arc::default();
        let reads = Arc::new(AtomicUsize::new(0));
        let read = |reads: Arc<AtomicUsize>| async move {
            reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<u32, ()>(7)
        };
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (flights, reads) = (flights.clone(), reads.clone());
            tasks.push(tokio::spawn(async move {
                flights.read(&"k", || read(reads.clone())).await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(7));
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty());
        assert_eq!(flights.read(&"k", || read(reads.clone())).await, Ok(7));
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_error_is_not_shared_and_a_dropped_reader_hands_over() {
        let flights: Arc<Flights<u8, u32>> = Arc::default();
        let failing = flights.read(&1, || async { Err::<u32, &str>("down") });
        assert_eq!(failing.await, Err("down"));
        // A first reader dropped mid-read: the next caller reads itself.
        let slow = flights.read(&2, || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<u32, &str>(1)
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(20), slow)
                .await
                .is_err()
        );
        assert!(flights.is_empty());
        assert_eq!(
            flights.read(&2, || async { Ok::<u32, &str>(2) }).await,
            Ok(2)
        );
    }
}
