//! The store on Django's tables, run on SQLite (temp file) and PostgreSQL (a throw-away
//! database on 127.0.0.1:5432, user `postgres`; a missing server fails these tests): users,
//! sessions, rooms and the room cache; a custom user model's table (introspection, its
//! defaults, refusals, and a migrate that leaves the user app to Django).

#[path = "../common/mod.rs"]
mod common;

mod cache;
mod custom_user;

use custom_user::custom_user_table;

use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use sqlx::AssertSqlSafe;
use whisper::config::{DatabaseUrl, Secret, UserModel, user_model};
use whisper::store::{Db, NewUser, RoomCache, Store, StoreError};

use common::pg::{Locale, PgDatabase};

async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    let url = DatabaseUrl::Sqlite(dir.path().join("db.sqlite3"));
    let store = Store::connect(&url, 4, Duration::from_secs(5), true)
        .await
        .expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    store
}

async fn exec(store: &Store, sql: &'static str) {
    match store.db() {
        Db::Sqlite(p) => {
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
        Db::Postgres(p) => {
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
    }
}

/// `(date_joined, last_login, first_name, last_name, email)` as text.
async fn user_extras(store: &Store, id: i64) -> (String, Option<String>, String, String, String) {
    let sql = "SELECT CAST(date_joined AS TEXT), CAST(last_login AS TEXT), first_name, last_name, \
               email FROM auth_user WHERE id = $1";
    match store.db() {
        Db::Sqlite(p) => sqlx::query_as(sql).bind(id).fetch_one(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_as(sql).bind(id).fetch_one(p).await.unwrap(),
    }
}

async fn last_login_utc(store: &Store, id: i64) -> Option<DateTime<Utc>> {
    let sql = "SELECT last_login FROM auth_user WHERE id = $1";
    match store.db() {
        Db::Sqlite(p) => sqlx::query_scalar(sql).bind(id).fetch_one(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_scalar(sql).bind(id).fetch_one(p).await.unwrap(),
    }
}

fn new_user(username: &str, staff: bool) -> NewUser {
    NewUser {
        username: username.to_string(),
        email: format!("{username}@example.com"),
        password: "pbkdf2_sha256$1000000$abcdefghijklmnopqrstuv$hash=".to_string(),
        is_staff: staff,
        is_superuser: staff,
        ..NewUser::default()
    }
}

// ---------------------------------------------------------------------------------------------

async fn users(store: &Store) {
    assert_eq!(store.count_users().await.unwrap(), 0);
    let before = Utc::now();
    let id = store.create_user(&new_user("alice", true)).await.unwrap();
    let bob = store.create_user(&new_user("bob", false)).await.unwrap();
    assert_ne!(id, bob);
    assert_eq!(store.count_users().await.unwrap(), 2);

    let alice = store.user_by_id(id).await.unwrap().expect("alice by id");
    assert_eq!(alice.username, "alice");
    assert!(alice.is_active && alice.is_staff && alice.is_superuser);
    assert!(alice.password.starts_with("pbkdf2_sha256$"));
    let shown = format!("{alice:?}");
    assert!(!shown.contains("pbkdf2"), "Debug leaks the hash: {shown}");
    let b = store.user_by_username("bob").await.unwrap().unwrap();
    assert!(b.is_active && !b.is_staff && !b.is_superuser);

    // Django's row shape.
    let (joined, last_login, first, last, email) = user_extras(store, id).await;
    assert_eq!(last_login, None);
    assert_eq!((first.as_str(), last.as_str()), ("", ""));
    assert_eq!(email, "alice@example.com");
    let joined_utc: DateTime<Utc> = {
        let sql = "SELECT date_joined FROM auth_user WHERE id = $1";
        match store.db() {
            Db::Sqlite(p) => sqlx::query_scalar(sql).bind(id).fetch_one(p).await.unwrap(),
            Db::Postgres(p) => sqlx::query_scalar(sql).bind(id).fetch_one(p).await.unwrap(),
        }
    };
    assert!(
        joined_utc >= before.trunc_subsecs(6) && joined_utc <= Utc::now(),
        "{joined}"
    );
    if store.is_sqlite() {
        assert!(!joined.contains('T') && !joined.contains('+'), "{joined}");
    }

    // Exact, case-sensitive lookups.
    assert!(store.user_by_username("ALICE").await.unwrap().is_none());
    assert!(store.user_by_username("alic").await.unwrap().is_none());
    assert!(store.user_by_id(9_999).await.unwrap().is_none());

    // Duplicate username.
    let err = store
        .create_user(&new_user("alice", false))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
    assert_eq!(store.count_users().await.unwrap(), 2);
    // A different case is a different user (as in Django).
    store.create_user(&new_user("Alice", false)).await.unwrap();

    // set_password touches only the password.
    let extras = user_extras(store, id).await;
    assert!(
        store
            .set_password(id, "pbkdf2_sha256$1$x$new=")
            .await
            .unwrap()
    );
    let after = store.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(after.password, "pbkdf2_sha256$1$x$new=");
    assert_eq!(
        (
            after.username.as_str(),
            after.is_staff,
            after.is_superuser,
            after.is_active
        ),
        ("alice", true, true, true)
    );
    assert_eq!(user_extras(store, id).await, extras);
    assert_eq!(
        store.user_by_id(bob).await.unwrap().unwrap().password,
        b.password
    );
    assert!(!store.set_password(9_999, "x").await.unwrap());

    // last_login: microseconds kept, Django's text on SQLite.
    let t = Utc.with_ymd_and_hms(2026, 11, 25, 12, 38, 10).unwrap()
        + chrono::Duration::nanoseconds(212_015_652);
    assert!(store.set_last_login(id, t).await.unwrap());
    assert_eq!(last_login_utc(store, id).await, Some(t.trunc_subsecs(6)));
    let text = user_extras(store, id).await.1.unwrap();
    if store.is_sqlite() {
        assert_eq!(text, "2026-11-25 12:38:10.212015");
        let whole = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        store.set_last_login(id, whole).await.unwrap();
        assert_eq!(
            user_extras(store, id).await.1.unwrap(),
            "2026-01-02 03:04:05"
        );
    } else {
        assert_eq!(text, "2026-11-25 12:38:10.212015+00");
    }
    assert_eq!(user_extras(store, bob).await.1, None);
}

async fn sessions(store: &Store) {
    let now = Utc::now();
    let later = now + chrono::Duration::days(14);
    let key = "abcdefghijklmnopqrstuvwxyz012345";
    assert!(store.insert_session(key, "data-1", later).await.unwrap());
    assert!(
        !store.insert_session(key, "data-2", later).await.unwrap(),
        "PK conflict"
    );
    assert_eq!(
        store.load_session(key, now).await.unwrap().as_deref(),
        Some("data-1")
    );
    // Expired: expire_date > now is strict.
    assert_eq!(store.load_session(key, later).await.unwrap(), None);
    assert_eq!(
        store
            .load_session(key, later - chrono::Duration::microseconds(1))
            .await
            .unwrap()
            .as_deref(),
        Some("data-1")
    );
    let old = "expiredexpiredexpiredexpired0000";
    assert!(
        store
            .insert_session(old, "stale", now - chrono::Duration::seconds(1))
            .await
            .unwrap()
    );
    assert_eq!(store.load_session(old, now).await.unwrap(), None);

    // Update and delete.
    assert!(store.update_session(key, "data-3", later).await.unwrap());
    assert_eq!(
        store.load_session(key, now).await.unwrap().as_deref(),
        Some("data-3")
    );
    store.delete_session(key).await.unwrap();
    assert_eq!(store.load_session(key, now).await.unwrap(), None);
    assert!(!store.update_session(key, "x", later).await.unwrap());
    store.delete_session(key).await.unwrap();

    // Keys shorter than 8 characters are "no key", even if such a row exists.
    assert!(store.insert_session("short", "s", later).await.unwrap());
    assert_eq!(store.load_session("short", now).await.unwrap(), None);
    assert_eq!(store.load_session("", now).await.unwrap(), None);

    // Stored format on SQLite is Django's (string comparison in SQL must work).
    if let Db::Sqlite(p) = store.db() {
        let t = Utc.with_ymd_and_hms(2030, 5, 6, 7, 8, 9).unwrap();
        store
            .insert_session("formatkey0000000", "f", t)
            .await
            .unwrap();
        let text: String = sqlx::query_scalar(
            "SELECT expire_date FROM django_session WHERE session_key = 'formatkey0000000'",
        )
        .fetch_one(p)
        .await
        .unwrap();
        assert_eq!(text, "2030-05-06 07:08:09");
    }
}

async fn rooms(store: &Store) {
    assert!(store.rooms_by_title().await.unwrap().is_empty());
    let a = store.create_room("Ärger", false).await.unwrap();
    let s = store.create_room("Staff", true).await.unwrap();
    let l = store.create_room("Lobby", false).await.unwrap();
    let titles: Vec<String> = store
        .rooms_by_title()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.title)
        .collect();
    assert_eq!(titles, ["Lobby", "Staff", "Ärger"]);
    let staff = store.room_by_id(s).await.unwrap().unwrap();
    assert_eq!(
        (staff.id, staff.title.as_str(), staff.staff_only),
        (s, "Staff", true)
    );
    assert!(!store.room_by_id(a).await.unwrap().unwrap().staff_only);
    assert!(store.room_by_id(l + 100).await.unwrap().is_none());
    assert!(store.update_room(l, "Lobby 2", true).await.unwrap());
    assert_eq!(store.room_by_id(l).await.unwrap().unwrap().title, "Lobby 2");
    assert!(store.delete_room(l).await.unwrap());
    assert!(!store.delete_room(l).await.unwrap());
}

async fn room_cache(store: &Store) {
    let ttl = Duration::from_millis(400);
    let cache = RoomCache::new(store.clone(), ttl);
    let id = store.create_room("Old", false).await.unwrap();
    assert_eq!(cache.get(id).await.unwrap().unwrap().title, "Old");

    // Stale within ttl, fresh after.
    store.update_room(id, "New", true).await.unwrap();
    let cached = cache.get(id).await.unwrap().unwrap();
    assert_eq!((cached.title.as_str(), cached.staff_only), ("Old", false));
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let fresh = cache.get(id).await.unwrap().unwrap();
    assert_eq!((fresh.title.as_str(), fresh.staff_only), ("New", true));

    // Misses are cached too.
    assert_eq!(cache.get(424_242).await.unwrap(), None);
    exec(
        store,
        "INSERT INTO chat_room (id, title, staff_only) VALUES (424242, 'Late', FALSE)",
    )
    .await;
    assert_eq!(cache.get(424_242).await.unwrap(), None);
    // Deleted rooms stay visible until the ttl passes.
    store.delete_room(id).await.unwrap();
    assert!(cache.get(id).await.unwrap().is_some());
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert_eq!(cache.get(424_242).await.unwrap().unwrap().title, "Late");
    assert_eq!(cache.get(id).await.unwrap(), None);

    // Bounded: probing many ids keeps at most `capacity` entries, newest kept.
    let small = RoomCache::with_capacity(store.clone(), Duration::from_secs(60), 5);
    for probe in 1_000..1_100 {
        small.get(probe).await.unwrap();
        assert!(small.len() <= 5, "len {}", small.len());
    }
    assert_eq!(small.len(), 5);
    exec(
        store,
        "INSERT INTO chat_room (id, title, staff_only) VALUES (1099, 'Probe', FALSE)",
    )
    .await;
    assert_eq!(
        small.get(1_099).await.unwrap(),
        None,
        "newest entry still cached"
    );
    assert_eq!(
        small.get(424_242).await.unwrap().unwrap().title,
        "Late",
        "an evicted/new id is read from the database"
    );
    assert_eq!(small.len(), 5);
    // Repeated refreshes of the same ids do not grow it either.
    let quick = RoomCache::with_capacity(store.clone(), Duration::from_millis(1), 3);
    for round in 0..200 {
        quick.get(1_000 + (round % 4)).await.unwrap();
        assert!(quick.len() <= 3);
    }

    // ttl 0: no caching at all.
    let none = RoomCache::new(store.clone(), Duration::ZERO);
    let id2 = store.create_room("Zero", false).await.unwrap();
    assert_eq!(none.get(id2).await.unwrap().unwrap().title, "Zero");
    store.update_room(id2, "Zero 2", false).await.unwrap();
    assert_eq!(none.get(id2).await.unwrap().unwrap().title, "Zero 2");
    assert!(none.is_empty());

    // A crowd missing one id together (its entry expired) makes one query, not one each.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let reads = cache.database_reads();
    let crowd: Vec<_> = (0..200)
        .map(|_| {
            let c = cache.clone();
            tokio::spawn(async move { c.get(id2).await.unwrap().unwrap().title })
        })
        .collect();
    for task in crowd {
        assert_eq!(task.await.unwrap(), "Zero 2");
    }
    assert_eq!(cache.database_reads(), reads + 1);
    assert_eq!(cache.fetching(), 0);

    // Concurrent readers share one cache; clones see the same entries.
    let clone = cache.clone();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let c = clone.clone();
            tokio::spawn(async move { c.get(id2).await.unwrap().unwrap().title })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "Zero 2");
    }
    assert!(!cache.is_empty());
}

async fn ping_and_errors(store: &Store) {
    store.ping().await.unwrap();
    store.close().await;
    let err = store.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}

#[tokio::test]
async fn sqlite_users() {
    let dir = tempfile::tempdir().unwrap();
    users(&sqlite_store(&dir).await).await;
}

#[tokio::test]
async fn sqlite_sessions() {
    let dir = tempfile::tempdir().unwrap();
    sessions(&sqlite_store(&dir).await).await;
}

#[tokio::test]
async fn sqlite_rooms() {
    let dir = tempfile::tempdir().unwrap();
    rooms(&sqlite_store(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_room_cache() {
    let dir = tempfile::tempdir().unwrap();
    room_cache(&sqlite_store(&dir).await).await;
}

#[tokio::test]
async fn sqlite_ping_and_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    ping_and_errors(&sqlite_store(&dir).await).await;
}

#[tokio::test]
async fn sqlite_custom_user_table() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("db.sqlite3"));
    let store = Store::connect(&url, 4, Duration::from_secs(5), true)
        .await
        .unwrap();
    custom_user_table(store).await;
}

#[tokio::test]
async fn sqlite_missing_file_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sqlite3");
    let url = DatabaseUrl::Sqlite(path.clone());
    assert!(
        Store::connect(&url, 1, Duration::from_secs(1), false)
            .await
            .is_err()
    );
    assert!(!path.exists());
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

#[tokio::test]
async fn postgres_users() {
    let (_db, store) = PgDatabase::with_store("test", Locale::C, true).await;
    users(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_sessions() {
    let (_db, store) = PgDatabase::with_store("test", Locale::C, true).await;
    sessions(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_rooms() {
    let (_db, store) = PgDatabase::with_store("test", Locale::C, true).await;
    rooms(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_room_cache() {
    let (_db, store) = PgDatabase::with_store("test", Locale::C, true).await;
    room_cache(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_ping_and_unavailable() {
    let (_db, store) = PgDatabase::with_store("test", Locale::C, true).await;
    ping_and_errors(&store).await;
}

#[tokio::test]
async fn postgres_custom_user_table() {
    let (_db, store) = PgDatabase::with_store("test", Locale::C, false).await;
    custom_user_table(store.clone()).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_refused_connection_is_unavailable() {
    let url = DatabaseUrl::Postgres(Secret::new("postgres://postgres@127.0.0.1:1/none"));
    let err = Store::connect(&url, 1, Duration::from_secs(2), false)
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}
