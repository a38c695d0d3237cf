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
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Utc;
use tokio::sync::mpsc;

use crate::config::SessionEngine;
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

/// One open socket, as its handshake saw it.
struct Live {
    user_id: i64,
    /// The stored session's key (`None` for signed cookies); checked against `django_session`
    /// rows with the `db` and `cached_db` engines.
    session_key: Option<String>,
    auth_hash: String,
    is_staff: bool,
    control: mpsc::Sender<Control>,
}

/// The open sockets of this process.
#[derive(Clone, Default)]
pub struct LiveSockets(Arc<Mutex<HashMap<ConnId, Live>>>);

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
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a socket; its controls arrive on the returned receiver.
    pub fn register(
        &self,
        id: ConnId,
        user_id: i64,
        session_key: Option<String>,
        auth_hash: String,
        is_staff: bool,
    ) -> (Registration, mpsc::Receiver<Control>) {
        let (control, rx) = mpsc::channel(4);
        self.lock().insert(
            id,
            Live {
                user_id,
                session_key,
                auth_hash,
                is_staff,
                control,
            },
        );
        (
            Registration {
                sockets: self.clone(),
                id,
            },
            rx,
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
    let (checked, users, keys) = {
        let live = app.live_sockets.lock();
        if live.is_empty() {
            return Ok(());
        }
        let checked: HashSet<ConnId> = live.keys().copied().collect();
        let users: HashSet<i64> = live.values().map(|l| l.user_id).collect();
        let keys: HashSet<String> = live
            .values()
            .filter_map(|l| l.session_key.clone())
            .collect();
        (checked, users, keys)
    };
    let users: Vec<i64> = users.into_iter().collect();
    let found: HashMap<i64, crate::store::User> = app
        .store
        .users_by_ids(&users)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let keys: Vec<String> = keys.into_iter().collect();
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
    let mut live = app.live_sockets.lock();
    for (id, socket) in live.iter_mut() {
        if !checked.contains(id) {
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
                let check = sessions::check_auth_hash(
                    &socket.auth_hash,
                    &user.password,
                    &secret,
                    &fallbacks,
                );
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
            // A full control queue means the socket is already being told.
            let _ = socket.control.try_send(control);
        }
    }
    Ok(())
}
