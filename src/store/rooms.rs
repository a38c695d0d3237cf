//! `chat_room` (the multichat `Room` model) and [`RoomCache`], the short-lived in-memory cache
//! the WebSocket consumers use for `join` / `send` lookups.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Store, StoreError};

/// One row of `chat_room`.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Room {
    pub id: i64,
    pub title: String,
    pub staff_only: bool,
}

impl Store {
    /// All rooms ordered by title (database collation: binary UTF-8 on SQLite, the database's
    /// collation on PostgreSQL — the same order Django's `order_by("title")` gives).
    pub async fn rooms_by_title(&self) -> Result<Vec<Room>, StoreError> {
        let rooms = dispatch!(self, pool => {
            sqlx::query_as::<_, Room>(
                "SELECT CAST(id AS BIGINT) AS id, title, staff_only FROM chat_room \
                 ORDER BY title, id",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rooms)
    }

    /// The room with this id.
    pub async fn room_by_id(&self, id: i64) -> Result<Option<Room>, StoreError> {
        let room = dispatch!(self, pool => {
            sqlx::query_as::<_, Room>(
                "SELECT CAST(id AS BIGINT) AS id, title, staff_only FROM chat_room WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(room)
    }

    /// Inserts a room; returns its id.
    pub async fn create_room(&self, title: &str, staff_only: bool) -> Result<i64, StoreError> {
        let id = dispatch!(self, pool => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO chat_room (title, staff_only) VALUES ($1, $2) \
                 RETURNING CAST(id AS BIGINT)",
            )
            .bind(title)
            .bind(staff_only)
            .fetch_one(pool)
            .await?
        });
        Ok(id)
    }

    /// Changes a room (what the Django admin does). Returns false when it does not exist.
    pub async fn update_room(
        &self,
        id: i64,
        title: &str,
        staff_only: bool,
    ) -> Result<bool, StoreError> {
        let n = dispatch!(self, pool => {
            sqlx::query("UPDATE chat_room SET title = $1, staff_only = $2 WHERE id = $3")
                .bind(title)
                .bind(staff_only)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Deletes a room. Returns false when it did not exist.
    pub async fn delete_room(&self, id: i64) -> Result<bool, StoreError> {
        let n = dispatch!(self, pool => {
            sqlx::query("DELETE FROM chat_room WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }
}

/// Default bound on cached ids.
pub const DEFAULT_ROOM_CACHE_CAPACITY: usize = 10_000;

struct Entry {
    room: Option<Room>,
    fetched: Instant,
}

/// A turn at fetching one id; the id stops being "fetching" when the last turn ends, also
/// when its task is cancelled mid-query (nothing is left behind per id).
struct Fetching<'a> {
    cache: &'a RoomCache,
    id: i64,
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        let mut inner = self.cache.lock();
        // Only the map's own handle and this one: nobody else waits on this gate.
        if Arc::strong_count(&self.gate) == 2
            && inner
                .fetching
                .get(&self.id)
                .is_some_and(|g| Arc::ptr_eq(g, &self.gate))
        {
            inner.fetching.remove(&self.id);
        }
    }
}

#[derive(Default)]
struct Inner {
    map: HashMap<i64, Entry>,
    /// Insertion order for eviction: `(id, fetched)`; an item is stale when the map holds a
    /// newer entry for that id (or none).
    order: VecDeque<(i64, Instant)>,
    /// Ids being fetched: who misses too waits for that fetch instead of querying again.
    fetching: HashMap<i64, Arc<tokio::sync::Mutex<()>>>,
}

/// Room lookups by id, served from memory for at most `ttl` (misses are cached too, so probing a
/// deleted room does not hit the database every time). Shared by all connections: cloning is
/// cheap. The lock is never held across an `.await`, and at most `capacity` ids are kept (the
/// oldest entries are evicted first). `ttl` zero disables caching. Misses for one id share one
/// query: when a crowd of sockets leaves or joins a room just after its entry expired (a tenth
/// of 19,000 members dropping at once after a quiet minute), they queued 1,900 queries for the
/// same row, and the last leave notice went out 2 s later (issue 12).
#[derive(Clone)]
pub struct RoomCache {
    store: Store,
    ttl: Duration,
    capacity: usize,
    inner: Arc<Mutex<Inner>>,
    reads: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for RoomCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl RoomCache {
    pub fn new(store: Store, ttl: Duration) -> Self {
        Self::with_capacity(store, ttl, DEFAULT_ROOM_CACHE_CAPACITY)
    }

    /// As [`RoomCache::new`] with a different bound (at least 1).
    pub fn with_capacity(store: Store, ttl: Duration, capacity: usize) -> Self {
        RoomCache {
            store,
            ttl,
            capacity: capacity.max(1),
            inner: Arc::new(Mutex::new(Inner::default())),
            reads: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The room with this id, at most `ttl` old.
    pub async fn get(&self, id: i64) -> Result<Option<Room>, StoreError> {
        if self.ttl.is_zero() {
            return self.store.room_by_id(id).await;
        }
        {
            let inner = self.lock();
            if let Some(entry) = inner.map.get(&id)
                && entry.fetched.elapsed() < self.ttl
            {
                return Ok(entry.room.clone());
            }
        }
        let gate = Fetching {
            cache: self,
            id,
            gate: self.lock().fetching.entry(id).or_default().clone(),
        };
        let _turn = gate.gate.lock().await;
        {
            // The fetch this one waited for may have brought it.
            let inner = self.lock();
            if let Some(entry) = inner.map.get(&id)
                && entry.fetched.elapsed() < self.ttl
            {
                return Ok(entry.room.clone());
            }
        }
        let fetched = Instant::now();
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let result = self.store.room_by_id(id).await;
        if let Ok(room) = &result {
            self.insert(id, room.clone(), fetched);
        }
        result
    }

    fn insert(&self, id: i64, room: Option<Room>, fetched: Instant) {
        let ttl = self.ttl;
        let capacity = self.capacity;
        let mut inner = self.lock();
        // A slower concurrent fetch must not overwrite a newer result.
        if let Some(existing) = inner.map.get(&id)
            && existing.fetched > fetched
        {
            return;
        }
        inner.map.insert(id, Entry { room, fetched });
        inner.order.push_back((id, fetched));
        while inner.map.len() > capacity {
            let Some((old_id, old_fetched)) = inner.order.pop_front() else {
                break;
            };
            if inner
                .map
                .get(&old_id)
                .is_some_and(|e| e.fetched == old_fetched)
            {
                inner.map.remove(&old_id);
            }
        }
        // Refreshing the same ids leaves stale order items; drop expired entries and rebuild
        // the queue when it grows well past the map.
        if inner.order.len() > 2 * capacity + 16 {
            inner.map.retain(|_, e| e.fetched.elapsed() < ttl);
            let mut order: Vec<(i64, Instant)> =
                inner.map.iter().map(|(k, e)| (*k, e.fetched)).collect();
            order.sort_by_key(|&(_, t)| t);
            inner.order = order.into();
        }
    }

    /// Forgets one id (e.g. after the room was changed here).
    pub fn invalidate(&self, id: i64) {
        self.lock().map.remove(&id);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.map.clear();
        inner.order.clear();
    }

    /// Queries made for misses and expired entries so far (with `ttl` zero, none are counted).
    pub fn database_reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Ids being fetched right now.
    pub fn fetching(&self) -> usize {
        self.lock().fetching.len()
    }

    /// Number of cached ids.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}
