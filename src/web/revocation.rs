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
//!
//! Sockets are kept by the session they authenticated with (user, session key, auth hash), so
//! a pass judges each session once and costs nothing per socket unless it tells the socket
//! something: the browser tabs of one session, or the 100,000 members of a benchmark logged
//! in as ten users, are a handful of judgements (issue 12). What a socket is told is a bit
//! raised on its queue (`web::conn`); the same registry tells every socket when the server
//! shuts down.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Utc;

use crate::config::SessionEngine;
use crate::django::crypto::constant_time_eq;
use crate::django::sessions::{self, AuthHashCheck};
use crate::fanout::{ConnId, Signal};
use crate::web::AppState;
use crate::web::conn::{
    DEMOTE, PASSWORD_CHANGED, SESSION_ENDED, SHUTDOWN, USER_DEACTIVATED, USER_DELETED,
};

/// Closes sent to a revoked socket (4000–4999 are the application's range).
pub const CLOSE_SESSION_ENDED: u16 = 4001;
pub const CLOSE_PASSWORD_CHANGED: u16 = 4002;
pub const CLOSE_USER_INACTIVE: u16 = 4003;

/// What a socket's handshake authenticated with: the sockets of one browser session share it,
/// and the check judges each such group once, whatever its number of sockets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SessionKey {
    user_id: i64,
    /// The stored session's key (`None` for signed cookies); checked against `django_session`
    /// rows with the `db` and `cached_db` engines.
    session_key: Option<String>,
    auth_hash: String,
}

/// The open sockets of one [`SessionKey`], by id (a benchmark puts thousands in one).
struct Group {
    sockets: HashMap<ConnId, Member>,
    /// The last pass whose snapshot held this group.
    pass: u64,
}

struct Member {
    is_staff: bool,
    signal: Signal,
}

#[derive(Default)]
struct Registry {
    groups: HashMap<Arc<SessionKey>, Group>,
    sockets: usize,
    /// Set by [`LiveSockets::shut_down`]: a socket registered later is told at once.
    shut_down: bool,
}

/// The open sockets of this process.
#[derive(Clone, Default)]
pub struct LiveSockets {
    inner: Arc<Mutex<Registry>>,
    /// Passes of [`check`] begun.
    passes: Arc<std::sync::atomic::AtomicU64>,
}

/// Keeps a socket registered until dropped.
pub struct Registration {
    sockets: LiveSockets,
    key: Arc<SessionKey>,
    id: ConnId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut registry = self.sockets.lock();
        let Some(group) = registry.groups.get_mut(&self.key) else {
            return;
        };
        let removed = group.sockets.remove(&self.id).is_some();
        if group.sockets.is_empty() {
            registry.groups.remove(&self.key);
        }
        registry.sockets -= usize::from(removed);
    }
}

impl LiveSockets {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a socket; what the check finds reaches it through `signal`.
    pub fn register(
        &self,
        id: ConnId,
        user_id: i64,
        session_key: Option<String>,
        auth_hash: String,
        is_staff: bool,
        signal: Signal,
    ) -> Registration {
        let key = SessionKey {
            user_id,
            session_key,
            auth_hash,
        };
        let mut registry = self.lock();
        if registry.shut_down {
            signal.raise(SHUTDOWN);
        }
        let key = match registry.groups.get_key_value(&key) {
            Some((shared, _)) => shared.clone(),
            None => Arc::new(key),
        };
        let group = registry.groups.entry(key.clone()).or_insert(Group {
            sockets: HashMap::new(),
            // Never the number of a pass under way (passes start at 1): that pass's queries were
            // made from its snapshot and may not cover this user, who would read as deleted.
            pass: 0,
        });
        group.sockets.insert(id, Member { is_staff, signal });
        registry.sockets += 1;
        Registration {
            sockets: self.clone(),
            key,
            id,
        }
    }

    /// Tells every open socket, and every socket registered from now on, that the server
    /// shuts down (close 1001).
    pub fn shut_down(&self) {
        let mut registry = self.lock();
        registry.shut_down = true;
        for group in registry.groups.values() {
            for member in group.sockets.values() {
                member.signal.raise(SHUTDOWN);
            }
        }
    }

    /// Open sockets.
    pub fn len(&self) -> usize {
        self.lock().sockets
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Distinct sessions among the open sockets (what one check pass judges).
    pub fn sessions(&self) -> usize {
        self.lock().groups.len()
    }

    /// Begins a check pass: marks the sessions open now as this pass's and returns its number,
    /// their distinct users and their stored session keys; `None` when no socket is open.
    /// Only these sessions are judged: one first seen while the pass's queries run has just
    /// been checked by its handshake, and its user may not be among those fetched.
    fn begin_pass(&self) -> Option<(u64, Vec<i64>, Vec<String>)> {
        let pass = self.passes.fetch_add(1, Ordering::Relaxed) + 1;
        let mut registry = self.lock();
        if registry.groups.is_empty() {
            return None;
        }
        let mut users: HashSet<i64> = HashSet::new();
        let mut keys: Vec<String> = Vec::new();
        for (key, group) in registry.groups.iter_mut() {
            group.pass = pass;
            users.insert(key.user_id);
            keys.extend(key.session_key.clone());
        }
        Some((pass, users.into_iter().collect(), keys))
    }
}

/// Runs the check every `SESSION_RECHECK_SECONDS` until the server shuts down; then tells
/// every socket to close.
pub async fn run(app: AppState) {
    let every = app.settings.limits.session_recheck;
    let mut shutdown = app.shutdown.clone();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stopping| *stopping) => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = check(&app).await {
            // A database outage revokes nobody; the next interval tries again.
            tracing::warn!(error = %e, "session re-check failed");
        }
    }
    app.live_sockets.shut_down();
}

/// One pass over every open socket, one judgement per session.
pub async fn check(app: &AppState) -> Result<(), crate::store::StoreError> {
    let Some((pass, users, keys)) = app.live_sockets.begin_pass() else {
        return Ok(());
    };
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
    let mut registry = app.live_sockets.lock();
    for (key, group) in registry.groups.iter_mut() {
        if group.pass != pass {
            continue;
        }
        let verdict = match found.get(&key.user_id) {
            None => Some(USER_DELETED),
            Some(user) if !user.is_active => Some(USER_DEACTIVATED),
            Some(_)
                if stored
                    && key
                        .session_key
                        .as_ref()
                        .is_some_and(|k| !live_keys.contains(k)) =>
            {
                Some(SESSION_ENDED)
            }
            Some(user) => {
                // One HMAC per user and pass, not per session or socket; only a hash that
                // differs from the current one goes through the fallback keys.
                let current = expected
                    .entry(user.id)
                    .or_insert_with(|| sessions::session_auth_hash(&user.password, &secret));
                let check = if constant_time_eq(key.auth_hash.as_bytes(), current.as_bytes()) {
                    AuthHashCheck::Current
                } else {
                    sessions::check_auth_hash(&key.auth_hash, &user.password, &secret, &fallbacks)
                };
                if check == AuthHashCheck::Mismatch {
                    Some(PASSWORD_CHANGED)
                } else if !user.is_staff {
                    // Staff sockets of a user who is staff no more leave their staff rooms.
                    demote(&mut group.sockets);
                    None
                } else {
                    None
                }
            }
        };
        if let Some(bit) = verdict {
            for member in group.sockets.values() {
                member.signal.raise(bit);
            }
        }
    }
    Ok(())
}

/// Tells the staff sockets of a group to leave their staff-only rooms, once.
fn demote(sockets: &mut HashMap<ConnId, Member>) {
    for member in sockets.values_mut().filter(|m| m.is_staff) {
        member.is_staff = false;
        member.signal.raise(DEMOTE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::mailbox;

    /// The users whose sessions `pass` judges.
    fn judged(live: &LiveSockets, pass: u64) -> Vec<i64> {
        let registry = live.lock();
        let mut users: Vec<i64> = (registry.groups.iter())
            .filter(|(_, group)| group.pass == pass)
            .map(|(key, _)| key.user_id)
            .collect();
        users.sort();
        users
    }

    #[test]
    fn a_session_opened_during_a_pass_is_left_to_the_next() {
        let live = LiveSockets::default();
        let inboxes: Vec<_> = (0..3).map(|i| mailbox(i, 4, 1024).1).collect();
        let register = |i: usize, user: i64| {
            let key = Some(format!("key-{user}"));
            let hash = "hash".to_string();
            live.register(i as u64, user, key, hash, false, inboxes[i].signal())
        };
        let _gina = register(0, 1);
        let (pass, users, keys) = live.begin_pass().expect("a socket is open");
        assert_eq!((users, keys), (vec![1], vec!["key-1".to_string()]));
        // Hugo's handshake lands while the pass's queries run (CI saw his join closed with
        // 4003, "user deleted": the pass had not fetched his row).
        let _hugo = register(1, 2);
        assert_eq!(judged(&live, pass), vec![1]);
        // A second socket of a session already in the pass is judged with it.
        let _gina_again = register(2, 1);
        assert_eq!(live.sessions(), 2);
        let (next, mut users, _) = live.begin_pass().expect("sockets are open");
        users.sort();
        assert_eq!(users, vec![1, 2]);
        assert_eq!(judged(&live, next), vec![1, 2]);
    }
}
