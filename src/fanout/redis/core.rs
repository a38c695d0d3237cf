//! `channels_redis.core.RedisChannelLayer`'s storage, spoken by Whisper (channels_redis 4.x
//! `core.py`, read from its source):
//!
//! * a group is the sorted set `prefix + ":group:" + group` of channel names, scored by the
//!   time they joined; members older than `group_expiry` are pruned by every send;
//! * a process receives on the sorted set `prefix + "specific.<process>!"`: every message for
//!   any of its channels (`specific.<process>!<local part>`) lands there, scored by send time,
//!   as `random_prefix_length` random bytes + a msgpack map whose `__asgi_channel__` lists the
//!   recipient channels; a queue holding `capacity` messages takes no more (silently, as in
//!   channels_redis), and a queue expires `expiry` seconds after its last message;
//! * with several hosts, a group set lives on the host its group name hashes to, a queue on the
//!   host its name without prefix (`specific.<process>!`) hashes to (`ring`).
//!
//! Whisper joins each group with local members once per process, as the channel
//! `specific.<process hex>!<group>`, and renews the membership well before `group_expiry`.
//! On one host, a send is one `EVALSHA` of [`SEND_SCRIPT`], which does in Redis what
//! channels_redis' `group_send` does in several round trips (prune, read the group, push to
//! each member process's queue with the capacity check), skipping this process's own queue:
//! local members were served directly. On several hosts it takes channels_redis' two steps
//! (`group_send`, `_map_channel_keys_to_connection`): [`MEMBERS_SCRIPT`] on the group's host
//! prunes and reads the group, then one [`PUSH_SCRIPT`] per host holding member queues pushes
//! to all of them there. Send scores are strictly increasing per process, so a sender's events
//! keep their order in every queue. Senders push at most [`pipeline_limit`] messages per round
//! trip, and the reader (`inbox`) has Redis drain its queue in batches, so a queue stays far
//! below `capacity` even under a burst from one sender (a thousand messages: 24 at the peak,
//! where 512-command pipelines and one pop per round trip hit the 100-message `capacity` and
//! lost a third of them).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indexmap::IndexMap;
use redis::aio::MultiplexedConnection;
use sha1::{Digest, Sha1};
use tokio::sync::watch;
use tokio::time::Instant;

use super::event::{self, CHANNEL_KEY, Fields};
use super::link::{self, Job};
use super::shared::{Shared, Throttle, lock};
use crate::chat::protocol::GroupEvent;
use crate::config::CoreParams;
use crate::fanout::msgpack;

/// Pushes one event to every other member process of a group (one host). KEYS[1]: the group.
/// ARGV: own queue (skipped), score (now), expiry, group_expiry, capacity, prefix, random
/// prefix, map entries (msgpack), entry count. Returns how many queues were full.
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

/// Several hosts, step one (on the group's host): prunes the group as `group_send` does and
/// returns its channels. KEYS[1]: the group. ARGV: score (now), group_expiry.
pub(super) const MEMBERS_SCRIPT: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, math.floor(tonumber(ARGV[1])) - tonumber(ARGV[2]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"#;

/// Several hosts, step two (on a queue's host): channels_redis' `group_send_lua` with the
/// expiry pruning of its pipeline before it. KEYS: the queues. ARGV: one message per queue,
/// then score (now), expiry, capacity. Returns how many queues were full.
pub(super) const PUSH_SCRIPT: &str = r#"
local now = ARGV[#ARGV - 2]
local expiry = tonumber(ARGV[#ARGV - 1])
local capacity = tonumber(ARGV[#ARGV])
local floor_now = math.floor(tonumber(now))
local full = 0
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, floor_now - expiry)
  if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < capacity then
    redis.call('ZADD', KEYS[i], now, ARGV[i])
    redis.call('EXPIRE', KEYS[i], expiry)
  else
    full = full + 1
  end
end
return full
"#;

fn sha(script: &str) -> String {
    hex::encode(Sha1::digest(script.as_bytes()))
}

/// Sends one process pushes per round trip: a quarter of `capacity` (at most 64). A pipeline of
/// hundreds of sends lands in a member's queue between two of its reader's pops and overflows
/// it (100 messages by default); with this bound a burst reaches Redis as fast as the reader
/// drains it, and the queue stays well below `capacity`.
pub(super) fn pipeline_limit(capacity: u64) -> usize {
    (capacity / 4).clamp(1, 64) as usize
}

/// This process's names in `RedisChannelLayer`'s keyspace.
#[derive(Clone)]
pub(super) struct Names {
    prefix: String,
    /// `specific.<32 hex>!`: the non-local name of every channel of this process.
    base: String,
    /// `prefix + base`: this process's queue.
    queue: String,
}

impl Names {
    pub fn new(prefix: &str, process_id: &[u8]) -> Names {
        let base = format!("specific.{}!", hex::encode(process_id));
        Names {
            prefix: prefix.to_string(),
            queue: format!("{prefix}{base}"),
            base,
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

    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// What the ring hashes to place this process's queue (`receive_single`: the channel's
    /// non-local name, without prefix).
    pub fn queue_hash_name(&self) -> &str {
        &self.base
    }
}

/// An event waiting for its group's members (several hosts).
pub(super) struct Outgoing {
    fields: Fields,
    nonce: Vec<u8>,
    score: String,
}

impl Outgoing {
    /// What the event waiting for its second step holds.
    pub(super) fn bytes(&self) -> usize {
        self.fields.bytes.len() + self.nonce.len() + self.score.len()
    }
}

/// One host's view of this process's memberships.
struct HostMemberships {
    /// Groups this host holds this process in, as far as its publisher knows.
    active: Mutex<HashSet<String>>,
    /// When every membership on this host was last renewed.
    renewed: Mutex<Option<Instant>>,
    /// Counts completed full passes (all memberships announced).
    full_passes: watch::Sender<u64>,
}

/// Builds the sends and keeps the memberships of one process.
pub(super) struct Membership {
    shared: Arc<Shared>,
    names: Names,
    params: CoreParams,
    /// Indexed by host.
    hosts: Vec<HostMemberships>,
    /// Score of the last send, in microseconds (kept strictly increasing).
    last_score: AtomicU64,
    full_queue_warning: Throttle,
    send_sha: String,
    members_sha: String,
    push_sha: String,
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
        let hosts = (0..shared.host_count())
            .map(|_| HostMemberships {
                active: Mutex::new(HashSet::new()),
                renewed: Mutex::new(None),
                full_passes: watch::channel(0).0,
            })
            .collect();
        Membership {
            shared,
            names,
            params,
            hosts,
            last_score: AtomicU64::new(0),
            full_queue_warning: Throttle::default(),
            send_sha: sha(SEND_SCRIPT),
            members_sha: sha(MEMBERS_SCRIPT),
            push_sha: sha(PUSH_SCRIPT),
        }
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The host holding this process's queue.
    pub fn inbox_host(&self) -> usize {
        self.shared.ring.host_of(self.names.queue_hash_name())
    }

    /// Asks the queue host's publisher to announce every membership there again and waits (at
    /// most `RESPONSE_TIMEOUT`) until it has: the reader calls this after reconnecting, since
    /// that Redis may have restarted empty.
    pub async fn renew_all(&self) {
        let host = self.inbox_host();
        let h = &self.hosts[host];
        let mut passes = h.full_passes.subscribe();
        passes.mark_unchanged();
        *lock(&h.renewed) = None;
        self.shared.changed(host).notify_one();
        let _ = tokio::time::timeout(link::RESPONSE_TIMEOUT, passes.changed()).await;
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

    fn nonce(&self) -> Vec<u8> {
        (0..self.params.random_prefix_length)
            .map(|_| rand::random::<u8>())
            .collect()
    }

    /// The job that sends `event` to the group's other member processes, for the publisher of
    /// the group's host.
    pub fn send_job(&self, group: &str, event: &GroupEvent) -> Job {
        let fields = event::fields(event, None);
        let nonce = self.nonce();
        let score = self.next_score();
        let key = self.names.group_key(group);
        if self.hosts.len() > 1 {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(&self.members_sha)
                .arg(1)
                .arg(key)
                .arg(&score)
                .arg(self.params.group_expiry);
            let outgoing = Outgoing {
                fields,
                nonce,
                score,
            };
            return Job::Members(cmd, Box::new(outgoing));
        }
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.send_sha)
            .arg(1)
            .arg(key)
            .arg(&self.names.queue)
            .arg(score)
            .arg(self.params.expiry)
            .arg(self.params.group_expiry)
            .arg(self.params.capacity)
            .arg(&self.names.prefix)
            .arg(nonce)
            .arg(fields.bytes)
            .arg(fields.count);
        Job::Event(cmd)
    }

    /// Step two of a send on several hosts: given the group's channels (`members`, the reply of
    /// [`MEMBERS_SCRIPT`]), one push per host holding queues of other processes, with each
    /// queue's message naming its recipient channels, as `_map_channel_keys_to_connection`
    /// builds them.
    pub fn route(&self, out: &Outgoing, members: &redis::Value) -> Vec<(usize, redis::Cmd)> {
        let channels: Vec<String> = redis::from_redis_value_ref(members).unwrap_or_default();
        // Queue (non-local name) → its channels, in the group's order.
        let mut queues: IndexMap<&str, Vec<&str>> = IndexMap::new();
        for channel in &channels {
            let non_local = match channel.find('!') {
                Some(bang) => &channel[..=bang],
                None => channel.as_str(),
            };
            if non_local != self.names.base {
                queues.entry(non_local).or_default().push(channel);
            }
        }
        let mut by_host: BTreeMap<usize, (Vec<String>, Vec<Vec<u8>>)> = BTreeMap::new();
        for (non_local, recipients) in queues {
            let host = self.shared.ring.host_of(non_local);
            let (keys, messages) = by_host.entry(host).or_default();
            keys.push(format!("{}{non_local}", self.names.prefix));
            messages.push(self.message(out, &recipients));
        }
        by_host
            .into_iter()
            .map(|(host, (keys, messages))| {
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(&self.push_sha).arg(keys.len()).arg(keys);
                for message in messages {
                    cmd.arg(message);
                }
                cmd.arg(&out.score)
                    .arg(self.params.expiry)
                    .arg(self.params.capacity);
                (host, cmd)
            })
            .collect()
    }

    /// A queued message: random prefix, then the event's map with `__asgi_channel__` last.
    fn message(&self, out: &Outgoing, recipients: &[&str]) -> Vec<u8> {
        let mut m = Vec::with_capacity(out.nonce.len() + out.fields.bytes.len() + 64);
        m.extend_from_slice(&out.nonce);
        msgpack::write_map_header(out.fields.count + 1, &mut m);
        m.extend_from_slice(&out.fields.bytes);
        msgpack::write_str(CHANNEL_KEY, &mut m);
        msgpack::write_array_header(recipients.len(), &mut m);
        for channel in recipients {
            msgpack::write_str(channel, &mut m);
        }
        m
    }

    /// A fresh connection to `host`: load the scripts, then announce every membership there
    /// again (Redis may have restarted and lost them).
    pub async fn on_connect(
        &self,
        host: usize,
        conn: &mut MultiplexedConnection,
    ) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for script in [SEND_SCRIPT, MEMBERS_SCRIPT, PUSH_SCRIPT] {
            pipe.cmd("SCRIPT").arg("LOAD").arg(script).ignore();
        }
        pipe.query_async::<()>(conn).await?;
        *lock(&self.hosts[host].renewed) = None;
        self.sync(host, conn).await
    }

    /// Mirrors membership changes of the groups on `host` into their sets (all of them when
    /// renewal is due).
    pub async fn sync(
        &self,
        host: usize,
        conn: &mut MultiplexedConnection,
    ) -> redis::RedisResult<()> {
        let h = &self.hosts[host];
        let full = lock(&h.renewed).is_none_or(|t| t.elapsed() >= self.renew_every());
        let (add, remove) = {
            let active = lock(&h.active);
            lock(&self.shared.wanted).diff(host, &self.shared.ring, &active, full)
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
                lock(&self.shared.wanted).redo(host, add.into_iter().chain(remove));
                return Err(e);
            }
            lock(&self.shared.wanted).confirm(&add, &remove);
            let mut active = lock(&h.active);
            for group in remove {
                active.remove(&group);
            }
            active.extend(add);
            self.shared.set_subscribed(host, active.len());
        }
        if full {
            *lock(&h.renewed) = Some(Instant::now());
            h.full_passes.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// The broker is going away: leave every group on `host`, and delete the queue if it lives
    /// there (best effort).
    pub async fn leave_all(&self, host: usize, conn: &mut MultiplexedConnection) {
        let groups: Vec<String> = lock(&self.hosts[host].active).drain().collect();
        let mut pipe = redis::pipe();
        for group in &groups {
            pipe.cmd("ZREM")
                .arg(self.names.group_key(group))
                .arg(self.names.channel(group))
                .ignore();
        }
        if host == self.inbox_host() {
            pipe.cmd("DEL").arg(&self.names.queue).ignore();
        }
        let _ = tokio::time::timeout(link::RESPONSE_TIMEOUT, pipe.query_async::<()>(conn)).await;
    }

    /// Counts a send or push script's "queues full" reply; warns at most once a minute.
    pub fn count_over_capacity(&self, reply: &redis::Value) {
        let full: i64 = redis::from_redis_value_ref(reply).unwrap_or(0);
        if full <= 0 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_channels_redis() {
        let n = Names::new("asgi", &[0xab; 16]);
        assert_eq!(n.group_key("room-1"), "asgi:group:room-1");
        let channel = n.channel("room-1");
        assert_eq!(channel, format!("specific.{}!room-1", "ab".repeat(16)));
        assert_eq!(n.queue(), format!("asgispecific.{}!", "ab".repeat(16)));
        assert_eq!(
            n.queue_hash_name(),
            format!("specific.{}!", "ab".repeat(16))
        );
        assert_eq!(n.group_of(&channel), Some("room-1"));
        assert_eq!(n.group_of("specific.other!room-1"), None);
        // channels' own name rules: < 100 characters, [a-zA-Z0-9-_.] plus one "!".
        assert!(channel.len() < 100);
    }

    #[test]
    fn sends_on_two_hosts_follow_channels_redis() {
        use super::super::ring::Ring;
        use super::super::shared::Topology;
        use crate::django::pyjson::Value;
        let topology = Topology {
            hosts: vec!["a".into(), "b".into()],
            ring: Ring::new(2, ""),
            inbox: Some(0),
        };
        let shared = Arc::new(Shared::new("asgi", [0xab; 16], topology, "test"));
        let m = Membership::new(shared, CoreParams::default());
        let event = GroupEvent::message(Value::int(1), "ann", Value::str("hi"));
        let Job::Members(members, out) = m.send_job("room-1", &event) else {
            panic!("two hosts: members first")
        };
        let args = members.args_iter().count();
        assert_eq!(args, 6, "EVALSHA sha 1 key score group_expiry");
        // The group: this process (skipped), two channels of one Python process (one message
        // naming both), one of another.
        let py1 = "specific.0123456789abcdef0123456789abcdef!";
        let py2 = "specific.3dde!";
        let reply = redis::Value::Array(
            [
                m.names().channel("room-1"),
                format!("{py1}aaa"),
                format!("{py2}ccc"),
                format!("{py1}bbb"),
            ]
            .into_iter()
            .map(|c| redis::Value::BulkString(c.into_bytes()))
            .collect(),
        );
        // channels_redis' `_consistent_hash(name, 2)`: py1 → 0 (recorded in `ring`'s tests),
        // py2 → 1 (`specific.3dde!`, checked the same way): one push to each host.
        let pushes = m.route(&out, &reply);
        let args = |cmd: &redis::Cmd| -> Vec<Vec<u8>> {
            cmd.args_iter()
                .map(|a| match a {
                    redis::Arg::Simple(b) => b.to_vec(),
                    _ => Vec::new(),
                })
                .collect()
        };
        assert_eq!(pushes.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 1]);
        // EVALSHA sha 1 key message score expiry capacity
        let to_py1 = args(&pushes[0].1);
        assert_eq!(to_py1.len(), 8);
        assert_eq!(to_py1[2], b"1");
        assert_eq!(to_py1[3], format!("asgi{py1}").into_bytes());
        let decoded = event::decode(&to_py1[4][12..]).unwrap();
        assert_eq!(decoded.frame, *event.frame());
        assert_eq!(decoded.channels, [format!("{py1}aaa"), format!("{py1}bbb")]);
        assert_eq!((&to_py1[6][..], &to_py1[7][..]), (&b"60"[..], &b"100"[..]));
        let to_py2 = args(&pushes[1].1);
        assert_eq!(to_py2[3], format!("asgi{py2}").into_bytes());
        let decoded = event::decode(&to_py2[4][12..]).unwrap();
        assert_eq!(decoded.channels, [format!("{py2}ccc")]);
    }

    #[test]
    fn scores_increase_strictly() {
        let shared = Arc::new(Shared::for_test("p", [1; 16]));
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
