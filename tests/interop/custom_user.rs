//! Custom user models beside real Django: the Whisper fork's `users.User` (AbstractUser +
//! `name`, sessions naming an allauth-like backend) and `emailusers.EmailUser` (an
//! AbstractUser logging in by email), on SQLite and PostgreSQL. Logins and sessions both ways,
//! chat events showing `get_username()`, staff-only rooms, `last_login`, rehash on the custom
//! table, logout and password change on either side, `AUTHENTICATION_BACKENDS`, `migrate` in
//! both orders (Whisper never creates `auth_user`; Django's `migrate` completes and is clean)
//! and the CLI on the custom table.
//!
//! Every check runs on each Django release of `per_django_version!`.

use std::collections::{BTreeMap, BTreeSet};

use whisper::django::hashers::DjangoVersion;

use super::*;

/// The compat profiles (compat/users, compat/emailusers).
#[derive(Clone, Copy, Debug)]
enum Profile {
    /// `users.User`: AbstractUser + `name`; the allauth-like backend listed first, so both
    /// Django's and Whisper's logins store it.
    Fork,
    /// `emailusers.EmailUser`: USERNAME_FIELD = "email"; ModelBackend listed first.
    Email,
}

const MODEL_BACKEND: &str = "django.contrib.auth.backends.ModelBackend";
const ALLAUTH_LIKE: &str = "users.backends.AuthenticationBackend";

impl Profile {
    fn env(self, db: &TestDb, version: &'static str) -> Env {
        let env = Env::new(db, version);
        match self {
            Profile::Fork => env.with("AUTH_USER_MODEL", "users.User").with(
                "AUTHENTICATION_BACKENDS",
                &format!("{ALLAUTH_LIKE},{MODEL_BACKEND}"),
            ),
            Profile::Email => env
                .with("AUTH_USER_MODEL", "emailusers.EmailUser")
                .with("USERNAME_FIELD", "email")
                .with(
                    "AUTHENTICATION_BACKENDS",
                    &format!("{MODEL_BACKEND},{ALLAUTH_LIKE}"),
                ),
        }
    }

    fn table(self) -> &'static str {
        match self {
            Profile::Fork => "users_user",
            Profile::Email => "emailusers_emailuser",
        }
    }

    /// The login (`get_username()`) of a user named `name`.
    fn login(self, name: &str) -> String {
        match self {
            Profile::Fork => name.to_string(),
            Profile::Email => format!("{name}@example.com"),
        }
    }

    /// The backend Whisper's logins store (the first listed).
    fn login_backend(self) -> &'static str {
        match self {
            Profile::Fork => ALLAUTH_LIKE,
            Profile::Email => MODEL_BACKEND,
        }
    }

    /// The login field's label and `maxlength` on the login form.
    fn login_field(self) -> (&'static str, usize) {
        match self {
            Profile::Fork => ("Username", 150),
            Profile::Email => ("Email address", 254),
        }
    }
}

/// `check(backend, profile, django_version)` for one release: both profiles on both backends.
macro_rules! profile_tests {
    ($check:ident, $module:ident, $version:literal) => {
        mod $module {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_fork() {
                super::super::$check(Backend::Sqlite, Profile::Fork, $version).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_email() {
                super::super::$check(Backend::Sqlite, Profile::Email, $version).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_fork() {
                super::super::$check(Backend::Postgres, Profile::Fork, $version).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_email() {
                super::super::$check(Backend::Postgres, Profile::Email, $version).await
            }
        }
    };
}

per_django_version!(custom_user_sessions_chat_and_backends, profile_tests);
per_django_version!(custom_user_rehash_and_password_change, profile_tests);
per_django_version!(custom_user_migrate_both_orders_and_cli, profile_tests);

fn iterations(version: &str) -> u32 {
    let version: DjangoVersion = version.parse().expect("a Django version Whisper knows");
    version.pbkdf2_iterations()
}

/// Django's migrate on a fresh database, then a Whisper server on it.
async fn django_then_whisper(env: &Env) -> (Django, TestServer) {
    let django = env.django();
    let migrated = django.run(&["migrate"]).await;
    assert_eq!(migrated["code"], 0, "{migrated}");
    (django, env.whisper().await)
}

async fn custom_user_sessions_chat_and_backends(
    backend: Backend,
    profile: Profile,
    version: &'static str,
) {
    let db = TestDb::new(backend).await;
    let env = profile.env(&db, version);
    let (django, server) = django_then_whisper(&env).await;
    let (alice, bob) = (profile.login("alice"), profile.login("bob"));
    django.create_user(&alice, PASSWORD, &["--staff"]).await;
    django.create_user(&bob, PASSWORD, &[]).await;
    if let Profile::Fork = profile {
        django
            .run(&["set-name", "--username", &alice, "--name", "Alice Liddell"])
            .await;
    }
    // The store reads the custom table: get_username(), flags, and the fork's `name`.
    let row = server
        .store
        .user_by_username(&alice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.username, alice);
    assert!(
        row.is_staff && row.is_active && !row.is_superuser,
        "{row:?}"
    );
    let name = matches!(profile, Profile::Fork).then(|| "Alice Liddell".to_string());
    assert_eq!(row.name, name, "{row:?}");
    let lobby = room_id(&django, "Lobby", false).await;
    let ops = room_id(&django, "Ops", true).await;

    // The login form follows USERNAME_FIELD.
    let (label, max) = profile.login_field();
    let form = w_get(&server, "/accounts/login/", None).await;
    assert!(
        form.body
            .contains(&format!(r#"<label for="id_username">{label}:</label>"#)),
        "{}",
        form.body
    );
    assert!(form.body.contains(&format!(r#"maxlength="{max}""#)));
    let wrong = w_login_page(&server, &alice, "wrong", None).await;
    assert_eq!(wrong.status, 200);
    let verbose = label.to_lowercase();
    assert!(
        wrong
            .body
            .contains(&format!("Please enter a correct {verbose} and password.")),
        "{}",
        wrong.body
    );

    // Django's sessions open Whisper's page and socket; events carry get_username(); the
    // staff-only room admits only the staff member.
    let a_django = django.login(&alice, PASSWORD).await;
    let stored = django.session_decode(&a_django).await;
    assert_eq!(
        stored["_auth_user_backend"],
        profile.login_backend(),
        "{stored}"
    );
    let b_django = django.login(&bob, PASSWORD).await;
    assert_eq!(w_get(&server, "/", Some(&a_django)).await.status, 200);
    let mut a_ws = server.ws(Some(&a_django), None).await.expect("alice");
    let mut b_ws = server.ws(Some(&b_django), None).await.expect("bob");
    let (l, o) = (lobby.to_string(), ops.to_string());
    assert_eq!(
        command(&mut a_ws, &join(&o)).await,
        format!(r#"{{"join": "{ops}", "title": "Ops"}}"#)
    );
    assert_eq!(
        command(&mut b_ws, &join(&o)).await,
        r#"{"error": "ROOM_ACCESS_DENIED"}"#
    );
    command(&mut a_ws, &join(&l)).await;
    command(&mut b_ws, &join(&l)).await;
    assert_eq!(
        recv_starting(&mut a_ws, r#"{"msg_type": 4"#).await,
        format!(r#"{{"msg_type": 4, "room": {l}, "username": "{bob}"}}"#)
    );
    a_ws.send(&send(&l, r#""hi""#)).await;
    assert_eq!(
        recv_starting(&mut b_ws, r#"{"msg_type": 0"#).await,
        format!(r#"{{"msg_type": 0, "room": {l}, "username": "{alice}", "message": "hi"}}"#)
    );
    a_ws.close(1000).await;
    b_ws.close(1000).await;

    // Whisper's login opens the admin; it stored the first backend and wrote last_login.
    let before = django.user(&alice).await["last_login"].clone();
    let a_whisper = w_login(&server, &alice, PASSWORD).await;
    let (status, body) = django.admin_index(&a_whisper).await;
    assert_eq!(
        status, 200,
        "Django admin refused Whisper's session: {body}"
    );
    assert_eq!(django.get("/", &a_whisper).await["status"], 200);
    let stored = django.session_decode(&a_whisper).await;
    assert_eq!(
        stored["_auth_user_backend"],
        profile.login_backend(),
        "{stored}"
    );
    assert_eq!(stored["_auth_user_id"], row.id.to_string(), "{stored}");
    let after = django.user(&alice).await["last_login"].clone();
    assert!(
        after.as_str() > before.as_str(),
        "last_login not moved by Whisper's login: {before} -> {after}"
    );

    // A session naming a backend outside AUTHENTICATION_BACKENDS is anonymous on both sides,
    // and the other listed backend is accepted by both.
    let other = if profile.login_backend() == MODEL_BACKEND {
        ALLAUTH_LIKE
    } else {
        MODEL_BACKEND
    };
    for (path, accepted) in [
        ("django.contrib.auth.backends.RemoteUserBackend", false),
        (other, true),
    ] {
        let session = django.login(&bob, PASSWORD).await;
        let key = django
            .run(&[
                "session-set",
                "--key",
                &session,
                "--name",
                "_auth_user_backend",
                "--value",
                path,
            ])
            .await["key"]
            .as_str()
            .unwrap()
            .to_string();
        let status = django.get("/", &key).await["status"].clone();
        if accepted {
            assert_eq!(status, 200, "Django refused {path}");
            assert_whisper_accepts(&server, &key, path).await;
        } else {
            assert_eq!(status, 302, "Django accepted {path}");
            assert_whisper_refuses(&server, &key, path).await;
        }
    }

    // Logout on either side ends the session for both.
    let out = w_logout(&server, &a_django).await;
    assert_eq!(out.session, Some(None));
    assert_eq!(django.admin_index(&a_django).await.0, 302);
    let out = django.logout(&a_whisper).await;
    assert_eq!(out["status"], 200, "{out}");
    assert_whisper_refuses(&server, &a_whisper, "after Django's logout").await;

    // Deactivated in Django: refused by Whisper.
    let b_whisper = w_login(&server, &bob, PASSWORD).await;
    django
        .run(&["set-active", "--username", &bob, "--active", "0"])
        .await;
    assert_whisper_refuses(&server, &b_whisper, "inactive bob").await;
    assert_eq!(
        w_login_page(&server, &bob, PASSWORD, None).await.status,
        200
    );
    server.stop().await;
}

async fn custom_user_rehash_and_password_change(
    backend: Backend,
    profile: Profile,
    version: &'static str,
) {
    let db = TestDb::new(backend).await;
    let env = profile.env(&db, version);
    let (django, server) = django_then_whisper(&env).await;
    let (root, old) = (profile.login("root"), profile.login("old"));
    django.create_user(&root, PASSWORD, &["--superuser"]).await;
    let made = django
        .create_user(
            &old,
            PASSWORD,
            &["--hasher", "pbkdf2_sha256", "--iterations", "1000"],
        )
        .await;
    assert_pbkdf2(made["password"].as_str().unwrap(), 1000, "made by Django");

    // A Whisper login upgrades the hash in the custom table to exactly this Django's
    // parameters, and Django accepts it without rehashing.
    let w = w_login(&server, &old, PASSWORD).await;
    let upgraded = django.password_of(&old).await;
    assert_pbkdf2(&upgraded, iterations(version), "upgraded by Whisper");
    let check = django.check_password(&old, PASSWORD).await;
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(
        check["changed"], false,
        "Django rehashed Whisper's upgrade: {check}"
    );
    let d = django.login(&old, PASSWORD).await;
    assert_eq!(django.password_of(&old).await, upgraded);
    assert_whisper_accepts(&server, &w, "Whisper session after the upgrade").await;
    assert_whisper_accepts(&server, &d, "Django session after the upgrade").await;

    // The admin's password change (on the custom model's admin) revokes both sessions.
    django
        .admin_change_password(&root, &old, "a brand new password")
        .await;
    assert_whisper_refuses(&server, &w, "Whisper session after the change").await;
    assert_whisper_refuses(&server, &d, "Django session after the change").await;
    assert_eq!(django.get("/", &w).await["status"], 302);
    let fresh = w_login(&server, &old, "a brand new password").await;
    assert_whisper_accepts(&server, &fresh, "the new password's session").await;
    assert_eq!(django.admin_index(&fresh).await.0, 302, "not staff");
    assert_eq!(django.get("/", &fresh).await["status"], 200);
    server.stop().await;
}

/// The tables of a snapshot.
fn tables(snapshot: &Value) -> BTreeSet<String> {
    match snapshot["vendor"].as_str() {
        Some("sqlite") => snapshot["schema"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r[0] == "table")
            .map(|r| r[1].as_str().unwrap().to_string())
            .collect(),
        _ => snapshot["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_str().unwrap().to_string())
            .collect(),
    }
}

/// A snapshot without what depends on the order rows were made in: the schema, the migration
/// names, the content types and the permissions (by content type, not id).
fn order_free(snapshot: &Value) -> Value {
    let rows = |key: &str| snapshot[key].as_array().cloned().unwrap_or_default();
    let migrations: BTreeSet<String> = rows("migrations")
        .iter()
        .map(|r| format!("{}.{}", r[1].as_str().unwrap(), r[2].as_str().unwrap()))
        .collect();
    let types: BTreeMap<i64, String> = rows("content_types")
        .iter()
        .map(|r| {
            let name = format!("{}.{}", r[1].as_str().unwrap(), r[2].as_str().unwrap());
            (r[0].as_i64().unwrap(), name)
        })
        .collect();
    let permissions: BTreeSet<String> = rows("permissions")
        .iter()
        .map(|r| {
            let ct = &types[&r[1].as_i64().unwrap()];
            format!("{ct} {} {}", r[2].as_str().unwrap(), r[3].as_str().unwrap())
        })
        .collect();
    serde_json::json!({
        "schema": [snapshot["schema"], snapshot["columns"], snapshot["indexes"], snapshot["constraints"]],
        "migrations": migrations,
        "content_types": types.values().collect::<BTreeSet<_>>(),
        "permissions": permissions,
    })
}

async fn custom_user_migrate_both_orders_and_cli(
    backend: Backend,
    profile: Profile,
    version: &'static str,
) {
    let table = profile.table();
    // Whisper first: only the apps that do not depend on the user model, never auth_user.
    let db = TestDb::new(backend).await;
    let env = profile.env(&db, version);
    let run = whisper_cli(&env, &["migrate"], &[], "").await;
    assert_eq!(run.code, 0, "whisper migrate: {run:?}");
    assert!(
        run.stdout
            .contains("Apply all migrations: auth, chat, contenttypes, sessions"),
        "{run:?}"
    );
    assert!(run.stdout.contains("Note: AUTH_USER_MODEL is"), "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("The table {table} does not exist yet")),
        "{run:?}"
    );
    let django = env.django();
    let ours = tables(&django.run(&["snapshot"]).await);
    for absent in [table, "auth_user", "auth_user_groups", "django_admin_log"] {
        assert!(!ours.contains(absent), "Whisper created {absent}: {ours:?}");
    }
    assert!(
        ours.contains("auth_group") && ours.contains("chat_room"),
        "{ours:?}"
    );
    // The server and the CLI say what is missing and what to do.
    let check = whisper_cli(&env, &["check"], &[], "").await;
    assert_eq!(check.code, 1, "{check:?}");
    assert!(
        check.stderr.contains("whisper.E005") && check.stderr.contains("manage.py migrate"),
        "{check:?}"
    );

    // Django's migrate completes with the user app and admin, and is then clean.
    let migrated = django.run(&["migrate"]).await;
    assert_eq!(migrated["code"], 0, "{migrated}");
    let applied: Vec<&str> = migrated["output"]
        .as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Applying "))
        .collect();
    let app = table.split('_').next().unwrap();
    assert_eq!(
        applied,
        [
            format!("{app}.0001_initial... OK").as_str(),
            "admin.0001_initial... OK",
            "admin.0002_logentry_remove_auto_add... OK",
            "admin.0003_logentry_add_action_flag_choices... OK",
        ],
        "{migrated}"
    );
    let check = django.run(&["migrate-check"]).await;
    assert_eq!(check["migrate_check"], 0, "{check}");
    assert_eq!(check["makemigrations_check"], 0, "{check}");
    let whisper_first = django.run(&["snapshot"]).await;
    assert!(!tables(&whisper_first).contains("auth_user"));

    // Django first: the same database, and Whisper's migrate then changes nothing.
    let db2 = TestDb::new(backend).await;
    let env2 = profile.env(&db2, version);
    let django2 = env2.django();
    assert_eq!(django2.run(&["migrate"]).await["code"], 0);
    let django_first = django2.run(&["snapshot"]).await;
    assert_eq!(
        order_free(&whisper_first),
        order_free(&django_first),
        "Whisper-then-Django differs from Django alone"
    );
    let check = whisper_cli(&env2, &["migrate", "--check"], &[], "").await;
    assert_eq!(check.code, 0, "{check:?}");
    let run = whisper_cli(&env2, &["migrate"], &[], "").await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("No migrations to apply."), "{run:?}");
    assert!(
        run.stdout.contains(&format!("The table {table} exists.")),
        "{run:?}"
    );
    assert_eq!(django2.run(&["snapshot"]).await, django_first);

    // The CLI on the custom table; Django's admin accepts its users.
    let dana = profile.login("dana");
    let flags: Vec<&str> = match profile {
        Profile::Fork => vec!["--username", "dana", "--email", "dana@example.com"],
        Profile::Email => vec!["--email", "dana@example.com", "--username", "dana"],
    };
    let mut args = vec!["createsuperuser", "--noinput"];
    args.extend(flags);
    let run = whisper_cli(&env, &args, &[("DJANGO_SUPERUSER_PASSWORD", PASSWORD)], "").await;
    assert_eq!(run.code, 0, "{run:?}");
    let again = whisper_cli(&env, &args, &[("DJANGO_SUPERUSER_PASSWORD", PASSWORD)], "").await;
    assert_eq!(again.code, 1, "{again:?}");
    let taken = match profile {
        Profile::Fork => "That username is already taken.",
        Profile::Email => "That email address is already taken.",
    };
    assert!(again.stderr.contains(taken), "{again:?}");
    let made = django.user(&dana).await;
    assert_eq!(made["is_superuser"], true, "{made}");
    if let Profile::Fork = profile {
        assert_eq!(made["name"], "", "{made}");
    }
    assert_pbkdf2(
        made["password"].as_str().unwrap(),
        iterations(version),
        "CLI",
    );
    let login = django.login_at("/admin/login/", &dana, PASSWORD).await;
    assert_eq!(login["status"], 302, "{login}");
    let (status, body) = django.admin_index(login["session"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let new_password = "Grüße aus Zürich ✓";
    let run = whisper_cli(
        &env,
        &["changepassword", &dana],
        &[],
        &format!("{new_password}\n{new_password}\n"),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("Password changed successfully for user '{dana}'")),
        "{run:?}"
    );
    let login = django.login_at("/admin/login/", &dana, new_password).await;
    assert_eq!(login["status"], 302, "{login}");
    let check = django.check_password(&dana, new_password).await;
    assert_eq!(check["changed"], false, "{check}");

    // The server starts on it and its login page follows USERNAME_FIELD.
    let server = env.whisper().await;
    let session = w_login(&server, &dana, new_password).await;
    assert_whisper_accepts(&server, &session, "CLI-made superuser").await;
    server.stop().await;
}
