//! `RedisChannelLayer`'s receiving side: the task reading this process's queue
//! (`prefix + "specific.<process>!"`, on the host the ring gives that name) and handing each
//! message to the local members of the groups it names.
//!
//! The reader keeps [`POPS_IN_FLIGHT`] `BZPOPMIN` + `ZPOPMIN` pipelines on their way on its own
//! connection. Redis serves the next one as soon as a message arrives and drains the queue
//! behind it within that turn of its event loop, by up to [`DRAIN`] messages, so messages leave
//! the capacity-bound queue even while this process is busy elsewhere (a burst of deliveries
//! to its sockets, two cores shared with everything else). They wait in the connection instead
//! of in a queue that refuses the 101st: at most `POPS_IN_FLIGHT` × `capacity` of them, since a
//! pop takes no more than the queue holds. With two pops, a 2-core machine at 600,000
//! deliveries/s (scenario 6) filled the 100-message queue in the reader's pauses and lost
//! messages; with 64, no step of the scenario lost any and the queue never held more than a few
//! dozen. With the senders' bound on what they push per round trip (`core::pipeline_limit`), a
//! burst from one sender does not fill it either.

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
/// Pops sent ahead of their replies: how many turns of Redis' event loop move messages out of
/// the queue without this process (at least one message each).
const POPS_IN_FLIGHT: usize = 64;
/// `BZPOPMIN` blocks this long before giving up (Redis ≥ 6 takes fractions of a second).
const BLOCK: Duration = Duration::from_millis(50);

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

/// One round trip: waits (at most [`BLOCK`]) for the next message, and takes whatever
/// else is queued behind it: Redis runs the pipelined `ZPOPMIN` as soon as the `BZPOPMIN`
/// unblocks, so a busy queue is drained by up to [`DRAIN`] messages per pop.
async fn pop(mut conn: MultiplexedConnection, queue: String) -> redis::RedisResult<Popped> {
    let (first, more): (Option<(String, Vec<u8>, f64)>, Popped) = redis::pipe()
        .cmd("BZPOPMIN")
        .arg(&queue)
        .arg(BLOCK.as_secs_f64())
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

/// Owns the queue-reading connection, with [`POPS_IN_FLIGHT`] pops always on their way.
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
    // The last pop may wait for every pop before it to time out, then block itself.
    let response_timeout = BLOCK * POPS_IN_FLIGHT as u32 + link::RESPONSE_TIMEOUT;
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
