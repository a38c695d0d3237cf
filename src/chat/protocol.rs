//! The multichat wire protocol (spec §4): inbound commands, outbound frames, error codes.
//!
//! Inbound frames are decoded with Python's `json` semantics (raw values kept as given, spec
//! §4.3–§4.4). Outbound frames are built once, as the exact bytes Python's `json.dumps` would
//! write (spec §4.7, §4.10), and shared by every recipient as a refcounted [`Frame`].

use std::fmt;

use axum::extract::ws::Utf8Bytes;

use crate::django::pyjson::{self, Object, Separators, Value};

/// `MSG_TYPE_MESSAGE`, `MSG_TYPE_ENTER`, `MSG_TYPE_LEAVE` (spec §6).
pub const MSG_TYPE_MESSAGE: u8 = 0;
pub const MSG_TYPE_ENTER: u8 = 4;
pub const MSG_TYPE_LEAVE: u8 = 5;

/// One outbound text frame, serialised once. Cloning bumps a refcount.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(Utf8Bytes);

impl Frame {
    pub fn from_string(text: String) -> Self {
        Frame(Utf8Bytes::from(text))
    }
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
    pub fn into_inner(self) -> Utf8Bytes {
        self.0
    }
    pub fn len(&self) -> usize {
        self.0.as_str().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({})", self.as_str())
    }
}

/// A decoded client command. `room` and `message` are the raw JSON values (spec §4.4).
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Join { room: Value },
    Leave { room: Value },
    Send { room: Value, message: Value },
}

/// Every `{"error": CODE}` reply. The first three are the original's (spec §4.8); the rest are
/// our documented replies where the original crashed the socket (spec §4.3, §4.14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    RoomInvalid,
    RoomAccessDenied,
    UserHasToLogin,
    /// Empty frame, invalid JSON, not an object, missing `room`/`message`, NaN/Infinity.
    BadRequest,
    /// A `command` other than join/leave/send, or none.
    UnknownCommand,
    /// The database could not be reached for a room lookup; the command had no effect.
    ServiceUnavailable,
}

impl ClientError {
    pub fn code(self) -> &'static str {
        match self {
            ClientError::RoomInvalid => "ROOM_INVALID",
            ClientError::RoomAccessDenied => "ROOM_ACCESS_DENIED",
            ClientError::UserHasToLogin => "USER_HAS_TO_LOGIN",
            ClientError::BadRequest => "BAD_REQUEST",
            ClientError::UnknownCommand => "UNKNOWN_COMMAND",
            ClientError::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }

    /// `{"error": "CODE"}`.
    pub fn frame(self) -> Frame {
        let mut out = String::with_capacity(32);
        out.push_str("{\"error\": ");
        pyjson::write_str(self.code(), &mut out);
        out.push('}');
        Frame::from_string(out)
    }
}

/// Decodes one inbound text frame (spec §4.3). Where the original crashed (1011), we answer
/// with [`ClientError::BadRequest`]; an unknown or missing command gets `UNKNOWN_COMMAND`.
pub fn parse_command(text: &str) -> Result<Command, ClientError> {
    if text.is_empty() {
        return Err(ClientError::BadRequest);
    }
    let Value::Object(mut obj) = pyjson::loads(text).map_err(|_| ClientError::BadRequest)? else {
        return Err(ClientError::BadRequest);
    };
    let command = match obj.get("command") {
        Some(Value::Str(s)) => s.as_string(),
        _ => None,
    };
    let mut take = |key: &str| obj.remove(key).ok_or(ClientError::BadRequest);
    match command.as_deref() {
        Some("join") => Ok(Command::Join {
            room: take("room")?,
        }),
        Some("leave") => Ok(Command::Leave {
            room: take("room")?,
        }),
        // Both keys are read before any check (spec §4.3 step 6).
        Some("send") => {
            let room = take("room")?;
            let message = take("message")?;
            Ok(Command::Send { room, message })
        }
        _ => Err(ClientError::UnknownCommand),
    }
}

/// `{"join": "<id>", "title": "<title>"}` (spec §4.7 shape 1).
pub fn join_ack(room_id: i64, title: &str) -> Frame {
    let mut out = String::with_capacity(32 + title.len());
    out.push_str("{\"join\": \"");
    out.push_str(&room_id.to_string());
    out.push_str("\", \"title\": ");
    pyjson::write_str(title, &mut out);
    out.push('}');
    Frame::from_string(out)
}

/// `{"leave": "<id>"}` (spec §4.7 shape 2).
pub fn leave_ack(room_id: i64) -> Frame {
    Frame::from_string(format!("{{\"leave\": \"{room_id}\"}}"))
}

/// A group event (spec §4.9), ready to be serialised once for all recipients.
#[derive(Clone, Debug, PartialEq)]
pub enum Event<'a> {
    /// `chat.join`: shape 4.
    Enter { room: &'a Value, username: &'a str },
    /// `chat.leave`: shape 5.
    Leave { room: &'a Value, username: &'a str },
    /// `chat.message`: shape 6.
    Message {
        room: &'a Value,
        username: &'a str,
        message: &'a Value,
    },
}

impl Event<'_> {
    /// The exact bytes of `json.dumps({"msg_type": …, "room": …, "username": …[, "message": …]})`.
    pub fn frame(&self) -> Frame {
        let (msg_type, room, username, message) = match *self {
            Event::Enter { room, username } => (MSG_TYPE_ENTER, room, username, None),
            Event::Leave { room, username } => (MSG_TYPE_LEAVE, room, username, None),
            Event::Message {
                room,
                username,
                message,
            } => (MSG_TYPE_MESSAGE, room, username, Some(message)),
        };
        let mut out = String::with_capacity(64 + username.len());
        out.push_str("{\"msg_type\": ");
        out.push(char::from(b'0' + msg_type));
        out.push_str(", \"room\": ");
        pyjson::dump_into(room, Separators::Python, &mut out);
        out.push_str(", \"username\": ");
        pyjson::write_str(username, &mut out);
        if let Some(message) = message {
            out.push_str(", \"message\": ");
            pyjson::dump_into(message, Separators::Python, &mut out);
        }
        out.push('}');
        Frame::from_string(out)
    }
}

/// Builds an object value from pairs (tests and tools).
pub fn object(pairs: Vec<(&str, Value)>) -> Value {
    let mut obj = Object::new();
    for (k, v) in pairs {
        obj.insert(k, v);
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(text: &str) -> Value {
        pyjson::loads(text).unwrap()
    }

    #[test]
    fn shapes_match_the_catalogue() {
        assert_eq!(
            join_ack(12, "Book club").as_str(),
            r#"{"join": "12", "title": "Book club"}"#
        );
        assert_eq!(
            join_ack(7, "Ärger ☃").as_str(),
            r#"{"join": "7", "title": "\u00c4rger \u2603"}"#
        );
        assert_eq!(leave_ack(12).as_str(), r#"{"leave": "12"}"#);
        assert_eq!(
            ClientError::RoomAccessDenied.frame().as_str(),
            r#"{"error": "ROOM_ACCESS_DENIED"}"#
        );
        let r = room(r#""12""#);
        assert_eq!(
            Event::Enter {
                room: &r,
                username: "dana"
            }
            .frame()
            .as_str(),
            r#"{"msg_type": 4, "room": "12", "username": "dana"}"#
        );
        assert_eq!(
            Event::Leave {
                room: &r,
                username: "dana"
            }
            .frame()
            .as_str(),
            r#"{"msg_type": 5, "room": "12", "username": "dana"}"#
        );
        let m = room(r#""see you at noon""#);
        assert_eq!(
            Event::Message {
                room: &r,
                username: "dana",
                message: &m
            }
            .frame()
            .as_str(),
            r#"{"msg_type": 0, "room": "12", "username": "dana", "message": "see you at noon"}"#
        );
        let raw = room("1.5");
        assert_eq!(
            Event::Enter {
                room: &raw,
                username: "z\u{f6}e"
            }
            .frame()
            .as_str(),
            r#"{"msg_type": 4, "room": 1.5, "username": "z\u00f6e"}"#
        );
    }

    #[test]
    fn decoding_follows_the_documented_replies() {
        use ClientError::*;
        for bad in [
            "",
            "nope",
            "[1]",
            "\"join\"",
            "3",
            "null",
            r#"{"command": "join"}"#,
            r#"{"command": "send", "room": "1"}"#,
            r#"{"command": "send", "message": "x"}"#,
            r#"{"command": "join", "room": NaN}"#,
            r#"{"command": "send", "room": "1", "message": Infinity}"#,
            "{\"command\": \"join\", \"room\": \"a\u{1}\"}",
        ] {
            assert_eq!(parse_command(bad), Err(BadRequest), "{bad:?}");
        }
        for unknown in [
            r#"{"command": "JOIN", "room": "1"}"#,
            r#"{"room": "1"}"#,
            r#"{"command": 1}"#,
            r#"{"command": "frobnicate"}"#,
        ] {
            assert_eq!(parse_command(unknown), Err(UnknownCommand), "{unknown:?}");
        }
        assert_eq!(
            parse_command(r#"{"command": "send", "room": 1, "message": {"b": 1, "a": 2}, "x": 0}"#),
            Ok(Command::Send {
                room: room("1"),
                message: room(r#"{"b": 1, "a": 2}"#)
            })
        );
        // Duplicate keys: the last value wins (Python dict semantics).
        assert_eq!(
            parse_command(r#"{"command": "leave", "command": "join", "room": "2"}"#),
            Ok(Command::Join {
                room: room(r#""2""#)
            })
        );
    }
}
