//! Golden vectors made by CPython's own `json` and `int()` (`tests/data/json-golden.json`, made
//! by `compat/testdata/json_golden.py`): outbound chat frames must be byte-identical, and room
//! values must convert like Django's pk lookup.

use num_bigint::BigInt;
use whisper::chat::roomid::python_int;
use whisper::django::pyjson::{JsonError, Object, Separators, Value, dumps, loads};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/json-golden.json");

fn golden() -> serde_json::Value {
    let text = std::fs::read_to_string(GOLDEN)
        .unwrap_or_else(|e| panic!("golden file {GOLDEN} is required: {e}"));
    serde_json::from_str(&text).expect("golden file is JSON")
}

fn cases<'a>(g: &'a serde_json::Value, name: &str) -> &'a Vec<serde_json::Value> {
    let list = g[name]
        .as_array()
        .unwrap_or_else(|| panic!("no {name} list"));
    assert!(!list.is_empty(), "{name} list is empty");
    list
}

fn text<'a>(case: &'a serde_json::Value, field: &str) -> &'a str {
    case[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {case}"))
}

#[test]
fn message_echo_frames_are_byte_identical() {
    let g = golden();
    let list = cases(&g, "message_echo");
    let (mut strict, mut refused) = (0, 0);
    for case in list {
        let frame = text(case, "client_frame");
        let want = text(case, "server_frame");
        let is_strict = case["strict_json"].as_bool().expect("strict_json");
        if !is_strict {
            assert_eq!(loads(frame), Err(JsonError::NonFinite), "{frame}");
            refused += 1;
            continue;
        }
        let v = loads(frame).unwrap_or_else(|e| panic!("{frame}: {e}"));
        let cmd = v.as_object().expect("frame is an object");
        assert!(cmd.get("command").unwrap().is_str("send"));
        let mut event = Object::new();
        event.insert("msg_type", Value::int(0));
        event.insert("room", cmd.get("room").expect("room").clone());
        event.insert("username", Value::str("u"));
        event.insert("message", cmd.get("message").expect("message").clone());
        assert_eq!(
            dumps(&Value::Object(event), Separators::Python),
            want,
            "{frame}"
        );
        strict += 1;
    }
    assert_eq!(strict + refused, list.len());
    assert!(refused >= 2, "expected the Infinity cases to be present");
}

#[test]
fn room_ids_convert_like_python_int() {
    let g = golden();
    let list = cases(&g, "room_id");
    for case in list {
        let json = text(case, "room_json");
        let v = loads(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        let got = python_int(&v);
        match &case["lookup"] {
            serde_json::Value::Number(n) => {
                // serde_json keeps the exact digits (arbitrary_precision).
                let want: BigInt = n.to_string().parse().expect("integer lookup");
                assert_eq!(got, Ok(Some(want)), "{json}");
            }
            serde_json::Value::String(s) if s == "error" => {
                assert!(got.is_err(), "{json}: expected an error, got {got:?}");
            }
            serde_json::Value::String(s) if s.starts_with("no row") => {
                assert_eq!(got, Ok(None), "{json}");
            }
            other => panic!("unexpected lookup {other}"),
        }
        assert_eq!(
            dumps(&v, Separators::Python),
            text(case, "echoed_room_field"),
            "{json}"
        );
    }
}
