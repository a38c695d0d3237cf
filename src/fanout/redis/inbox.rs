//! `RedisChannelLayer`'s receiving side: the task reading this process's queue
//! (`prefix + "specific.<process>!"`, on the host the ring gives that name) and handing each
//! message to the local members of the groups it names.
//!
//! Two `BZPOPMIN` + `ZPOPMIN` pipelines are always on their way on the reader's own
//! connection: one of them waits in Redis while the other's batch is handed out, so the queue
//! is drained within the turn of Redis' event loop that filled it, by up to [`DRAIN`] messages
//! per pop. With the senders' bound on what they push per round trip
//! (`core::pipeline_limit`), a queue stays far below `capacity` even under a burst.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use redis::aio::MultiplexedConnection;
use tokio::sync::watch;

use super::core::{Membership, Names};
use super::event;
use super::link;
use super::shared::{Link, Shared};

/// Messages taken from the queue per `ZPOPMIN` after a blocking pop.
const DRAIN: usize = 256;
/// Pops sent ahead of their replies.
const POPS_IN_FLIGHT: usize = 2;
/// `BZPOPMIN` blocks this long (seconds) before the reader loops (and checks for shutdown).
const BLOCK_SECONDS: u64 = 1;

/// Hands one queued message to the local members of the groups it names.
fn on_message(shared: &Shared, names: &Names, member: &[u8], prefix_len: usize) {
    let Some(payload) = member.get(prefix_len..) else {
        shared.ignore(names.queue(), &"shorter than random_prefix_length");
        return;
    };
    let decoded = match event::decode(payload) {
        Ok(d) => d,
        Err(e) => return shared.ignore(names.queue(), &e),
    };
    let mut groups: Vec<&str> = decoded
        .channels
        .iter()
        .filter_map(|c| names.group_of(c))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    if groups.is_empty() {
        return shared.ignore(names.queue(), &"no recipient channel of this process");
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
    let host = membership.inbox_host();
    let mut backoff = link::first_backoff();
    // The second pop may wait for the first one's block to end, then block itself.
    let response_timeout =
        Duration::from_secs(POPS_IN_FLIGHT as u64 * BLOCK_SECONDS) + link::RESPONSE_TIMEOUT;
    loop {
        let error = match link::connect(&client, response_timeout).await {
            Ok(conn) => {
                // Healthy means "hears the others": memberships first.
                membership.renew_all().await;
                shared.set_link(host, Link::Receiver, true, None);
                backoff = link::first_backoff();
                let mut pops = FuturesOrdered::new();
                for _ in 0..POPS_IN_FLIGHT {
                    pops.push_back(pop(conn.clone(), names.queue().to_string()));
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
                    pops.push_back(pop(conn.clone(), names.queue().to_string()));
                    for (member, _) in messages {
                        on_message(&shared, &names, &member, prefix_len);
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        shared.set_link(host, Link::Receiver, false, Some(&error));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = link::stopping(&mut stop) => return,
        }
        backoff = link::next_backoff(backoff);
    }
}
