//! The consumer without a database or a network: a map of rooms behind [`RoomLookup`], the
//! in-process presence, and the effects checked in order (spec §4.12) and against the
//! socket's limits (issue 10).

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::chat::limits::Rate;

struct Rooms(HashMap<i64, Room>);

impl RoomLookup for Rooms {
    async fn room(&self, id: i64) -> Result<Option<Room>, StoreError> {
        Ok(self.0.get(&id).cloned())
    }
}

fn rooms() -> Rooms {
    let room = |id: i64, title: &str, staff_only| Room {
        id,
        title: title.to_string(),
        staff_only,
    };
    Rooms(HashMap::from([
        (1, room(1, "Lobby", false)),
        (2, room(2, "Staff", true)),
        (3, room(3, "Other", false)),
    ]))
}

/// A rate that never refills within a test.
const fn no_refill(burst: f64) -> Rate {
    Rate {
        per_second: 1e-9,
        burst,
    }
}

fn consumer(limits: SocketLimits) -> Consumer<Rooms> {
    let user = UserSnapshot {
        id: 7,
        username: "alice".to_string(),
        name: String::new(),
        is_staff: false,
    };
    let presence = Presence::in_memory(Duration::from_secs(3600));
    Consumer::new(user, rooms(), presence, true, limits)
}

fn reply(code: &str) -> Vec<Effect> {
    vec![Effect::Reply(Frame::from_string(format!(
        "{{\"error\": \"{code}\"}}"
    )))]
}

fn frames(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .map(|e| match e {
            Effect::Reply(f) => format!("reply {}", f.as_str()),
            Effect::GroupSend { group, event } => format!("{group} {}", event.frame().as_str()),
            Effect::GroupAdd(g) => format!("add {g}"),
            Effect::GroupDiscard(g) => format!("discard {g}"),
        })
        .collect()
}

#[tokio::test]
async fn join_acks_then_announces_then_subscribes() {
    let mut c = consumer(SocketLimits::default());
    let effects = c.receive(r#"{"command": "join", "room": "1"}"#).await;
    assert_eq!(
        frames(&effects),
        [
            r#"reply {"join": "1", "title": "Lobby"}"#,
            r#"room-1 {"msg_type": 4, "room": "1", "username": "alice"}"#,
            "add room-1",
        ]
    );
    // A second spelling of the same room: its own notice, no second subscription.
    let effects = c.receive(r#"{"command": "join", "room": 1}"#).await;
    assert_eq!(frames(&effects).len(), 2, "{:?}", frames(&effects));
    let effects = c.receive(r#"{"command": "leave", "room": "1"}"#).await;
    assert_eq!(
        frames(&effects),
        [
            r#"reply {"leave": "1"}"#,
            r#"room-1 {"msg_type": 5, "room": "1", "username": "alice"}"#,
            "discard room-1",
        ]
    );
    // The other spelling is still joined: its leave notice goes out at disconnect.
    assert_eq!(
        frames(&c.disconnect().await),
        [r#"room-1 {"msg_type": 5, "room": 1, "username": "alice"}"#]
    );
}

#[tokio::test]
async fn staff_rooms_and_unjoined_sends_are_refused() {
    let mut c = consumer(SocketLimits::default());
    let denied = reply("ROOM_ACCESS_DENIED");
    assert_eq!(c.receive(r#"{"command": "join", "room": 2}"#).await, denied);
    assert_eq!(
        c.receive(r#"{"command": "send", "room": 1, "message": "hi"}"#)
            .await,
        denied
    );
    assert!(c.disconnect().await.is_empty());
}

#[tokio::test]
async fn a_room_value_past_the_limit_is_invalid_whatever_the_command() {
    let mut c = consumer(SocketLimits {
        max_room_bytes: 8,
        ..SocketLimits::default()
    });
    // `"      1"` is 9 bytes of JSON: Python's int() would take it, the limit does not.
    for command in ["join", "leave", "room_users"] {
        let frame = format!(r#"{{"command": "{command}", "room": "      1"}}"#);
        assert_eq!(c.receive(&frame).await, reply("ROOM_INVALID"), "{command}");
    }
    let long = format!(r#"{{"command": "join", "room": {}}}"#, "1".repeat(100));
    assert_eq!(c.receive(&long).await, reply("ROOM_INVALID"));
    assert_eq!(
        frames(&c.receive(r#"{"command": "join", "room": "     1"}"#).await).len(),
        3
    );
}

#[tokio::test]
async fn joins_past_the_room_limit_are_refused_and_rejoins_are_not() {
    let mut c = consumer(SocketLimits {
        max_rooms: 2,
        ..SocketLimits::default()
    });
    assert_eq!(
        frames(&c.receive(r#"{"command": "join", "room": 1}"#).await).len(),
        3
    );
    assert_eq!(
        frames(&c.receive(r#"{"command": "join", "room": "01"}"#).await).len(),
        2
    );
    // A third spelling (or room) is one too many; the joined ones still work.
    assert_eq!(
        c.receive(r#"{"command": "join", "room": 3}"#).await,
        reply("TOO_MANY_ROOMS")
    );
    assert_eq!(
        c.receive(r#"{"command": "join", "room": " 1"}"#).await,
        reply("TOO_MANY_ROOMS")
    );
    assert_eq!(
        frames(&c.receive(r#"{"command": "join", "room": 1}"#).await).len(),
        2
    );
    // A leave makes room again.
    c.receive(r#"{"command": "leave", "room": "01"}"#).await;
    assert_eq!(
        frames(&c.receive(r#"{"command": "join", "room": 3}"#).await).len(),
        3
    );
}

#[tokio::test]
async fn every_admitted_frame_costs_a_token_and_the_rest_are_rate_limited() {
    let mut c = consumer(SocketLimits {
        messages: no_refill(3.0),
        ..SocketLimits::default()
    });
    let send = r#"{"command": "send", "room": 1, "message": "hi"}"#;
    assert_eq!(
        frames(&c.receive(r#"{"command": "join", "room": 1}"#).await).len(),
        3
    );
    assert_eq!(c.pause(), std::time::Duration::ZERO);
    // A refused frame (unknown command) takes its token too: decoding it was work.
    assert_eq!(c.receive("{}").await, reply("UNKNOWN_COMMAND"));
    assert_eq!(c.receive(send).await.len(), 1);
    assert_eq!(
        c.pause(),
        std::time::Duration::ZERO,
        "no pause before a refusal"
    );
    assert_eq!(c.receive(send).await, reply("RATE_LIMITED"));
    assert_eq!(c.receive("not json").await, reply("RATE_LIMITED"));
    // The socket stops reading until a token is there (never, without refill); asked once.
    assert!(c.pause() > std::time::Duration::from_secs(3600));
    assert_eq!(c.pause(), std::time::Duration::ZERO);
    // Nothing changed: the leave notice still goes out at disconnect.
    assert_eq!(c.disconnect().await.len(), 2);
}

#[tokio::test]
async fn a_pause_lasts_until_the_next_token() {
    let mut c = consumer(SocketLimits {
        messages: Rate {
            per_second: 10.0,
            burst: 1.0,
        },
        ..SocketLimits::default()
    });
    assert_eq!(c.receive("{}").await, reply("UNKNOWN_COMMAND"));
    assert_eq!(c.receive("{}").await, reply("RATE_LIMITED"));
    let pause = c.pause();
    assert!(
        pause > std::time::Duration::from_millis(50)
            && pause <= std::time::Duration::from_millis(100),
        "{pause:?}"
    );
}

#[tokio::test]
async fn the_byte_rate_counts_what_reaches_the_room() {
    let mut c = consumer(SocketLimits {
        bytes: no_refill(300.0),
        ..SocketLimits::default()
    });
    assert_eq!(
        c.receive(r#"{"command": "join", "room": 1}"#).await.len(),
        3
    );
    // "é" becomes 6 bytes (\u00e9) in the room's frame: 40 of them cost 240 + the frame.
    let heavy = format!(
        r#"{{"command": "send", "room": 1, "message": "{}"}}"#,
        "é".repeat(40)
    );
    assert_eq!(frames(&c.receive(&heavy).await).len(), 1);
    assert_eq!(c.receive(&heavy).await, reply("RATE_LIMITED"));
    let light = r#"{"command": "send", "room": 1, "message": "ok"}"#;
    assert_eq!(c.receive(light).await.len(), 1, "what is left still serves");
    // A disconnect's leave notices are never refused.
    assert_eq!(c.disconnect().await.len(), 2);
}

#[tokio::test]
async fn a_frame_to_the_room_past_the_message_size_is_refused() {
    let mut c = consumer(SocketLimits {
        max_event_bytes: 200,
        ..SocketLimits::default()
    });
    c.receive(r#"{"command": "join", "room": 1}"#).await;
    // 30 control characters are 180 bytes escaped: with the rest, past 200.
    let control = format!(
        r#"{{"command": "send", "room": 1, "message": "{}"}}"#,
        "\\u0001".repeat(30)
    );
    assert_eq!(c.receive(&control).await, reply("MESSAGE_TOO_LARGE"));
    let fits = format!(
        r#"{{"command": "send", "room": 1, "message": "{}"}}"#,
        "\\u0001".repeat(20)
    );
    assert_eq!(c.receive(&fits).await.len(), 1);
}
