//! The hostile-frame soak (issue 10): 10,000 hostile frames over several sockets, with the
//! production limits, while a victim in the same room receives a steady stream. The victim
//! loses nothing, the only closes are 1003 (binary) and 1009 (too big), and the server stays up.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use common::*;

const HOSTILE_FRAMES: usize = 10_000;
/// Sockets sending them. Past its burst a flooding socket is read at about two frames per
/// token (40/s at the defaults), so over 4 sockets the 10,000 frames took about a minute.
const ATTACKERS: usize = 16;
const STREAM: usize = 60;

/// The hostile frame number `i`: malformed JSON, wrong types, deep nesting, huge numbers and
/// rooms, escaped floods, lone surrogates; about one in 500 is binary (1003) or oversized (1009).
fn hostile(i: usize) -> Message {
    // 997 is prime: the closing frames fall to every attacker in turn.
    match i % 997 {
        0 => return Message::binary(vec![0u8; 16]),
        500 => return Message::text("x".repeat((1 << 20) + 1)),
        _ => {}
    }
    let text = match i % 16 {
        0 => "".to_string(),
        1 => "{".to_string(),
        2 => "[".repeat(5_000) + &"]".repeat(5_000),
        3 => r#"{"command": "join", "room": 1e999999}"#.to_string(),
        4 => format!(r#"{{"command": "join", "room": {}}}"#, "9".repeat(5_000)),
        5 => format!(
            r#"{{"command": "join", "room": "{}1"}}"#,
            " ".repeat(100_000)
        ),
        6 => r#"{"command": "join", "room": "1"}"#.to_string(),
        7 => format!(
            r#"{{"command": "send", "room": "1", "message": "{}"}}"#,
            "é".repeat(200_000)
        ),
        8 => format!(
            r#"{{"command": "send", "room": "1", "message": "{}"}}"#,
            "\\u0001".repeat(30_000)
        ),
        9 => r#"{"command": "send", "room": "1", "message": "\ud800"}"#.to_string(),
        10 => r#"{"command": "send", "room": NaN, "message": Infinity}"#.to_string(),
        11 => format!(r#"{{"command": "join", "room": "{i:0>40}"}}"#),
        12 => r#"{"command": "leave", "room": [1, {"a": null}]}"#.to_string(),
        13 => r#"{"command": "room_users", "room": {"$gt": ""}}"#.to_string(),
        14 => format!(r#"{{"command": "{}"}}"#, "x".repeat(10_000)),
        _ => r#"{"command": "join", "room": "1", "room": "2", "command": "leave"}"#.to_string(),
    };
    Message::text(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_frames_do_not_reach_the_victim() {
    let server = TestServer::start().await;
    assert_eq!(server.create_room("Lobby", false).await, 1);
    let victim_id = server.create_user("victim", false).await;
    let sender_id = server.create_user("sender", false).await;
    let mut victim = server.ws_for(victim_id).await;
    let mut sender = server.ws_for(sender_id).await;
    assert!(victim.call(&join(r#""1""#)).await.starts_with(r#"{"join""#));
    assert!(sender.call(&join(r#""1""#)).await.starts_with(r#"{"join""#));
    let mut attackers = Vec::new();
    for i in 0..ATTACKERS {
        attackers.push(server.create_user(&format!("attacker{i}"), false).await);
    }

    // The attackers: each reconnects after a close and reads everything it is sent.
    let mut tasks = Vec::new();
    for (n, user) in attackers.into_iter().enumerate() {
        let key = server.session_for(user).await;
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut closes = Vec::new();
            let mut sent = 0;
            let mut i = n;
            while i < HOSTILE_FRAMES {
                let ws = ws_to(addr, &key).await;
                let (mut write, mut read) = ws.stream.split();
                let reader = tokio::spawn(async move {
                    while let Some(Ok(msg)) = read.next().await {
                        if let Message::Close(frame) = msg {
                            return frame.map(|f| u16::from(f.code));
                        }
                    }
                    None
                });
                while i < HOSTILE_FRAMES {
                    let frame = hostile(i);
                    let closing = matches!(&frame, Message::Binary(_))
                        || matches!(&frame, Message::Text(t) if t.len() > 1 << 20);
                    i += ATTACKERS;
                    if write.send(frame).await.is_err() {
                        break;
                    }
                    sent += 1;
                    if closing {
                        break;
                    }
                }
                let _ = write.close().await;
                let code = tokio::time::timeout(Duration::from_secs(30), reader)
                    .await
                    .expect("the server answers a close")
                    .unwrap();
                closes.push(code);
            }
            (sent, closes)
        }));
    }

    // The steady stream, and the victim reading it all, in order.
    let stream = async {
        for seq in 0..STREAM {
            sender.send(&send(r#""1""#, &seq.to_string())).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let watch = async {
        let mut next = 0;
        while next < STREAM {
            let frame = tokio::time::timeout(Duration::from_secs(20), victim.recv())
                .await
                .expect("the victim's stream stalled");
            let sender_msg = r#"{"msg_type": 0, "room": "1", "username": "sender", "message": "#;
            if let Some(rest) = frame.strip_prefix(sender_msg) {
                assert_eq!(rest, format!("{next}}}"), "lost or reordered");
                next += 1;
            }
        }
    };
    tokio::join!(stream, watch);

    let mut codes = std::collections::BTreeMap::new();
    let mut sent = 0;
    for task in tasks {
        let (n, closes) = task.await.unwrap();
        sent += n;
        for code in closes {
            *codes.entry(code).or_insert(0) += 1;
        }
    }
    assert_eq!(sent, HOSTILE_FRAMES, "every hostile frame went out");
    // The server's closes: 1003 and 1009 only (None/1000 are the attackers' own closes).
    for code in codes.keys() {
        assert!(
            matches!(code, None | Some(1000 | 1003 | 1009)),
            "unexpected closes: {codes:?}"
        );
    }
    assert!(
        codes.contains_key(&Some(1003)) && codes.contains_key(&Some(1009)),
        "{codes:?}"
    );
    // Still up, still serving (the sender's own echoes and the room's traffic come first).
    sender.send(&send(r#""1""#, "\"done\"")).await;
    let done = r#"{"msg_type": 0, "room": "1", "username": "sender", "message": "done"}"#;
    while sender.recv().await != done {}
    assert_eq!(healthz(&server).await["open_sockets"], 2);
    server.stop().await;
}
