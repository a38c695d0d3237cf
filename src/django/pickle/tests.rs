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
