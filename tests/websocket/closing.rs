//! How sockets end: disconnect announcements (§4.11) and the limits that close them.

use super::*;
use futures_util::SinkExt;

// ---------------------------------------------------------------------------------------------
// 6. Disconnect (§4.11)
// ---------------------------------------------------------------------------------------------

enum Departure {
    Close(u16),
    Drop,
}

async fn disconnect_announces_every_room(how: Departure) {
    let (server, alice, bob) = lobby().await;
    assert_eq!(server.create_room("Garden", false).await, 2);
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    assert_eq!(b.call(&join(r#""2""#)).await, ack_join(2, "Garden"));
    assert_eq!(a.call(&join("2.0")).await, ack_join(2, "Garden"));
    assert_eq!(b.recv().await, enter("2.0", "alice"));
    match how {
        Departure::Close(code) => a.close(code).await,
        Departure::Drop => drop(a),
    }
    assert_eq!(
        recv_sorted(&mut b, 2).await,
        sorted(vec![left(r#""1""#, "alice"), left("2.0", "alice")])
    );
    b.expect_silence(200).await;
    // Bob is alone now: his own message comes back and nothing else.
    assert_eq!(
        b.call(&send(r#""2""#, "null")).await,
        chat(r#""2""#, "bob", "null")
    );
}

#[tokio::test]
async fn disconnect_with_1000_announces_every_room() {
    disconnect_announces_every_room(Departure::Close(1000)).await;
}

#[tokio::test]
async fn disconnect_with_4000_announces_every_room() {
    disconnect_announces_every_room(Departure::Close(4000)).await;
}

#[tokio::test]
async fn tcp_drop_announces_every_room() {
    disconnect_announces_every_room(Departure::Drop).await;
}

// ---------------------------------------------------------------------------------------------
// 7. Limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_frame_closes_1009_and_announces() {
    let (server, alice, bob) = lobby_with(&[("WS_MAX_MESSAGE_BYTES", "1024")]).await;
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    // Under the limit: delivered.
    let text = "y".repeat(900);
    let want = chat(r#""1""#, "alice", &format!("\"{text}\""));
    assert_eq!(a.call(&send(r#""1""#, &format!("\"{text}\""))).await, want);
    assert_eq!(b.recv().await, want);
    // Over it: closed with 1009.
    let frame = send(r#""1""#, &format!("\"{}\"", "z".repeat(2000)));
    assert!(frame.len() > 2000);
    a.send(&frame).await;
    assert_eq!(a.expect_close().await.0, 1009);
    assert_eq!(b.recv().await, left(r#""1""#, "alice"));
    b.expect_silence(200).await;
}

/// A frame far past the limit (and past the socket buffers): the server reads no more of it
/// than the header, yet the sender's write completes and it reads its 1009, not a reset.
#[tokio::test]
async fn frame_far_over_the_limit_still_reads_its_1009() {
    let (server, alice, bob) = lobby_with(&[("WS_MAX_MESSAGE_BYTES", "1024")]).await;
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    let frame = send(r#""1""#, &format!("\"{}\"", "z".repeat(16 << 20)));
    a.stream
        .send(Message::text(frame))
        .await
        .expect("the whole frame is taken, not reset");
    assert_eq!(a.expect_close().await.0, 1009);
    assert_eq!(b.recv().await, left(r#""1""#, "alice"));
}

/// Keep-alive (`WS_PING_INTERVAL`, `WS_PING_TIMEOUT`, Daphne's): a client that reads nothing
/// never answers a ping and is dropped once silent for interval + timeout, with its leave
/// notice; one that reads (and so answers) stays.
#[tokio::test]
async fn a_client_that_never_answers_a_ping_is_dropped() {
    let vars = [("WS_PING_INTERVAL", "0.5"), ("WS_PING_TIMEOUT", "0.5")];
    let (server, alice, bob) = lobby_with(&vars).await;
    let (a, mut b) = both_in_lobby(&server, alice, bob).await;
    let started = std::time::Instant::now();
    // From here alice reads nothing, so her client sends no pong.
    let notice = tokio::time::timeout(Duration::from_secs(10), b.recv())
        .await
        .expect("alice was never dropped");
    assert_eq!(notice, left(r#""1""#, "alice"));
    let after = started.elapsed();
    assert!(after >= Duration::from_secs(1), "dropped after {after:?}");
    // Bob read all along (answering every ping) and is still served.
    b.expect_silence(1500).await;
    assert_eq!(
        b.call(&send(r#""1""#, "null")).await,
        chat(r#""1""#, "bob", "null")
    );
    assert_eq!(healthz(&server).await["open_sockets"], 1);
    drop(a);
}

#[tokio::test]
async fn slow_reader_is_closed_1013_and_the_sender_is_not() {
    slow_reader_closed(&[("WS_OUTBOUND_QUEUE", "8")]).await;
}

/// The byte bound alone (frames of ~8 KiB, 64 KiB allowed, the frame bound left generous).
#[tokio::test]
async fn slow_reader_over_the_byte_bound_is_closed_1013() {
    slow_reader_closed(&[("WS_OUTBOUND_QUEUE_BYTES", "65536")]).await;
}

async fn slow_reader_closed(vars: &[(&str, &str)]) {
    const COUNT: usize = 2000;
    let vars: Vec<_> = vars.iter().chain(&UNTHROTTLED).copied().collect();
    let (server, alice, bob) = lobby_with(&vars).await;
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    // From here on alice reads nothing while bob sends ~16 MiB.
    let pad = "p".repeat(8 * 1024);
    let leave_notice = left(r#""1""#, "alice");
    let mut b_saw_leave = 0;
    for i in 0..COUNT {
        let message = format!("\"{i:05} {pad}\"");
        let want = chat(r#""1""#, "bob", &message);
        b.send(&send(r#""1""#, &message)).await;
        loop {
            let got = b.recv().await;
            if got == want {
                break;
            }
            assert_eq!(
                got, leave_notice,
                "bob got an unexpected frame at message {i}"
            );
            b_saw_leave += 1;
        }
    }
    // Alice now reads: whatever was queued (bob's messages, in order, some dropped), then 1013.
    let mut texts = 0usize;
    let mut last_index: Option<usize> = None;
    let code = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), a.stream.next())
            .await
            .expect("timed out reading the slow reader")
            .expect("stream ended without a close frame")
            .expect("read error before the close frame");
        match msg {
            Message::Text(t) => {
                texts += 1;
                let t = t.as_str();
                let prefix = r#"{"msg_type": 0, "room": "1", "username": "bob", "message": ""#;
                let rest = t
                    .strip_prefix(prefix)
                    .unwrap_or_else(|| panic!("unexpected frame {:.120}", t));
                let index: usize = rest[..5].parse().unwrap();
                assert!(
                    last_index.is_none_or(|l| index > l),
                    "out of order: {index} after {last_index:?}"
                );
                last_index = Some(index);
            }
            Message::Close(Some(CloseFrame { code, .. })) => break u16::from(code),
            Message::Close(None) => break 1005,
            _ => {}
        }
    };
    assert_eq!(code, 1013, "after {texts} text frames");
    assert!(
        texts < COUNT,
        "the slow reader cannot have received all {COUNT} messages"
    );
    // Bob gets alice's leave notice exactly once, stays open and still gets his echoes.
    if b_saw_leave == 0 {
        assert_eq!(b.recv().await, leave_notice);
    } else {
        assert_eq!(b_saw_leave, 1);
    }
    assert_eq!(
        b.call(&send(r#""1""#, r#""done""#)).await,
        chat(r#""1""#, "bob", r#""done""#)
    );
    b.expect_silence(200).await;
}

/// Frames go from the queue to the socket with `writev` and no write buffer (`web::wire`), so
/// a reader that stops makes writes stop part-way through a frame, and keep-alive pings are
/// queued meanwhile. When it reads again, every frame arrives whole and in order, pings only
/// between frames (the client's parser would fail the connection on a torn frame).
#[tokio::test]
async fn a_reader_that_pauses_gets_every_frame_whole_and_in_order() {
    const COUNT: usize = 240;
    let vars: Vec<_> = [
        ("WS_PING_INTERVAL", "0.1"),
        ("WS_PING_TIMEOUT", "60"),
        ("WS_WRITE_TIMEOUT", "60"),
        ("WS_OUTBOUND_QUEUE_BYTES", "67108864"),
    ]
    .iter()
    .chain(&UNTHROTTLED)
    .copied()
    .collect();
    let (server, alice, bob) = lobby_with(&vars).await;
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    // Sizes from a few bytes to 200 KiB, ~13 MiB in all: more than the loopback socket buffers
    // hold, so alice's socket stops taking bytes in the middle of some frame.
    let sizes = |i: usize| [3, 125, 126, 65_535, 65_536, 200_000][i % 6] + i;
    let mut wanted = Vec::with_capacity(COUNT);
    for i in 0..COUNT {
        let message = format!("\"{i:04} {}\"", "m".repeat(sizes(i)));
        let want = chat(r#""1""#, "bob", &message);
        assert_eq!(b.call(&send(r#""1""#, &message)).await, want);
        wanted.push(want);
    }
    // Let the keep-alive queue pings while alice's writes are stuck.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (i, want) in wanted.iter().enumerate() {
        let got = a.recv().await;
        assert!(
            got == *want,
            "frame {i}: {} bytes, wanted {}",
            got.len(),
            want.len()
        );
    }
    // The connection is still sound both ways.
    assert_eq!(
        a.call(&send(r#""1""#, "null")).await,
        chat(r#""1""#, "alice", "null")
    );
    assert_eq!(b.recv().await, chat(r#""1""#, "alice", "null"));
}

/// Many clients that answer every ping stay, whatever falls in one keep-alive step: a
/// wheel turn rings a crowd at once, and every pong of the crowd must count.
#[tokio::test]
async fn a_crowd_that_answers_pings_is_never_dropped() {
    const CLIENTS: usize = 300;
    let vars = [
        ("WS_PING_INTERVAL", "0.5"),
        ("WS_PING_TIMEOUT", "0.5"),
        ("WS_MAX_SOCKETS_PER_USER", "1000"),
        ("WS_HANDSHAKES_PER_MINUTE", "100000"),
    ];
    let (server, alice, _) = lobby_with(&vars).await;
    let mut readers = Vec::new();
    for _ in 0..CLIENTS {
        let mut ws = server.ws_for(alice).await;
        assert_eq!(ws.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
        // Reading is what answers pings (the client's pong goes out on its next read).
        readers.push(tokio::spawn(async move {
            while let Some(msg) = ws.stream.next().await {
                if msg.is_err() || matches!(msg, Ok(Message::Close(_))) {
                    return false;
                }
            }
            false
        }));
    }
    // Eight keep-alive limits go by.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(healthz(&server).await["open_sockets"], CLIENTS as u64);
    assert!(readers.iter().all(|r| !r.is_finished()));
}
