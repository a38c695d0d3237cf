//! The user commands and `migrate` on a custom `AUTH_USER_MODEL`.

use super::*;

/// A custom AbstractUser (`accounts.Member`) logging in by `phone`: the user commands follow
/// USERNAME_FIELD (`--phone`, `DJANGO_SUPERUSER_PHONE`, "phone" in messages) on its table, and
/// `migrate` leaves the user app to the Django project.
#[tokio::test]
async fn user_commands_on_a_custom_user_model() {
    let dir = tempfile::tempdir().unwrap();
    let model: &[(&str, &str)] = &[
        ("AUTH_USER_MODEL", "accounts.Member"),
        ("USERNAME_FIELD", "phone"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        [
            &[
                ("AUTH_USER_MODEL", "accounts.Member"),
                ("USERNAME_FIELD", "phone"),
            ][..],
            extra,
        ]
        .concat()
    };
    let run = manage(dir.path(), &["migrate"], model, "");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("Apply all migrations: auth, chat, contenttypes, sessions\n")
    );
    assert!(
        run.stdout
            .contains("The table accounts_member does not exist yet"),
        "{run:?}"
    );
    let url = format!("sqlite://{}", dir.path().join("db.sqlite3").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(
        !tables
            .iter()
            .any(|t| t.starts_with("auth_user") || t == "django_admin_log"),
        "{tables:?}"
    );
    let run = manage(dir.path(), &["check"], model, "");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("whisper.E005") && run.stderr.contains("manage.py migrate"),
        "{run:?}"
    );
    let run = manage(
        dir.path(),
        &["createsuperuser", "--noinput", "--phone", "1"],
        model,
        "",
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("table accounts_member of AUTH_USER_MODEL accounts.Member does not exist"),
        "{run:?}"
    );

    // The server does not start without the table, and says why.
    let db = dir.path().join("db.sqlite3").display().to_string();
    let vars = with(&[("SECRET_KEY", "x")]);
    let settings = whisper::config::Settings::from_lookup(|k| match k {
        "DATABASE_URL" => Some(format!("sqlite:///{db}")),
        "BASE_DIR" => Some(dir.path().display().to_string()),
        _ => vars
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string()),
    })
    .unwrap();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let err = whisper::startup::build(settings, stopped)
        .await
        .err()
        .expect("no user table");
    let err = format!("{err:#}");
    assert!(
        err.contains("accounts_member") && err.contains("manage.py migrate"),
        "{err}"
    );

    // The Django project's migrate made the table (here by hand, as Django's DDL would).
    sqlx::raw_sql(
        "CREATE TABLE accounts_member (id integer NOT NULL PRIMARY KEY AUTOINCREMENT, password \
         varchar(128) NOT NULL, last_login datetime NULL, is_superuser bool NOT NULL, username \
         varchar(150) NOT NULL UNIQUE, first_name varchar(150) NOT NULL, last_name varchar(150) \
         NOT NULL, email varchar(254) NOT NULL, is_staff bool NOT NULL, is_active bool NOT NULL, \
         date_joined datetime NOT NULL, phone varchar(20) NOT NULL UNIQUE)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let help = manage(dir.path(), &["createsuperuser", "--help"], model, "");
    assert!(help.stdout.contains("--phone <PHONE>"), "{help:?}");
    let password = [("DJANGO_SUPERUSER_PASSWORD", "s3cret pass")];
    let args = [
        "createsuperuser",
        "--noinput",
        "--phone",
        "555-1234",
        "--username",
        "ann",
    ];
    let run = manage(dir.path(), &args, &with(&password), "");
    assert_eq!(run.code, 0, "{run:?}");
    let row: (String, String, String, bool, String) = sqlx::query_as(
        "SELECT username, email, first_name, is_superuser, password FROM accounts_member \
         WHERE phone = '555-1234'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        (row.0.as_str(), row.1.as_str(), row.2.as_str(), row.3),
        ("ann", "", "", true)
    );
    assert_django_hash(&row.4, "s3cret pass");
    for (args, message) in [
        (
            &args[..],
            "CommandError: Error: That phone is already taken.\n",
        ),
        (
            &[
                "createsuperuser",
                "--noinput",
                "--phone",
                "555-0",
                "--username",
                "ann",
            ][..],
            "CommandError: Error: That username is already taken.\n",
        ),
        (
            &["createsuperuser", "--noinput", "--phone", "555-0"][..],
            "CommandError: You must use --username with --noinput.\n",
        ),
        (
            &["createsuperuser", "--noinput", "--username", "zed"][..],
            "CommandError: You must use --phone with --noinput.\n",
        ),
    ] {
        let run = manage(dir.path(), args, &with(&password), "");
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (1, message),
            "{args:?}: {run:?}"
        );
    }
    let run = manage(
        dir.path(),
        &["createuser", "--noinput", "--username", "bob"],
        &with(&[("DJANGO_SUPERUSER_PHONE", "555-2")]),
        "",
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = manage(
        dir.path(),
        &["changepassword", "555-2"],
        model,
        "n3w pass\nn3w pass\n",
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("Password changed successfully for user '555-2'"),
        "{run:?}"
    );
    let (staff, hash): (bool, String) =
        sqlx::query_as("SELECT is_staff, password FROM accounts_member WHERE username = 'bob'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(!staff);
    assert_django_hash(&hash, "n3w pass");
    assert_eq!(manage(dir.path(), &["check"], model, "").code, 0);

    let run = manage(
        dir.path(),
        &["migrate"],
        &with(&[("AUTHENTICATION_BACKENDS", "Nope")]),
        "",
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("AUTHENTICATION_BACKENDS"), "{run:?}");
}
