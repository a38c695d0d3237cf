//! The multichat wire protocol (spec §4): inbound commands, outbound frames, error codes.
//!
//! Inbound frames are decoded with Python's `json` semantics (raw values kept as given, spec
//! §4.3–§4.4). Outbound frames are built once, as the exact bytes Python's `json.dumps` would
//! write (spec §4.7, §4.10), and shared by every recipient as a refcounted [`Frame`].

use std::fmt;

use tungstenite::Utf8Bytes;

use crate::django::pyjson::{self, Object, Separators, Value};

/// `MSG_TYPE_MESSAGE`, `MSG_TYPE_ENTER`, `MSG_TYPE_LEAVE` (spec §6).
pub const MSG_TYPE_MESSAGE: u8 = 0;
pub const MSG_TYPE_ENTER: u8 = 4;
pub const MSG_TYPE_LEAVE: u8 = 5;
/// The Whisper fork's `MSG_TYPE_INTERNAL`: the `type` of a `room_users` reply (spec §12).
pub const MSG_TYPE_INTERNAL: u8 = 6;

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
    Join {
        room: Value,
    },
    Leave {
        room: Value,
    },
    Send {
        room: Value,
        message: Value,
    },
    /// The Whisper fork's `{"command": "room_users", "room": R}` (spec §12).
    RoomUsers {
        room: Value,
    },
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
    /// Beyond the original: the socket sent faster than `WS_MESSAGES_PER_SECOND` or
    /// `WS_BYTES_PER_SECOND` allow; the command had no effect (`chat::limits`).
    RateLimited,
    /// Beyond the original: a join past `WS_MAX_ROOMS_PER_SOCKET`.
    TooManyRooms,
    /// Beyond the original: the frame sent to the room would exceed `WS_MAX_MESSAGE_BYTES`.
    MessageTooLarge,
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
            ClientError::RateLimited => "RATE_LIMITED",
            ClientError::TooManyRooms => "TOO_MANY_ROOMS",
            ClientError::MessageTooLarge => "MESSAGE_TOO_LARGE",
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
        Some("room_users") => Ok(Command::RoomUsers {
            room: take("room")?,
        }),
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

/// The fork's `room_users` reply: `{"type": 6, "room": <raw room>, "data": {"users": U}}`,
/// `U` being the room's presence dict as `json.dumps` writes it, or `null` (spec §12).
pub fn room_users_reply(room: &Value, users: &Value) -> Frame {
    let mut out = String::with_capacity(64);
    out.push_str("{\"type\": ");
    out.push(char::from(b'0' + MSG_TYPE_INTERNAL));
    out.push_str(", \"room\": ");
    pyjson::dump_into(room, Separators::Python, &mut out);
    out.push_str(", \"data\": {\"users\": ");
    pyjson::dump_into(users, Separators::Python, &mut out);
    out.push_str("}}");
    Frame::from_string(out)
}

/// Which Channels event a group message is (spec §4.9): its `type` and its frame's `msg_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `chat.join`: shape 4.
    Join,
    /// `chat.leave`: shape 5.
    Leave,
    /// `chat.message`: shape 6.
    Message,
}

impl EventKind {
    /// The Channels event `type`, which names the consumer's handler (`chat_join`, …).
    pub fn type_name(self) -> &'static str {
        match self {
            EventKind::Join => "chat.join",
            EventKind::Leave => "chat.leave",
            EventKind::Message => "chat.message",
        }
    }

    pub fn from_type_name(name: &str) -> Option<EventKind> {
        match name {
            "chat.join" => Some(EventKind::Join),
            "chat.leave" => Some(EventKind::Leave),
            "chat.message" => Some(EventKind::Message),
            _ => None,
        }
    }

    fn msg_type(self) -> u8 {
        match self {
            EventKind::Join => MSG_TYPE_ENTER,
            EventKind::Leave => MSG_TYPE_LEAVE,
            EventKind::Message => MSG_TYPE_MESSAGE,
        }
    }
}

/// One group event: the Channels event dict (`{"type": …, "room_id": …, "username": …[,
/// "message": …]}`, what the original passes to `group_send`) together with the frame every
/// member receives, serialised once (spec §4.9). The fields are kept as Python values, since an
/// event may come from Python code through a channel layer (issue 4) with any JSON-able value.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupEvent {
    kind: EventKind,
    room_id: Value,
    username: Value,
    message: Option<Value>,
    frame: Frame,
}

impl GroupEvent {
    /// `chat.join`: someone entered.
    pub fn join(room_id: Value, username: &str) -> GroupEvent {
        Self::build(EventKind::Join, room_id, Value::str(username), None)
    }

    /// `chat.leave`: someone left.
    pub fn leave(room_id: Value, username: &str) -> GroupEvent {
        Self::build(EventKind::Leave, room_id, Value::str(username), None)
    }

    /// `chat.message`.
    pub fn message(room_id: Value, username: &str, message: Value) -> GroupEvent {
        Self::build(
            EventKind::Message,
            room_id,
            Value::str(username),
            Some(message),
        )
    }

    /// An event from its parts, as a channel layer delivers them. `message` is required for
    /// `chat.message` (the original's handler reads it) and ignored otherwise.
    pub fn from_parts(
        kind: EventKind,
        room_id: Value,
        username: Value,
        message: Option<Value>,
    ) -> Option<GroupEvent> {
        match (kind, message) {
            (EventKind::Message, None) => None,
            (EventKind::Message, message) => Some(Self::build(kind, room_id, username, message)),
            (_, _) => Some(Self::build(kind, room_id, username, None)),
        }
    }

    fn build(
        kind: EventKind,
        room_id: Value,
        username: Value,
        message: Option<Value>,
    ) -> GroupEvent {
        let frame = render(kind, &room_id, &username, message.as_ref());
        GroupEvent {
            kind,
            room_id,
            username,
            message,
            frame,
        }
    }

    pub fn kind(&self) -> EventKind {
        self.kind
    }
    pub fn room_id(&self) -> &Value {
        &self.room_id
    }
    pub fn username(&self) -> &Value {
        &self.username
    }
    pub fn message_value(&self) -> Option<&Value> {
        self.message.as_ref()
    }
    /// What every member receives.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }
    pub fn into_frame(self) -> Frame {
        self.frame
    }
}

/// The exact bytes of `json.dumps({"msg_type": …, "room": …, "username": …[, "message": …]})`.
fn render(kind: EventKind, room: &Value, username: &Value, message: Option<&Value>) -> Frame {
    let mut out = String::with_capacity(96);
    out.push_str("{\"msg_type\": ");
    out.push(char::from(b'0' + kind.msg_type()));
    out.push_str(", \"room\": ");
    pyjson::dump_into(room, Separators::Python, &mut out);
    out.push_str(", \"username\": ");
    pyjson::dump_into(username, Separators::Python, &mut out);
    if let Some(message) = message {
        out.push_str(", \"message\": ");
        pyjson::dump_into(message, Separators::Python, &mut out);
    }
    out.push('}');
    Frame::from_string(out)
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
            GroupEvent::join(r.clone(), "dana").frame().as_str(),
            r#"{"msg_type": 4, "room": "12", "username": "dana"}"#
        );
        assert_eq!(
            GroupEvent::leave(r.clone(), "dana").frame().as_str(),
            r#"{"msg_type": 5, "room": "12", "username": "dana"}"#
        );
        let m = room(r#""see you at noon""#);
        let sent = GroupEvent::message(r.clone(), "dana", m.clone());
        assert_eq!(
            sent.frame().as_str(),
            r#"{"msg_type": 0, "room": "12", "username": "dana", "message": "see you at noon"}"#
        );
        assert_eq!(sent.kind().type_name(), "chat.message");
        assert_eq!(sent.message_value(), Some(&m));
        assert_eq!(
            GroupEvent::join(room("1.5"), "z\u{f6}e").frame().as_str(),
            r#"{"msg_type": 4, "room": 1.5, "username": "z\u00f6e"}"#
        );
    }

    #[test]
    fn events_from_a_channel_layer() {
        let kind = EventKind::from_type_name("chat.message").unwrap();
        assert_eq!(
            GroupEvent::from_parts(kind, room("1"), room("[1, null]"), Some(room("true")))
                .unwrap()
                .frame()
                .as_str(),
            r#"{"msg_type": 0, "room": 1, "username": [1, null], "message": true}"#
        );
        // chat.message without "message" crashed the original's handler: not an event.
        assert!(GroupEvent::from_parts(kind, room("1"), Value::str("x"), None).is_none());
        let join = EventKind::from_type_name("chat.join").unwrap();
        assert_eq!(
            GroupEvent::from_parts(join, room("2"), Value::str("x"), Some(room("0")))
                .unwrap()
                .frame()
                .as_str(),
            r#"{"msg_type": 4, "room": 2, "username": "x"}"#
        );
        assert_eq!(EventKind::from_type_name("chat.other"), None);
    }

    #[test]
    fn room_users_has_the_forks_shape() {
        assert_eq!(
            parse_command(r#"{"command": "room_users", "room": 3}"#),
            Ok(Command::RoomUsers { room: room("3") })
        );
        assert_eq!(
            parse_command(r#"{"command": "room_users"}"#),
            Err(ClientError::BadRequest)
        );
        assert_eq!(
            room_users_reply(&room("3"), &Value::Null).as_str(),
            r#"{"type": 6, "room": 3, "data": {"users": null}}"#
        );
        let users = room(
            r#"{"7": {"username": "Zo\u00eb", "name": "", "left": false, "last_update": 1732900000.5}}"#,
        );
        assert_eq!(
            room_users_reply(&room(r#""3""#), &users).as_str(),
            r#"{"type": 6, "room": "3", "data": {"users": {"7": {"username": "Zo\u00eb", "name": "", "left": false, "last_update": 1732900000.5}}}}"#
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
