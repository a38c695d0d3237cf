//! Scenarios about frame contents: message values (§4.4, §4.10), duplicate keys (§4.3), ignored
//! commands and the rows where the original crashes (§4.3, §4.14).

use std::time::Duration;

use crate::Env;
use crate::lockstep::*;

/// §4.4/§4.10: every JSON type as `message`, re-encoded like `json.dumps`.
pub(crate) async fn message_values(env: &Env, ck: &mut Check) {
    ck.begin("4.10 message values (types, numbers, unicode)");
    let a_id = env.user("gina", false).await;
    let b_id = env.user("hugo", false).await;
    let mut a = env.duo("gina", a_id).await;
    let mut b = env.duo("hugo", b_id).await;
    let c = ck;
    a.call(c, &join(r#""4""#), Some(&ack_join(4, "Room 4")))
        .await;
    b.call(c, &join(r#""4""#), Some(&ack_join(4, "Room 4")))
        .await;
    a.recv(c, Some(&enter(r#""4""#, "hugo"))).await;
    // (sent JSON, expected re-encoding per spec §4.10)
    let values: &[(&str, &str)] = &[
        (r#""""#, r#""""#),
        (r#""see you at noon""#, r#""see you at noon""#),
        ("0", "0"),
        ("-0", "0"),
        ("42", "42"),
        ("-17", "-17"),
        ("true", "true"),
        ("false", "false"),
        ("null", "null"),
        ("1.0", "1.0"),
        ("1E2", "100.0"),
        ("3e0", "3.0"),
        ("2.50", "2.5"),
        ("1e-7", "1e-07"),
        ("1.5e300", "1.5e+300"),
        ("-1e-400", "-0.0"),
        ("-0.0", "-0.0"),
        ("0.1", "0.1"),
        ("123456789.123456789", "123456789.12345679"),
        ("1e16", "1e+16"),
        ("1e15", "1000000000000000.0"),
        ("5e-324", "5e-324"),
        ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ("9223372036854775807", "9223372036854775807"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("18446744073709551615", "18446744073709551615"),
        ("[]", "[]"),
        ("{}", "{}"),
        ("[1,2.5,null,true]", "[1, 2.5, null, true]"),
        (
            r#"{"b":1,"a":{"z":[{},[]],"y":"\u00e9"}}"#,
            r#"{"b": 1, "a": {"z": [{}, []], "y": "\u00e9"}}"#,
        ),
        (
            r#"[[[[[[[[[[["deep"]]]]]]]]]]]"#,
            r#"[[[[[[[[[[["deep"]]]]]]]]]]]"#,
        ),
        (r#"{"a":1,"b":2,"a":3}"#, r#"{"a": 3, "b": 2}"#),
        (r#"{"":""}"#, r#"{"": ""}"#),
        (
            r#""h\u00e9llo ☃ 😀""#,
            r#""h\u00e9llo \u2603 \ud83d\ude00""#,
        ),
        (r#""é☃😀""#, r#""\u00e9\u2603\ud83d\ude00""#),
        (r#""\ud83d\ude00""#, r#""\ud83d\ude00""#),
        (
            r#""\u0000\u001f\u007f\b\f\n\r\t""#,
            r#""\u0000\u001f\u007f\b\f\n\r\t""#,
        ),
        (r#""\/ \\ \" <&>'""#, r#""/ \\ \" <&>'""#),
        (r#""\u00C4rger""#, r#""\u00c4rger""#),
        ("\"\u{7f}\u{80}\u{ffff}\"", r#""\u007f\u0080\uffff""#),
        (
            r#"{"é": ["☃", {"😀": null}]}"#,
            r#"{"\u00e9": ["\u2603", {"\ud83d\ude00": null}]}"#,
        ),
        ("  \"padded\"  ", r#""padded""#),
    ];
    for (sent, want) in values {
        let frame = send(r#""4""#, sent);
        let want = chat(r#""4""#, "gina", want);
        a.call(c, &frame, Some(&want)).await;
        b.recv(c, Some(&want)).await;
    }
    a.silence(c).await;
    b.silence(c).await;
    a.close(1000).await;
    b.recv(c, Some(&left(r#""4""#, "gina"))).await;
    b.close(1000).await;

    // Values the spec (§4.10) says pass through, but which the real stack cannot carry over
    // channels_redis (msgpack refuses lone surrogates and integers outside 64 bits): the
    // sender's application crashes (1011) and nobody gets the message. Whisper passes them
    // through as §4.10 describes. One row each, on fresh sockets.
    let edgy: &[&str] = &[
        r#""\ud800""#,
        r#""\udc00x""#,
        r#""\ude00\ud83d""#,
        "99999999999999999999",
        "-9223372036854775809",
        "18446744073709551616",
        r#"[1, 123456789012345678901234567890]"#,
        r#"{"k": -123456789012345678901234567890}"#,
    ];
    for sent in edgy {
        let mut a = env.duo("gina", a_id).await;
        let mut b = env.duo("hugo", b_id).await;
        a.call(c, &join(r#""4""#), Some(&ack_join(4, "Room 4")))
            .await;
        b.call(c, &join(r#""4""#), Some(&ack_join(4, "Room 4")))
            .await;
        a.recv(c, Some(&enter(r#""4""#, "hugo"))).await;
        a.send(&send(r#""4""#, sent)).await;
        let echo = text(&chat(r#""4""#, "gina", sent));
        let (py_a, rs_a) = tokio::join!(next(&mut a.py, CRASH_WAIT), next(&mut a.rs, WAIT));
        let (py_b, rs_b) = b.next_both(Duration::from_millis(QUIET_MS)).await;
        c.documented(
            &format!("gina -> send message {sent} (not in README's table)"),
            &text(&format!("{py_a} / hugo {py_b}")),
            &text(&format!("{} / hugo {}", Got::Close(1011), Got::Silent)),
            &text(&format!("{rs_a} / hugo {rs_b}")),
            &text(&format!("{echo} / hugo {echo}")),
        );
        a.close(1000).await;
        b.close(1000).await;
    }
    // NaN/Infinity: the original echoes a bare NaN; Whisper refuses it (documented).
    let mut a = env.duo("gina", a_id).await;
    a.call(c, &join(r#""4""#), Some(&ack_join(4, "Room 4")))
        .await;
    for (sent, py_echo) in [
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        ("[1, NaN]", "[1, NaN]"),
        ("1e400", "Infinity"),
        ("-1e400", "-Infinity"),
    ] {
        a.send(&send(r#""4""#, sent)).await;
        let (py, rs) = a.next_both(WAIT).await;
        c.documented(
            &format!("gina -> send message {sent}"),
            &py,
            &text(&chat(r#""4""#, "gina", py_echo)),
            &rs,
            &text(&err("BAD_REQUEST")),
        );
    }
    a.close(1000).await;
}

/// Duplicate keys at the top level: last value wins (Python dict semantics).
pub(crate) async fn duplicate_keys(env: &Env, ck: &mut Check) {
    ck.begin("4.3 duplicate keys");
    let a_id = env.user("ivy", false).await;
    let mut a = env.duo("ivy", a_id).await;
    let c = ck;
    a.call(
        c,
        r#"{"command": "frobnicate", "room": "nope", "command": "join", "room": "5"}"#,
        Some(&ack_join(5, "Room 5")),
    )
    .await;
    a.call(
        c,
        r#"{"message": 1, "command": "send", "room": "5", "message": 2}"#,
        Some(&chat(r#""5""#, "ivy", "2")),
    )
    .await;
    a.call(
        c,
        r#"{"command": "send", "room": "5", "message": "a", "extra": [1], "message": {"k": 1, "k": 2}}"#,
        Some(&chat(r#""5""#, "ivy", r#"{"k": 2}"#)),
    )
    .await;
    a.call(
        c,
        r#"{"command": "leave", "room": "5", "room": "404"}"#,
        Some(&err("ROOM_INVALID")),
    )
    .await;
    a.silence(c).await;
    a.close(1000).await;
}

/// §4.3 step 5: unknown or missing commands. The original ignores them; Whisper answers
/// `UNKNOWN_COMMAND` (documented).
pub(crate) async fn ignored_commands(env: &Env, ck: &mut Check) {
    ck.begin("4.14 unknown / missing command");
    let a_id = env.user("rita", false).await;
    let mut a = env.duo("rita", a_id).await;
    let c = ck;
    a.call(c, &join(r#""1""#), Some(&ack_join(1, "Room 1")))
        .await;
    for frame in [
        r#"{"command": "frobnicate", "room": "1"}"#,
        r#"{"command": "JOIN", "room": "1"}"#,
        r#"{"command": "Send", "room": "1", "message": "x"}"#,
        r#"{"command": " join", "room": "1"}"#,
        r#"{"room": "1"}"#,
        "{}",
        r#"{"command": 1, "room": "1"}"#,
        r#"{"command": null, "room": "1"}"#,
        r#"{"command": ["join"], "room": "1"}"#,
        r#"{"command": "frobnicate"}"#,
    ] {
        a.ignored(c, frame).await;
    }
    // Still open, still in the room.
    a.call(c, &send(r#""1""#, "1"), Some(&chat(r#""1""#, "rita", "1")))
        .await;
    a.close(1000).await;
}

/// §4.3/§4.14: every input the original crashes on (close 1011), each on a fresh socket; Whisper
/// answers its documented reply and keeps the socket.
pub(crate) async fn crashes(env: &Env, ck: &mut Check) {
    ck.begin("4.14 crash rows (1011 vs documented reply)");
    let a_id = env.user("sven", false).await;
    let bad = text(&err("BAD_REQUEST"));
    let invalid = text(&err("ROOM_INVALID"));
    let rows: Vec<(Option<&str>, Got)> = vec![
        (None, Got::Close(1003)),
        (Some(""), bad.clone()),
        (Some("not json"), bad.clone()),
        (Some("{"), bad.clone()),
        (
            Some(r#"{"command": "join", "room": "1"} trailing"#),
            bad.clone(),
        ),
        (Some("[1]"), bad.clone()),
        (Some("[]"), bad.clone()),
        (Some(r#""join""#), bad.clone()),
        (Some("3"), bad.clone()),
        (Some("null"), bad.clone()),
        (Some("true"), bad.clone()),
        (Some(r#"{"command": "join"}"#), bad.clone()),
        (Some(r#"{"command": "leave"}"#), bad.clone()),
        (Some(r#"{"command": "send", "message": "x"}"#), bad.clone()),
        (Some(r#"{"command": "send", "room": "1"}"#), bad.clone()),
        (
            Some("{\"command\": \"send\", \"room\": \"1\", \"message\": \"a\u{1}b\"}"),
            bad.clone(),
        ),
        (Some(r#"{"command": "join", "room": NaN}"#), bad.clone()),
        (
            Some(r#"{"command": "join", "room": Infinity}"#),
            bad.clone(),
        ),
        (
            Some(r#"{"command": "leave", "room": -Infinity}"#),
            bad.clone(),
        ),
        (
            Some(r#"{"command": "join", "room": "abc"}"#),
            invalid.clone(),
        ),
        (
            Some(r#"{"command": "leave", "room": "abc"}"#),
            invalid.clone(),
        ),
        (Some(r#"{"command": "join", "room": ""}"#), invalid.clone()),
        (
            Some(r#"{"command": "join", "room": "1.0"}"#),
            invalid.clone(),
        ),
        (
            Some(r#"{"command": "join", "room": "1__0"}"#),
            invalid.clone(),
        ),
        (
            Some(r#"{"command": "join", "room": "\ud800"}"#),
            invalid.clone(),
        ),
        (Some(r#"{"command": "join", "room": [1]}"#), invalid.clone()),
        (
            Some(r#"{"command": "leave", "room": [1]}"#),
            invalid.clone(),
        ),
        (
            Some(r#"{"command": "join", "room": {"id": 1}}"#),
            invalid.clone(),
        ),
        (
            Some(r#"{"command": "send", "room": [1], "message": "x"}"#),
            invalid.clone(),
        ),
        (
            Some(r#"{"command": "send", "room": {}, "message": "x"}"#),
            invalid.clone(),
        ),
    ];
    let c = ck;
    for (frame, rs_want) in rows {
        let mut a = env.duo("sven", a_id).await;
        a.crash(c, frame, rs_want).await;
        a.close(1000).await;
    }
}
