//! Carries out a consumer's [`Effect`]s for one connection: replies into its own queue, group
//! events and membership through the broker (`fanout::Broker`); times each fan-out.

use std::time::Duration;

use crate::chat::consumer::Effect;
use crate::fanout::Mailbox;
use crate::web::AppState;

/// How long a join waits for its group to be ready before answering anyway.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Carries out a consumer's effects, in order, for the connection owning `mailbox`. After a
/// join it waits (at most [`READY_TIMEOUT`]) until the group is ready on every process: the
/// connection's task writes nothing meanwhile, so when the client reads the join ack, events
/// from any process reach it, as when the original's `group_add` returned before its ack.
pub async fn apply(app: &AppState, mailbox: &Mailbox, effects: Vec<Effect>) {
    let broker = app.broker.as_ref();
    let mut joined = Vec::new();
    for effect in effects {
        match effect {
            Effect::Reply(frame) => {
                mailbox.deliver(frame);
            }
            Effect::GroupSend { group, event } => {
                let _timer = app.metrics.fanout.start();
                broker.group_send(&group, event);
            }
            Effect::GroupAdd(group) => {
                tracing::debug!(room = %group, "joined");
                broker.group_add(&group, mailbox);
                joined.push(group);
            }
            Effect::GroupDiscard(group) => {
                tracing::debug!(room = %group, "left");
                broker.group_discard(&group, mailbox.id());
            }
        }
    }
    for group in joined {
        if let Some(ready) = broker.ready(&group) {
            let _ = tokio::time::timeout(READY_TIMEOUT, ready).await;
        }
    }
}
