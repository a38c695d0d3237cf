//! The two pub/sub formats: Whisper's own (`REDIS_URL`) and
//! `channels_redis.pubsub.RedisPubSubChannelLayer`'s (channels_redis 4.x `pubsub.py`).
//!
//! | | channel of a group | payload |
//! |---|---|---|
//! | Whisper | `REDIS_PREFIX + group` | `WSP1` + 16-byte process id + the frame's bytes |
//! | RedisPubSubChannelLayer | `prefix + "__group__" + group` | msgpack event dict (see `event`) |
//!
//! Per host, one task owns a pub/sub connection subscribed to the groups that have local
//! members only (SUBSCRIBE on the first local member, UNSUBSCRIBE after the last one leaves)
//! and hands what arrives to the local hub, unless this process published it. A process only
//! hears what was published after its SUBSCRIBE was confirmed (pub/sub keeps nothing), exactly
//! as channels_redis' pub/sub layer behaves. With several hosts a group's channel is published
//! and subscribed on the host its whole name hashes to (`pubsub.py`, `_get_shard`; see `ring`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::watch;

use super::event;
use super::link;
use super::shared::{Link, PROCESS_ID_LEN, Shared, lock};
use crate::chat::protocol::{Frame, GroupEvent};

const MAGIC: &[u8; 4] = b"WSP1";
const HEADER_LEN: usize = MAGIC.len() + PROCESS_ID_LEN;

/// Which pub/sub format a broker speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PubSubFormat {
    Whisper,
    Channels,
}

impl PubSubFormat {
    pub fn channel(self, prefix: &str, group: &str) -> String {
        match self {
            PubSubFormat::Whisper => format!("{prefix}{group}"),
            PubSubFormat::Channels => format!("{prefix}__group__{group}"),
        }
    }

    fn group_of<'a>(self, prefix: &str, channel: &'a str) -> Option<&'a str> {
        let rest = channel.strip_prefix(prefix)?;
        match self {
            PubSubFormat::Whisper => Some(rest),
            PubSubFormat::Channels => rest.strip_prefix("__group__"),
        }
    }

    /// The PUBLISH for one event: serialised once, marked with this process's id.
    pub fn publish(self, shared: &Shared, group: &str, event: &GroupEvent) -> redis::Cmd {
        let payload = match self {
            PubSubFormat::Whisper => {
                let frame = event.frame().as_str().as_bytes();
                let mut p = Vec::with_capacity(HEADER_LEN + frame.len());
                p.extend_from_slice(MAGIC);
                p.extend_from_slice(&shared.process_id);
                p.extend_from_slice(frame);
                p
            }
            PubSubFormat::Channels => event::encode(event, Some(&shared.process_id)),
        };
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.channel(&shared.prefix, group)).arg(payload);
        cmd
    }

    /// A payload from Redis: its frame, unless this process published it or it is not a chat
    /// event (then counted as ignored).
    fn frame(self, shared: &Shared, channel: &str, payload: &[u8]) -> Option<Frame> {
        match self {
            PubSubFormat::Whisper => {
                if payload.len() < HEADER_LEN || &payload[..MAGIC.len()] != MAGIC {
                    shared.ignore(channel, &"not a Whisper payload");
                    return None;
                }
                if payload[MAGIC.len()..HEADER_LEN] == shared.process_id {
                    return None;
                }
                match std::str::from_utf8(&payload[HEADER_LEN..]) {
                    Ok(text) => Some(Frame::from_string(text.to_string())),
                    Err(_) => {
                        shared.ignore(channel, &"not UTF-8");
                        None
                    }
                }
            }
            PubSubFormat::Channels => match event::decode(payload) {
                Ok(d) if d.origin == Some(shared.process_id) => None,
                Ok(d) => Some(d.frame),
                Err(e) => {
                    shared.ignore(channel, &e);
                    None
                }
            },
        }
    }

    pub(super) fn on_message(self, shared: &Shared, channel: &str, payload: &[u8]) {
        let Some(group) = self.group_of(&shared.prefix, channel) else {
            return;
        };
        if let Some(frame) = self.frame(shared, channel, payload) {
            shared.received.fetch_add(1, Ordering::Relaxed);
            shared.hub.deliver(group, &frame);
        }
    }
}

/// Owns `host`'s pub/sub connection: keeps it subscribed to the wanted groups on that host and
/// hands what arrives to the local hub.
pub(super) async fn subscriber(
    shared: Arc<Shared>,
    format: PubSubFormat,
    host: usize,
    client: redis::Client,
    mut stop: watch::Receiver<()>,
) {
    let mut backoff = link::first_backoff();
    loop {
        let error = match tokio::time::timeout(link::CONNECT_TIMEOUT, client.get_async_pubsub())
            .await
        {
            Ok(Ok(pubsub)) => {
                let (mut sink, mut stream) = pubsub.split();
                let mut active: HashSet<String> = HashSet::new();
                let mut full = true;
                loop {
                    if let Err(e) =
                        reconcile(&shared, format, host, &mut sink, &mut active, full).await
                    {
                        break e;
                    }
                    if full {
                        full = false;
                        backoff = link::first_backoff();
                        shared.set_link(host, Link::Receiver, true, None);
                    }
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => format.on_message(&shared, msg.get_channel_name(), msg.get_payload_bytes()),
                            None => break "connection closed".to_string(),
                        },
                        _ = shared.changed(host).notified() => {}
                        _ = link::stopping(&mut stop) => return,
                    }
                }
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connection timed out".to_string(),
        };
        shared.set_subscribed(host, 0);
        lock(&shared.wanted).unconfirm(host, &shared.ring);
        shared.set_link(host, Link::Receiver, false, Some(&error));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = link::stopping(&mut stop) => return,
        }
        backoff = link::next_backoff(backoff);
    }
}

/// Brings the connection's subscriptions in line with the wanted groups.
async fn reconcile(
    shared: &Shared,
    format: PubSubFormat,
    host: usize,
    sink: &mut PubSubSink,
    active: &mut HashSet<String>,
    full: bool,
) -> Result<(), String> {
    let (mut add, remove) = lock(&shared.wanted).diff(host, &shared.ring, active, full);
    // A fresh connection has no subscriptions: `active` is empty, nothing is re-sent twice.
    add.retain(|g| !active.contains(g));
    // The lock is released: the commands below await. A change meanwhile marks the group
    // dirty again and wakes the caller's next round.
    let timeout = |what| move |_| format!("{what} timed out");
    if !add.is_empty() {
        let channels: Vec<String> = add
            .iter()
            .map(|g| format.channel(&shared.prefix, g))
            .collect();
        tokio::time::timeout(link::RESPONSE_TIMEOUT, sink.subscribe(&channels))
            .await
            .map_err(timeout("SUBSCRIBE"))?
            .map_err(|e| e.to_string())?;
        lock(&shared.wanted).confirm(&add, &[]);
        active.extend(add);
    }
    if !remove.is_empty() {
        // Never an empty UNSUBSCRIBE: that would mean "every channel".
        let channels: Vec<String> = remove
            .iter()
            .map(|g| format.channel(&shared.prefix, g))
            .collect();
        tokio::time::timeout(link::RESPONSE_TIMEOUT, sink.unsubscribe(&channels))
            .await
            .map_err(timeout("UNSUBSCRIBE"))?
            .map_err(|e| e.to_string())?;
        for group in &remove {
            active.remove(group);
        }
        lock(&shared.wanted).confirm(&[], &remove);
    }
    shared.set_subscribed(host, active.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::django::pyjson::Value;
    use crate::fanout::{Broker, mailbox};

    fn whisper_payload(id: [u8; PROCESS_ID_LEN], text: &str) -> Vec<u8> {
        let mut p = MAGIC.to_vec();
        p.extend_from_slice(&id);
        p.extend_from_slice(text.as_bytes());
        p
    }

    #[test]
    fn own_and_foreign_payloads_are_ignored() {
        let s = Shared::for_test("t:", [7; PROCESS_ID_LEN]);
        let (m, mut inbox) = mailbox(1, 8, usize::MAX);
        s.hub.group_add("room-1", &m);
        let f = PubSubFormat::Whisper;
        f.on_message(
            &s,
            "t:room-1",
            &whisper_payload([7; PROCESS_ID_LEN], "mine"),
        );
        f.on_message(&s, "t:room-1", b"garbage");
        f.on_message(
            &s,
            "other:room-1",
            &whisper_payload([8; PROCESS_ID_LEN], "other prefix"),
        );
        assert!(inbox.try_recv().is_none());
        f.on_message(
            &s,
            "t:room-1",
            &whisper_payload([8; PROCESS_ID_LEN], "theirs"),
        );
        assert_eq!(inbox.try_recv().unwrap().as_str(), "theirs");
        assert_eq!(s.received.load(Ordering::Relaxed), 1);
        assert_eq!(s.ignored.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn channels_format_names_and_self_filter() {
        let s = Shared::for_test("asgi", [7; PROCESS_ID_LEN]);
        let f = PubSubFormat::Channels;
        assert_eq!(f.channel("asgi", "room-3"), "asgi__group__room-3");
        let (m, mut inbox) = mailbox(1, 8, usize::MAX);
        s.hub.group_add("room-3", &m);
        let event = GroupEvent::join(Value::int(3), "ann");
        let mine = event::encode(&event, Some(&[7; PROCESS_ID_LEN]));
        f.on_message(&s, "asgi__group__room-3", &mine);
        assert!(inbox.try_recv().is_none());
        let python = event::encode(&event, None);
        f.on_message(&s, "asgi__group__room-3", &python);
        assert_eq!(inbox.try_recv().unwrap(), *event.frame());
    }
}
