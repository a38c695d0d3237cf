//! Passwords: rehash at login (every default hasher upgraded, other sessions invalidated) and
//! a password changed elsewhere ending sessions.

use super::*;

// ---------------------------------------------------------------------------------------------
// 9. Password rehash at login
// ---------------------------------------------------------------------------------------------

/// Django 5.2's `pbkdf2_sha256` at 1000 iterations for "password" (django-vectors.json).
const PBKDF2_1000: &str =
    "pbkdf2_sha256$1000$abcdefghijklmnopqrstuv$3stk8nYcOvbsUUIWDNMdepEt7hXHqFbJCF4eT8gFor4=";

fn hasher_cfg() -> HasherConfig {
    HasherConfig::new(DjangoVersion::V5_2)
}

/// Asserts `encoded` is a fresh 5.2 `pbkdf2_sha256` hash of `password`.
fn assert_current_hash(encoded: &str, password: &str) {
    let parts: Vec<&str> = encoded.split('$').collect();
    assert_eq!(parts.len(), 4, "{encoded}");
    assert_eq!(parts[0], "pbkdf2_sha256", "{encoded}");
    assert_eq!(parts[1], "1000000", "{encoded}");
    assert_eq!(parts[2].len(), 22, "{encoded}");
    assert!(is_alnum(parts[2]), "{encoded}");
    assert_ne!(
        parts[2], "abcdefghijklmnopqrstuv",
        "the salt must be new: {encoded}"
    );
    assert_eq!(
        hashers::check_password(password, encoded, &hasher_cfg()),
        (true, None),
        "{encoded}"
    );
}

#[tokio::test]
async fn login_rehashes_and_invalidates_other_sessions() {
    // `make_password_with` uses the config's iteration count, so the 1000-iteration string
    // comes from Django's vectors.
    assert!(
        hashers::make_password_with(
            "password",
            "pbkdf2_sha256",
            "abcdefghijklmnopqrstuv",
            &hasher_cfg()
        )
        .unwrap()
        .starts_with("pbkdf2_sha256$1000000$")
    );
    let server = TestServer::start().await;
    let id = server.insert_user("olga", PBKDF2_1000, false).await;
    let stale = server.session_for(id).await;
    assert_eq!(
        get(&server, "/", &[("sessionid", &stale)]).await.status,
        200
    );

    let key = login_ok(&server, "olga", "password").await;
    let (password, _, _) = user_row(&server, id).await;
    assert_current_hash(&password, "password");
    let (data, _, _) = session_row(&server, &key).await.unwrap();
    assert_eq!(
        session_json(&data, &[SECRET], SESSION_SALT, None),
        login_json(id, &password, SECRET)
    );

    // The older session carries the hash of the old password: refused and deleted.
    let resp = get(&server, "/", &[("sessionid", &stale)]).await;
    assert_eq!(resp.status, 302);
    assert_eq!(resp.location(), "/accounts/login/?next=/");
    assert_eq!(resp.set_cookie("sessionid"), Some(DELETE_SESSION));
    assert!(session_row(&server, &stale).await.is_none());
    // The WebSocket refuses it too.
    let err = server.ws(Some(&stale), None).await.err().expect("refused");
    assert_eq!(handshake_status(&err), Some(403));
    // The new session works.
    assert_eq!(get(&server, "/", &[("sessionid", &key)]).await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn login_accepts_every_default_hasher_and_upgrades_it() {
    // Django 5.2 hashes of "password" (django-vectors.json `password_hashers`).
    let vectors = [
        (
            "argon2",
            "argon2$argon2id$v=19$m=102400,t=2,p=8$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$iyae5y7uKvwuvk01m1XK1snS9Vtr2i9GFxvdlTduUxQ",
        ),
        (
            "bcrypt_sha256",
            "bcrypt_sha256$$2b$12$R9h/cIPz0gi.URNNX3kh2OHKU7Jr0U7yUFT17yst4q0HnKLEq7e4O",
        ),
        (
            "scrypt",
            "scrypt$16384$abcdefghijklmnopqrstuv$8$5$nEm7Pi7EHJjCWhbAUOPwKB9ZkBdqed/x08Sl27mc9dSFwnLRD4E8HcfCrBo/7ZEPTRlkZEGw3FuBXHxXLkBAIA==",
        ),
        (
            "pbkdf2_sha1",
            "pbkdf2_sha1$1000$abcdefghijklmnopqrstuv$Ir7AvXIdrwHyPccNzPC+G/N0xHs=",
        ),
        (
            "pbkdf2_sha256 at 260000",
            "pbkdf2_sha256$260000$abcdefghijklmnopqrstuv$9jpp8cVQt7a7ujJrWzr0KoytR5UBy9qbF8d2OUhc1SY=",
        ),
    ];
    let server = TestServer::start().await;
    for (i, (what, encoded)) in vectors.iter().enumerate() {
        let username = format!("h{i}");
        let id = server.insert_user(&username, encoded, false).await;
        let bad = login(&server, &username, "Password", None).await;
        assert_eq!(bad.status, 200, "{what}: wrong password accepted");
        assert_eq!(
            user_row(&server, id).await.0,
            *encoded,
            "{what}: rehashed on a failure"
        );
        let key = login_ok(&server, &username, "password").await;
        let (password, _, _) = user_row(&server, id).await;
        assert_current_hash(&password, "password");
        let (data, _, _) = session_row(&server, &key).await.unwrap();
        assert_eq!(
            session_json(&data, &[SECRET], SESSION_SALT, None),
            login_json(id, &password, SECRET),
            "{what}"
        );
    }
    // A current hash is left alone.
    let current =
        "pbkdf2_sha256$1000000$abcdefghijklmnopqrstuv$hiSPLmmsEJ4SXtBDfUpBLIVuYXFfcubYcZtjeWt1s3U=";
    let id = server.insert_user("current", current, false).await;
    login_ok(&server, "current", "password").await;
    assert_eq!(user_row(&server, id).await.0, current);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 11. Password changed elsewhere
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn password_change_elsewhere_ends_sessions() {
    let server = TestServer::start().await;
    let id = server.create_user("pat", false).await;
    let key = server.session_for(id).await;
    assert_eq!(get(&server, "/", &[("sessionid", &key)]).await.status, 200);

    assert!(server.store.set_password(id, PBKDF2_1000).await.unwrap());
    let resp = get(&server, "/", &[("sessionid", &key)]).await;
    assert_eq!(resp.status, 302);
    assert_eq!(resp.location(), "/accounts/login/?next=/");
    assert_eq!(resp.set_cookie("sessionid"), Some(DELETE_SESSION));
    assert!(
        session_row(&server, &key).await.is_none(),
        "row must be deleted"
    );
    server.stop().await;
}
