//! A fresh database: Django's exact schema (SQLite objects, PostgreSQL columns/identities/
//! constraints/indexes), the migration rows, post-migrate rows, the report and idempotence.

use super::*;

// ---------------------------------------------------------------------------------------------
// The check, shared by both backends

/// Fresh database: schema (checked by the caller), rows, report, idempotence.
async fn fresh_migrate_rows_and_idempotence(store: &Store) {
    assert!(!store.is_migrated().await.unwrap());
    assert_eq!(
        store.unapplied_migrations().await.unwrap(),
        expected_migrations()
    );

    let report = store.migrate().await.expect("first migrate");
    assert_eq!(report.applied, expected_migrations());
    assert_eq!(report.content_types_created, 7);
    assert_eq!(report.permissions_created, 28);
    assert_eq!(
        report.lines()[0],
        "  Applying contenttypes.0001_initial... OK"
    );

    assert_eq!(migration_rows(store).await, expected_migrations());
    let (cts, perms) = expected_rows();
    assert_eq!(content_types(store).await, cts);
    assert_eq!(permissions(store).await, perms);
    assert!(store.is_migrated().await.unwrap());
    assert!(store.unapplied_migrations().await.unwrap().is_empty());

    if store.is_sqlite() {
        for text in applied_texts(store).await {
            assert!(is_django_sqlite_datetime(&text), "applied = {text:?}");
        }
    }

    // Second run: nothing changes.
    let again = store.migrate().await.expect("second migrate");
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(again.lines(), ["  No migrations to apply."]);
    assert_eq!(migration_rows(store).await, expected_migrations());
    assert_eq!(content_types(store).await, cts);
    assert_eq!(permissions(store).await, perms);
}

fn is_django_sqlite_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    let base = b.len() >= 19
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b' '
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    base && (b.len() == 19 || (b.len() == 26 && b[19] == b'.' && digits(20..26)))
}

#[tokio::test]
async fn sqlite_fresh_schema_matches_django_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    fresh_migrate_rows_and_idempotence(&store).await;
    let actual = sqlite_objects(&store).await;
    let expected = expected_sqlite_objects();
    let missing: Vec<_> = expected.difference(&actual).collect();
    let extra: Vec<_> = actual.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing: {missing:#?}\nextra: {extra:#?}"
    );
}

#[tokio::test]
async fn sqlite_in_memory_migrates() {
    let store = Store::connect(&DatabaseUrl::SqliteMemory, 4, Duration::from_secs(5), true)
        .await
        .unwrap();
    assert_eq!(store.migrate().await.unwrap().applied.len(), 19);
    assert!(store.is_migrated().await.unwrap());
}

#[tokio::test]
async fn postgres_fresh_schema_matches_django() {
    let (_db, store) = PgDatabase::with_store("test", Locale::C, false).await;
    fresh_migrate_rows_and_idempotence(&store).await;
    let actual = actual_pg_schema(&store).await;
    let expected = expected_pg_schema();
    assert_eq!(actual.columns, expected.columns);
    assert_eq!(actual.identities, expected.identities);
    assert_eq!(actual.constraints, expected.constraints);
    assert_eq!(actual.indexes, expected.indexes);
    assert_eq!(expected.indexes.len(), 13);
    assert_eq!(expected.constraints.len(), 28);
    store.close().await;
}
