//! The multichat protocol: commands, events, room-id semantics, the per-connection consumer.

pub mod consumer;
pub mod limits;
pub mod presence;
pub mod protocol;
pub mod roomid;
