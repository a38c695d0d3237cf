//! The codec against CPython's own bytes (`tests/data/pickle-golden.json`, made by
//! `compat/testdata/pickle_golden.py`, run by `compat/make_testdata.py`), and hostile streams
//! that must be refused without a panic.

use num_bigint::BigInt;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::*;

const GOLDEN: &str = include_str!("../../../tests/data/pickle-golden.json");

fn golden() -> Json {
    serde_json::from_str(GOLDEN).expect("pickle-golden.json parses")
}

/// The tagged JSON form of the generator back to a value.
fn untag(tagged: &Json) -> PyValue {
    let (tag, v) = tagged
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("a tagged value");
    let text = |v: &Json| v.as_str().expect("a string").to_string();
    let count = |v: &Json| v.as_u64().expect("a count") as usize;
    let padded = |prefix: &Json, width: &Json, i: usize| {
        format!("{}{:0w$}", text(prefix), i, w = count(width))
    };
    match tag.as_str() {
        "none" => PyValue::None,
        "bool" => PyValue::Bool(v.as_bool().unwrap()),
        "int" => PyValue::Int(text(v).parse().unwrap()),
        "float" => PyValue::Float(text(v).parse().unwrap()),
        "str" => PyValue::Str(text(v)),
        "strx" => PyValue::Str(text(&v[0]).repeat(count(&v[1]))),
        "bytes" => PyValue::Bytes(hex::decode(text(v)).unwrap()),
        "bytesx" => PyValue::Bytes(vec![count(&v[0]) as u8; count(&v[1])]),
        "list" => PyValue::List(v.as_array().unwrap().iter().map(untag).collect()),
        "tuple" => PyValue::Tuple(v.as_array().unwrap().iter().map(untag).collect()),
        "dict" => PyValue::Dict(
            v.as_array()
                .unwrap()
                .iter()
                .map(|pair| {
                    let key = match untag(&pair[0]) {
                        PyValue::Str(s) => DictKey::Str(s),
                        PyValue::Int(n) => DictKey::Int(n),
                        other => panic!("key {other:?}"),
                    };
                    (key, untag(&pair[1]))
                })
                .collect(),
        ),
        "range" => PyValue::List((0..count(v) as i64).map(PyValue::int).collect()),
        "int_dict" => PyValue::Dict(
            (0..count(v) as i64)
                .map(|i| (DictKey::from(i), PyValue::int(i)))
                .collect(),
        ),
        "fmt_dict" => PyValue::Dict(
            (0..count(&v[0]))
                .map(|i| {
                    (
                        DictKey::Str(padded(&v[1], &v[2], i)),
                        PyValue::Str(padded(&v[3], &v[4], i)),
                    )
                })
                .collect(),
        ),
        "fmt_pairs" => PyValue::List(
            (0..count(&v[0]))
                .map(|i| {
                    PyValue::Tuple(vec![
                        PyValue::Str(padded(&v[1], &v[2], i)),
                        PyValue::int(i as i64),
                    ])
                })
                .collect(),
        ),
        other => panic!("unknown tag {other}"),
    }
}

/// `nan != nan`, so compare floats by bits.
fn same(a: &PyValue, b: &PyValue) -> bool {
    match (a, b) {
        (PyValue::Float(x), PyValue::Float(y)) => x.to_bits() == y.to_bits(),
        (PyValue::List(x), PyValue::List(y)) | (PyValue::Tuple(x), PyValue::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (PyValue::Dict(x), PyValue::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        _ => a == b,
    }
}

#[test]
fn encodes_exactly_what_cpython_writes_and_reads_it_back() {
    let doc = golden();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let value = untag(&case["value"]);
        for (key, protocol) in [("4", Protocol::V4), ("5", Protocol::V5)] {
            let want = &case[key];
            let mine = dumps(&value, protocol);
            match want.get("hex").and_then(Json::as_str) {
                Some(hex) => assert_eq!(
                    hex::encode(&mine),
                    hex,
                    "{name} (protocol {key}): bytes differ from CPython's"
                ),
                None => {
                    assert_eq!(
                        mine.len() as u64,
                        want["length"].as_u64().unwrap(),
                        "{name} (protocol {key}): length"
                    );
                    assert_eq!(
                        hex::encode(Sha256::digest(&mine)),
                        want["sha256"].as_str().unwrap(),
                        "{name} (protocol {key}): bytes differ from CPython's"
                    );
                }
            }
            // CPython's bytes (equal to ours) read back as the value, in order (ints beyond
            // 64 bits are refused: see `ints_beyond_64_bits_are_refused_and_the_others_read`).
            if !matches!(name, "ints" | "int keys") {
                let back = loads(&mine).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(same(&back, &value), "{name}: read back {back:?}");
            }
        }
    }
}

#[test]
fn ints_beyond_64_bits_are_refused_and_the_others_read() {
    let doc = golden();
    let ints = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ints")
        .unwrap();
    let PyValue::Dict(all) = untag(&ints["value"]) else {
        panic!()
    };
    for (key, value) in all.iter() {
        let mut one = PyDict::new();
        one.insert(key.clone(), value.clone());
        let one = PyValue::Dict(one);
        let PyValue::Int(n) = value else { panic!() };
        let fits = i64::try_from(n).is_ok();
        match loads(&dumps(&one, Protocol::V5)) {
            Ok(back) => assert!(fits && back == one, "{key}: {back:?}"),
            Err(e) => assert!(!fits && e == PickleError::BigInt, "{key}: {e}"),
        }
    }
}

#[test]
fn dict_order_and_tuples_survive() {
    let mut inner = PyDict::new();
    inner.insert(
        "z",
        PyValue::Tuple(vec![PyValue::int(1), PyValue::List(vec![])]),
    );
    inner.insert(
        "a",
        PyValue::List(vec![PyValue::Tuple(vec![]), PyValue::str("x")]),
    );
    let mut outer = PyDict::new();
    outer.insert(3, PyValue::Dict(inner));
    outer.insert(1, PyValue::Tuple(vec![PyValue::Tuple(vec![PyValue::None])]));
    outer.insert("m", PyValue::Bytes(b"\x00".to_vec()));
    let value = PyValue::Dict(outer);
    assert_eq!(loads(&dumps(&value, Protocol::V4)).unwrap(), value);
}

#[test]
fn hostile_pickles_from_cpython_are_refused_with_the_reason() {
    let doc = golden();
    for case in doc["hostile"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let data = hex::decode(case["pickle"].as_str().unwrap()).unwrap();
        let reason = case["reason"].as_str().unwrap().to_lowercase();
        let err = loads(&data).expect_err(name).to_string();
        assert!(
            err.to_lowercase().contains(&reason),
            "{name}: refused as {err:?}, expected {reason:?}"
        );
    }
}

fn proto4(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80, 4];
    out.extend_from_slice(body);
    out
}

#[test]
fn bombs_are_refused_before_the_crate_sees_them() {
    // 100,000 nested lists: refused by depth, no stack overflow.
    let n = 100_000;
    let mut deep = proto4(&vec![b']'; n]);
    deep.extend(std::iter::repeat_n(b'a', n - 1));
    deep.push(b'.');
    assert!(matches!(loads(&deep), Err(PickleError::TooDeep(64))));
    // 100,000 open MARKs (the crate allocates ~5 KiB for each).
    let mut marks = proto4(&vec![b'('; n]);
    marks.extend_from_slice(b"N.");
    assert!(matches!(loads(&marks), Err(PickleError::TooDeep(64))));
    // A 255-byte string read back 300,000 times from the memo (75 MB of copies).
    let mut bomb = proto4(b"\x8c\xff");
    bomb.extend(std::iter::repeat_n(b'a', 255));
    bomb.extend_from_slice(b"\x94](");
    for _ in 0..300_000 {
        bomb.extend_from_slice(b"h\x00");
    }
    bomb.extend_from_slice(b"e.");
    assert!(
        matches!(loads(&bomb), Err(PickleError::Budget(_))),
        "{bomb:?}"
    );
    // The same with a smaller string stays within the input cap but not the value budget.
    let mut many = proto4(b"](");
    many.extend(std::iter::repeat_n(b'N', 300_000));
    many.extend_from_slice(b"e.");
    assert!(matches!(loads(&many), Err(PickleError::Budget(_))));
    // A list holding one list 1000 times, which holds another 1000 times ("billion laughs").
    let mut laughs = proto4(b"]\x94");
    laughs.extend_from_slice(b"]\x94(");
    laughs.extend(std::iter::repeat_n(*b"h\x00", 1000).flatten());
    laughs.extend_from_slice(b"e.");
    let err = loads(&laughs).unwrap_err().to_string();
    assert!(err.contains("shared"), "{err}");
    // Over the input cap.
    let big = vec![b'N'; (1 << 20) + 1];
    assert!(matches!(loads(&big), Err(PickleError::TooLarge { .. })));
}

#[test]
fn every_truncation_of_a_real_pickle_is_refused_without_panic() {
    let mut dict = PyDict::new();
    dict.insert("_auth_user_id", PyValue::str("1"));
    dict.insert("n", PyValue::Int(BigInt::from(-5_000_000_000i64)));
    dict.insert("f", PyValue::Float(1.5));
    dict.insert(
        "l",
        PyValue::List(vec![PyValue::Bool(true), PyValue::Bytes(vec![1])]),
    );
    let data = dumps(&PyValue::Dict(dict), Protocol::V5);
    for end in 0..data.len() {
        assert!(loads(&data[..end]).is_err(), "prefix of {end} bytes");
    }
    // Every single-byte corruption: an answer (error or value), never a panic.
    for i in 0..data.len() {
        for b in [0u8, 0x7f, 0x80, 0xff, b'(', b'.', b'h', b'c', b'R'] {
            let mut bad = data.clone();
            bad[i] = b;
            let _ = loads(&bad);
        }
    }
}

#[test]
fn limits_are_configurable() {
    let value = PyValue::List(vec![PyValue::List(vec![PyValue::List(vec![])])]);
    let data = dumps(&value, Protocol::V4);
    let tight = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    assert_eq!(loads_with(&data, tight), Err(PickleError::TooDeep(2)));
    assert_eq!(loads(&data).unwrap(), value);
}

/// A presence dict of `n` users as the fork stores it.
fn presence(n: i64) -> PyValue {
    let mut all = PyDict::new();
    for id in 1..=n {
        let mut e = PyDict::new();
        e.insert("username", PyValue::str(format!("user{id}")));
        e.insert("name", PyValue::str(format!("User Number {id}")));
        e.insert("left", PyValue::Bool(id % 3 == 0));
        e.insert("last_update", PyValue::Float(1_700_000_000.25 + id as f64));
        all.insert(id, PyValue::Dict(e));
    }
    PyValue::Dict(all)
}

/// Time per `loads` of a 10-entry presence dict; printed, not asserted
/// (`cargo test --release --lib pickle::tests::loads_speed -- --nocapture`).
#[test]
fn loads_speed() {
    let value = presence(10);
    let data = dumps(&value, Protocol::V5);
    assert_eq!(loads(&data).unwrap(), value);
    let start = std::time::Instant::now();
    let mut runs = 0u32;
    while runs < 1000 || start.elapsed() < std::time::Duration::from_millis(300) {
        std::hint::black_box(loads(std::hint::black_box(&data)).unwrap());
        runs += 1;
    }
    let ns = start.elapsed().as_nanos() / u128::from(runs);
    println!(
        "loads of a {}-byte presence dict: {ns} ns ({runs} runs)",
        data.len()
    );
}

#[test]
fn cpythons_own_bytes_read_as_the_golden_values() {
    let doc = golden();
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let value = untag(&case["value"]);
        for key in ["4", "5"] {
            let Some(hex) = case[key].get("hex").and_then(Json::as_str) else {
                continue;
            };
            let data = hex::decode(hex).unwrap();
            match loads(&data) {
                Ok(back) => assert!(same(&back, &value), "{name} ({key}): read {back:?}"),
                // Only the cases holding an int beyond 64 bits are refused, and for that.
                Err(e) => assert!(
                    matches!(name, "ints" | "int keys") && e == PickleError::BigInt,
                    "{name} ({key}): {e}"
                ),
            }
        }
    }
}

#[test]
fn reads_what_dumps_writes_for_nested_values() {
    let edges = [
        0,
        1,
        -1,
        255,
        256,
        65_535,
        65_536,
        i64::from(i32::MAX),
        i64::from(i32::MIN),
        i64::from(i32::MAX) + 1,
        i64::from(i32::MIN) - 1,
        i64::MAX,
        i64::MIN,
        i64::MAX - 1,
        i64::MIN + 1,
    ];
    let ints = PyValue::List(edges.iter().map(|&n| PyValue::int(n)).collect());
    let floats = PyValue::Tuple(
        [
            0.0,
            -0.0,
            1.5,
            -2.25e300,
            f64::MIN_POSITIVE / 4.0,
            f64::INFINITY,
            f64::NAN,
        ]
        .into_iter()
        .map(PyValue::Float)
        .collect(),
    );
    let bytes = PyValue::List(vec![
        PyValue::Bytes(vec![]),
        PyValue::Bytes(vec![]),
        PyValue::Bytes(vec![0xff]),
        PyValue::Bytes(vec![0xff]),
        PyValue::Bytes((0..=255).collect()),
        PyValue::Bytes(vec![7; 70_000]),
    ]);
    // Dicts with the same keys (memoized once, read back with BINGET), strings CPython shares.
    let entry = |i: i64| {
        let mut d = PyDict::new();
        d.insert("name", PyValue::str(format!("née {i}")));
        d.insert(
            "tags",
            PyValue::List(vec![PyValue::str("a"), PyValue::str("")]),
        );
        d.insert(
            i,
            PyValue::Tuple(vec![PyValue::None, PyValue::Bool(i % 2 == 0)]),
        );
        PyValue::Dict(d)
    };
    let mut big = PyDict::new();
    for i in 0..1001 {
        big.insert(DictKey::Str(format!("k{i}")), PyValue::int(-i));
    }
    let value = PyValue::Tuple(vec![
        PyValue::List((0..300).map(entry).collect()),
        ints,
        floats,
        bytes,
        PyValue::str("x".repeat(300)),
        PyValue::str("☃".repeat(30_000)),
        PyValue::Dict(big),
        PyValue::Tuple(vec![PyValue::Tuple(vec![]), PyValue::List(vec![])]),
    ]);
    for protocol in [Protocol::V4, Protocol::V5] {
        let data = dumps(&value, protocol);
        // The 300 entries share their keys: LONG_BINGET past memo slot 255.
        assert!(data.contains(&b'j'));
        let back = loads(&data).unwrap();
        assert!(same(&back, &value), "{protocol:?}");
    }
}

#[test]
fn hand_written_streams_read_or_are_refused_as_python_would() {
    let ok = |body: &[u8]| loads(&proto4(body)).unwrap_or_else(|e| panic!("{body:?}: {e}"));
    let err = |body: &[u8]| loads(&proto4(body)).unwrap_err();
    // BINPUT and LONG_BINPUT with ids out of order (protocol 2 style), read back.
    let v = ok(b"(\x8c\x01aq\x07\x8c\x01br\x00\x00\x01\x00h\x07j\x00\x00\x01\x00t.");
    let strs = |s: &[&str]| PyValue::Tuple(s.iter().map(|s| PyValue::str(*s)).collect());
    assert_eq!(v, strs(&["a", "b", "a", "b"]));
    // A slot set out of order, then reached by MEMOIZE's count, is a reuse.
    let e = err(b"N\x94Nq\x02N\x94N\x94N.");
    assert!(e.to_string().contains("memo slot 2 reused"), "{e}");
    assert!(
        err(b"Nq\x01h\x00.")
            .to_string()
            .contains("before it is set")
    );
    assert!(err(b"N\x94\x94.").to_string().contains("memoized twice"));
    assert!(
        err(b"N\x94h\x00\x94.")
            .to_string()
            .contains("memoized twice")
    );
    assert!(err(b"}\x94h\x00.").to_string().contains("shared"));
    // LONG1: empty is 0, nine bytes fit when the ninth repeats the sign.
    assert_eq!(ok(b"\x8a\x00."), PyValue::int(0));
    assert_eq!(
        ok(b"\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\xff."),
        PyValue::int(-1)
    );
    assert_eq!(ok(b"\x8a\x01\x80."), PyValue::int(-128));
    assert_eq!(
        err(b"\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\xff."),
        PickleError::BigInt
    );
    assert_eq!(
        err(b"\x8b\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01."),
        PickleError::BigInt
    );
    // Dict keys: str and int only; a repeated key keeps its place and takes the last value.
    for (body, name) in [
        (&b"}(\x88N\x8c\x01aNu."[..], "bool"),
        (b"}(N\x8c\x01au.", "NoneType"),
        (b"}G\x3f\xf0\x00\x00\x00\x00\x00\x00Ns.", "float"),
        (b"}(C\x01aNu.", "bytes"),
        (b"}]Ns.", "list"),
        (b"})Ns.", "tuple"),
    ] {
        let want = format!("a dict key of type {name} (only str and int keys are read)");
        assert_eq!(err(body), PickleError::Unsupported(want));
    }
    let PyValue::Dict(d) = ok(b"}(\x8c\x01aK\x01K\x02K\x02\x8c\x01aK\x03u.") else {
        panic!()
    };
    let entries: Vec<_> = d.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    assert_eq!(
        entries,
        [
            ("\"a\"".into(), PyValue::int(3)),
            ("2".into(), PyValue::int(2))
        ]
    );
    // Stack and MARK errors.
    for body in [
        &b"a."[..],
        b"]a.",
        b"(]e(.",
        b"e.",
        b"N(s.",
        b"N(Nu.",
        b"(N.",
        b"N)s.",
        b")Na.",
    ] {
        assert!(matches!(err(body), PickleError::Malformed(_)), "{body:?}");
    }
}
