//! Check 1, schema: Whisper `migrate` satisfies Django (`migrate --check`, `makemigrations
//! --check`, the admin); after Django `migrate`, Whisper `migrate` changes nothing.

use super::*;

on_both_backends!(
    schema_whisper_migrate_satisfies_django,
    schema_django_migrate_then_whisper_changes_nothing,
);

// ---------------------------------------------------------------------------------------------
// 1. Schema
// ---------------------------------------------------------------------------------------------

async fn schema_whisper_migrate_satisfies_django(backend: Backend, version: &'static str) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db, version);
    let run = whisper_cli(&env, &["migrate"], &[], "").await;
    assert_eq!(run.code, 0, "whisper migrate: {run:?}");

    let check = env.django().run(&["migrate-check"]).await;
    assert_eq!(
        check["migrate_check"], 0,
        "Django {version} migrate --check after Whisper's migrate: {check}"
    );
    assert_eq!(
        check["makemigrations_check"], 0,
        "Django {version} makemigrations --check after Whisper's migrate: {check}"
    );

    // The admin on the Whisper-migrated database, for a Whisper-made superuser.
    let run = whisper_cli(
        &env,
        &[
            "createsuperuser",
            "--noinput",
            "--username",
            "root",
            "--email",
            "root@example.com",
        ],
        &[("DJANGO_SUPERUSER_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert_eq!(run.code, 0, "whisper createsuperuser: {run:?}");
    let django = env.django();
    let login = django.login_at("/admin/login/", "root", PASSWORD).await;
    assert_eq!(login["status"], 302, "admin login: {login}");
    assert_eq!(login["location"], "/admin/", "{login}");
    let session = login["session"].as_str().unwrap();
    let (status, body) = django.admin_index(session).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Site administration"), "{body}");
    let room = room_id(&django, "Made in the admin", false).await;
    let list = django.get("/admin/chat/room/", session).await;
    assert_eq!(list["status"], 200, "{list}");
    assert!(
        list["body"].as_str().unwrap().contains("Made in the admin"),
        "{list}"
    );
    let change = django
        .get(&format!("/admin/chat/room/{room}/change/"), session)
        .await;
    assert_eq!(change["status"], 200, "{change}");
}

async fn schema_django_migrate_then_whisper_changes_nothing(
    backend: Backend,
    version: &'static str,
) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db, version);
    let django = env.django();
    let migrated = django.run(&["migrate"]).await;
    assert_eq!(migrated["code"], 0, "{migrated}");
    let before = django.run(&["snapshot"]).await;

    let check = whisper_cli(&env, &["migrate", "--check"], &[], "").await;
    assert_eq!(
        check.code, 0,
        "whisper migrate --check on Django's schema: {check:?}"
    );
    let run = whisper_cli(&env, &["migrate"], &[], "").await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("No migrations to apply."),
        "whisper migrate on Django's schema:\n{}",
        run.stdout
    );
    let after = django.run(&["snapshot"]).await;
    assert_eq!(before, after, "Whisper's migrate changed Django's database");

    // And the server starts on it (its own migrate is a no-op too).
    let server = env.whisper().await;
    let page = w_get(&server, "/accounts/login/", None).await;
    assert_eq!(page.status, 200);
    server.stop().await;
    assert_eq!(django.run(&["snapshot"]).await, before);
}
