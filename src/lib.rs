//! Whisper: a drop-in Rust server for the Django Channels "multichat" WebSocket process.
//!
//! Module map (dependencies point one way, top to bottom):
//!
//! | module     | owns |
//! |------------|------|
//! | [`django`] | pure Django/Python-compatible primitives: password hashers, `salted_hmac`, signing, session encoding, the session auth hash, CSRF tokens, host/origin rules, Python's `json`, guarded pickles |
//! | [`config`] | the typed settings struct, with Django's setting names and defaults (`CHANNEL_LAYERS`, `CACHES`, `DJANGO_VERSION` + `PASSWORD_HASHERS`, the user model and the safety limits included) |
//! | [`metrics`]| a leaf every layer records into: the Prometheus counters and histograms, and the text exposition of `/metrics` (`METRICS_ADDR`) |
//! | [`store`]  | Django's storage: SQL on its own tables (`auth_user` or a custom `AUTH_USER_MODEL`'s, read from the catalog; `django_session`, `chat_room`, migrations) for SQLite and PostgreSQL, its Redis cache, and the session engines over both |
//! | [`chat`]   | the multichat protocol: commands, events, room-id semantics, the per-connection consumer and its limits |
//! | [`fanout`] | room membership and delivery: the `Broker` trait, bounded per-socket queues, the in-process hub, and the Redis broker speaking Whisper's format or channels_redis' (pub/sub and core, msgpack, sharded over several hosts as channels_redis shards) |
//! | [`web`]    | the accept loop (header deadline, connection limits, bounded shutdown), HTTP routes, pages, templates, the WebSocket handler, error-to-response mapping, throttling, live revocation, the low-priority password-hashing threads |
//! | [`startup`]| wiring: settings → state → router → `serve(listener, shutdown)` |
//! | [`cli`]    | the `./manage` subcommands, one file each |
//!
//! Nothing here is global: every server takes its settings, listener and shutdown signal, so
//! tests run many servers on port 0 in one process. The load generator (`./manage bench`) is a
//! separate binary, `src/bin/bench/`.

pub mod chat;
pub mod cli;
pub mod config;
pub mod django;
pub mod fanout;
pub mod metrics;
pub mod startup;
pub mod store;
pub mod web;
