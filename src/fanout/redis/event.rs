//! Channels event dicts on the wire: a [`GroupEvent`] as the msgpack map the original's
//! `group_send` produces, and back.
//!
//! Written: `{"type": "chat.message", "room_id": …, "username": …, "message": …}` (the
//! original's keys and order; no `message` for `chat.join` / `chat.leave`), then Whisper's own
//! keys, which Python handlers never read:
//!
//! * `__whisper__` (bytes): the publishing process, so it can skip its own publications;
//! * `__whisper_frame__` (bytes): the exact frame, only when a value had to be changed for
//!   Python (a lone surrogate, an integer beyond 64 bits; see `fanout::msgpack`), so Whisper
//!   peers still deliver the original bytes.
//!
//! Read: any map with a known `type` and the keys its handler reads; other keys are ignored
//! as Python ignores them. `__asgi_channel__` (a name or a list of names) is the recipient list
//! `RedisChannelLayer` adds.

use std::fmt;

use crate::chat::protocol::{EventKind, Frame, GroupEvent};
use crate::django::pyjson::Value;
use crate::fanout::msgpack::{self, Item, MsgpackError, Reader};

use super::shared::PROCESS_ID_LEN;

pub(super) const ORIGIN_KEY: &str = "__whisper__";
pub(super) const FRAME_KEY: &str = "__whisper_frame__";
pub(super) const CHANNEL_KEY: &str = "__asgi_channel__";

/// An event's map entries, without the map header (the `RedisChannelLayer` script appends
/// `__asgi_channel__` and writes the header).
pub(super) struct Fields {
    pub bytes: Vec<u8>,
    pub count: usize,
}

/// The entries for `event`, with `__whisper__` when `origin` is given.
pub(super) fn fields(event: &GroupEvent, origin: Option<&[u8; PROCESS_ID_LEN]>) -> Fields {
    let mut out = Vec::with_capacity(64 + event.frame().len());
    let mut count = 3;
    msgpack::write_str("type", &mut out);
    msgpack::write_str(event.kind().type_name(), &mut out);
    msgpack::write_str("room_id", &mut out);
    let mut lossy = msgpack::write_value(event.room_id(), &mut out);
    msgpack::write_str("username", &mut out);
    lossy |= msgpack::write_value(event.username(), &mut out);
    if let Some(message) = event.message_value() {
        msgpack::write_str("message", &mut out);
        lossy |= msgpack::write_value(message, &mut out);
        count += 1;
    }
    if let Some(id) = origin {
        msgpack::write_str(ORIGIN_KEY, &mut out);
        msgpack::write_bin(id, &mut out);
        count += 1;
    }
    if lossy {
        msgpack::write_str(FRAME_KEY, &mut out);
        msgpack::write_bin(event.frame().as_str().as_bytes(), &mut out);
        count += 1;
    }
    Fields { bytes: out, count }
}

/// A whole payload: the map header and the entries.
pub(super) fn encode(event: &GroupEvent, origin: Option<&[u8; PROCESS_ID_LEN]>) -> Vec<u8> {
    let f = fields(event, origin);
    let mut out = Vec::with_capacity(f.bytes.len() + 5);
    msgpack::write_map_header(f.count, &mut out);
    out.extend_from_slice(&f.bytes);
    out
}

/// A payload read back.
#[derive(Debug)]
pub(super) struct Decoded {
    /// What the members receive.
    pub frame: Frame,
    /// `__whisper__`: the Whisper process that published it.
    pub origin: Option<[u8; PROCESS_ID_LEN]>,
    /// `__asgi_channel__`: the recipients (`RedisChannelLayer`).
    pub channels: Vec<String>,
}

#[derive(Debug, PartialEq)]
pub(super) enum DecodeError {
    Msgpack(MsgpackError),
    /// No `type`, or one the original's consumer has no handler for.
    UnknownType(String),
    /// A key the handler reads is missing (the original's handler raised `KeyError`).
    Missing(&'static str),
    BadFrame,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Msgpack(e) => write!(f, "{e}"),
            DecodeError::UnknownType(t) => write!(f, "no handler for event type {t:?}"),
            DecodeError::Missing(key) => write!(f, "event lacks {key:?}"),
            DecodeError::BadFrame => f.write_str("__whisper_frame__ is not UTF-8"),
        }
    }
}

impl From<MsgpackError> for DecodeError {
    fn from(e: MsgpackError) -> Self {
        DecodeError::Msgpack(e)
    }
}

pub(super) fn decode(payload: &[u8]) -> Result<Decoded, DecodeError> {
    let mut r = Reader::new(payload);
    let n = r.map_len()?;
    let mut kind: Option<String> = None;
    let (mut room_id, mut username, mut message) = (None, None, None);
    let mut origin = None;
    let mut frame = None;
    let mut channels = Vec::new();
    for _ in 0..n {
        let key = r.read_str()?;
        match (key, r.read_item()?) {
            ("type", Item::Value(Value::Str(s))) => kind = Some(s.to_string_lossy()),
            ("type", _) => kind = Some(String::from("<not a string>")),
            ("room_id", Item::Value(v)) => room_id = Some(v),
            ("username", Item::Value(v)) => username = Some(v),
            ("message", Item::Value(v)) => message = Some(v),
            (ORIGIN_KEY, Item::Bytes(b)) => origin = <[u8; PROCESS_ID_LEN]>::try_from(b).ok(),
            (FRAME_KEY, Item::Bytes(b)) => {
                let text = std::str::from_utf8(b).map_err(|_| DecodeError::BadFrame)?;
                frame = Some(Frame::from_string(text.to_string()));
            }
            (CHANNEL_KEY, Item::Value(Value::Str(s))) => channels.push(s.to_string_lossy()),
            (CHANNEL_KEY, Item::Value(Value::Array(list))) => {
                channels.extend(list.iter().filter_map(|v| v.as_str()));
            }
            // Keys no handler reads, whatever their type.
            _ => {}
        }
    }
    r.finish()?;
    let kind_name = kind.ok_or(DecodeError::UnknownType(String::new()))?;
    let kind = EventKind::from_type_name(&kind_name).ok_or(DecodeError::UnknownType(kind_name))?;
    let frame = match frame {
        Some(frame) => frame,
        None => {
            let room_id = room_id.ok_or(DecodeError::Missing("room_id"))?;
            let username = username.ok_or(DecodeError::Missing("username"))?;
            GroupEvent::from_parts(kind, room_id, username, message)
                .ok_or(DecodeError::Missing("message"))?
                .into_frame()
        }
    };
    Ok(Decoded {
        frame,
        origin,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::django::pyjson;

    #[test]
    fn round_trip_and_python_bytes() {
        let event = GroupEvent::message(Value::int(3), "dana", Value::str("hi"));
        let bytes = encode(&event, None);
        // msgpack.packb({"type": "chat.message", "room_id": 3, "username": "dana", "message": "hi"})
        assert_eq!(
            hex::encode(&bytes),
            "84a474797065ac636861742e6d657373616765a7726f6f6d5f696403a8757365726e616d65a464616e61a76d657373616765a26869"
        );
        let back = decode(&bytes).unwrap();
        assert_eq!(back.frame, *event.frame());
        assert_eq!(back.origin, None);
        let with_origin = decode(&encode(&event, Some(&[9; PROCESS_ID_LEN]))).unwrap();
        assert_eq!(with_origin.origin, Some([9; PROCESS_ID_LEN]));
    }

    #[test]
    fn lossy_values_carry_the_exact_frame() {
        let message = pyjson::loads(r#""\udc00 and 99999999999999999999""#).unwrap();
        let event = GroupEvent::message(Value::int(1), "z", message);
        let decoded = decode(&encode(&event, None)).unwrap();
        assert_eq!(decoded.frame, *event.frame());
        let plain = GroupEvent::join(Value::str("1"), "z");
        assert_eq!(fields(&plain, None).count, 3);
    }

    #[test]
    fn python_events_and_their_failures() {
        let pack = |json: &str| {
            let mut out = Vec::new();
            msgpack::write_value(&pyjson::loads(json).unwrap(), &mut out);
            out
        };
        let d = decode(&pack(
            r#"{"type": "chat.leave", "room_id": "7", "username": "bot", "extra": [1],
                "__asgi_channel__": ["specific.a!room-7", "specific.a!room-8"]}"#,
        ))
        .unwrap();
        assert_eq!(
            d.frame.as_str(),
            r#"{"msg_type": 5, "room": "7", "username": "bot"}"#
        );
        assert_eq!(d.channels, ["specific.a!room-7", "specific.a!room-8"]);
        for (json, err) in [
            (
                r#"{"type": "chat.shout", "room_id": 1, "username": "x"}"#,
                DecodeError::UnknownType("chat.shout".into()),
            ),
            (
                r#"{"type": "chat.message", "room_id": 1, "username": "x"}"#,
                DecodeError::Missing("message"),
            ),
            (
                r#"{"type": "chat.join", "username": "x"}"#,
                DecodeError::Missing("room_id"),
            ),
            (r#"{"room_id": 1}"#, DecodeError::UnknownType(String::new())),
        ] {
            assert_eq!(decode(&pack(json)).unwrap_err(), err, "{json}");
        }
        assert!(matches!(
            decode(b"WSP1 not msgpack"),
            Err(DecodeError::Msgpack(_))
        ));
    }
}
