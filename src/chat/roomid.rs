//! What Django does with the client's raw `room` value (spec `multichat-protocol.md` §4.5, §4.6):
//! the integer it becomes for the primary-key lookup (Python `int()`, as
//! `IntegerField.get_prep_value` applies it) and the key it is stored under in a connection's
//! `rooms` set (Python equality and hashing).
//!
//! `int(str)` follows CPython 3.11 exactly: non-ASCII Unicode white space and the ASCII
//! characters `" \t\n\x0b\x0c\r"` are stripped at both ends (`\x1c`–`\x1f` are *not*: CPython only
//! maps non-ASCII spaces before stripping, so `int("1\x1c")` raises), then an optional `+`/`-`,
//! then Unicode decimal digits (category Nd) with single `_` between digits. More than 4300
//! digits raise, like CPython's default int max str digits.

use num_bigint::BigInt;

use crate::django::pyjson::{PyStr, Value};

/// Where Python's `int()` raises (`ValueError`, `TypeError`, `OverflowError`): the original
/// server crashes with close code 1011.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAnInteger;

impl std::fmt::Display for NotAnInteger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("room value is not convertible with int()")
    }
}

impl std::error::Error for NotAnInteger {}

/// Where Python's `hash()` raises (`list`, `dict`): the original server crashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhashable;

impl std::fmt::Display for Unhashable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unhashable room value")
    }
}

impl std::error::Error for Unhashable {}

/// CPython's default `sys.get_int_max_str_digits()`.
const MAX_STR_DIGITS: usize = 4300;

/// Python `int(value)` as Django's pk lookup applies it: `Ok(Some(n))` for a number; `Ok(None)`
/// where the lookup finds no row without raising (JSON null); `Err` where Python raises
/// (non-numeric string, list, dict, NaN/inf float).
pub fn python_int(v: &Value) -> Result<Option<BigInt>, NotAnInteger> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(BigInt::from(u8::from(*b)))),
        Value::Int(n) => Ok(Some(n.clone())),
        Value::Float(f) => {
            if f.is_finite() {
                Ok(Some(integral_f64_to_bigint(f.trunc())))
            } else {
                Err(NotAnInteger)
            }
        }
        Value::Str(s) => int_from_pystr(s).map(Some),
        Value::Array(_) | Value::Object(_) => Err(NotAnInteger),
    }
}

/// The DB id to look up: `Ok(None)` = no row can match (null, or outside i64 — Django 5.2
/// answers `ROOM_INVALID` for those).
pub fn lookup_id(v: &Value) -> Result<Option<i64>, NotAnInteger> {
    Ok(python_int(v)?.and_then(|n| i64::try_from(&n).ok()))
}

/// The exact integer value of a finite, integral `f64`.
fn integral_f64_to_bigint(f: f64) -> BigInt {
    debug_assert!(f.is_finite() && f.trunc() == f);
    let bits = f.to_bits();
    let neg = bits >> 63 == 1;
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1u64 << 52) - 1);
    if biased == 0 {
        // Zero or subnormal; an integral subnormal is zero.
        return BigInt::from(0);
    }
    let mant = frac | (1u64 << 52);
    let shift = biased - 1075;
    let mag = if shift >= 0 {
        BigInt::from(mant) << (shift as usize)
    } else {
        // Exact because the value is integral.
        BigInt::from(mant >> ((-shift) as u32))
    };
    if neg { -mag } else { mag }
}

/// `str.isspace()` as CPython's `int()` strips it (see the module docs).
fn is_int_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'
            | '\n'
            | '\u{0b}'
            | '\u{0c}'
            | '\r'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

/// The first code point of every block of ten Unicode decimal digits (category Nd, Unicode 14.0,
/// as in CPython 3.11's `unicodedata`). Every Nd character is `zero + d` for one of these.
const ND_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66,
    0xde6, 0xe50, 0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90,
    0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10,
    0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650,
    0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50,
    0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
];

/// The decimal value of a Unicode decimal digit (Python `unicodedata.decimal`).
fn decimal_digit(c: char) -> Option<u8> {
    let cp = c as u32;
    if c.is_ascii_digit() {
        return Some((cp - 0x30) as u8);
    }
    // Last block whose zero is <= cp.
    let i = ND_ZEROS.partition_point(|&z| z <= cp);
    let zero = ND_ZEROS[i.checked_sub(1)?];
    let d = cp - zero;
    (d < 10).then_some(d as u8)
}

/// CPython 3.11 `int(s)` for a `str` (base 10).
fn int_from_pystr(s: &PyStr) -> Result<BigInt, NotAnInteger> {
    // A lone surrogate can be neither a digit nor a space: int() raises.
    let chars: Vec<char> = char::decode_utf16(s.units().iter().copied())
        .collect::<Result<_, _>>()
        .map_err(|_| NotAnInteger)?;
    let mut t: &[char] = &chars;
    while let [first, rest @ ..] = t {
        if !is_int_space(*first) {
            break;
        }
        t = rest;
    }
    while let [rest @ .., last] = t {
        if !is_int_space(*last) {
            break;
        }
        t = rest;
    }
    let mut ascii = String::with_capacity(t.len() + 1);
    match t.first() {
        Some('-') => {
            ascii.push('-');
            t = &t[1..];
        }
        Some('+') => t = &t[1..],
        _ => {}
    }
    let mut ndigits = 0usize;
    let mut prev_underscore = false;
    for (i, &c) in t.iter().enumerate() {
        if c == '_' {
            if i == 0 || prev_underscore {
                return Err(NotAnInteger);
            }
            prev_underscore = true;
            continue;
        }
        let d = decimal_digit(c).ok_or(NotAnInteger)?;
        ascii.push(char::from(b'0' + d));
        ndigits += 1;
        prev_underscore = false;
    }
    if ndigits == 0 || prev_underscore || ndigits > MAX_STR_DIGITS {
        return Err(NotAnInteger);
    }
    ascii.parse::<BigInt>().map_err(|_| NotAnInteger)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    None,
    /// Ints, bools and integral floats (Python: `1 == 1.0 == True`, equal hashes).
    Int(BigInt),
    /// Bits of a non-integral float (finite, or ±inf / one canonical NaN — `json.loads` returns
    /// a single NaN object, so NaN keys match by identity in Python).
    Float(u64),
    Str(PyStr),
}

/// The raw room value keyed with Python equality and hashing: `1`, `1.0`, `true` are one key;
/// `"1"`, `"01"` and `1` are three keys; -0.0 == 0; lists/dicts are unhashable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomKey(Key);

impl RoomKey {
    /// The key for a raw room value, or [`Unhashable`] where Python's `hash()` raises.
    pub fn from_value(v: &Value) -> Result<RoomKey, Unhashable> {
        let k = match v {
            Value::Null => Key::None,
            Value::Bool(b) => Key::Int(BigInt::from(u8::from(*b))),
            Value::Int(n) => Key::Int(n.clone()),
            Value::Float(f) => {
                if f.is_finite() && f.trunc() == *f {
                    Key::Int(integral_f64_to_bigint(*f))
                } else if f.is_nan() {
                    Key::Float(f64::NAN.to_bits())
                } else {
                    Key::Float(f.to_bits())
                }
            }
            Value::Str(s) => Key::Str(s.clone()),
            Value::Array(_) | Value::Object(_) => return Err(Unhashable),
        };
        Ok(RoomKey(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::django::pyjson::{Object, loads};

    /// `int(1e300)` in CPython: the exact value of the double nearest 10**300.
    const E300_EXACT: &str = "1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160";

    fn key(json: &str) -> RoomKey {
        RoomKey::from_value(&loads(json).unwrap()).unwrap()
    }

    fn int_of(json: &str) -> Result<Option<BigInt>, NotAnInteger> {
        python_int(&loads(json).unwrap())
    }

    fn big(s: &str) -> BigInt {
        s.parse().unwrap()
    }

    #[test]
    fn room_key_equalities() {
        assert_eq!(key("1"), key("1.0"));
        assert_eq!(key("1"), key("true"));
        assert_eq!(key("1.0"), key("true"));
        assert_eq!(key("1"), key("1e0"));
        assert_ne!(key("\"1\""), key("1"));
        assert_ne!(key("\"01\""), key("\"1\""));
        assert_ne!(key("\"01\""), key("1"));
        assert_eq!(key("-0.0"), key("0"));
        assert_eq!(key("-0.0"), key("false"));
        assert_eq!(key("0.0"), key("-0"));
        assert_ne!(key("0"), key("null"));
        assert_ne!(key("1.5"), key("1"));
        assert_eq!(key("1.5"), key("15e-1"));
        // Python compares floats and ints exactly: 1e22 == 10**22, but the double 1e300 is not
        // 10**300 (`1e300 == 10**300` is False); it equals its own exact integer value.
        assert_eq!(key("1e22"), key("10000000000000000000000"));
        assert_eq!(key("1e300"), key(E300_EXACT));
        assert_ne!(key("1e300"), key(&format!("1{}", "0".repeat(300))));
        assert_eq!(key("9007199254740993.0"), key("9007199254740992"));
        assert_eq!(key("\"\\u00e9\""), key("\"é\""));
        assert_eq!(key("null"), key("null"));
        assert_eq!(RoomKey::from_value(&Value::Array(vec![])), Err(Unhashable));
        assert_eq!(
            RoomKey::from_value(&Value::Object(Object::new())),
            Err(Unhashable)
        );
        // The derived Hash agrees with Eq.
        let mut set = std::collections::HashSet::new();
        set.insert(key("1"));
        assert!(set.contains(&key("true")));
        assert!(set.contains(&key("1.0")));
        assert!(!set.contains(&key("\"1\"")));
    }

    #[test]
    fn python_int_numbers() {
        assert_eq!(int_of("1.9"), Ok(Some(big("1"))));
        assert_eq!(int_of("-1.9"), Ok(Some(big("-1"))));
        assert_eq!(int_of("-0.5"), Ok(Some(big("0"))));
        assert_eq!(int_of("1e300"), Ok(Some(big(E300_EXACT))));
        assert_eq!(int_of("1e22"), Ok(Some(big("10000000000000000000000"))));
        assert_eq!(
            int_of("1.7976931348623157e308")
                .unwrap()
                .unwrap()
                .to_string()
                .len(),
            309
        );
        assert_eq!(int_of("5e-324"), Ok(Some(big("0"))));
        assert_eq!(int_of("true"), Ok(Some(big("1"))));
        assert_eq!(int_of("null"), Ok(None));
        assert_eq!(int_of("[1]"), Err(NotAnInteger));
        assert_eq!(int_of("{\"a\": 1}"), Err(NotAnInteger));
        assert_eq!(python_int(&Value::Float(f64::NAN)), Err(NotAnInteger));
        assert_eq!(python_int(&Value::Float(f64::INFINITY)), Err(NotAnInteger));
    }

    #[test]
    fn python_int_strings() {
        let ok: &[(&str, i64)] = &[
            ("1", 1),
            ("01", 1),
            (" 1 ", 1),
            ("+1", 1),
            ("-1", -1),
            ("1_0", 10),
            ("1_000_000", 1_000_000),
            ("\u{a0}+1\u{3000}", 1),
            ("\u{85}-1\u{85}", -1),
            ("\u{b}1\u{c}", 1),
            ("\u{ff11}\u{ff12}", 12),
            ("1_\u{661}", 11),
            ("\u{1d7ce}\u{1fbf9}", 9),
            ("0000", 0),
            ("-0", 0),
        ];
        for &(s, n) in ok {
            assert_eq!(
                python_int(&Value::str(s)),
                Ok(Some(BigInt::from(n))),
                "{s:?}"
            );
        }
        for s in [
            "",
            " ",
            "abc",
            "1__0",
            "_1",
            "1_",
            "0x1",
            "1.0",
            "1e2",
            "- 1",
            "+-1",
            "+",
            "-",
            "1\u{1c}",
            "\u{1f}1",
            "\u{180e}1",
            "\u{200b}1",
            "1\u{0}",
            "1 _0",
            "\u{661}\u{a}\u{662}",
            "\u{2070}",
            "\u{bc}",
        ] {
            assert_eq!(python_int(&Value::str(s)), Err(NotAnInteger), "{s:?}");
        }
        let lone = Value::Str(PyStr::from_units(vec![0x31, 0xd800]));
        assert_eq!(python_int(&lone), Err(NotAnInteger));
        // CPython's int max str digits: 4300 digits (underscores and sign not counted).
        let max = "1".repeat(4300);
        assert!(python_int(&Value::str(&max)).unwrap().is_some());
        assert!(
            python_int(&Value::str(&format!("-{max}")))
                .unwrap()
                .is_some()
        );
        assert!(
            python_int(&Value::str(&format!("{}1", "1_".repeat(4299))))
                .unwrap()
                .is_some()
        );
        assert_eq!(
            python_int(&Value::str(&format!("{max}1"))),
            Err(NotAnInteger)
        );
        assert_eq!(
            python_int(&Value::str(&"0".repeat(4301))),
            Err(NotAnInteger)
        );
    }

    #[test]
    fn lookup_ids() {
        assert_eq!(lookup_id(&Value::str(" 7 ")), Ok(Some(7)));
        assert_eq!(
            lookup_id(&loads("9223372036854775807").unwrap()),
            Ok(Some(i64::MAX))
        );
        assert_eq!(lookup_id(&loads("9223372036854775808").unwrap()), Ok(None));
        assert_eq!(
            lookup_id(&loads("-9223372036854775808").unwrap()),
            Ok(Some(i64::MIN))
        );
        assert_eq!(lookup_id(&loads("-9223372036854775809").unwrap()), Ok(None));
        assert_eq!(lookup_id(&loads("1e30").unwrap()), Ok(None));
        assert_eq!(lookup_id(&Value::Null), Ok(None));
        assert_eq!(lookup_id(&Value::str("abc")), Err(NotAnInteger));
    }

    #[test]
    fn nd_table_blocks() {
        assert_eq!(decimal_digit('0'), Some(0));
        assert_eq!(decimal_digit('9'), Some(9));
        assert_eq!(decimal_digit('\u{663}'), Some(3));
        assert_eq!(decimal_digit('\u{669}'), Some(9));
        assert_eq!(decimal_digit('\u{66a}'), None);
        assert_eq!(decimal_digit('\u{1fbf9}'), Some(9));
        assert_eq!(decimal_digit('\u{1fbfa}'), None);
        assert_eq!(decimal_digit('\u{2f}'), None);
        assert_eq!(decimal_digit('a'), None);
        assert!(ND_ZEROS.windows(2).all(|w| w[1] >= w[0] + 10));
    }
}
