//! Unit tests for `pyjson`: float `repr`, escaping, grammar, limits and the `Object` API.

use std::fmt::Write as _;

use super::parse::{E_CONTROL, E_EXTRA, E_PROP, E_VALUE};
use super::*;

fn py(s: &str) -> String {
    dumps(&loads(s).expect(s), Separators::Python)
}

fn err(s: &str) -> JsonError {
    loads(s).expect_err(s)
}

fn is_syntax(e: &JsonError) -> bool {
    matches!(e, JsonError::Syntax { .. })
}

fn repr(f: f64) -> String {
    let mut s = String::new();
    float_repr(f, &mut s);
    s
}

#[test]
#[allow(clippy::excessive_precision)] // over-long literals are part of what is tested
fn float_repr_matches_python() {
    let cases: &[(f64, &str)] = &[
        (1.0, "1.0"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.5, "1.5"),
        (100.0, "100.0"),
        (1e-7, "1e-07"),
        (1.5e300, "1.5e+300"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (1e17, "1e+17"),
        (123456789.123456789, "123456789.12345679"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (0.1, "0.1"),
        (-2.5e-5, "-2.5e-05"),
        (1.2345678901234567e-100, "1.2345678901234567e-100"),
        (9007199254740993.0, "9007199254740992.0"),
        (1234567890123456.7, "1234567890123456.8"),
        (12345678901234567.0, "1.2345678901234568e+16"),
        (0.30000000000000004, "0.30000000000000004"),
        // Ties between two shortest strings: Python rounds half to even.
        (-1113178120592002.25, "-1113178120592002.2"),
        (111659285584252.125, "111659285584252.12"),
        (2053637337633904.25, "2053637337633904.2"),
        (f64::INFINITY, "Infinity"),
        (f64::NEG_INFINITY, "-Infinity"),
        (f64::NAN, "NaN"),
    ];
    for &(f, want) in cases {
        assert_eq!(repr(f), want, "repr of {f:?}");
    }
}

#[test]
fn strings_escape_like_python() {
    let mut out = String::new();
    write_str("a\"b\\c/d\n\r\t\u{8}\u{c}\u{1}\u{7f}é☃😀", &mut out);
    assert_eq!(
        out,
        r#""a\"b\\c/d\n\r\t\b\f\u0001\u007f\u00e9\u2603\ud83d\ude00""#
    );
    let mut out2 = String::new();
    write_pystr(
        &PyStr::from("a\"b\\c/d\n\r\t\u{8}\u{c}\u{1}\u{7f}é☃😀"),
        &mut out2,
    );
    assert_eq!(out, out2);
    assert_eq!(py(r#""\u00C4\u00e4""#), r#""\u00c4\u00e4""#);
    assert_eq!(py(r#""\/""#), r#""/""#);
}

#[test]
fn lone_surrogates_round_trip() {
    let v = loads(r#""\ud800x\uDC00""#).unwrap();
    let Value::Str(s) = &v else { panic!() };
    assert_eq!(s.units(), &[0xd800, 0x78, 0xdc00]);
    assert_eq!(s.as_string(), None);
    assert_eq!(s.to_string_lossy(), "\u{fffd}x\u{fffd}");
    assert_eq!(dumps(&v, Separators::Python), r#""\ud800x\udc00""#);
    // A pair joins into one character, the same as the raw character.
    assert_eq!(
        loads(r#""\ud83d\ude00""#).unwrap(),
        loads("\"😀\"").unwrap()
    );
    assert_eq!(
        loads(r#""\ud83d\ude00""#).unwrap().as_str().as_deref(),
        Some("😀")
    );
    assert_eq!(py(r#""\udc00\ud800""#), r#""\udc00\ud800""#);
}

#[test]
fn control_chars_rejected() {
    for s in ["\"a\nb\"", "\"\t\"", "\"\u{0}\"", "\"\u{1f}\""] {
        assert!(
            matches!(err(s), JsonError::Syntax { msg: E_CONTROL, .. }),
            "{s:?}"
        );
    }
    // 0x7f is not a control character for JSON.
    assert_eq!(py("\"\u{7f}\""), r#""\u007f""#);
}

#[test]
fn invalid_grammar() {
    for s in [
        "01",
        "-01",
        "1.",
        ".5",
        "+1",
        "-",
        "1e",
        "1e+",
        "1.e5",
        "[1,]",
        "{\"a\":1,}",
        r#""\x""#,
        r#""\u12""#,
        r#""\u12g4""#,
        "",
        " ",
        "[",
        "{",
        "[1 2]",
        "{\"a\" 1}",
        "{1:2}",
        "{'a':1}",
        "tru",
        "nul",
        "True",
        "None",
        "\"abc",
        "[1]]",
        "1 2",
        "\u{feff}1",
        "\u{a0}1",
        "\u{b}1",
        "Nan",
        "-Inf",
        "infinity",
        "[1,,2]",
        "[,]",
        "{,}",
        "\"\\",
        "{\"a\":}",
        "0x10",
    ] {
        assert!(is_syntax(&err(s)), "{s:?} gave {:?}", loads(s));
    }
    assert_eq!(
        err("[1,]"),
        JsonError::Syntax {
            pos: 3,
            msg: E_VALUE
        }
    );
    assert_eq!(
        err("{\"a\":1,}"),
        JsonError::Syntax {
            pos: 7,
            msg: E_PROP
        }
    );
    assert_eq!(
        err("01"),
        JsonError::Syntax {
            pos: 1,
            msg: E_EXTRA
        }
    );
}

#[test]
fn valid_grammar() {
    assert_eq!(py(" \t\r\n[ 1 ,\n2 ] \n"), "[1, 2]");
    assert_eq!(py("-0"), "0");
    assert_eq!(py("-0.0"), "-0.0");
    assert_eq!(py("0e0"), "0.0");
    assert_eq!(py("1E+2"), "100.0");
    assert_eq!(py("1e-2"), "0.01");
    assert_eq!(py("-1e-400"), "-0.0");
    assert_eq!(py("[true,false,null]"), "[true, false, null]");
    assert_eq!(
        py("123456789012345678901234567890"),
        "123456789012345678901234567890"
    );
    assert_eq!(py("-9223372036854775809"), "-9223372036854775809");
    assert_eq!(loads("-0").unwrap(), Value::int(0));
    assert_eq!(loads("2.50").unwrap(), Value::Float(2.5));
    assert_eq!(loads("\"x\"").unwrap(), Value::str("x"));
}

#[test]
fn non_finite_refused() {
    for s in [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
        "[1, NaN]",
        "{\"a\": {\"b\": [Infinity]}}",
    ] {
        assert_eq!(err(s), JsonError::NonFinite, "{s}");
    }
    // Invalid JSON anyway: a syntax error, as Python would crash on it.
    assert!(is_syntax(&err("NaNx")));
    assert!(is_syntax(&err("[NaN,]")));
}

#[test]
fn depth_limit() {
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert_eq!(dumps(&loads(&ok).unwrap(), Separators::Compact), ok);
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    assert_eq!(err(&deep), JsonError::TooDeep);
    let deep_obj = "{\"a\":".repeat(MAX_DEPTH + 1);
    assert_eq!(err(&deep_obj), JsonError::TooDeep);
    // No recursion: a huge unclosed nest fails fast.
    assert_eq!(err(&"[".repeat(1_000_000)), JsonError::TooDeep);
}

#[test]
fn int_digit_limit() {
    let max = "7".repeat(MAX_INT_DIGITS);
    assert_eq!(py(&max), max);
    let neg = format!("-{max}");
    assert_eq!(py(&neg), neg);
    assert_eq!(err(&format!("{max}7")), JsonError::IntTooLong);
    assert_eq!(err(&format!("[-{max}7]")), JsonError::IntTooLong);
    // Floats are not limited by digits.
    let f = format!("0.{max}");
    assert!(matches!(loads(&f).unwrap(), Value::Float(_)));
}

#[test]
fn duplicate_keys_last_value_first_position() {
    assert_eq!(
        py(r#"{"a": 1, "b": 2, "a": 3, "c": 4, "b": 5}"#),
        r#"{"a": 3, "b": 5, "c": 4}"#
    );
    // Large objects take the sorting path.
    let mut text = String::from("{");
    for i in 0..100 {
        let _ = write!(text, "\"k{}\": {i}, ", i % 40);
    }
    text.push_str("\"z\": 0}");
    let mut want = String::from("{");
    for k in 0..40 {
        let last = (0..100).filter(|i| i % 40 == k).max().unwrap();
        let _ = write!(want, "\"k{k}\": {last}, ");
    }
    want.push_str("\"z\": 0}");
    assert_eq!(py(&text), want);
    // Escaped and raw spellings of one key are the same key.
    assert_eq!(py(r#"{"é": 1, "\u00e9": 2}"#), r#"{"\u00e9": 2}"#);
}

#[test]
fn object_api() {
    let mut o = Object::new();
    o.insert("msg_type", Value::int(0));
    o.insert("room", Value::str("1"));
    o.insert("msg_type", Value::int(4));
    assert_eq!(o.len(), 2);
    assert!(o.contains_key("room"));
    assert_eq!(o.get("msg_type"), Some(&Value::int(4)));
    assert_eq!(
        dumps(&Value::Object(o.clone()), Separators::Python),
        r#"{"msg_type": 4, "room": "1"}"#
    );
    assert_eq!(o.remove("msg_type"), Some(Value::int(4)));
    assert_eq!(o.remove("msg_type"), None);
    assert_eq!(o.iter().count(), 1);
    assert!(!o.is_empty());
    assert!(PyStr::from("join").eq_str("join"));
    assert!(!PyStr::from("join").eq_str("joi"));
    assert!(!PyStr::from("joi").eq_str("join"));
    let emoji = PyStr::from("😀");
    assert!(emoji == "😀");
    assert_eq!(emoji.units(), &[0xd83d, 0xde00]);
}

#[test]
fn compact_separators() {
    let v = loads(r#"{"a": [1, 2.5, null, true], "b": {"c": "d"}, "e": []}"#).unwrap();
    assert_eq!(
        dumps(&v, Separators::Compact),
        r#"{"a":[1,2.5,null,true],"b":{"c":"d"},"e":[]}"#
    );
    assert_eq!(
        dumps(&v, Separators::Python),
        r#"{"a": [1, 2.5, null, true], "b": {"c": "d"}, "e": []}"#
    );
    assert_eq!(
        dumps(&Value::Object(Object::new()), Separators::Compact),
        "{}"
    );
}

#[test]
fn errors_display() {
    assert_eq!(err("[").to_string(), "Expecting value (byte 1)");
    assert_eq!(
        JsonError::IntTooLong.to_string(),
        "Exceeds the limit (4300 digits) for integer string conversion"
    );
}
