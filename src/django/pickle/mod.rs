//! Python pickles as Django's cache backends store them: a value model for the plain data a
//! session (or the Whisper fork's presence dict) holds, a guarded reader and a writer that
//! produces exactly the bytes of CPython's `pickle.dumps(value, protocol)` (protocols 4 and 5).
//!
//! Both Redis backends pickle every value except plain `int`s, which they store as decimal text
//! (`django.core.cache.backends.redis.RedisSerializer`: `pickle.HIGHEST_PROTOCOL`, i.e. 5;
//! django-redis' `PickleSerializer`: `pickle.DEFAULT_PROTOCOL`, 4 on Python 3.8–3.13).
//!
//! # What is read
//!
//! `None`, `bool`, `int`, `float`, `str`, `bytes`, `list`, `tuple` and `dict` with `str` or
//! `int` keys, dicts in their stream (= insertion) order. Everything else — globals, `REDUCE`,
//! objects, sets, persistent ids, out-of-band buffers — is refused with a [`PickleError`] that
//! names the reason, and nothing is ever imported or called. So are shared or recursive
//! containers (one container reached twice through the memo; CPython writes that only for
//! aliased objects), `int`s beyond 64 bits and streams over [`Limits`]. No session or
//! presence dict holds such an `int`, and refusing them keeps each one a machine word: a
//! `LONG4` of a mebibyte would be a number whose decimal text takes quadratic time to write.
//!
//! # The decoder
//!
//! [`loads`] is one pass over the input: a stack machine over the binary opcodes CPython
//! writes for the types above (`PROTO` up to 5, `FRAME`, `MEMOIZE`/`BINPUT`/`BINGET`, the
//! scalars and strings, `MARK`, `APPEND(S)`, `SETITEM(S)`, `TUPLE…`), building each value
//! bottom-up as its opcodes arrive, so nothing recurses however deep the stream. Any other
//! opcode is refused by name, saying what Python would have done with it. It guards, as it
//! reads:
//!
//! * an input cap, and declared lengths (strings, bytes, `LONG`s, `FRAME`s) within the input,
//!   so a length costs at most the bytes actually present;
//! * at most [`Limits::max_depth`] nesting levels and open `MARK`s (the value's `Drop`,
//!   `Debug` and `PartialEq` do recurse);
//! * at most [`Limits::max_nodes`] values and [`Limits::max_text_bytes`] of string and bytes
//!   payload, counted again at every memo read: each read is a copy, and a few bytes of
//!   `BINGET` would otherwise expand to gigabytes (a "billion laughs");
//! * memo slots set once, read only when set, and never read for a container: this model has
//!   no object identity, so a shared or recursive container could only be copied (or never
//!   end). A slot keeps a scalar's value or a string's place in the input, never a copy;
//! * one memo write per value (CPython never memoizes twice), valid UTF-8, `int`s within 64
//!   bits, `str` and `int` dict keys, an even count for `SETITEMS`, one value at `STOP` and
//!   nothing after it.
//!
//! The reading used to be done by the `serde-pickle` crate behind a pre-scan of this
//! module: the crate silently turns objects into plausible dicts (`BUILD` keeps the state,
//! `set`s are rebuilt from their `REDUCE`), deep-copies memo reads, recurses once per level
//! and loses tuples through serde. Both passes cost ~206,000 instructions for a 10-user
//! presence dict, which is read on every chat message; this one ~63,000, most of them the
//! value model's own allocations and SipHash-keyed dict inserts.

use std::fmt;
use std::hash::{Hash, Hasher};

use indexmap::IndexMap;
use num_bigint::BigInt;

mod decode;
mod encode;
mod json;
#[cfg(test)]
mod tests;

pub use decode::{loads, loads_with};
pub use encode::dumps;
pub use json::{from_json, object_from_json, object_to_json, to_json};

/// Bounds on what [`loads`] accepts; a pickle is refused as soon as it goes past one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Input size in bytes.
    pub max_bytes: usize,
    /// Nesting of containers, and `MARK`s open at once.
    pub max_depth: usize,
    /// Values in the whole tree (each memo read counts again).
    pub max_nodes: usize,
    /// String and bytes payloads in the whole tree, counted at every memo read.
    pub max_text_bytes: usize,
}

impl Default for Limits {
    /// 1 MiB of input, 64 levels, 200,000 values, 4 MiB of text: far above any session or
    /// presence dict, and the decoded tree stays within a few tens of MiB.
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 20,
            max_depth: 64,
            max_nodes: 200_000,
            max_text_bytes: 4 << 20,
        }
    }
}

/// The protocols [`dumps`] writes: CPython's default (4, django-redis) and highest (5,
/// Django's own Redis backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    V4 = 4,
    V5 = 5,
}

/// A Python value of the kinds a cache entry may hold here.
#[derive(Clone, Debug, PartialEq)]
pub enum PyValue {
    None,
    Bool(bool),
    Int(BigInt),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<PyValue>),
    Tuple(Vec<PyValue>),
    Dict(PyDict),
}

impl PyValue {
    pub fn str(s: impl Into<String>) -> PyValue {
        PyValue::Str(s.into())
    }

    pub fn int(n: i64) -> PyValue {
        PyValue::Int(BigInt::from(n))
    }

    pub fn as_dict(&self) -> Option<&PyDict> {
        match self {
            PyValue::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Python's name of the type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            PyValue::None => "NoneType",
            PyValue::Bool(_) => "bool",
            PyValue::Int(_) => "int",
            PyValue::Float(_) => "float",
            PyValue::Str(_) => "str",
            PyValue::Bytes(_) => "bytes",
            PyValue::List(_) => "list",
            PyValue::Tuple(_) => "tuple",
            PyValue::Dict(_) => "dict",
        }
    }
}

/// A dict key: `str` or `int` (the keys sessions and the presence dict use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DictKey {
    Str(String),
    Int(BigInt),
}

/// Without the variant tag, and an `int` within 64 bits as one `i64`: every cache read fills
/// dicts, and SipHash pays per write. Equal keys still hash alike.
impl Hash for DictKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            DictKey::Str(s) => s.hash(state),
            DictKey::Int(n) => match i64::try_from(n) {
                Ok(n) => state.write_i64(n),
                Err(_) => n.hash(state),
            },
        }
    }
}

impl fmt::Display for DictKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DictKey::Str(s) => write!(f, "{s:?}"),
            DictKey::Int(n) => write!(f, "{n}"),
        }
    }
}

impl From<&str> for DictKey {
    fn from(s: &str) -> Self {
        DictKey::Str(s.to_string())
    }
}

impl From<i64> for DictKey {
    fn from(n: i64) -> Self {
        DictKey::Int(BigInt::from(n))
    }
}

/// A Python dict: insertion order; setting an existing key keeps its position.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PyDict(IndexMap<DictKey, PyValue>);

impl PyDict {
    pub fn new() -> PyDict {
        PyDict(IndexMap::new())
    }

    /// `d[key] = value`.
    pub fn insert(&mut self, key: impl Into<DictKey>, value: PyValue) {
        self.0.insert(key.into(), value);
    }

    /// `d.get(key)`.
    pub fn get(&self, key: impl Into<DictKey>) -> Option<&PyValue> {
        self.0.get(&key.into())
    }

    /// `d.pop(key, None)`, keeping the order of the others.
    pub fn remove(&mut self, key: impl Into<DictKey>) -> Option<PyValue> {
        self.0.shift_remove(&key.into())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Room for `additional` more entries (sized by values already read, never by a length
    /// the input declares).
    pub(super) fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&DictKey, &PyValue)> {
        self.0.iter()
    }
}

impl FromIterator<(DictKey, PyValue)> for PyDict {
    fn from_iter<I: IntoIterator<Item = (DictKey, PyValue)>>(iter: I) -> Self {
        PyDict(iter.into_iter().collect())
    }
}

/// Why a pickle was refused. Refusals happen as the stream is read, before the part refused is
/// built; nothing is executed either way.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PickleError {
    #[error("empty pickle")]
    Empty,
    #[error("pickle of {size} bytes is over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("truncated pickle (ends inside {0})")]
    Truncated(&'static str),
    /// An opcode outside the allowlist, with what it would do in Python.
    #[error("opcode {name} refused: {why}")]
    Refused {
        name: &'static str,
        why: &'static str,
    },
    #[error("unknown opcode 0x{0:02x}")]
    UnknownOpcode(u8),
    #[error("unsupported pickle protocol {0}")]
    Protocol(u8),
    #[error("{what}: declared length {declared} exceeds the {left} bytes left")]
    Length {
        what: &'static str,
        declared: u64,
        left: usize,
    },
    #[error("truncated pickle: a frame of {declared} bytes with {left} bytes left")]
    FrameOverrun { declared: u64, left: usize },
    #[error("nested deeper than {0} levels")]
    TooDeep(usize),
    #[error("over the decoding budget ({0})")]
    Budget(&'static str),
    #[error("integer beyond 64 bits")]
    BigInt,
    #[error("invalid utf-8 in a string")]
    Utf8,
    /// A structural error: stack underflow, a bad memo use, data after `STOP`…
    #[error("malformed pickle: {0}")]
    Malformed(String),
    /// A value this model does not hold (a dict key of another type, …).
    #[error("unsupported value: {0}")]
    Unsupported(String),
}
