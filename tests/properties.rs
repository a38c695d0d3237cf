//! Property tests (issue 10): every parser of hostile input terminates without a panic on
//! arbitrary input, and round-trips where a round trip exists: the frame → command parser, the
//! Python `int()` room parser, the `json.dumps` encoder, the session decoder, the signed-cookie
//! loader, the channel layer's msgpack decoder and the password-hash parser.

use proptest::prelude::*;

use whisper::chat::protocol::{self, Command};
use whisper::chat::roomid;
use whisper::django::hashers::{self, DjangoVersion, HasherConfig};
use whisper::django::pyjson::{self, Object, Separators, Value};
use whisper::django::sessions::{self, SESSION_SALT, SessionData};
use whisper::django::signing;
use whisper::fanout::msgpack;

const KEY: &str = "property-test-secret-key";

/// JSON values as Python's `json` holds them: finite floats, exact integers, any strings.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        ".{0,12}".prop_map(|s| Value::str(&s)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((".{0,6}", inner), 0..4).prop_map(|pairs| {
                let mut obj = Object::new();
                for (k, v) in pairs {
                    obj.insert(k.as_str(), v);
                }
                Value::Object(obj)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_command_parser_takes_any_text(text in "\\PC{0,64}") {
        let _ = protocol::parse_command(&text);
    }

    #[test]
    fn the_command_parser_takes_any_command_shaped_json(
        command in "(join|leave|send|room_users|other)",
        room in value(),
        message in value(),
    ) {
        let frame = format!(
            r#"{{"command": "{command}", "room": {}, "message": {}}}"#,
            pyjson::dumps(&room, Separators::Python),
            pyjson::dumps(&message, Separators::Python)
        );
        match protocol::parse_command(&frame) {
            Ok(Command::Join { room: r } | Command::Leave { room: r } | Command::RoomUsers { room: r }) => {
                prop_assert_eq!(r, room);
            }
            Ok(Command::Send { room: r, message: m }) => {
                prop_assert_eq!(r, room);
                prop_assert_eq!(m, message);
            }
            Err(_) => prop_assert_eq!(command, "other"),
        }
    }

    #[test]
    fn python_int_takes_any_room_value(room in value(), text in "[ \\t\\n0-9_+\\-a-f.]{0,24}") {
        let _ = roomid::python_int(&room);
        let _ = roomid::lookup_id(&room);
        let _ = roomid::python_int(&Value::str(&text));
    }

    #[test]
    fn python_int_reads_back_any_integer(n in any::<i64>(), pad in "[ \\t\\n]{0,3}") {
        let spelled = Value::str(&format!("{pad}{n}{pad}"));
        prop_assert_eq!(roomid::lookup_id(&spelled).unwrap(), Some(n));
        prop_assert_eq!(roomid::lookup_id(&Value::int(n)).unwrap(), Some(n));
    }

    #[test]
    fn json_dumps_round_trips(v in value()) {
        for sep in [Separators::Python, Separators::Compact] {
            let text = pyjson::dumps(&v, sep);
            prop_assert!(text.is_ascii(), "ensure_ascii: {}", text);
            prop_assert_eq!(pyjson::loads(&text).unwrap(), v.clone());
        }
    }

    #[test]
    fn json_loads_takes_any_text(text in "\\PC{0,64}") {
        if let Ok(v) = pyjson::loads(&text) {
            let again = pyjson::dumps(&v, Separators::Python);
            prop_assert_eq!(pyjson::loads(&again).unwrap(), v);
        }
    }

    #[test]
    fn sessions_round_trip_and_any_text_decodes_safely(
        entries in prop::collection::vec(("[a-z_]{1,8}", value()), 0..4),
        garbage in "\\PC{0,80}",
    ) {
        let mut data = SessionData::default();
        for (k, v) in entries {
            data.0.insert(k.as_str(), v);
        }
        let text = sessions::encode(&data, KEY, SESSION_SALT, 1_700_000_000);
        let back = sessions::decode(&text, &[KEY], SESSION_SALT, None, 1_700_000_000);
        prop_assert_eq!(back.map(|d| d.0), Some(data.0));
        let _ = sessions::decode(&garbage, &[KEY], SESSION_SALT, None, 0);
    }

    #[test]
    fn signed_cookies_round_trip_and_tampering_is_refused(
        payload in prop::collection::vec(any::<u8>(), 0..200),
        compress in any::<bool>(),
        flip in any::<usize>(),
        garbage in "\\PC{0,80}",
    ) {
        let salt = "django.contrib.sessions.backends.signed_cookies";
        let token = signing::dumps(&payload, KEY, salt, compress, 1_700_000_000);
        prop_assert_eq!(
            signing::loads(&token, &[KEY], salt, Some(60), 1_700_000_030).unwrap(),
            payload
        );
        prop_assert!(signing::loads(&token, &[KEY], salt, Some(60), 1_700_000_100).is_err());
        let mut bytes = token.clone().into_bytes();
        let i = flip % bytes.len();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        if let Ok(tampered) = String::from_utf8(bytes)
            && tampered != token
        {
            prop_assert!(signing::loads(&tampered, &[KEY], salt, None, 0).is_err());
        }
        let _ = signing::loads(&garbage, &[KEY], salt, None, 0);
    }

    #[test]
    fn msgpack_round_trips_and_any_bytes_decode_safely(
        v in value(),
        bytes in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut out = Vec::new();
        if msgpack::write_value(&v, &mut out) {
            prop_assert_eq!(msgpack::read_value(&out).unwrap(), v);
        }
        let _ = msgpack::read_value(&bytes);
    }
}

proptest! {
    // A hash that does not parse still costs a dummy hash at Django's iterations (timing), so
    // fewer cases.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn password_hashes_of_any_shape_are_refused_safely(
        algorithm in "(pbkdf2_sha256|pbkdf2_sha1|argon2|bcrypt_sha256|bcrypt|scrypt|md5|sha1|unsalted_md5|unsalted_sha1|crypt|x)?",
        // Numbers stay one digit: a stored hash is the database's, not the attacker's, and
        // "pbkdf2_sha256$999999999$…" would merely be slow.
        fields in prop::collection::vec("[a-zA-Z=,+/.]{0,8}|[0-9]", 0..6),
        password in "\\PC{0,16}",
    ) {
        let encoded = std::iter::once(algorithm.as_str())
            .chain(fields.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("$");
        let cfg = HasherConfig::new(DjangoVersion::V5_2);
        let _ = hashers::verify_password(&password, &encoded, &cfg);
    }
}

/// The hash parser's round trip, on cheap parameters (one case per hasher would take seconds
/// at Django's iteration counts).
#[test]
fn password_hashes_round_trip() {
    let cfg = HasherConfig::with_hashers(DjangoVersion::V5_2, &["md5"]).unwrap();
    for password in ["", "correct horse", "é\u{0}☃"] {
        let encoded = hashers::make_password_with(password, "md5", "seasalt", &cfg).unwrap();
        assert!(
            hashers::verify_password(password, &encoded, &cfg).ok,
            "{encoded}"
        );
        assert!(!hashers::verify_password("other", &encoded, &cfg).ok);
    }
}
