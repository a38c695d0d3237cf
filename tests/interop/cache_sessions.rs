//! Cache session engines (`cache`, `cached_db`) on Redis, both ways with real Django, for both
//! Redis backends (Django's `RedisCache`, django-redis): a login on one side is accepted by the
//! other (page and WebSocket), logout on either side ends it for both, a password change in the
//! admin and expiry refuse old sessions on both sides, and the bytes Whisper writes are the
//! bytes Django's serializer writes for the same dict. Every test uses its own random
//! `KEY_PREFIX` on the machine's Redis (127.0.0.1:6379, database 0) and deletes its keys at
//! the end; nothing is flushed. A Redis outage gives 503 (private `redis-server`).

use super::*;
use common::redis_server::PrivateRedis;

const CACHE: &str = "django.contrib.sessions.backends.cache";
const CACHED_DB: &str = "django.contrib.sessions.backends.cached_db";
const DJANGO_CACHE: &str = "django.core.cache.backends.redis.RedisCache";
const DJANGO_REDIS: &str = "django_redis.cache.RedisCache";
const REDIS: &str = "redis://127.0.0.1:6379/0";
/// Session lifetime in these tests, so keys left by a failed run expire within the hour.
const AGE: u64 = 3600;

/// `check(db backend, cache backend, engine, django_version)` for one release: SQLite with
/// both Redis backends and both engines, and `cached_db` on PostgreSQL.
macro_rules! cache_backend_tests {
    ($check:ident, $module:ident, $version:literal) => {
        mod $module {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_django_cache() {
                super::super::$check(Backend::Sqlite, DJANGO_CACHE, CACHE, $version).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_django_redis_cache() {
                super::super::$check(Backend::Sqlite, DJANGO_REDIS, CACHE, $version).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_django_cached_db() {
                super::super::$check(Backend::Sqlite, DJANGO_CACHE, CACHED_DB, $version).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_django_redis_cached_db() {
                super::super::$check(Backend::Sqlite, DJANGO_REDIS, CACHED_DB, $version).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_django_cached_db() {
                super::super::$check(Backend::Postgres, DJANGO_CACHE, CACHED_DB, $version).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_django_redis_cached_db() {
                super::super::$check(Backend::Postgres, DJANGO_REDIS, CACHED_DB, $version).await
            }
        }
    };
}

per_django_version!(cache_sessions_both_ways, cache_backend_tests);

/// The `CACHES` JSON both sides read.
fn caches_json(backend: &str, location: &str, prefix: &str) -> String {
    let options = if backend == DJANGO_REDIS {
        r#", "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"}"#
    } else {
        ""
    };
    format!(
        r#"{{"default": {{"BACKEND": "{backend}", "LOCATION": "{location}", "KEY_PREFIX": "{prefix}"{options}}}}}"#
    )
}

/// The machine's Redis, or a failure saying how to start it.
async fn redis() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(REDIS).unwrap();
    match tokio::time::timeout(
        Duration::from_secs(3),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(conn)) => conn,
        other => panic!(
            "Redis on 127.0.0.1:6379 is required ({other:?}): start it with \
             `redis-server --daemonize yes --port 6379` (.ci/run does)"
        ),
    }
}

/// Deletes this test's keys (`SCAN` by prefix, never `FLUSHDB`).
async fn delete_prefix(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) {
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        for key in keys {
            let _: i64 = redis::cmd("DEL").arg(key).query_async(conn).await.unwrap();
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// The raw cache entry of a session as Django sees it, and what its serializer writes for the
/// dict it decodes.
async fn cache_entry(django: &Django, key: &str) -> Value {
    django.run(&["cache-entry", "--key", key]).await
}

async fn cache_sessions_both_ways(
    backend: Backend,
    cache: &str,
    engine: &str,
    version: &'static str,
) {
    let mut conn = redis().await;
    let prefix = format!(
        "whisper-test-{}",
        whisper::django::crypto::get_random_string(12, b"abcdefghijklmnopqrstuvwxyz0123456789")
    );
    let db = TestDb::new(backend).await;
    let env = Env::new(&db, version)
        .with("SESSION_ENGINE", engine)
        .with("CACHES", &caches_json(cache, REDIS, &prefix))
        .with("SESSION_COOKIE_AGE", &AGE.to_string());
    let server = env.whisper().await;
    let django = env.django();
    let what = format!("{cache} {engine}");
    django.create_user("root", PASSWORD, &["--superuser"]).await;
    django.create_user("alice", PASSWORD, &["--staff"]).await;
    django.create_user("bob", PASSWORD, &[]).await;
    let room = room_id(&django, "Lobby", false).await;

    // A Django login is accepted by Whisper's page and WebSocket.
    let d = django.login("alice", PASSWORD).await;
    assert_whisper_accepts(&server, &d, &format!("{what}: Django's session")).await;
    let mut ws = server.ws(Some(&d), None).await.expect("handshake");
    assert_eq!(
        command(&mut ws, &join(&room.to_string())).await,
        format!(r#"{{"join": "{room}", "title": "Lobby"}}"#)
    );
    ws.close(1000).await;

    // A Whisper login opens the Django admin; its cache entry is byte for byte what Django's
    // serializer writes for that dict, with the session's lifetime.
    let w = w_login(&server, "alice", PASSWORD).await;
    let (status, body) = django.admin_index(&w).await;
    assert_eq!(
        status, 200,
        "{what}: Django refused Whisper's session: {body}"
    );
    let entry = cache_entry(&django, &w).await;
    assert!(entry["raw"].is_string(), "{what}: no cache entry: {entry}");
    assert_eq!(
        entry["raw"], entry["redumped"],
        "{what}: bytes differ from Django's"
    );
    assert_eq!(
        entry["data"]["_auth_user_backend"], MODEL_BACKEND_PATH,
        "{entry}"
    );
    let ttl = entry["ttl_ms"].as_i64().unwrap();
    assert!(
        (AGE as i64 - 60) * 1000 < ttl && ttl <= AGE as i64 * 1000,
        "{what}: TTL {ttl}"
    );
    let stored = django.session_decode(&w).await;
    assert_eq!(stored["_auth_user_hash"], entry["data"]["_auth_user_hash"]);

    if engine == CACHED_DB {
        // A missing cache entry: Whisper reads the row and fills the entry, as Django does.
        let redis_key = entry["redis_key"].as_str().unwrap().to_string();
        let _: i64 = redis::cmd("DEL")
            .arg(&redis_key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_whisper_accepts(&server, &w, &format!("{what}: the row without its entry")).await;
        let filled = cache_entry(&django, &w).await;
        assert_eq!(
            filled["raw"], entry["raw"],
            "{what}: the entry was not filled"
        );
    }

    // A session whose cache entry holds a hostile pickle is anonymous (nothing runs).
    let marker = db.dir.path().join("pwned");
    let hostile_key = sessions_key_of(engine, &prefix, "hostilehostilehostile0123");
    let payload = format!("touch {}", marker.display());
    let mut pickle = b"\x80\x04cos\nsystem\n".to_vec();
    pickle.push(0x8c);
    pickle.push(payload.len() as u8);
    pickle.extend_from_slice(payload.as_bytes());
    pickle.extend_from_slice(b"\x85R.");
    let _: () = redis::cmd("SET")
        .arg(&hostile_key)
        .arg(&pickle)
        .arg("EX")
        .arg(AGE)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_whisper_refuses(
        &server,
        "hostilehostilehostile0123",
        &format!("{what}: hostile"),
    )
    .await;
    assert!(!marker.exists(), "the hostile pickle ran");

    // Logout in Whisper of a Django session ends it for Django, and removes the entry.
    let d2 = django.login("alice", PASSWORD).await;
    let out = w_logout(&server, &d2).await;
    assert_eq!(
        out.session,
        Some(None),
        "{what}: Whisper's logout must delete the cookie"
    );
    assert_eq!(
        django.admin_index(&d2).await.0,
        302,
        "{what}: Django kept it"
    );
    assert!(
        cache_entry(&django, &d2).await["raw"].is_null(),
        "{what}: entry left"
    );
    assert_whisper_refuses(&server, &d2, &format!("{what}: after Whisper's logout")).await;

    // Logout in Django of a Whisper session ends it for Whisper.
    let w2 = w_login(&server, "alice", PASSWORD).await;
    let out = django.logout(&w2).await;
    assert_eq!(out["status"], 200, "{out}");
    assert_whisper_refuses(&server, &w2, &format!("{what}: after Django's logout")).await;

    // A password change in the admin: both sides refuse the old sessions of either side.
    let b_django = django.login("bob", PASSWORD).await;
    let b_whisper = w_login(&server, "bob", PASSWORD).await;
    assert_whisper_accepts(&server, &b_django, &format!("{what}: bob via Django")).await;
    django
        .admin_change_password("root", "bob", "a brand new password")
        .await;
    assert_whisper_refuses(
        &server,
        &b_django,
        &format!("{what}: bob's old Django session"),
    )
    .await;
    assert_whisper_refuses(
        &server,
        &b_whisper,
        &format!("{what}: bob's old Whisper session"),
    )
    .await;
    assert_eq!(django.get("/", &b_whisper).await["status"], 302);
    assert_eq!(django.get("/", &b_django).await["status"], 302);
    let fresh = w_login(&server, "bob", "a brand new password").await;
    assert_eq!(django.get("/", &fresh).await["status"], 200);

    // Expiry: the entry's timeout (and the row's expire_date) run out for both sides.
    let e_django = django.login("alice", PASSWORD).await;
    let e_whisper = w_login(&server, "alice", PASSWORD).await;
    for key in [&e_django, &e_whisper] {
        let n = django.run(&["session-expire", "--key", key]).await;
        assert_eq!(n["touched"], true, "{n}");
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_whisper_refuses(
        &server,
        &e_django,
        &format!("{what}: expired Django session"),
    )
    .await;
    assert_whisper_refuses(
        &server,
        &e_whisper,
        &format!("{what}: expired Whisper session"),
    )
    .await;
    assert_eq!(django.get("/", &e_whisper).await["status"], 302);
    assert_eq!(django.get("/", &e_django).await["status"], 302);

    server.stop().await;
    delete_prefix(&mut conn, &prefix).await;
}

const MODEL_BACKEND_PATH: &str = "django.contrib.auth.backends.ModelBackend";

/// The Redis key of a session's cache entry (KEY_PREFIX, VERSION 1, the engine's prefix).
fn sessions_key_of(engine: &str, prefix: &str, key: &str) -> String {
    let engine_prefix = if engine == CACHED_DB {
        "django.contrib.sessions.cached_db"
    } else {
        "django.contrib.sessions.cache"
    };
    format!("{prefix}:1:{engine_prefix}{key}")
}

/// Redis down: pages and handshakes of a cache session answer 503, and work again once Redis
/// is back (the private server keeps nothing, so the session is gone then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_sessions_redis_outage_is_503() {
    let mut redis = PrivateRedis::start().await;
    let db = TestDb::new(Backend::Sqlite).await;
    let env = Env::new(&db, "5.2")
        .with("SESSION_ENGINE", CACHE)
        .with("CACHES", &caches_json(DJANGO_REDIS, &redis.url(), "outage"));
    let server = env.whisper().await;
    server.create_user("alice", true).await;
    let w = w_login(&server, "alice", PASSWORD).await;
    assert_whisper_accepts(&server, &w, "before the outage").await;

    redis.kill();
    let page = w_get(&server, "/", Some(&w)).await;
    assert_eq!(page.status, 503, "{}", page.body);
    // The page from templates/503.html, which does not name what is down (that is logged).
    assert!(
        page.body.contains("<h1>Service Unavailable (503)</h1>"),
        "{}",
        page.body
    );
    assert!(!page.body.to_lowercase().contains("cache"), "{}", page.body);
    match server.ws(Some(&w), None).await {
        Ok(_) => panic!("a handshake succeeded with Redis down"),
        Err(e) => assert_eq!(handshake_status(&e), Some(503), "{e}"),
    }
    // Without a session cookie nothing needs Redis.
    assert_eq!(w_get(&server, "/accounts/login/", None).await.status, 200);

    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = w_get(&server, "/", Some(&w)).await;
        if page.status == 302 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", page.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = w_login(&server, "alice", PASSWORD).await;
    assert_whisper_accepts(&server, &again, "after the outage").await;
    server.stop().await;
}

/// Live revocation with the `cache` engine (issue 10): Django's logout deletes the session's
/// cache entry, and Whisper's open socket of that session closes 4001 at the next re-check. On
/// both Redis backends; until then the socket chats (the entry is found at every re-check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_sessions_are_revoked_by_a_logout_in_django() {
    for cache in [DJANGO_CACHE, DJANGO_REDIS] {
        let mut conn = redis().await;
        let prefix = format!(
            "whisper-test-{}",
            whisper::django::crypto::get_random_string(12, b"abcdefghijklmnopqrstuvwxyz0123456789")
        );
        let db = TestDb::new(Backend::Sqlite).await;
        let env = Env::new(&db, "5.2")
            .with("SESSION_ENGINE", CACHE)
            .with("CACHES", &caches_json(cache, REDIS, &prefix))
            .with("SESSION_COOKIE_AGE", &AGE.to_string())
            .with("SESSION_RECHECK_SECONDS", "0.2");
        let server = env.whisper().await;
        let django = env.django();
        django.create_user("alice", PASSWORD, &[]).await;
        let lobby = room_id(&django, "Lobby", false).await;
        let a = django.login("alice", PASSWORD).await;
        let mut ws = ws_to(server.addr, &a).await;
        ws.call(&format!(r#"{{"command": "join", "room": {lobby}}}"#))
            .await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let echo = ws.call(&send(&lobby.to_string(), "1")).await;
        assert!(echo.contains(r#""username": "alice""#), "{cache}: {echo}");
        assert_eq!(django.logout(&a).await["status"], 200);
        assert_eq!(ws.expect_close().await.0, 4001, "{cache}: after the logout");
        delete_prefix(&mut conn, &prefix).await;
    }
}
