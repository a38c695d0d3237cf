//! `channels_redis.core.RedisChannelLayer`'s storage, spoken by Whisper (channels_redis 4.x
//! `core.py`, read from its source):
//!
//! * a group is the sorted set `prefix + ":group:" + group` of channel names, scored by the
//!   time they joined; members older than `group_expiry` are pruned by every send;
//! * a process receives on the sorted set `prefix + "specific.<process>!"`: every message for
//!   any of its channels (`specific.<process>!<local part>`) lands there, scored by send time,
//!   as `random_prefix_length` random bytes + a msgpack map whose `__asgi_channel__` lists the
//!   recipient channels; a queue holding `capacity` messages takes no more (silently, as in
//!   channels_redis), and a queue expires `expiry` seconds after its last message.
//!
//! Whisper joins each group with local members once per process, as the channel
//! `specific.<process hex>!<group>`, and renews the membership well before `group_expiry`.
//! A send is one `EVALSHA` of [`SEND_SCRIPT`], which does in Redis what channels_redis'
//! `group_send` does in several round trips (prune, read the group, push to each member
//! process's queue with the capacity check), skipping this process's own queue: local members
//! were served directly. Send scores are strictly increasing per process, so a sender's events
//! keep their order in every queue. The reader keeps two `BZPOPMIN` + `ZPOPMIN` pipelines on
//! their way on its own connection, so its queue is drained in batches within the turn of
//! Redis' event loop that filled it; senders push at most [`pipeline_limit`] messages per round
//! trip. Together these keep a queue far below `capacity` even under a burst from one sender
//! (a thousand messages: 32 at the peak, where one pop per round trip and 512-command
//! pipelines hit the 100-message `capacity` and lost a third of them).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use redis::aio::MultiplexedConnection;
use sha1::{Digest, Sha1};
use tokio::sync::watch;
use tokio::time::Instant;

use super::event;
use super::link::{self, Link, Shared, Throttle, lock};
use crate::chat::protocol::GroupEvent;
use crate::config::CoreParams;

/// Pushes one event to every other member process of a group. KEYS[1]: the group. ARGV: own
/// queue (skipped), score (now), expiry, group_expiry, capacity, prefix, random prefix, map
/// entries (msgpack), entry count. Returns how many queues were full.
pub(super) const SEND_SCRIPT: &str = r#"
local now = ARGV[2]
local floor_now = math.floor(tonumber(now))
local expiry = tonumber(ARGV[3])
local capacity = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, floor_now - tonumber(ARGV[4]))
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local queues, recipients = {}, {}
for _, channel in ipairs(members) do
  local bang = string.find(channel, '!', 1, true)
  local queue = ARGV[6] .. (bang and string.sub(channel, 1, bang) or channel)
  if queue ~= ARGV[1] then
    local list = recipients[queue]
    if not list then
      list = {}
      recipients[queue] = list
      queues[#queues + 1] = queue
    end
    list[#list + 1] = channel
  end
end
local function header(n, fix, wide)
  if n < 16 then return string.char(fix + n) end
  if n < 65536 then return string.char(wide, math.floor(n / 256), n % 256) end
  return string.char(wide + 1, math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end
local function str(s)
  local n = #s
  if n < 32 then return string.char(160 + n) .. s end
  if n < 256 then return string.char(217, n) .. s end
  return string.char(218, math.floor(n / 256), n % 256) .. s
end
local head = ARGV[7] .. header(tonumber(ARGV[9]) + 1, 128, 222) .. ARGV[8] .. str('__asgi_channel__')
local full = 0
for _, queue in ipairs(queues) do
  redis.call('ZREMRANGEBYSCORE', queue, 0, floor_now - expiry)
  if redis.call('ZCOUNT', queue, '-inf', '+inf') < capacity then
    local list = recipients[queue]
    local parts = {head, header(#list, 144, 220)}
    for _, channel in ipairs(list) do parts[#parts + 1] = str(channel) end
    redis.call('ZADD', queue, now, table.concat(parts))
    redis.call('EXPIRE', queue, expiry)
  else
    full = full + 1
  end
end
return full
"#;

/// Sends one process pushes per round trip: a quarter of `capacity` (at most 64). A pipeline of
/// hundreds of sends lands in a member's queue between two of its reader's pops and overflows
/// it (100 messages by default); with this bound a burst reaches Redis as fast as the reader
/// drains it, and the queue stays well below `capacity`.
pub(super) fn pipeline_limit(capacity: u64) -> usize {
    (capacity / 4).clamp(1, 64) as usize
}

/// Messages taken from the queue per `ZPOPMIN` after a blocking pop.
const DRAIN: usize = 256;
/// Pops sent ahead of their replies.
const POPS_IN_FLIGHT: usize = 2;
/// `BZPOPMIN` blocks this long (seconds) before the reader loops (and checks for shutdown).
const BLOCK_SECONDS: u64 = 1;

/// This process's names in `RedisChannelLayer`'s keyspace.
#[derive(Clone)]
pub(super) struct Names {
    prefix: String,
    /// `specific.<32 hex>!`
    base: String,
    /// `prefix + base`: this process's queue.
    queue: String,
    script_sha: String,
}

impl Names {
    pub fn new(prefix: &str, process_id: &[u8]) -> Names {
        let base = format!("specific.{}!", hex::encode(process_id));
        Names {
            prefix: prefix.to_string(),
            queue: format!("{prefix}{base}"),
            base,
            script_sha: hex::encode(Sha1::digest(SEND_SCRIPT.as_bytes())),
        }
    }

    pub fn group_key(&self, group: &str) -> String {
        format!("{}:group:{group}", self.prefix)
    }

    /// This process's channel in `group`.
    pub fn channel(&self, group: &str) -> String {
        format!("{}{group}", self.base)
    }

    /// The group a recipient channel of ours stands for.
    pub fn group_of<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel.strip_prefix(self.base.as_str())
    }
}

/// Builds the sends and keeps the memberships of one process.
pub(super) struct Membership {
    shared: Arc<Shared>,
    names: Names,
    params: CoreParams,
    /// Groups Redis holds this process in, as far as the publisher knows.
    active: Mutex<HashSet<String>>,
    /// When every membership was last renewed.
    renewed: Mutex<Option<Instant>>,
    /// Score of the last send, in microseconds (kept strictly increasing).
    last_score: AtomicU64,
    full_queue_warning: Throttle,
    /// Counts completed full passes (all memberships announced).
    full_passes: watch::Sender<u64>,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn score(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

impl Membership {
    pub fn new(shared: Arc<Shared>, params: CoreParams) -> Membership {
        let names = Names::new(&shared.prefix, &shared.process_id);
        Membership {
            shared,
            names,
            params,
            active: Mutex::new(HashSet::new()),
            renewed: Mutex::new(None),
            last_score: AtomicU64::new(0),
            full_queue_warning: Throttle::default(),
            full_passes: watch::channel(0).0,
        }
    }

    /// Asks the publisher to announce every membership again and waits (at most
    /// `RESPONSE_TIMEOUT`) until it has: the reader calls this after reconnecting, since Redis
    /// may have restarted empty.
    async fn renew_all(&self) {
        let mut passes = self.full_passes.subscribe();
        passes.mark_unchanged();
        *lock(&self.renewed) = None;
        self.shared.wanted_changed.notify_one();
        let _ = tokio::time::timeout(link::RESPONSE_TIMEOUT, passes.changed()).await;
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// How often every membership is renewed: well inside `group_expiry`, at most hourly.
    fn renew_every(&self) -> Duration {
        Duration::from_secs((self.params.group_expiry / 2).clamp(1, 3600))
    }

    fn next_score(&self) -> String {
        let now = now_micros();
        let mut last = self.last_score.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.last_score.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return score(next),
                Err(seen) => last = seen,
            }
        }
    }

    /// The one command that sends `event` to the group's other member processes.
    pub fn send_command(&self, group: &str, event: &GroupEvent) -> redis::Cmd {
        let fields = event::fields(event, None);
        let nonce: Vec<u8> = (0..self.params.random_prefix_length)
            .map(|_| rand::random::<u8>())
            .collect();
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.names.script_sha)
            .arg(1)
            .arg(self.names.group_key(group))
            .arg(&self.names.queue)
            .arg(self.next_score())
            .arg(self.params.expiry)
            .arg(self.params.group_expiry)
            .arg(self.params.capacity)
            .arg(&self.names.prefix)
            .arg(nonce)
            .arg(fields.bytes)
            .arg(fields.count);
        cmd
    }

    /// A fresh connection: load the script, then announce every membership again (Redis may
    /// have restarted and lost them).
    pub async fn on_connect(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(SEND_SCRIPT)
            .query_async::<String>(conn)
            .await?;
        *lock(&self.renewed) = None;
        self.sync(conn).await
    }

    /// Mirrors membership changes into the group sets (all of them when renewal is due).
    pub async fn sync(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let full = lock(&self.renewed).is_none_or(|t| t.elapsed() >= self.renew_every());
        let (add, remove) = {
            let active = lock(&self.active);
            lock(&self.shared.wanted).diff(&active, full)
        };
        if !add.is_empty() || !remove.is_empty() {
            let score = score(now_micros());
            let mut pipe = redis::pipe();
            for group in &add {
                let key = self.names.group_key(group);
                pipe.cmd("ZADD")
                    .arg(&key)
                    .arg(&score)
                    .arg(self.names.channel(group))
                    .ignore();
                pipe.cmd("EXPIRE")
                    .arg(&key)
                    .arg(self.params.group_expiry)
                    .ignore();
            }
            for group in &remove {
                pipe.cmd("ZREM")
                    .arg(self.names.group_key(group))
                    .arg(self.names.channel(group))
                    .ignore();
            }
            if let Err(e) = pipe.query_async::<()>(conn).await {
                // Try these again on the next connection.
                let mut wanted = lock(&self.shared.wanted);
                wanted.dirty.extend(add.into_iter().chain(remove));
                return Err(e);
            }
            lock(&self.shared.wanted).confirm(&add, &remove);
            let mut active = lock(&self.active);
            for group in remove {
                active.remove(&group);
            }
            active.extend(add);
            self.shared
                .subscribed
                .store(active.len(), Ordering::Relaxed);
        }
        if full {
            *lock(&self.renewed) = Some(Instant::now());
            self.full_passes.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// The broker is going away: leave every group (best effort).
    pub async fn leave_all(&self, conn: &mut MultiplexedConnection) {
        let groups: Vec<String> = lock(&self.active).drain().collect();
        let mut pipe = redis::pipe();
        for group in &groups {
            pipe.cmd("ZREM")
                .arg(self.names.group_key(group))
                .arg(self.names.channel(group))
                .ignore();
        }
        pipe.cmd("DEL").arg(&self.names.queue).ignore();
        let _ = tokio::time::timeout(link::RESPONSE_TIMEOUT, pipe.query_async::<()>(conn)).await;
    }

    /// Counts the send script's "queue full" replies; warns at most once a minute.
    pub fn count_over_capacity(&self, replies: &[i64]) {
        let full: i64 = replies.iter().filter(|&&n| n > 0).sum();
        if full == 0 {
            return;
        }
        self.shared
            .over_capacity
            .fetch_add(full as u64, Ordering::Relaxed);
        if self.full_queue_warning.due() {
            tracing::warn!(
                capacity = self.params.capacity,
                total = self.shared.over_capacity.load(Ordering::Relaxed),
                "channel-layer queues full: messages to a process that is not reading were \
                 dropped (as channels_redis does)"
            );
        }
    }
}

/// Hands one queued message to the local members of the groups it names.
fn on_message(shared: &Shared, names: &Names, member: &[u8], prefix_len: usize) {
    let Some(payload) = member.get(prefix_len..) else {
        shared.ignore(&names.queue, &"shorter than random_prefix_length");
        return;
    };
    let decoded = match event::decode(payload) {
        Ok(d) => d,
        Err(e) => return shared.ignore(&names.queue, &e),
    };
    let mut groups: Vec<&str> = decoded
        .channels
        .iter()
        .filter_map(|c| names.group_of(c))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    if groups.is_empty() {
        return shared.ignore(&names.queue, &"no recipient channel of this process");
    }
    shared.received.fetch_add(1, Ordering::Relaxed);
    for group in groups {
        shared.hub.deliver(group, &decoded.frame);
    }
}

type Popped = Vec<(Vec<u8>, f64)>;

/// One round trip: waits (at most `BLOCK_SECONDS`) for the next message, and takes whatever
/// else is queued behind it: Redis runs the pipelined `ZPOPMIN` as soon as the `BZPOPMIN`
/// unblocks, so a busy queue is drained by up to [`DRAIN`] messages per pop.
async fn pop(mut conn: MultiplexedConnection, queue: String) -> redis::RedisResult<Popped> {
    let (first, more): (Option<(String, Vec<u8>, f64)>, Popped) = redis::pipe()
        .cmd("BZPOPMIN")
        .arg(&queue)
        .arg(BLOCK_SECONDS)
        .cmd("ZPOPMIN")
        .arg(&queue)
        .arg(DRAIN)
        .query_async(&mut conn)
        .await?;
    let mut out = Vec::with_capacity(1 + more.len());
    out.extend(first.map(|(_, member, score)| (member, score)));
    out.extend(more);
    Ok(out)
}

/// Owns the queue-reading connection. Two pops are always on their way, so one of them waits
/// in Redis while the other's batch is handed out: a message is popped in the same turn of
/// Redis' event loop that queued it, and a busy queue never waits for this process.
pub(super) async fn reader(
    shared: Arc<Shared>,
    membership: Arc<Membership>,
    prefix_len: usize,
    client: redis::Client,
    mut stop: watch::Receiver<()>,
) {
    let names = membership.names().clone();
    let mut backoff = link::first_backoff();
    // The second pop may wait for the first one's block to end, then block itself.
    let response_timeout =
        Duration::from_secs(POPS_IN_FLIGHT as u64 * BLOCK_SECONDS) + link::RESPONSE_TIMEOUT;
    loop {
        let error = match link::connect(&client, response_timeout).await {
            Ok(conn) => {
                // Healthy means "hears the others": memberships first.
                membership.renew_all().await;
                shared.set_link(Link::Receiver, true, None);
                backoff = link::first_backoff();
                let mut pops = FuturesOrdered::new();
                for _ in 0..POPS_IN_FLIGHT {
                    pops.push_back(pop(conn.clone(), names.queue.clone()));
                }
                loop {
                    let popped = tokio::select! {
                        popped = pops.next() => popped,
                        _ = link::stopping(&mut stop) => return,
                    };
                    let messages = match popped {
                        Some(Ok(messages)) => messages,
                        Some(Err(e)) => break e.to_string(),
                        None => break "no pop in flight".to_string(),
                    };
                    pops.push_back(pop(conn.clone(), names.queue.clone()));
                    for (member, _) in messages {
                        on_message(&shared, &names, &member, prefix_len);
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        shared.set_link(Link::Receiver, false, Some(&error));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = link::stopping(&mut stop) => return,
        }
        backoff = link::next_backoff(backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_channels_redis() {
        let n = Names::new("asgi", &[0xab; 16]);
        assert_eq!(n.group_key("room-1"), "asgi:group:room-1");
        let channel = n.channel("room-1");
        assert_eq!(channel, format!("specific.{}!room-1", "ab".repeat(16)));
        assert_eq!(n.queue, format!("asgispecific.{}!", "ab".repeat(16)));
        assert_eq!(n.group_of(&channel), Some("room-1"));
        assert_eq!(n.group_of("specific.other!room-1"), None);
        // channels' own name rules: < 100 characters, [a-zA-Z0-9-_.] plus one "!".
        assert!(channel.len() < 100);
    }

    #[test]
    fn scores_increase_strictly() {
        let shared = Arc::new(Shared::new("p", [1; 16], String::new(), "test"));
        let m = Membership::new(shared, CoreParams::default());
        let a = m.next_score();
        let b = m.next_score();
        assert!(
            b.parse::<f64>().unwrap() > a.parse::<f64>().unwrap(),
            "{a} {b}"
        );
        assert_eq!(score(1_700_000_000_000_042), "1700000000.000042");
    }
}
