//! The bare reference server (`bench serve-bare PORT`): what this machine and this load
//! generator can show for the same wire shapes with nothing else in the way — no auth, no
//! database, no Host/Origin checks, rooms only as a map from the raw `room` JSON to members.
//! Each message is serialised once into a shared buffer (`Utf8Bytes` over `Bytes`, cloned by
//! reference count to every member), and each socket's writer drains everything queued into
//! one write before flushing. It answers join with `{"join": "<room>", "title": "Bench"}` and
//! delivers `{"msg_type": 0, "room": …, "username": "bench", "message": …}`. With `--notices`
//! (scenario 8, whose server sends them) a join also sends the room an enter notice and a
//! departure a leave notice (`{"msg_type": 4|5, "room": …, "username": "bench"}`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames queued per socket; the bench counts a full queue as loss, as it does for the targets.
const QUEUE: usize = 4096;

type Rooms = Arc<RwLock<HashMap<String, Vec<(u64, mpsc::Sender<Utf8Bytes>)>>>>;

pub async fn serve(port: u16, notices: bool) -> anyhow::Result<()> {
    // The backlog Whisper listens with (`web::listener::BACKLOG`), not `bind`'s 128: the
    // reference must not drop SYNs in a connect storm either.
    let listener = whisper::web::listener::bind(("127.0.0.1", port)).await?;
    let rooms: Rooms = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        next_id += 1;
        tokio::spawn(connection(stream, next_id, rooms.clone(), notices));
    }
}

/// Sends `frame` to every member of `room` (a full queue drops it; the bench counts the loss).
fn broadcast(
    map: &HashMap<String, Vec<(u64, mpsc::Sender<Utf8Bytes>)>>,
    room: &str,
    frame: Utf8Bytes,
) {
    for (_, member) in map.get(room).into_iter().flatten() {
        let _ = member.try_send(frame.clone());
    }
}

fn notice(kind: u8, room: &str) -> Utf8Bytes {
    Utf8Bytes::from(format!(
        r#"{{"msg_type": {kind}, "room": {room}, "username": "bench"}}"#
    ))
}

async fn connection(stream: TcpStream, id: u64, rooms: Rooms, notices: bool) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(16 * 1024);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.feed(Message::Text(frame)).await.is_err() {
                return;
            }
            while let Ok(frame) = rx.try_recv() {
                if sink.feed(Message::Text(frame)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut joined = Vec::new();
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(cmd) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
            continue;
        };
        let room = cmd["room"].to_string();
        match cmd["command"].as_str() {
            Some("join") => {
                let ack = format!(
                    r#"{{"join": "{}", "title": "Bench"}}"#,
                    room.trim_matches('"')
                );
                let _ = tx.try_send(Utf8Bytes::from(ack));
                let mut map = rooms.write().unwrap_or_else(|e| e.into_inner());
                map.entry(room.clone()).or_default().push((id, tx.clone()));
                if notices {
                    broadcast(&map, &room, notice(4, &room));
                }
                joined.push(room);
            }
            Some("send") => {
                let frame = Utf8Bytes::from(format!(
                    r#"{{"msg_type": 0, "room": {room}, "username": "bench", "message": {}}}"#,
                    cmd["message"]
                ));
                let map = rooms.read().unwrap_or_else(|e| e.into_inner());
                broadcast(&map, &room, frame);
            }
            _ => {}
        }
    }
    let mut map = rooms.write().unwrap_or_else(|e| e.into_inner());
    for room in joined {
        if let Some(members) = map.get_mut(&room) {
            members.retain(|(member, _)| *member != id);
        }
        if notices {
            broadcast(&map, &room, notice(5, &room));
        }
    }
    drop(map);
    writer.abort();
}
