//! The Whisper fork's deployment end to end (issue 9, spec §12): its settings on both sides —
//! `AUTH_USER_MODEL = "users.User"` with an allauth-like backend, cache sessions on django-redis
//! with `KEY_PREFIX "whisper"`, channels_redis' core layer — with one Python worker running the
//! fork's consumer (`compat/chat/fork_consumer.py` under daphne, `CHAT_CONSUMER=fork`) and one
//! Whisper process. Users log in through Django, chat across both processes with `room` sent
//! as an integer (as the fork's frontend does), and `room_users` answers the same bytes on both,
//! since both read the one presence dict in the Django cache; Django's own `cache.get` reads
//! what Whisper wrote. A private redis-server holds the cache and the layer, so the fork's
//! exact prefixes can be used.

use super::*;
use common::python::{Daphne, Server};
use common::redis_server::PrivateRedis;

const ALLAUTH_LIKE: &str = "users.backends.AuthenticationBackend";
const MODEL_BACKEND: &str = "django.contrib.auth.backends.ModelBackend";

fn room_users(room: &str) -> String {
    format!(r#"{{"command": "room_users", "room": {room}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_deployment_with_a_python_worker_and_whisper() {
    let redis = PrivateRedis::start().await;
    let db = TestDb::new(Backend::Sqlite).await;
    let caches = format!(
        r#"{{"default": {{"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "{}", "KEY_PREFIX": "whisper", "OPTIONS": {{"CLIENT_CLASS": "django_redis.client.DefaultClient"}}}}}}"#,
        redis.url()
    );
    let layers = format!(
        r#"{{"default": {{"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {{"hosts": ["{}"]}}}}}}"#,
        redis.url()
    );
    let backends = format!("{MODEL_BACKEND},{ALLAUTH_LIKE}");
    let env = Env::new(&db, "5.2")
        .with("AUTH_USER_MODEL", "users.User")
        .with("AUTHENTICATION_BACKENDS", &backends)
        .with("SESSION_ENGINE", "django.contrib.sessions.backends.cache")
        .with("CACHES", &caches)
        .with("CHANNEL_LAYERS", &layers)
        .with("CHAT_CONSUMER", "fork");
    let django = env.django();
    let migrated = django.run(&["migrate"]).await;
    assert_eq!(migrated["code"], 0, "{migrated}");
    let whisper = env.whisper().await;
    let python = Daphne::start_with(
        Server::Daphne,
        &db.url,
        &env.pairs(),
        db.dir.path().join("daphne.log"),
    );

    let alice = django.create_user("alice", PASSWORD, &[]).await["id"]
        .as_i64()
        .unwrap();
    let bob = django.create_user("bob", PASSWORD, &[]).await["id"]
        .as_i64()
        .unwrap();
    django
        .run(&["set-name", "--username", "alice", "--name", "Alice Liddell"])
        .await;
    let room = room_id(&django, "Lobby", false).await;
    let r = room.to_string();

    // Logins through Django (cache sessions); alice on Whisper, bob on the Python worker.
    let a_session = django.login("alice", PASSWORD).await;
    let b_session = django.login("bob", PASSWORD).await;
    let mut a = whisper
        .ws(Some(&a_session), None)
        .await
        .expect("Whisper handshake");
    let mut b = ws_to(python.addr, &b_session).await;

    assert_eq!(
        command(&mut a, &join(&r)).await,
        format!(r#"{{"join": "{room}", "title": "Lobby"}}"#)
    );
    assert_eq!(
        command(&mut b, &join(&r)).await,
        format!(r#"{{"join": "{room}", "title": "Lobby"}}"#)
    );
    assert_eq!(
        a.recv().await,
        format!(r#"{{"msg_type": 4, "room": {room}, "username": "bob"}}"#)
    );

    // Chat across the processes, both ways, byte for byte.
    let from_a =
        format!(r#"{{"msg_type": 0, "room": {room}, "username": "alice", "message": "hi bob"}}"#);
    a.send(&send(&r, r#""hi bob""#)).await;
    assert_eq!(a.recv().await, from_a);
    assert_eq!(b.recv().await, from_a);
    let from_b =
        format!(r#"{{"msg_type": 0, "room": {room}, "username": "bob", "message": "hi alice"}}"#);
    b.send(&send(&r, r#""hi alice""#)).await;
    assert_eq!(b.recv().await, from_b);
    assert_eq!(a.recv().await, from_b);

    // room_users agrees on both processes: the same presence dict, the same bytes.
    let on_whisper = command(&mut a, &room_users(&r)).await;
    let on_python = command(&mut b, &room_users(&r)).await;
    assert_eq!(on_whisper, on_python);
    let users: Value = serde_json::from_str(&on_whisper).unwrap();
    assert_eq!(users["type"], 6, "{on_whisper}");
    assert_eq!(users["room"], room, "{on_whisper}");
    let entries = users["data"]["users"].as_object().expect("a presence dict");
    assert_eq!(
        entries.keys().cloned().collect::<Vec<_>>(),
        [alice.to_string(), bob.to_string()],
        "in the order of first joins"
    );
    assert_eq!(entries[&alice.to_string()]["name"], "Alice Liddell");
    assert_eq!(entries[&alice.to_string()]["username"], "alice");
    assert_eq!(entries[&bob.to_string()]["left"], false);

    // Django's own cache.get reads what Whisper and the worker wrote: a dict keyed by int ids.
    let key = format!("room-presence-{room}");
    let cached = django.run(&["cache-get", "--key", &key]).await;
    let repr = cached["repr"].as_str().unwrap();
    assert!(
        repr.starts_with(&format!(
            "{{{alice}: {{'username': 'alice', 'name': 'Alice Liddell', 'left': False, 'last_update': "
        )),
        "{repr}"
    );
    assert!(
        repr.contains(&format!(", {bob}: {{'username': 'bob', ")),
        "{repr}"
    );

    // bob leaves on the Python side: marked left, and both processes say so.
    assert_eq!(
        command(&mut b, &leave(&r)).await,
        format!(r#"{{"leave": "{room}"}}"#)
    );
    assert_eq!(
        a.recv().await,
        format!(r#"{{"msg_type": 5, "room": {room}, "username": "bob"}}"#)
    );
    let on_whisper = command(&mut a, &room_users(&r)).await;
    assert_eq!(on_whisper, command(&mut b, &room_users(&r)).await);
    let users: Value = serde_json::from_str(&on_whisper).unwrap();
    assert_eq!(users["data"]["users"][bob.to_string()]["left"], true);
    assert_eq!(users["data"]["users"][alice.to_string()]["left"], false);

    // alice disconnects from Whisper: her entry is marked left for the Python side too.
    a.close(1000).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = command(&mut b, &room_users(&r)).await;
        let users: Value = serde_json::from_str(&reply).unwrap();
        if users["data"]["users"][alice.to_string()]["left"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice never marked left: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.close(1000).await;
    drop(python);
    whisper.stop().await;
}
