//! Check 4, rooms edited through Django show up in Whisper's index and join rules, and the
//! room cache TTL expires.

use super::*;

on_both_backends!(
    rooms_edited_in_django_show_up_in_whisper,
    rooms_cache_ttl_expires,
);

// ---------------------------------------------------------------------------------------------
// 4. Rooms edited through Django
// ---------------------------------------------------------------------------------------------

async fn rooms_edited_in_django_show_up_in_whisper(backend: Backend, version: &'static str) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db, version).with("ROOM_CACHE_TTL", "0");
    let server = env.whisper().await;
    let django = env.django();
    let staff = server.create_user("staffer", true).await;
    let user = server.create_user("member", false).await;
    let s_cookie = server.session_for(staff).await;
    let u_cookie = server.session_for(user).await;

    let zebra = room_id(&django, "Zebra", false).await;
    let alpha = room_id(&django, "Alpha", false).await;
    let ops = room_id(&django, "Ops", true).await;
    let index = w_get(&server, "/", Some(&u_cookie)).await;
    assert_eq!(
        index.rooms(),
        vec![
            (alpha, "Alpha".to_string()),
            (ops, "Ops".to_string()),
            (zebra, "Zebra".to_string())
        ],
        "index order (by title, staff-only rooms listed to everyone)"
    );
    let mut member = server.ws(Some(&u_cookie), None).await.unwrap();
    let mut staffer = server.ws(Some(&s_cookie), None).await.unwrap();
    let ack = |id: i64, title: &str| format!(r#"{{"join": "{id}", "title": "{title}"}}"#);
    let denied = r#"{"error": "ROOM_ACCESS_DENIED"}"#;
    let invalid = r#"{"error": "ROOM_INVALID"}"#;
    assert_eq!(command(&mut member, &join(&ops.to_string())).await, denied);
    assert_eq!(
        command(&mut staffer, &join(&ops.to_string())).await,
        ack(ops, "Ops")
    );

    // Renamed.
    django
        .run(&[
            "room-rename",
            "--id",
            &zebra.to_string(),
            "--title",
            "Aardvark",
        ])
        .await;
    let index = w_get(&server, "/", Some(&u_cookie)).await;
    assert_eq!(index.rooms()[0], (zebra, "Aardvark".to_string()));
    assert_eq!(
        command(&mut member, &join(&zebra.to_string())).await,
        ack(zebra, "Aardvark")
    );

    // Made staff-only, and back.
    django
        .run(&[
            "room-set-staff",
            "--id",
            &alpha.to_string(),
            "--staff_only",
            "1",
        ])
        .await;
    assert_eq!(
        command(&mut member, &join(&alpha.to_string())).await,
        denied
    );
    django
        .run(&[
            "room-set-staff",
            "--id",
            &ops.to_string(),
            "--staff_only",
            "0",
        ])
        .await;
    assert_eq!(
        command(&mut member, &join(&ops.to_string())).await,
        ack(ops, "Ops")
    );

    // Deleted.
    django
        .run(&["room-delete", "--id", &alpha.to_string()])
        .await;
    let index = w_get(&server, "/", Some(&u_cookie)).await;
    assert!(
        index.rooms().iter().all(|(id, _)| *id != alpha),
        "{:?}",
        index.rooms()
    );
    assert_eq!(
        command(&mut staffer, &join(&alpha.to_string())).await,
        invalid
    );
    member.close(1000).await;
    staffer.close(1000).await;
    server.stop().await;
}

async fn rooms_cache_ttl_expires(backend: Backend, version: &'static str) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db, version).with("ROOM_CACHE_TTL", "1");
    let server = env.whisper().await;
    let django = env.django();
    let user = server.create_user("member", false).await;
    let cookie = server.session_for(user).await;
    let room = room_id(&django, "Lobby", false).await;
    let r = room.to_string();

    let mut ws = server.ws(Some(&cookie), None).await.unwrap();
    assert_eq!(
        command(&mut ws, &join(&r)).await,
        format!(r#"{{"join": "{room}", "title": "Lobby"}}"#)
    );
    assert_eq!(
        command(&mut ws, &leave(&r)).await,
        format!(r#"{{"leave": "{room}"}}"#)
    );
    let edited = Instant::now();
    django
        .run(&["room-set-staff", "--id", &r, "--staff_only", "1"])
        .await;
    django
        .run(&["room-rename", "--id", &r, "--title", "Staff room"])
        .await;
    // Past the TTL, the edit applies.
    tokio::time::sleep(Duration::from_millis(1200).saturating_sub(edited.elapsed())).await;
    assert_eq!(
        command(&mut ws, &join(&r)).await,
        r#"{"error": "ROOM_ACCESS_DENIED"}"#
    );
    let index = w_get(&server, "/", Some(&cookie)).await;
    assert_eq!(index.rooms(), vec![(room, "Staff room".to_string())]);
    ws.close(1000).await;
    server.stop().await;
}
