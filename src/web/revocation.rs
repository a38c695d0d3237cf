//! Live revocation, beyond the original (issue 10, SECURITY.md): every
//! `SESSION_RECHECK_SECONDS` the process re-checks all of its open sockets at once — one
//! statement for their users and one for their sessions, not one per socket — and tells each
//! socket what changed since its handshake:
//!
//! | change (made by Django or by Whisper) | what the socket does |
//! |---|---|
//! | session deleted (logout elsewhere) or expired | leave notices, then close [`CLOSE_SESSION_ENDED`] |
//! | password changed (the session's auth hash no longer matches) | leave notices, then close [`CLOSE_PASSWORD_CHANGED`] |
//! | user deactivated or deleted | leave notices, then close [`CLOSE_USER_INACTIVE`] |
//! | `is_staff` lost | leaves its staff-only rooms: `{"leave": id}` and `ROOM_ACCESS_DENIED`, leave notices |
//!
//! With signed-cookie sessions nothing is stored to delete, so only the user checks apply;
//! with `db` and `cached_db` the session's row must still be there and unexpired (one query),
//! with `cache` its entry in the session cache (one pipeline of `EXISTS`; Redis drops an
//! expired entry itself).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Utc;
use tokio::sync::Notify;

use crate::config::SessionEngine;
use crate::django::crypto::constant_time_eq;
use crate::django::sessions::{self, AuthHashCheck};
use crate::fanout::ConnId;
use crate::web::AppState;

/// Closes sent to a revoked socket (4000–4999 are the application's range).
pub const CLOSE_SESSION_ENDED: u16 = 4001;
pub const CLOSE_PASSWORD_CHANGED: u16 = 4002;
pub const CLOSE_USER_INACTIVE: u16 = 4003;

/// What the check tells one socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Leave every room and close with this code and reason.
    Revoke(u16, &'static str),
    /// The user is no longer staff: leave the staff-only rooms.
    Demote,
}

/// Where a socket's control waits for it: one slot, not a channel (a tokio channel allocates a
/// block of 32 entries up front, 1.2 KB per socket, issue 12). A revocation replaces a pending
/// demotion (leaving every room covers the staff-only ones); nothing replaces a revocation.
#[derive(Default)]
pub struct ControlSlot {
    pending: Mutex<Option<Control>>,
    /// Set with a pending revocation: what a busy socket reads between write batches.
    revoked: std::sync::atomic::AtomicBool,
    ready: Notify,
}

impl ControlSlot {
    fn put(&self, control: Control) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*pending, Some(Control::Revoke(..))) {
            *pending = Some(control);
        }
        if matches!(control, Control::Revoke(..)) {
            self.revoked.store(true, Ordering::Release);
        }
        drop(pending);
        self.ready.notify_one();
    }

    /// The revocation waiting to be taken, if one is, without taking it: a socket busy
    /// delivering checks this between batches, so a steady room cannot hold a logout back.
    pub fn revocation(&self) -> Option<Control> {
        if !self.revoked.load(Ordering::Acquire) {
            return None;
        }
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        (*pending).filter(|c| matches!(c, Control::Revoke(..)))
    }

    /// The next control, once one is put.
    pub async fn recv(&self) -> Control {
        loop {
            let ready = self.ready.notified();
            if let Some(control) = self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                return control;
            }
            ready.await;
        }
    }
}

/// One open socket, as its handshake saw it.
struct Live {
    user_id: i64,
    /// The stored session's key (`None` for signed cookies); checked against `django_session`
    /// rows with the `db` and `cached_db` engines.
    session_key: Option<String>,
    auth_hash: String,
    is_staff: bool,
    control: Arc<ControlSlot>,
    /// The last pass whose snapshot held this socket.
    pass: u64,
}

/// The open sockets of this process.
#[derive(Clone, Default)]
pub struct LiveSockets {
    sockets: Arc<Mutex<HashMap<ConnId, Live>>>,
    /// Passes of [`check`] begun.
    passes: Arc<std::sync::atomic::AtomicU64>,
}

/// Keeps a socket registered until dropped.
pub struct Registration {
    sockets: LiveSockets,
    id: ConnId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.sockets.lock().remove(&self.id);
    }
}

impl LiveSockets {
    fn lock(&self) -> MutexGuard<'_, HashMap<ConnId, Live>> {
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a socket; its controls arrive on the returned receiver.
    pub fn register(
        &self,
        id: ConnId,
        user_id: i64,
        session_key: Option<String>,
        auth_hash: String,
        is_staff: bool,
    ) -> (Registration, Arc<ControlSlot>) {
        let control = Arc::new(ControlSlot::default());
        self.lock().insert(
            id,
            Live {
                user_id,
                session_key,
                auth_hash,
                is_staff,
                control: control.clone(),
                pass: 0,
            },
        );
        (
            Registration {
                sockets: self.clone(),
                id,
            },
            control,
        )
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs the check every `SESSION_RECHECK_SECONDS` until the server shuts down.
pub async fn run(app: AppState) {
    let every = app.settings.limits.session_recheck;
    let mut shutdown = app.shutdown.clone();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = check(&app).await {
            // A database outage revokes nobody; the next interval tries again.
            tracing::warn!(error = %e, "session re-check failed");
        }
    }
}

/// One pass over every open socket.
pub async fn check(app: &AppState) -> Result<(), crate::store::StoreError> {
    // Only the sockets of this snapshot are judged: one registered while the queries run has
    // just been checked by its handshake, and its user may not be among those fetched.
    // Nothing per socket is copied: each is marked with the pass, and its user and session
    // key are gathered once per distinct value.
    let pass = app.live_sockets.passes.fetch_add(1, Ordering::Relaxed) + 1;
    let (users, keys) = {
        let mut live = app.live_sockets.lock();
        if live.is_empty() {
            return Ok(());
        }
        let mut users: HashSet<i64> = HashSet::new();
        let mut keys: HashSet<&str> = HashSet::new();
        for socket in live.values_mut() {
            socket.pass = pass;
        }
        for socket in live.values() {
            users.insert(socket.user_id);
            if let Some(key) = &socket.session_key {
                keys.insert(key);
            }
        }
        let keys: Vec<String> = keys.into_iter().map(str::to_string).collect();
        (users, keys)
    };
    let users: Vec<i64> = users.into_iter().collect();
    let found: HashMap<i64, crate::store::User> = app
        .store
        .users_by_ids(&users)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    // Signed cookies keep nothing server-side; every other engine must still hold the session.
    let engine = app.settings.session_engine;
    let stored = engine != SessionEngine::SignedCookies;
    let live_keys = match engine {
        _ if keys.is_empty() => HashSet::new(),
        SessionEngine::Db | SessionEngine::CachedDb => {
            app.store.live_session_keys(&keys, Utc::now()).await?
        }
        SessionEngine::Cache => app.sessions.live_cache_keys(&keys).await?,
        SessionEngine::SignedCookies => HashSet::new(),
    };
    let secret = app.settings.secret().to_string();
    let fallbacks = app.settings.fallback_secrets();
    let mut expected: HashMap<i64, String> = HashMap::new();
    let mut live = app.live_sockets.lock();
    for socket in live.values_mut() {
        if socket.pass != pass {
            continue;
        }
        let control = match found.get(&socket.user_id) {
            None => Some(Control::Revoke(CLOSE_USER_INACTIVE, "user deleted")),
            Some(user) if !user.is_active => {
                Some(Control::Revoke(CLOSE_USER_INACTIVE, "user deactivated"))
            }
            Some(_)
                if stored
                    && socket
                        .session_key
                        .as_ref()
                        .is_some_and(|key| !live_keys.contains(key)) =>
            {
                Some(Control::Revoke(CLOSE_SESSION_ENDED, "session ended"))
            }
            Some(user) => {
                // One HMAC per user and pass, not per socket (a user's sockets share it); only
                // a hash that differs from the current one goes through the fallback keys.
                let current = expected
                    .entry(user.id)
                    .or_insert_with(|| sessions::session_auth_hash(&user.password, &secret));
                let check = if constant_time_eq(socket.auth_hash.as_bytes(), current.as_bytes()) {
                    AuthHashCheck::Current
                } else {
                    sessions::check_auth_hash(
                        &socket.auth_hash,
                        &user.password,
                        &secret,
                        &fallbacks,
                    )
                };
                if check == AuthHashCheck::Mismatch {
                    Some(Control::Revoke(CLOSE_PASSWORD_CHANGED, "password changed"))
                } else if socket.is_staff && !user.is_staff {
                    socket.is_staff = false;
                    Some(Control::Demote)
                } else {
                    None
                }
            }
        };
        if let Some(control) = control {
            socket.control.put(control);
        }
    }
    Ok(())
}
