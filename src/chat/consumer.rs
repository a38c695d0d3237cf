//! The per-connection state machine: multichat's `ChatConsumer` (spec §4.2, §4.5–§4.12).
//!
//! A [`Consumer`] owns one socket's state (the user snapshot taken at connect, the set of raw
//! room values joined, the groups subscribed) and turns each inbound frame into an ordered list
//! of [`Effect`]s. It performs no I/O besides room lookups through a [`RoomLookup`] and the
//! room presence, so the ordering rules of §4.12 and the socket's limits are visible in one
//! place and testable without a network or a database:
//!
//! * the direct reply comes first, so a member's own notices always follow its ack;
//! * join publishes its enter notice *before* subscribing (no self-notice on a first join);
//! * leave publishes its leave notice *before* unsubscribing (a subscribed leaver hears it).
//!
//! Beyond the original, every frame passes the socket's limits first ([`SocketLimits`]): its
//! rate (`RATE_LIMITED`), the size of its raw `room` (`ROOM_INVALID`), the number of rooms
//! joined (`TOO_MANY_ROOMS`) and the size of what it sends to a room (`MESSAGE_TOO_LARGE`).
//! A refused frame changes nothing. Every frame the rate admits costs a message token, whatever
//! its outcome (decoding it was work); only a frame that succeeds spends its bytes. After a
//! frame refused for its rate, [`Consumer::pause`] tells the socket how long to stop reading,
//! so a flood costs the server at most about two frames per token, not one per frame sent.
//!
//! It also keeps the Whisper fork's room presence ([`Presence`], spec §12): refreshed after a
//! join (before its ack) and after a send, marked `left` on every leave, read by `room_users`.

use std::collections::HashSet;
use std::future::Future;

use indexmap::IndexMap;
use tokio::time::Instant;

use crate::chat::limits::{SocketLimits, TokenBucket};
use crate::chat::presence::{self, Presence, PresenceUser};
use crate::chat::protocol::{self, ClientError, Command, Frame, GroupEvent};
use crate::chat::roomid::{self, RoomKey};
use crate::django::pyjson::{self, Separators, Value};
use crate::store::{Room, RoomCache, StoreError};

/// Where the consumer finds rooms by id: the cached store in the server, a map in tests.
pub trait RoomLookup: Send + Sync {
    fn room(&self, id: i64) -> impl Future<Output = Result<Option<Room>, StoreError>> + Send;
}

impl RoomLookup for RoomCache {
    fn room(&self, id: i64) -> impl Future<Output = Result<Option<Room>, StoreError>> + Send {
        self.get(id)
    }
}

/// What the connection needs to know about its user, frozen at connect (spec §4.2 point 5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSnapshot {
    pub id: i64,
    /// `get_username()`: what events and presence show.
    pub username: String,
    /// The user table's `name` column (the fork's), or "".
    pub name: String,
    pub is_staff: bool,
}

impl UserSnapshot {
    fn presence(&self) -> PresenceUser {
        PresenceUser {
            id: self.id,
            username: self.username.clone(),
            name: self.name.clone(),
        }
    }
}

/// One thing the connection must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Queue a frame for this connection only.
    Reply(Frame),
    /// Deliver an event to every member of a group (this connection included, if subscribed).
    GroupSend { group: String, event: GroupEvent },
    /// Subscribe this connection to a group.
    GroupAdd(String),
    /// Unsubscribe this connection from a group.
    GroupDiscard(String),
}

/// How one frame ended: its command carried out (`"join"`, `"leave"`, `"send"`,
/// `"room_users"`), or answered with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done(&'static str),
    Refused(ClientError),
}

/// The channel-layer group of a room: `room-<db id>`, always from the DB id (spec §2.1).
pub fn group_name(room_id: i64) -> String {
    format!("room-{room_id}")
}

#[derive(Clone, Copy)]
enum Notice {
    Enter,
    Leave,
}

pub struct Consumer<R: RoomLookup = RoomCache> {
    user: UserSnapshot,
    rooms_cache: R,
    presence: Presence,
    notify: bool,
    limits: SocketLimits,
    messages: TokenBucket,
    bytes: TokenBucket,
    /// The last frame was refused for the message rate ([`Consumer::pause`]).
    throttled: bool,
    /// What the last frame was, for the server's metrics ([`Consumer::take_outcome`]).
    outcome: Option<Outcome>,
    /// The raw room values of successful joins, keyed with Python equality (spec §4.6). An
    /// equal value joined later keeps the first spelling, as a Python `set.add` does.
    rooms: IndexMap<RoomKey, Value>,
    /// Room ids whose group this connection is subscribed to.
    subscribed: HashSet<i64>,
}

impl<R: RoomLookup> Consumer<R> {
    pub fn new(
        user: UserSnapshot,
        rooms_cache: R,
        presence: Presence,
        notify_enter_leave: bool,
        limits: SocketLimits,
    ) -> Self {
        let now = Instant::now();
        Consumer {
            user,
            rooms_cache,
            presence,
            notify: notify_enter_leave,
            limits,
            messages: TokenBucket::new(limits.messages, now),
            bytes: TokenBucket::new(limits.bytes, now),
            throttled: false,
            outcome: None,
            rooms: IndexMap::new(),
            subscribed: HashSet::new(),
        }
    }

    pub fn user(&self) -> &UserSnapshot {
        &self.user
    }

    /// Handles one inbound text frame. Errors become a single error reply; the state is
    /// untouched by a failed command.
    pub async fn receive(&mut self, text: &str) -> Vec<Effect> {
        let now = Instant::now();
        let (name, result) = match self.admit(text, now) {
            Ok(Command::Join { room }) => ("join", self.join(room).await),
            Ok(Command::Leave { room }) => ("leave", self.leave(room).await),
            Ok(Command::Send { room, message }) => ("send", self.send(room, message).await),
            Ok(Command::RoomUsers { room }) => ("room_users", self.room_users(room).await),
            Err(e) => ("", Err(e)),
        };
        match result {
            Ok(effects) => {
                // The bytes it sends to rooms (checked beforehand).
                self.bytes.take(room_bytes(&effects) as f64, now);
                self.outcome = Some(Outcome::Done(name));
                effects
            }
            Err(e) => {
                self.outcome = Some(Outcome::Refused(e));
                vec![Effect::Reply(e.frame())]
            }
        }
    }

    /// How the last frame [`Consumer::receive`]d ended (once).
    pub fn take_outcome(&mut self) -> Option<Outcome> {
        self.outcome.take()
    }

    /// How long the socket should stop reading: after a frame refused for the message rate,
    /// until the next token is there; otherwise zero. Frames sent meanwhile wait in the
    /// socket (TCP pushes back on the sender) instead of costing the server a refusal each.
    pub fn pause(&mut self) -> std::time::Duration {
        if !std::mem::take(&mut self.throttled) {
            return std::time::Duration::ZERO;
        }
        self.messages.wait_for(1.0, Instant::now())
    }

    /// The checks every frame passes before it is decoded further: the message rate (the
    /// frame's token is taken here, whatever follows), then the size of its raw `room` value.
    fn admit(&mut self, text: &str, now: Instant) -> Result<Command, ClientError> {
        if !self.messages.take(1.0, now) {
            self.throttled = true;
            return Err(ClientError::RateLimited);
        }
        let command = protocol::parse_command(text)?;
        let room = match &command {
            Command::Join { room }
            | Command::Leave { room }
            | Command::Send { room, .. }
            | Command::RoomUsers { room } => room,
        };
        if pyjson::dumps(room, Separators::Python).len() > self.limits.max_room_bytes {
            return Err(ClientError::RoomInvalid);
        }
        Ok(command)
    }

    /// Refuses a command whose frames to rooms would exceed the byte rate; never called for
    /// the leave notices of a disconnect, which always go out.
    fn afford(&mut self, cost: usize) -> Result<(), ClientError> {
        if self.bytes.has(cost as f64, Instant::now()) {
            Ok(())
        } else {
            Err(ClientError::RateLimited)
        }
    }

    /// Runs the leave procedure for every joined room (spec §4.11), then drops any remaining
    /// subscription (e.g. a room deleted while joined), so nothing outlives the socket.
    pub async fn disconnect(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (_, raw) in std::mem::take(&mut self.rooms) {
            // A room that fails the lookup now (deleted, made staff-only) is skipped silently.
            let Ok(room) = self.room_or_error(&raw).await else {
                continue;
            };
            let group = group_name(room.id);
            self.notice(&mut effects, &group, Notice::Leave, &raw);
            self.presence_left(&raw).await;
            if self.subscribed.remove(&room.id) {
                effects.push(Effect::GroupDiscard(group));
            }
        }
        for id in self.subscribed.drain() {
            effects.push(Effect::GroupDiscard(group_name(id)));
        }
        effects
    }

    /// The user lost `is_staff` (live revocation): every joined staff-only room is left as by
    /// a `leave`, with `ROOM_ACCESS_DENIED` after its ack so the client knows why. Rooms that
    /// fail the lookup now are dropped silently, as at disconnect.
    pub async fn demote(&mut self) -> Vec<Effect> {
        self.user.is_staff = false;
        let mut effects = Vec::new();
        let joined: Vec<(RoomKey, Value)> = self
            .rooms
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, raw) in joined {
            let room = match self.room_or_error(&raw).await {
                Ok(_) => continue,
                Err(ClientError::RoomAccessDenied) => {
                    let Some(id) = roomid::lookup_id(&raw).ok().flatten() else {
                        continue;
                    };
                    id
                }
                Err(_) => continue,
            };
            self.rooms.shift_remove(&key);
            let group = group_name(room);
            effects.push(Effect::Reply(protocol::leave_ack(room)));
            effects.push(Effect::Reply(ClientError::RoomAccessDenied.frame()));
            self.notice(&mut effects, &group, Notice::Leave, &raw);
            self.presence_left(&raw).await;
            let still_joined = self
                .rooms
                .values()
                .any(|v| roomid::lookup_id(v).ok().flatten() == Some(room));
            if !still_joined && self.subscribed.remove(&room) {
                effects.push(Effect::GroupDiscard(group));
            }
        }
        effects
    }

    /// Publishes an enter or leave notice, when `NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS` is on.
    fn notice(&self, effects: &mut Vec<Effect>, group: &str, kind: Notice, raw: &Value) {
        if !self.notify {
            return;
        }
        let username = &self.user.username;
        let event = match kind {
            Notice::Enter => GroupEvent::join(raw.clone(), username),
            Notice::Leave => GroupEvent::leave(raw.clone(), username),
        };
        effects.push(Effect::GroupSend {
            group: group.to_string(),
            event,
        });
    }

    /// `get_room_or_error` (spec §4.5).
    async fn room_or_error(&self, raw: &Value) -> Result<Room, ClientError> {
        let id = roomid::lookup_id(raw)
            .map_err(|_| ClientError::RoomInvalid)?
            .ok_or(ClientError::RoomInvalid)?;
        let room = self
            .rooms_cache
            .room(id)
            .await
            .map_err(|_| ClientError::ServiceUnavailable)?
            .ok_or(ClientError::RoomInvalid)?;
        if room.staff_only && !self.user.is_staff {
            return Err(ClientError::RoomAccessDenied);
        }
        Ok(room)
    }

    async fn join(&mut self, raw: Value) -> Result<Vec<Effect>, ClientError> {
        let room = self.room_or_error(&raw).await?;
        let key = RoomKey::from_value(&raw).map_err(|_| ClientError::RoomInvalid)?;
        if !self.rooms.contains_key(&key) && self.rooms.len() >= self.limits.max_rooms {
            return Err(ClientError::TooManyRooms);
        }
        let group = group_name(room.id);
        let mut effects = vec![Effect::Reply(protocol::join_ack(room.id, &room.title))];
        self.notice(&mut effects, &group, Notice::Enter, &raw);
        self.afford(room_bytes(&effects))?;
        self.presence_refresh(&raw).await;
        self.rooms.entry(key).or_insert(raw);
        if self.subscribed.insert(room.id) {
            effects.push(Effect::GroupAdd(group));
        }
        Ok(effects)
    }

    async fn leave(&mut self, raw: Value) -> Result<Vec<Effect>, ClientError> {
        let room = self.room_or_error(&raw).await?;
        let group = group_name(room.id);
        // Membership is not checked: leaving a room never joined still notifies (spec §4.6).
        let mut effects = vec![Effect::Reply(protocol::leave_ack(room.id))];
        self.notice(&mut effects, &group, Notice::Leave, &raw);
        self.afford(room_bytes(&effects))?;
        self.presence_left(&raw).await;
        if let Ok(key) = RoomKey::from_value(&raw) {
            self.rooms.shift_remove(&key);
        }
        if self.subscribed.remove(&room.id) {
            effects.push(Effect::GroupDiscard(group));
        }
        Ok(effects)
    }

    async fn send(&mut self, raw: Value, message: Value) -> Result<Vec<Effect>, ClientError> {
        // Membership first, before any lookup (spec §4.6 send step 1). An unhashable value
        // (list, dict) crashed the original; it is not a room id, so ROOM_INVALID.
        let key = RoomKey::from_value(&raw).map_err(|_| ClientError::RoomInvalid)?;
        if !self.rooms.contains_key(&key) {
            return Err(ClientError::RoomAccessDenied);
        }
        let room = self.room_or_error(&raw).await?;
        let event = GroupEvent::message(raw, &self.user.username, message);
        if event.frame().len() > self.limits.max_event_bytes {
            return Err(ClientError::MessageTooLarge);
        }
        self.afford(event.frame().len())?;
        self.presence_refresh(event.room_id()).await;
        Ok(vec![Effect::GroupSend {
            group: group_name(room.id),
            event,
        }])
    }

    /// The fork's `room_users`: the room's presence dict, or `null`. The fork checks nothing;
    /// Whisper refuses a staff-only room's presence to non-staff users, as it refuses the
    /// room itself (README, "Documented differences"). A value no join could accept names a
    /// key nothing writes: `null` without a lookup.
    async fn room_users(&mut self, raw: Value) -> Result<Vec<Effect>, ClientError> {
        let Some(key) = presence::presence_key(&raw) else {
            return Ok(vec![Effect::Reply(protocol::room_users_reply(
                &raw,
                &Value::Null,
            ))]);
        };
        match self.room_or_error(&raw).await {
            Err(ClientError::RoomAccessDenied) => return Err(ClientError::RoomAccessDenied),
            Err(ClientError::ServiceUnavailable) => return Err(ClientError::ServiceUnavailable),
            // A room that does not exist (any more) may still have presence: answer it.
            Ok(_) | Err(_) => {}
        }
        let stored = self
            .presence
            .users(&key)
            .await
            .map_err(|_| ClientError::ServiceUnavailable)?;
        let users = presence::users_json(stored.as_ref());
        Ok(vec![Effect::Reply(protocol::room_users_reply(
            &raw, &users,
        ))])
    }

    async fn presence_refresh(&self, raw: &Value) {
        if let Some(key) = presence::presence_key(raw) {
            self.presence.refresh(&key, &self.user.presence()).await;
        }
    }

    async fn presence_left(&self, raw: &Value) {
        if let Some(key) = presence::presence_key(raw) {
            self.presence.mark_left(&key, self.user.id).await;
        }
    }
}

/// Bytes of the frames the effects send to rooms.
fn room_bytes(effects: &[Effect]) -> usize {
    effects
        .iter()
        .map(|e| match e {
            Effect::GroupSend { event, .. } => event.frame().len(),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests;
