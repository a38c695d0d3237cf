//! Python's `json` module, byte for byte: the value model of a decoded Python object
//! ([`Value`], [`PyStr`], [`Object`]), `json.loads` ([`loads`]) and `json.dumps` with its
//! defaults (`ensure_ascii=True`, `allow_nan=True`) in either separator style ([`dumps`]).
//!
//! Outbound WebSocket frames must equal what CPython 3.11 emits, so this module owns every rule
//! that makes bytes differ: `\u` escapes with lowercase hex, UTF-16 surrogate pairs, float `repr`,
//! arbitrary-size integers, insertion-ordered dicts with Python's duplicate-key behaviour.
//!
//! Deliberate differences from `json.loads` (spec `multichat-protocol.md` §4.3, §4.10):
//! - `NaN`, `Infinity`, `-Infinity` and numbers that overflow to ±inf are refused with
//!   [`JsonError::NonFinite`] — but only when the rest of the text is valid JSON, so an input that
//!   Python would reject anyway still gives [`JsonError::Syntax`];
//! - more than [`MAX_DEPTH`] nested arrays/objects give [`JsonError::TooDeep`] (the parser is
//!   iterative, so it never recurses);
//! - integer literals with more than [`MAX_INT_DIGITS`] digits give [`JsonError::IntTooLong`]
//!   (CPython raises `ValueError` there too: `sys.get_int_max_str_digits()`).
//!
//! Error positions are byte offsets into the input (Python reports character offsets).
//!
//! This file owns the value model and the error type; [`loads`] lives in `parse.rs`, [`dumps`]
//! and the float `repr` in `dump.rs`.

use std::fmt;

use num_bigint::BigInt;

mod dump;
mod parse;
#[cfg(test)]
mod tests;

pub use dump::{Separators, dump_into, dumps, float_repr, write_pystr, write_str};
pub use parse::loads;

/// The deepest nesting of arrays/objects [`loads`] accepts.
pub const MAX_DEPTH: usize = 256;

/// CPython's default `int` max str digits: longer integer literals are refused.
pub const MAX_INT_DIGITS: usize = 4300;

// ---------------------------------------------------------------------------------------------
// PyStr
// ---------------------------------------------------------------------------------------------

/// A Python `str`: UTF-16 code units, so lone surrogates (which Python allows) survive.
///
/// An astral character and the surrogate pair that spells it are the same units, exactly as
/// `json.loads` joins `\ud83d\ude00` into one character.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct PyStr(Vec<u16>);

impl PyStr {
    /// An empty string.
    pub fn new() -> Self {
        PyStr(Vec::new())
    }

    /// Wraps raw UTF-16 code units (any sequence, lone surrogates included).
    pub fn from_units(units: Vec<u16>) -> Self {
        PyStr(units)
    }

    /// The UTF-16 code units.
    pub fn units(&self) -> &[u16] {
        &self.0
    }

    /// The string as Rust UTF-8, or `None` if it holds a lone surrogate.
    pub fn as_string(&self) -> Option<String> {
        String::from_utf16(&self.0).ok()
    }

    /// The string as Rust UTF-8 with lone surrogates replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf16_lossy(&self.0)
    }

    /// True for `""`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of UTF-16 code units.
    pub fn len_units(&self) -> usize {
        self.0.len()
    }

    /// Python `self == s`, without allocating.
    pub fn eq_str(&self, s: &str) -> bool {
        // A UTF-16 unit count is at most the UTF-8 byte count; cheap length prefilter.
        if self.0.len() > s.len() {
            return false;
        }
        let mut it = self.0.iter();
        for u in s.encode_utf16() {
            match it.next() {
                Some(&x) if x == u => {}
                _ => return false,
            }
        }
        it.next().is_none()
    }
}

impl From<&str> for PyStr {
    fn from(s: &str) -> Self {
        PyStr(s.encode_utf16().collect())
    }
}

impl From<String> for PyStr {
    fn from(s: String) -> Self {
        PyStr::from(s.as_str())
    }
}

impl From<&String> for PyStr {
    fn from(s: &String) -> Self {
        PyStr::from(s.as_str())
    }
}

impl PartialEq<str> for PyStr {
    fn eq(&self, other: &str) -> bool {
        self.eq_str(other)
    }
}

impl PartialEq<&str> for PyStr {
    fn eq(&self, other: &&str) -> bool {
        self.eq_str(other)
    }
}

// ---------------------------------------------------------------------------------------------
// Value and Object
// ---------------------------------------------------------------------------------------------

/// A decoded JSON value as Python holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Python `int`: exact at any size.
    Int(BigInt),
    /// Python `float`.
    Float(f64),
    Str(PyStr),
    Array(Vec<Value>),
    Object(Object),
}

impl Value {
    /// A string value from Rust text.
    pub fn str(s: &str) -> Value {
        Value::Str(PyStr::from(s))
    }

    /// An integer value.
    pub fn int(n: i64) -> Value {
        Value::Int(BigInt::from(n))
    }

    /// The string as Rust text: `None` for non-strings and for strings with lone surrogates.
    pub fn as_str(&self) -> Option<String> {
        match self {
            Value::Str(s) => s.as_string(),
            _ => None,
        }
    }

    /// The Python string, if this is one.
    pub fn as_pystr(&self) -> Option<&PyStr> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The dict, if this is one.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The list, if this is one.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// True for JSON `null` (Python `None`).
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// True if this is a string equal to `s` (no allocation).
    pub fn is_str(&self, s: &str) -> bool {
        matches!(self, Value::Str(p) if p.eq_str(s))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::str(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(PyStr::from(s))
    }
}

impl From<PyStr> for Value {
    fn from(s: PyStr) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(BigInt::from(n))
    }
}

impl From<BigInt> for Value {
    fn from(n: BigInt) -> Self {
        Value::Int(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Value::Object(o)
    }
}

impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}

/// A Python dict decoded from JSON: insertion order; inserting an existing key replaces the
/// value in place (first position kept, like Python).
///
/// Lookups are linear, which is the fastest choice for the handful of keys a chat frame has.
/// (Equality is order-sensitive, unlike Python's `dict.__eq__`.)
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Object {
    entries: Vec<(PyStr, Value)>,
}

impl Object {
    /// An empty dict.
    pub fn new() -> Self {
        Object {
            entries: Vec::new(),
        }
    }

    /// An empty dict with room for `n` keys.
    pub fn with_capacity(n: usize) -> Self {
        Object {
            entries: Vec::with_capacity(n),
        }
    }

    /// `d.get(key)`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_str(key))
            .map(|(_, v)| v)
    }

    /// `d.get(key)` with a Python-string key.
    pub fn get_py(&self, key: &PyStr) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `d[key] = value`: an existing key keeps its position and gets the new value.
    pub fn insert(&mut self, key: impl Into<PyStr>, value: Value) {
        let key = key.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.entries.push((key, value)),
        }
    }

    /// `d.pop(key, None)`: the other keys keep their order.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.entries.iter().position(|(k, _)| k.eq_str(key))?;
        Some(self.entries.remove(i).1)
    }

    /// `key in d`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.eq_str(key))
    }

    /// `len(d)`.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `not d`.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `d.items()` in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&PyStr, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Builds a dict from pairs in order, with Python's duplicate rule (first position, last
    /// value). Linear for small inputs, `O(n log n)` for large ones.
    pub(crate) fn from_pairs(mut entries: Vec<(PyStr, Value)>) -> Self {
        const SMALL: usize = 16;
        let n = entries.len();
        if n <= 1 {
            return Object { entries };
        }
        if n <= SMALL {
            let mut has_dup = false;
            'outer: for i in 1..n {
                for j in 0..i {
                    if entries[i].0 == entries[j].0 {
                        has_dup = true;
                        break 'outer;
                    }
                }
            }
            if !has_dup {
                return Object { entries };
            }
            let mut out = Object::with_capacity(n);
            for (k, v) in entries {
                out.insert(k, v);
            }
            return out;
        }
        // Large: sort indices by (key, index) and collapse runs of equal keys.
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_unstable_by(|&a, &b| entries[a].0.cmp(&entries[b].0).then(a.cmp(&b)));
        let mut keep = vec![true; n];
        let mut any_dup = false;
        let mut s = 0;
        while s < n {
            let mut e = s + 1;
            while e < n && entries[idx[e]].0 == entries[idx[s]].0 {
                e += 1;
            }
            if e - s > 1 {
                any_dup = true;
                let first = idx[s];
                let last = idx[e - 1];
                let v = std::mem::replace(&mut entries[last].1, Value::Null);
                entries[first].1 = v;
                for &i in &idx[s + 1..e] {
                    keep[i] = false;
                }
            }
            s = e;
        }
        if any_dup {
            let mut i = 0;
            entries.retain(|_| {
                let k = keep[i];
                i += 1;
                k
            });
        }
        Object { entries }
    }
}

impl<K: Into<PyStr>> FromIterator<(K, Value)> for Object {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut o = Object::new();
        for (k, v) in iter {
            o.insert(k, v);
        }
        o
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why [`loads`] refused a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Invalid JSON (Python raises `JSONDecodeError`). `pos` is a byte offset; `msg` is
    /// Python's message.
    Syntax { pos: usize, msg: &'static str },
    /// Valid Python JSON that holds `NaN`, `Infinity`, `-Infinity` or a number overflowing to
    /// ±inf: refused on purpose.
    NonFinite,
    /// More than [`MAX_DEPTH`] nested arrays/objects.
    TooDeep,
    /// An integer literal with more than [`MAX_INT_DIGITS`] digits.
    IntTooLong,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Syntax { pos, msg } => write!(f, "{msg} (byte {pos})"),
            JsonError::NonFinite => f.write_str("NaN and Infinity are not accepted"),
            JsonError::TooDeep => write!(f, "nesting deeper than {MAX_DEPTH} levels"),
            JsonError::IntTooLong => write!(
                f,
                "Exceeds the limit ({MAX_INT_DIGITS} digits) for integer string conversion"
            ),
        }
    }
}

impl std::error::Error for JsonError {}
