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

use std::fmt;
use std::fmt::Write as _;

use num_bigint::BigInt;

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
    fn from_pairs(mut entries: Vec<(PyStr, Value)>) -> Self {
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

// ---------------------------------------------------------------------------------------------
// loads
// ---------------------------------------------------------------------------------------------

const E_VALUE: &str = "Expecting value";
const E_EXTRA: &str = "Extra data";
const E_COMMA: &str = "Expecting ',' delimiter";
const E_COLON: &str = "Expecting ':' delimiter";
const E_PROP: &str = "Expecting property name enclosed in double quotes";
const E_UNTERMINATED: &str = "Unterminated string starting at";
const E_CONTROL: &str = "Invalid control character at";
const E_ESCAPE: &str = "Invalid \\escape";
const E_UESCAPE: &str = "Invalid \\uXXXX escape";

enum Frame {
    Array(Vec<Value>),
    Object(Vec<(PyStr, Value)>, PyStr),
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    non_finite: bool,
}

#[inline]
fn syntax(pos: usize, msg: &'static str) -> JsonError {
    JsonError::Syntax { pos, msg }
}

impl<'a> Parser<'a> {
    #[inline]
    fn skip_ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// At a `"` (already checked): parses a string and leaves `pos` after the closing quote.
    fn string(&mut self) -> Result<PyStr, JsonError> {
        let start = self.pos;
        self.pos += 1;
        let mut units: Vec<u16> = Vec::new();
        loop {
            // A run of plain characters.
            let run = self.pos;
            while let Some(&c) = self.b.get(self.pos) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            if self.pos > run {
                let s = &self.text[run..self.pos];
                if s.is_ascii() {
                    units.extend(s.bytes().map(u16::from));
                } else {
                    units.extend(s.encode_utf16());
                }
            }
            match self.b.get(self.pos) {
                None => return Err(syntax(start, E_UNTERMINATED)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(PyStr(units));
                }
                Some(b'\\') => {
                    let esc = self.pos;
                    let c = match self.b.get(self.pos + 1) {
                        None => return Err(syntax(start, E_UNTERMINATED)),
                        Some(&c) => c,
                    };
                    self.pos += 2;
                    let u: u16 = match c {
                        b'"' => 0x22,
                        b'\\' => 0x5c,
                        b'/' => 0x2f,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => 0x0a,
                        b'r' => 0x0d,
                        b't' => 0x09,
                        b'u' => {
                            let h = self
                                .b
                                .get(self.pos..self.pos + 4)
                                .and_then(hex4)
                                .ok_or(syntax(esc + 1, E_UESCAPE))?;
                            self.pos += 4;
                            h
                        }
                        _ => return Err(syntax(esc, E_ESCAPE)),
                    };
                    units.push(u);
                }
                Some(_) => return Err(syntax(self.pos, E_CONTROL)),
            }
        }
    }

    /// At `-` or a digit: parses a number per the JSON grammar (CPython's scanner).
    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        let b = self.b;
        let neg = b[start] == b'-';
        let mut p = start + usize::from(neg);
        match b.get(p) {
            Some(b'0') => p += 1,
            Some(b'1'..=b'9') => {
                while matches!(b.get(p), Some(b'0'..=b'9')) {
                    p += 1;
                }
            }
            _ => {
                if neg && b[p..].starts_with(b"Infinity") {
                    self.pos = p + 8;
                    self.non_finite = true;
                    return Ok(Value::Float(f64::NEG_INFINITY));
                }
                return Err(syntax(start, E_VALUE));
            }
        }
        let int_end = p;
        let mut is_float = false;
        if b.get(p) == Some(&b'.') && matches!(b.get(p + 1), Some(b'0'..=b'9')) {
            p += 2;
            while matches!(b.get(p), Some(b'0'..=b'9')) {
                p += 1;
            }
            is_float = true;
        }
        if matches!(b.get(p), Some(b'e' | b'E')) {
            let mut q = p + 1;
            if matches!(b.get(q), Some(b'+' | b'-')) {
                q += 1;
            }
            if matches!(b.get(q), Some(b'0'..=b'9')) {
                while matches!(b.get(q), Some(b'0'..=b'9')) {
                    q += 1;
                }
                p = q;
                is_float = true;
            }
        }
        self.pos = p;
        let lit = &self.text[start..p];
        if is_float {
            // Rust's parser rounds correctly, like CPython's float().
            let f: f64 = lit.parse().map_err(|_| syntax(start, E_VALUE))?;
            if !f.is_finite() {
                self.non_finite = true;
            }
            return Ok(Value::Float(f));
        }
        let ndigits = int_end - start - usize::from(neg);
        if ndigits > MAX_INT_DIGITS {
            return Err(JsonError::IntTooLong);
        }
        if ndigits <= 18 {
            let n: i64 = lit.parse().map_err(|_| syntax(start, E_VALUE))?;
            return Ok(Value::Int(BigInt::from(n)));
        }
        let n: BigInt = lit.parse().map_err(|_| syntax(start, E_VALUE))?;
        Ok(Value::Int(n))
    }

    #[inline]
    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, JsonError> {
        if self.b[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(syntax(self.pos, E_VALUE))
        }
    }

    /// After `{` or `,` inside an object: whitespace, a key, whitespace, `:`.
    fn key(&mut self) -> Result<PyStr, JsonError> {
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return Err(syntax(self.pos, E_PROP));
        }
        let k = self.string()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(syntax(self.pos, E_COLON));
        }
        self.pos += 1;
        Ok(k)
    }
}

#[inline]
fn hex4(h: &[u8]) -> Option<u16> {
    let mut n: u16 = 0;
    for &c in h {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        n = (n << 4) | u16::from(d);
    }
    Some(n)
}

/// Python `json.loads(text)`, with the deliberate refusals listed in the module docs.
pub fn loads(text: &str) -> Result<Value, JsonError> {
    let mut p = Parser {
        text,
        b: text.as_bytes(),
        pos: 0,
        non_finite: false,
    };
    let mut stack: Vec<Frame> = Vec::new();
    'value: loop {
        p.skip_ws();
        let mut v = match p.peek() {
            Some(b'"') => Value::Str(p.string()?),
            Some(b'{') => {
                // Empty containers count too: at most MAX_DEPTH open at once.
                if stack.len() >= MAX_DEPTH {
                    return Err(JsonError::TooDeep);
                }
                p.pos += 1;
                p.skip_ws();
                if p.peek() == Some(b'}') {
                    p.pos += 1;
                    Value::Object(Object::new())
                } else {
                    let k = p.key()?;
                    stack.push(Frame::Object(Vec::new(), k));
                    continue 'value;
                }
            }
            Some(b'[') => {
                // Empty containers count too: at most MAX_DEPTH open at once.
                if stack.len() >= MAX_DEPTH {
                    return Err(JsonError::TooDeep);
                }
                p.pos += 1;
                p.skip_ws();
                if p.peek() == Some(b']') {
                    p.pos += 1;
                    Value::Array(Vec::new())
                } else {
                    stack.push(Frame::Array(Vec::new()));
                    continue 'value;
                }
            }
            Some(b'-' | b'0'..=b'9') => p.number()?,
            Some(b'n') => p.literal(b"null", Value::Null)?,
            Some(b't') => p.literal(b"true", Value::Bool(true))?,
            Some(b'f') => p.literal(b"false", Value::Bool(false))?,
            Some(b'N') => {
                let v = p.literal(b"NaN", Value::Float(f64::NAN))?;
                p.non_finite = true;
                v
            }
            Some(b'I') => {
                let v = p.literal(b"Infinity", Value::Float(f64::INFINITY))?;
                p.non_finite = true;
                v
            }
            _ => return Err(syntax(p.pos, E_VALUE)),
        };
        // A value is complete: hand it to the enclosing containers, closing as many as end here.
        loop {
            match stack.last_mut() {
                None => {
                    p.skip_ws();
                    if p.pos != p.b.len() {
                        return Err(syntax(p.pos, E_EXTRA));
                    }
                    if p.non_finite {
                        return Err(JsonError::NonFinite);
                    }
                    return Ok(v);
                }
                Some(Frame::Array(items)) => {
                    items.push(v);
                    p.skip_ws();
                    match p.peek() {
                        Some(b',') => {
                            p.pos += 1;
                            continue 'value;
                        }
                        Some(b']') => {
                            p.pos += 1;
                            let Some(Frame::Array(items)) = stack.pop() else {
                                unreachable!()
                            };
                            v = Value::Array(items);
                        }
                        _ => return Err(syntax(p.pos, E_COMMA)),
                    }
                }
                Some(Frame::Object(entries, key)) => {
                    entries.push((std::mem::take(key), v));
                    p.skip_ws();
                    match p.peek() {
                        Some(b',') => {
                            p.pos += 1;
                            *key = p.key()?;
                            continue 'value;
                        }
                        Some(b'}') => {
                            p.pos += 1;
                            let Some(Frame::Object(entries, _)) = stack.pop() else {
                                unreachable!()
                            };
                            v = Value::Object(Object::from_pairs(entries));
                        }
                        _ => return Err(syntax(p.pos, E_COMMA)),
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// dumps
// ---------------------------------------------------------------------------------------------

/// The `separators` argument of `json.dumps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Separators {
    /// `", "` and `": "` (the `json.dumps` default).
    Python,
    /// `","` and `":"` (Django's session/signing serializer).
    Compact,
}

impl Separators {
    fn item(self) -> &'static str {
        match self {
            Separators::Python => ", ",
            Separators::Compact => ",",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Separators::Python => ": ",
            Separators::Compact => ":",
        }
    }
}

/// `json.dumps(v)` (with `separators` per `sep`).
pub fn dumps(v: &Value, sep: Separators) -> String {
    let mut out = String::with_capacity(64);
    dump_into(v, sep, &mut out);
    out
}

/// Appends `json.dumps(v)` to `out`.
///
/// Recursive: values from [`loads`] are at most [`MAX_DEPTH`] deep, which is safe.
pub fn dump_into(v: &Value, sep: Separators, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Int(n) => write_int(n, out),
        Value::Float(f) => float_repr(*f, out),
        Value::Str(s) => write_pystr(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep.item());
                }
                dump_into(item, sep, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, val)) in o.entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep.item());
                }
                write_pystr(k, out);
                out.push_str(sep.key());
                dump_into(val, sep, out);
            }
            out.push('}');
        }
    }
}

fn write_int(n: &BigInt, out: &mut String) {
    match i64::try_from(n) {
        Ok(small) => {
            let _ = write!(out, "{small}");
        }
        Err(_) => {
            let _ = write!(out, "{n}");
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Escapes one UTF-16 code unit that is not plain printable ASCII.
#[inline]
fn write_escaped_unit(u: u16, out: &mut String) {
    match u {
        0x22 => out.push_str("\\\""),
        0x5c => out.push_str("\\\\"),
        0x0a => out.push_str("\\n"),
        0x0d => out.push_str("\\r"),
        0x09 => out.push_str("\\t"),
        0x08 => out.push_str("\\b"),
        0x0c => out.push_str("\\f"),
        _ => {
            let buf = [
                b'\\',
                b'u',
                HEX[usize::from(u >> 12)],
                HEX[usize::from((u >> 8) & 0xf)],
                HEX[usize::from((u >> 4) & 0xf)],
                HEX[usize::from(u & 0xf)],
            ];
            // All bytes are ASCII.
            out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
        }
    }
}

#[inline]
fn is_plain(b: u8) -> bool {
    (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'
}

/// Appends a Rust string as a quoted `ensure_ascii` JSON string (what `json.dumps(s)` gives).
pub fn write_str(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let run = i;
        while i < b.len() && is_plain(b[i]) {
            i += 1;
        }
        if i > run {
            out.push_str(&s[run..i]);
        }
        if i >= b.len() {
            break;
        }
        if b[i] < 0x80 {
            write_escaped_unit(u16::from(b[i]), out);
            i += 1;
        } else {
            // A multi-byte character: find its end (continuation bytes are 0b10xxxxxx).
            let mut j = i + 1;
            while j < b.len() && (b[j] & 0xc0) == 0x80 {
                j += 1;
            }
            for u in s[i..j].encode_utf16() {
                write_escaped_unit(u, out);
            }
            i = j;
        }
    }
    out.push('"');
}

/// Appends a Python string as a quoted `ensure_ascii` JSON string (lone surrogates as `\udXXX`).
pub fn write_pystr(s: &PyStr, out: &mut String) {
    let units = &s.0;
    out.reserve(units.len() + 2);
    out.push('"');
    for &u in units {
        if u < 0x80 && is_plain(u as u8) {
            out.push(u as u8 as char);
        } else {
            write_escaped_unit(u, out);
        }
    }
    out.push('"');
}

/// A small stack buffer for formatting a float without allocating.
struct StackBuf {
    buf: [u8; 40],
    len: usize,
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A float in scientific notation split into its digits and exponent: `d.ddd * 10^exp`.
struct Sci {
    text: StackBuf,
    digits: [u8; 24],
    nd: usize,
    exp: i32,
}

impl Sci {
    fn format(args: fmt::Arguments<'_>) -> Option<Sci> {
        let mut text = StackBuf {
            buf: [0; 40],
            len: 0,
        };
        text.write_fmt(args).ok()?;
        let s = &text.buf[..text.len];
        let e_at = s.iter().position(|&c| c == b'e')?;
        let exp: i32 = std::str::from_utf8(&s[e_at + 1..]).ok()?.parse().ok()?;
        let mut digits = [0u8; 24];
        let mut nd = 0;
        for &c in &s[..e_at] {
            if c != b'.' {
                *digits.get_mut(nd)? = c;
                nd += 1;
            }
        }
        Some(Sci {
            text,
            digits,
            nd,
            exp,
        })
    }

    fn parse(&self) -> Option<f64> {
        std::str::from_utf8(&self.text.buf[..self.text.len])
            .ok()?
            .parse()
            .ok()
    }
}

/// Appends Python's `repr(f)` as `json.dumps` writes it: shortest round-trip digits, fixed
/// notation when the decimal exponent is in `-4..16` (always with a fractional part, `1.0`),
/// else scientific with a signed exponent of at least two digits (`1e-07`, `1.5e+300`);
/// `Infinity`, `-Infinity` and `NaN` for non-finite values.
pub fn float_repr(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f < 0.0 { "-Infinity" } else { "Infinity" });
        return;
    }
    let a = f.abs();
    // Rust's `{:e}` gives the shortest round-trip digits ("1.2345e-7", "5e-324", "0e0"), but
    // breaks a tie between two equally close shortest strings upwards, where Python (David
    // Gay's `dtoa` mode 0) rounds half to even. Rust's fixed-precision `{:.N e}` is exact and
    // rounds half to even, so re-round to the same digit count and keep that if it round-trips.
    let Some(mut sci) = Sci::format(format_args!("{a:e}")) else {
        // Cannot happen (at most 17 digits + exponent), but stay correct if it did.
        let _ = write!(out, "{f:?}");
        return;
    };
    if sci.nd > 1
        && let Some(even) = Sci::format(format_args!("{:.*e}", sci.nd - 1, a))
        && even.digits != sci.digits
        && even.parse() == Some(a)
    {
        sci = even;
    }
    let (digits, nd, exp) = (&sci.digits[..sci.nd], sci.nd, sci.exp);
    if f.is_sign_negative() {
        out.push('-');
    }
    // Decimal point position relative to the digit string: value = 0.DIGITS * 10^decpt.
    let decpt = exp + 1;
    let push_digits = |d: &[u8], out: &mut String| {
        for &c in d {
            out.push(c as char);
        }
    };
    if (-4 < decpt) && (decpt <= 16) {
        if decpt <= 0 {
            out.push_str("0.");
            for _ in 0..(-decpt) {
                out.push('0');
            }
            push_digits(digits, out);
        } else {
            let dp = decpt as usize;
            if dp >= nd {
                push_digits(digits, out);
                for _ in 0..(dp - nd) {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                push_digits(&digits[..dp], out);
                out.push('.');
                push_digits(&digits[dp..], out);
            }
        }
    } else {
        push_digits(&digits[..1], out);
        if nd > 1 {
            out.push('.');
            push_digits(&digits[1..], out);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push('0');
        }
        let _ = write!(out, "{a}");
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
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
}
