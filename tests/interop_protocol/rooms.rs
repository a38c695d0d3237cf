//! Scenarios about rooms: room spellings (§4.5, §4.14), raw-value keying (§4.6), leave and
//! re-join order (§4.12), titles and staff rooms (§4.5, §4.10) and a room deleted while joined.

use std::time::Duration;

use crate::Env;
use crate::lockstep::*;

/// §4.5/§4.14: null, numeric spellings, floats, booleans, huge ints; notices carry the raw value.
pub(crate) async fn room_spellings(env: &Env, ck: &mut Check) {
    ck.begin("4.14 room spellings (null, \"01\", 1.5, true, huge)");
    let a_id = env.user("alice", false).await;
    let b_id = env.user("bob", false).await;
    let mut a = env.duo("alice", a_id).await;
    let mut b = env.duo("bob", b_id).await;
    let c = ck;
    a.call(c, &join(r#""1""#), Some(&ack_join(1, "Room 1")))
        .await;
    for room in [
        "null",
        "404",
        "0",
        "-1",
        r#""-1""#,
        r#""0""#,
        "99999999999999999999",
        "-99999999999999999999",
        "9223372036854775808",
        "1e300",
        "0.5",
        "false",
    ] {
        b.call(c, &join(room), None).await;
        b.call(c, &leave(room), None).await;
    }
    // First join with "01": ack only for bob, enter notice for alice.
    b.call(c, &join(r#""01""#), Some(&ack_join(1, "Room 1")))
        .await;
    a.recv(c, Some(&enter(r#""01""#, "bob"))).await;
    // Subscribed now: ack, then bob's own notice; alice gets the same raw value.
    for room in [
        r#"" 1 ""#,
        "1.5",
        "true",
        r#""+1""#,
        r#""\t1\n""#,
        "1.9",
        "1e0",
        "1.0",
        "-0.5e1",
        r#""\u0661""#,
        r#""１""#,
        r#""\u00a01\u3000""#,
        "1.00000000000000000001",
    ] {
        let got = b.call(c, &join(room), None).await;
        if got != text(&ack_join(1, "Room 1")) && got != text(&err("ROOM_INVALID")) {
            c.fail(format!("join {room}: unexpected python reply {got}"));
        }
        if got == text(&ack_join(1, "Room 1")) {
            b.recv(c, None).await;
            a.recv(c, None).await;
        }
    }
    // "1_0" is room 10 (Python int() digit separators).
    b.call(c, &join(r#""1_0""#), Some(&ack_join(10, "Room 10")))
        .await;
    b.silence(c).await;
    a.silence(c).await;
    b.close(1000).await;
    // bob's set holds one raw value per Python-distinct spelling ("01", " 1 ", 1.5, true (which
    // 1e0, 1.0 and 1.000…1 equal, so true stays), "+1", 1.9, …, "1_0"): each is announced on
    // close, in set order, so the notices are compared as a multiset.
    let mut py = Vec::new();
    let mut rs = Vec::new();
    loop {
        let (p, r) = a.next_both(Duration::from_millis(QUIET_MS * 2)).await;
        if p == Got::Silent && r == Got::Silent {
            break;
        }
        py.push(p);
        rs.push(r);
    }
    py.sort();
    rs.sort();
    c.same(
        "alice <- bob's leave notices on close (any order)",
        &text(&join_lines(&py)),
        &text(&join_lines(&rs)),
    );
    a.close(1000).await;
}

/// §4.6 raw-value keying: 1 vs "1" vs 1.0/true; leaving with another spelling.
pub(crate) async fn raw_value_keying(env: &Env, ck: &mut Check) {
    ck.begin("4.6 raw-value keying (1 / \"1\" / 1.0 / true)");
    let a_id = env.user("carol", false).await;
    let b_id = env.user("dave", false).await;
    let mut a = env.duo("carol", a_id).await;
    let mut b = env.duo("dave", b_id).await;
    let c = ck;
    b.call(c, &join("2"), Some(&ack_join(2, "Room 2"))).await;
    a.call(c, &join(r#""2""#), Some(&ack_join(2, "Room 2")))
        .await;
    b.recv(c, Some(&enter(r#""2""#, "carol"))).await;
    // dave joined with 2: "2" is another member of the set.
    b.call(
        c,
        &send(r#""2""#, r#""x""#),
        Some(&err("ROOM_ACCESS_DENIED")),
    )
    .await;
    b.call(
        c,
        &send(r#""02""#, r#""x""#),
        Some(&err("ROOM_ACCESS_DENIED")),
    )
    .await;
    // 2.0 equals 2: allowed, events carry 2.0.
    b.call(
        c,
        &send("2.0", r#""float""#),
        Some(&chat("2.0", "dave", r#""float""#)),
    )
    .await;
    a.recv(c, Some(&chat("2.0", "dave", r#""float""#))).await;
    b.call(
        c,
        &send("2", r#""int""#),
        Some(&chat("2", "dave", r#""int""#)),
    )
    .await;
    a.recv(c, Some(&chat("2", "dave", r#""int""#))).await;
    // true == 1, not 2.
    b.call(
        c,
        &send("true", r#""bool""#),
        Some(&err("ROOM_ACCESS_DENIED")),
    )
    .await;
    // Re-join with 2.0: the set keeps 2; ack then own notice with 2.0.
    b.call(c, &join("2.0"), Some(&ack_join(2, "Room 2"))).await;
    b.recv(c, Some(&enter("2.0", "dave"))).await;
    a.recv(c, Some(&enter("2.0", "dave"))).await;
    // carol joins room 1 with true and sends with 1 and 1.0.
    a.call(c, &join("true"), Some(&ack_join(1, "Room 1"))).await;
    a.call(c, &send("1", "1"), Some(&chat("1", "carol", "1")))
        .await;
    a.call(c, &send("1.0", "1.0"), Some(&chat("1.0", "carol", "1.0")))
        .await;
    a.call(c, &send(r#""1""#, "1"), Some(&err("ROOM_ACCESS_DENIED")))
        .await;
    // dave leaves with "2" (not his spelling): unsubscribed, but 2 stays in his set.
    b.call(c, &leave(r#""2""#), Some(&ack_leave(2))).await;
    b.recv(c, Some(&left(r#""2""#, "dave"))).await;
    a.recv(c, Some(&left(r#""2""#, "dave"))).await;
    // Still allowed to send with 2, but no longer hears it.
    b.send(&send("2", r#""ghost""#)).await;
    a.recv(c, Some(&chat("2", "dave", r#""ghost""#))).await;
    b.silence(c).await;
    // On close the leave procedure runs for 2: carol hears it.
    b.close(1000).await;
    a.recv(c, Some(&left("2", "dave"))).await;
    a.silence(c).await;
    a.close(1000).await;
}

/// §4.6/§4.12: leave a room never joined; re-join order; leave while subscribed.
pub(crate) async fn leave_never_joined_and_rejoin(env: &Env, ck: &mut Check) {
    ck.begin("4.12 leave never joined, re-join order");
    let a_id = env.user("erin", false).await;
    let b_id = env.user("frank", false).await;
    let mut a = env.duo("erin", a_id).await;
    let mut b = env.duo("frank", b_id).await;
    let c = ck;
    a.call(c, &join(r#""3""#), Some(&ack_join(3, "Room 3")))
        .await;
    b.call(c, &leave(r#""3""#), Some(&ack_leave(3))).await;
    a.recv(c, Some(&left(r#""3""#, "frank"))).await;
    b.silence(c).await;
    b.call(c, &join(r#""3""#), Some(&ack_join(3, "Room 3")))
        .await;
    a.recv(c, Some(&enter(r#""3""#, "frank"))).await;
    b.call(c, &join(r#""3""#), Some(&ack_join(3, "Room 3")))
        .await;
    b.recv(c, Some(&enter(r#""3""#, "frank"))).await;
    a.recv(c, Some(&enter(r#""3""#, "frank"))).await;
    b.call(c, &leave(r#""3""#), Some(&ack_leave(3))).await;
    b.recv(c, Some(&left(r#""3""#, "frank"))).await;
    a.recv(c, Some(&left(r#""3""#, "frank"))).await;
    // Twice: still an ack and a notice for erin, none for frank (unsubscribed).
    b.call(c, &leave(r#""3""#), Some(&ack_leave(3))).await;
    a.recv(c, Some(&left(r#""3""#, "frank"))).await;
    b.silence(c).await;
    a.silence(c).await;
    b.close(1000).await;
    a.silence(c).await;
    a.close(1000).await;
}

/// §4.10 titles (non-ASCII, quotes) and §4.5 staff-only rules, with a staff member listening.
pub(crate) async fn titles_and_staff(env: &Env, ck: &mut Check) {
    ck.begin("4.5/4.10 titles and staff rooms");
    let staff = env.user("jill", true).await;
    let plain = env.user("kent", false).await;
    let umlaut = env.whisper.create_room("Ärger ☃ 😀", false).await;
    let quotes = env
        .whisper
        .create_room(r#"Staff <room> & "quotes" \ /"#, true)
        .await;
    let mut s = env.duo("jill", staff).await;
    let mut p = env.duo("kent", plain).await;
    let c = ck;
    let u = umlaut.to_string();
    let q = quotes.to_string();
    s.call(
        c,
        &join(&u),
        Some(&format!(
            r#"{{"join": "{umlaut}", "title": "\u00c4rger \u2603 \ud83d\ude00"}}"#
        )),
    )
    .await;
    s.call(
        c,
        &join(&q),
        Some(&format!(
            r#"{{"join": "{quotes}", "title": "Staff <room> & \"quotes\" \\ /"}}"#
        )),
    )
    .await;
    p.call(c, &join(&u), None).await;
    s.recv(c, Some(&enter(&u, "kent"))).await;
    p.call(c, &join(&q), Some(&err("ROOM_ACCESS_DENIED"))).await;
    p.call(c, &leave(&q), Some(&err("ROOM_ACCESS_DENIED")))
        .await;
    p.call(c, &send(&q, r#""hi""#), Some(&err("ROOM_ACCESS_DENIED")))
        .await;
    s.call(
        c,
        &send(&q, r#""staff only""#),
        Some(&chat(&q, "jill", r#""staff only""#)),
    )
    .await;
    p.silence(c).await;
    p.close(1000).await;
    s.recv(c, Some(&left(&u, "kent"))).await;
    s.silence(c).await;
    s.close(1000).await;
}

/// §4.14: room deleted while joined, then send / leave / join; the entry stays.
pub(crate) async fn deleted_room(env: &Env, ck: &mut Check) {
    ck.begin("4.14 room deleted while joined");
    let a_id = env.user("liam", false).await;
    let b_id = env.user("mona", false).await;
    let doomed = env.whisper.create_room("Doomed", false).await;
    let r = format!("\"{doomed}\"");
    let mut a = env.duo("liam", a_id).await;
    let mut b = env.duo("mona", b_id).await;
    let c = ck;
    a.call(c, &join(r#""6""#), Some(&ack_join(6, "Room 6")))
        .await;
    b.call(c, &join(r#""6""#), Some(&ack_join(6, "Room 6")))
        .await;
    a.recv(c, Some(&enter(r#""6""#, "mona"))).await;
    b.call(c, &join(&r), Some(&ack_join(doomed, "Doomed")))
        .await;
    a.call(c, &join(&r), Some(&ack_join(doomed, "Doomed")))
        .await;
    b.recv(c, Some(&enter(&r, "liam"))).await;
    assert!(env.whisper.store.delete_room(doomed).await.unwrap());
    a.call(c, &send(&r, r#""x""#), Some(&err("ROOM_INVALID")))
        .await;
    a.call(c, &leave(&r), Some(&err("ROOM_INVALID"))).await;
    a.call(c, &send(&r, r#""x""#), Some(&err("ROOM_INVALID")))
        .await;
    a.call(c, &join(&r), Some(&err("ROOM_INVALID"))).await;
    a.call(
        c,
        &send(&doomed.to_string(), r#""x""#),
        Some(&err("ROOM_ACCESS_DENIED")),
    )
    .await;
    a.silence(c).await;
    b.silence(c).await;
    // On close the deleted room is skipped silently; room 6 is announced.
    a.close(1000).await;
    b.recv(c, Some(&left(r#""6""#, "liam"))).await;
    b.silence(c).await;
    b.close(1000).await;
}
