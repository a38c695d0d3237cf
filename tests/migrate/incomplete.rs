//! Databases Django left incomplete: a missing app is applied alone, partial states are
//! refused and leave the database as it was.

use super::*;

/// A Django-migrated database where one app is missing entirely: only that app is applied;
/// existing rows keep their ids and values, new content types / permissions are appended.
async fn missing_app_is_applied_alone(store: &Store) {
    store.migrate().await.unwrap();
    exec(store, "DROP TABLE chat_room").await;
    exec(store, "DELETE FROM django_migrations WHERE app = 'chat'").await;
    exec(
        store,
        "DELETE FROM auth_permission WHERE content_type_id IN \
         (SELECT id FROM django_content_type WHERE app_label = 'chat')",
    )
    .await;
    exec(
        store,
        "DELETE FROM django_content_type WHERE app_label = 'chat'",
    )
    .await;
    // A row Django's admin might have renamed: migrate must not touch it.
    exec(
        store,
        "UPDATE auth_permission SET name = 'Can add a user (custom)' WHERE codename = 'add_user'",
    )
    .await;

    assert!(!store.is_migrated().await.unwrap());
    let report = store.migrate().await.unwrap();
    assert_eq!(
        report.applied,
        [("chat".to_string(), "0001_initial".to_string())]
    );
    assert_eq!(report.content_types_created, 1);
    assert_eq!(report.permissions_created, 4);
    let cts = content_types(store).await;
    assert_eq!(cts.len(), 7);
    assert_eq!(cts.last().unwrap().1, "chat");
    assert_eq!(cts.last().unwrap().0, 8, "a new id, existing ids untouched");
    let perms = permissions(store).await;
    assert_eq!(perms.len(), 28);
    assert!(
        perms
            .iter()
            .any(|p| p.2 == "add_user" && p.3 == "Can add a user (custom)")
    );
    // chat's row went to the end of django_migrations.
    assert_eq!(migration_rows(store).await.last().unwrap().0, "chat");
    assert_eq!(count(store, "SELECT COUNT(*) FROM chat_room").await, 0);
    assert!(store.is_migrated().await.unwrap());
}

/// Partial states are refused and leave the database as it was.
async fn partial_states_are_refused(store: &Store) {
    // Tables without migration records.
    exec(
        store,
        "CREATE TABLE chat_room (id integer NOT NULL PRIMARY KEY, title varchar(255) NOT NULL, \
         staff_only bool NOT NULL)",
    )
    .await;
    let err = store.migrate().await.unwrap_err();
    let StoreError::Migration(msg) = &err else {
        panic!("expected a Migration error, got {err:?}")
    };
    assert!(msg.contains("chat_room"), "{msg}");
    assert!(!store.is_migrated().await.unwrap());
    assert!(matches!(
        store.unapplied_migrations().await,
        Err(StoreError::Migration(_))
    ));
    // Nothing was created (the transaction rolled back).
    let tables = if store.is_sqlite() {
        count(
            store,
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .await
    } else {
        count(
            store,
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()",
        )
        .await
    };
    assert_eq!(tables, 1);
    exec(store, "DROP TABLE chat_room").await;

    // Some of an app's migrations recorded.
    store.migrate().await.unwrap();
    exec(
        store,
        "DELETE FROM django_migrations WHERE app = 'auth' AND name = '0012_alter_user_first_name_max_length'",
    )
    .await;
    let err = store.migrate().await.unwrap_err();
    let StoreError::Migration(msg) = &err else {
        panic!("expected a Migration error, got {err:?}")
    };
    assert!(msg.contains("partially"), "{msg}");
    assert!(
        msg.contains("0012_alter_user_first_name_max_length"),
        "{msg}"
    );
    assert_eq!(
        count(store, "SELECT COUNT(*) FROM django_migrations").await,
        18
    );
    assert!(!store.is_migrated().await.unwrap());

    // A migrated app whose dependency is not recorded (inconsistent history).
    exec(store, "DELETE FROM django_migrations WHERE app = 'auth'").await;
    exec(
        store,
        "DELETE FROM django_migrations WHERE app = 'contenttypes'",
    )
    .await;
    let err = store.migrate().await.unwrap_err();
    assert!(matches!(err, StoreError::Migration(_)), "{err:?}");
}

#[tokio::test]
async fn sqlite_missing_app_is_applied_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    missing_app_is_applied_alone(&store).await;
}

#[tokio::test]
async fn sqlite_partial_states_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    partial_states_are_refused(&store).await;
}

#[tokio::test]
async fn postgres_missing_app_is_applied_alone() {
    let (_db, store) = PgDatabase::with_store("test", Locale::C, false).await;
    missing_app_is_applied_alone(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_partial_states_are_refused() {
    let (_db, store) = PgDatabase::with_store("test", Locale::C, false).await;
    partial_states_are_refused(&store).await;
    store.close().await;
}
