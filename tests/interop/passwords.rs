//! Check 2, passwords: every default Django hasher logs in through Whisper, Whisper CLI users
//! log in to the Django admin, an upgraded hash is not rehashed again by that Django, and with
//! another hasher first in `PASSWORD_HASHERS` (Argon2, BCryptSHA256) each side's upgrade is
//! exactly what the other writes.

use super::*;

on_both_backends!(
    passwords_django_hashers_log_in_to_whisper,
    passwords_whisper_cli_users_log_in_to_django_admin,
    passwords_no_rehash_ping_pong,
    passwords_other_hasher_first_both_ways,
);

// ---------------------------------------------------------------------------------------------
// 2. Passwords
// ---------------------------------------------------------------------------------------------

async fn passwords_django_hashers_log_in_to_whisper(backend: Backend, version: &'static str) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db, version);
    let server = env.whisper().await;
    let django = env.django();

    // One user per default hasher (Django's own default parameters), plus the other ways
    // Django makes users: `createsuperuser --noinput` and `set_password`.
    let mut users: Vec<(String, Vec<&str>)> = HASHERS
        .iter()
        .map(|h| (format!("user_{h}"), vec!["--hasher", *h]))
        .collect();
    users.push(("cmd_superuser".into(), vec!["--via", "createsuperuser"]));
    users.push(("set_password".into(), vec!["--via", "set_password"]));
    for (name, flags) in &users {
        let made = django.create_user(name, PASSWORD, flags).await;
        let algorithm = made["password"]
            .as_str()
            .unwrap()
            .split('$')
            .next()
            .unwrap();
        if let Some(h) = name.strip_prefix("user_") {
            assert_eq!(algorithm, h, "{made}");
        }
    }

    for (name, _) in &users {
        let wrong = w_login_page(&server, name, "wrong password", None).await;
        assert_eq!(wrong.status, 200, "{name}: a wrong password was accepted");
        let session = w_login(&server, name, PASSWORD).await;
        assert_whisper_accepts(&server, &session, name).await;
        // Whatever the hasher was, the stored hash is now this Django's preferred one, and
        // Django accepts it without rehashing; the Whisper session survives that check.
        let stored = django.password_of(name).await;
        assert_pbkdf2(&stored, env.pbkdf2_iterations(), name);
        let check = django.check_password(name, PASSWORD).await;
        assert_eq!(check["ok"], true, "{name}: {check}");
        assert_eq!(check["changed"], false, "{name}: Django rehashed: {check}");
        assert_whisper_accepts(&server, &session, name).await;
    }
    server.stop().await;
}

async fn passwords_whisper_cli_users_log_in_to_django_admin(
    backend: Backend,
    version: &'static str,
) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db, version);
    let run = whisper_cli(&env, &["migrate"], &[], "").await;
    assert_eq!(run.code, 0, "{run:?}");
    let run = whisper_cli(
        &env,
        &[
            "createsuperuser",
            "--noinput",
            "--username",
            "dana",
            "--email",
            "dana@example.com",
        ],
        &[("DJANGO_SUPERUSER_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let django = env.django();
    assert_pbkdf2(
        &django.password_of("dana").await,
        env.pbkdf2_iterations(),
        "createsuperuser",
    );

    let login = django.login_at("/admin/login/", "dana", PASSWORD).await;
    assert_eq!(login["status"], 302, "{login}");
    assert_eq!(login["location"], "/admin/", "{login}");
    let (status, body) = django.admin_index(login["session"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    // Django's login did not rehash Whisper's hash.
    let check = django.check_password("dana", PASSWORD).await;
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["changed"], false, "{check}");

    let new_password = "Grüße aus Zürich ✓";
    let run = whisper_cli(
        &env,
        &["changepassword", "dana"],
        &[],
        &format!("{new_password}\n{new_password}\n"),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let old = django.login_at("/admin/login/", "dana", PASSWORD).await;
    assert_eq!(old["status"], 200, "the old password still works: {old}");
    let new = django.login_at("/admin/login/", "dana", new_password).await;
    assert_eq!(new["status"], 302, "{new}");
    let (status, _) = django.admin_index(new["session"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let check = django.check_password("dana", new_password).await;
    assert_eq!(check["changed"], false, "{check}");
}

/// A 1000-iteration hash (what an old Django left) is upgraded at a Whisper login to exactly
/// `version`'s parameters, and that Django then verifies it without rehashing: no ping-pong.
async fn passwords_no_rehash_ping_pong(backend: Backend, version: &'static str) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db, version);
    let iterations = env.pbkdf2_iterations();
    let server = env.whisper().await;
    let django = env.django();
    let made = django
        .create_user(
            "old",
            PASSWORD,
            &["--hasher", "pbkdf2_sha256", "--iterations", "1000"],
        )
        .await;
    assert_pbkdf2(made["password"].as_str().unwrap(), 1000, "made by Django");

    let session = w_login(&server, "old", PASSWORD).await;
    let upgraded = django.password_of("old").await;
    assert_pbkdf2(&upgraded, iterations, "upgraded by Whisper");

    let check = django.check_password("old", PASSWORD).await;
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(
        check["changed"], false,
        "Django {version} rehashed Whisper's upgrade: {check}"
    );
    // Logging in on both sides again changes nothing either.
    let django_session = django.login("old", PASSWORD).await;
    let second = w_login(&server, "old", PASSWORD).await;
    assert_eq!(django.password_of("old").await, upgraded);
    // No side logged the other out.
    assert_whisper_accepts(&server, &session, "first Whisper session").await;
    assert_whisper_accepts(&server, &second, "second Whisper session").await;
    assert_whisper_accepts(&server, &django_session, "Django session").await;
    assert_eq!(django.get("/", &session).await["status"], 200);
    server.stop().await;
}

/// With `first` leading `PASSWORD_HASHERS` on both sides: a PBKDF2 user logging in through
/// Whisper gets what Django writes (the same algorithm and parameters; Django then verifies
/// without rehashing), and one logging in through Django gets a hash Whisper keeps as it is.
async fn passwords_other_hasher_first_both_ways(backend: Backend, version: &'static str) {
    for (class, prefix) in [
        (
            "django.contrib.auth.hashers.Argon2PasswordHasher",
            "argon2$argon2id$v=19$m=102400,t=2,p=8$",
        ),
        (
            "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
            "bcrypt_sha256$$2b$12$",
        ),
    ] {
        let db = TestDb::new(backend).await;
        let hashers = format!(r#"["{class}", "django.contrib.auth.hashers.PBKDF2PasswordHasher"]"#);
        let env = Env::new(&db, version).with("PASSWORD_HASHERS", &hashers);
        let server = env.whisper().await;
        let django = env.django();
        for name in ["via_whisper", "via_django"] {
            let made = django
                .create_user(name, PASSWORD, &["--hasher", "pbkdf2_sha256"])
                .await;
            assert_pbkdf2(
                made["password"].as_str().unwrap(),
                env.pbkdf2_iterations(),
                name,
            );
        }

        // Whisper upgrades the PBKDF2 hash to `class`; Django keeps Whisper's hash.
        let w = w_login(&server, "via_whisper", PASSWORD).await;
        let upgraded = django.password_of("via_whisper").await;
        assert!(
            upgraded.starts_with(prefix),
            "{class}: Whisper wrote {upgraded}"
        );
        let check = django.check_password("via_whisper", PASSWORD).await;
        assert_eq!(check["ok"], true, "{class}: {check}");
        assert_eq!(
            check["changed"], false,
            "Django {version} rehashed Whisper's {class} hash: {check}"
        );
        let d = django.login("via_whisper", PASSWORD).await;
        assert_eq!(django.password_of("via_whisper").await, upgraded);

        // Django upgrades the other user; Whisper's login keeps Django's hash.
        let check = django.check_password("via_django", PASSWORD).await;
        assert_eq!(check["changed"], true, "{class}: {check}");
        let by_django = django.password_of("via_django").await;
        assert!(
            by_django.starts_with(prefix),
            "{class}: Django wrote {by_django}"
        );
        let w2 = w_login(&server, "via_django", PASSWORD).await;
        assert_eq!(
            django.password_of("via_django").await,
            by_django,
            "Whisper rehashed Django {version}'s {class} hash"
        );
        for (session, what) in [(&w, "Whisper"), (&d, "Django"), (&w2, "second Whisper")] {
            assert_whisper_accepts(&server, session, what).await;
        }
        server.stop().await;
    }
}
