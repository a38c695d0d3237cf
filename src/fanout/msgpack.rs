//! MessagePack for Channels events: what `channels_redis` puts on Redis (its default
//! `serializer_format="msgpack"`, i.e. Python's `msgpack.packb` / `msgpack.unpackb`).
//!
//! Values map as Python's msgpack maps them: `None`, `bool`, `int` (64-bit range only), `float`
//! (float64), `str` (UTF-8), `list` (array), `dict` (map with `str` keys). Python refuses two
//! things a Whisper message can hold: lone surrogates in a string (strict UTF-8) and integers
//! outside `[-2**63, 2**64)`. [`write_value`] then writes the closest value Python can read (U+FFFD
//! for the surrogate, the decimal string for the integer) and reports the value as lossy, so the
//! caller can carry the exact frame beside it for Whisper peers.
//!
//! Decoding is defensive: lengths are checked against the bytes present before anything is
//! allocated, nesting is capped at [`MAX_DEPTH`], and bytes/ext values (which the original's JSON
//! handlers could not send either) are refused.

use std::fmt;

use num_bigint::BigInt;

use crate::django::pyjson::{MAX_DEPTH, Object, PyStr, Value};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MsgpackError {
    /// The payload ends inside a value.
    Truncated,
    /// Bytes left over after the value.
    Trailing,
    /// A type JSON has no counterpart for (bytes, ext) or a reserved byte.
    Unsupported(&'static str),
    InvalidUtf8,
    /// A map key that is not a string.
    MapKey,
    TooDeep,
}

impl fmt::Display for MsgpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsgpackError::Truncated => f.write_str("truncated msgpack"),
            MsgpackError::Trailing => f.write_str("bytes after the msgpack value"),
            MsgpackError::Unsupported(what) => write!(f, "unsupported msgpack type: {what}"),
            MsgpackError::InvalidUtf8 => f.write_str("msgpack string is not UTF-8"),
            MsgpackError::MapKey => f.write_str("msgpack map key is not a string"),
            MsgpackError::TooDeep => f.write_str("msgpack nesting too deep"),
        }
    }
}

impl std::error::Error for MsgpackError {}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

pub fn write_nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

pub fn write_bool(b: bool, out: &mut Vec<u8>) {
    out.push(if b { 0xc3 } else { 0xc2 });
}

/// The smallest encoding, as Python's packer chooses it.
pub fn write_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        write_uint(n as u64, out);
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= i64::from(i8::MIN) {
        out.push(0xd0);
        out.push(n as i8 as u8);
    } else if n >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

pub fn write_uint(n: u64, out: &mut Vec<u8>) {
    if n < 128 {
        out.push(n as u8);
    } else if n <= u64::from(u8::MAX) {
        out.push(0xcc);
        out.push(n as u8);
    } else if n <= u64::from(u16::MAX) {
        out.push(0xcd);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u64::from(u32::MAX) {
        out.push(0xce);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

pub fn write_float(f: f64, out: &mut Vec<u8>) {
    out.push(0xcb);
    out.extend_from_slice(&f.to_bits().to_be_bytes());
}

pub fn write_str(s: &str, out: &mut Vec<u8>) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= usize::from(u8::MAX) {
        out.push(0xd9);
        out.push(n as u8);
    } else if n <= usize::from(u16::MAX) {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

pub fn write_bin(b: &[u8], out: &mut Vec<u8>) {
    let n = b.len();
    if n <= usize::from(u8::MAX) {
        out.push(0xc4);
        out.push(n as u8);
    } else if n <= usize::from(u16::MAX) {
        out.push(0xc5);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

pub fn write_array_header(n: usize, out: &mut Vec<u8>) {
    write_container_header(n, 0x90, 0xdc, out);
}

pub fn write_map_header(n: usize, out: &mut Vec<u8>) {
    write_container_header(n, 0x80, 0xde, out);
}

fn write_container_header(n: usize, fix: u8, wide16: u8, out: &mut Vec<u8>) {
    if n < 16 {
        out.push(fix | n as u8);
    } else if n <= usize::from(u16::MAX) {
        out.push(wide16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(wide16 + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Writes a Python string; `true` if it held a lone surrogate (written as U+FFFD).
fn write_pystr(s: &PyStr, out: &mut Vec<u8>) -> bool {
    match s.as_string() {
        Some(text) => {
            write_str(&text, out);
            false
        }
        None => {
            write_str(&s.to_string_lossy(), out);
            true
        }
    }
}

/// Writes `v` as Python's `msgpack.packb` would. Returns `true` if the value had to be
/// changed because Python's msgpack cannot hold it (see the module comment).
pub fn write_value(v: &Value, out: &mut Vec<u8>) -> bool {
    match v {
        Value::Null => {
            write_nil(out);
            false
        }
        Value::Bool(b) => {
            write_bool(*b, out);
            false
        }
        Value::Int(n) => {
            if let Ok(i) = i64::try_from(n) {
                write_int(i, out);
                false
            } else if let Ok(u) = u64::try_from(n) {
                write_uint(u, out);
                false
            } else {
                write_str(&n.to_string(), out);
                true
            }
        }
        Value::Float(f) => {
            write_float(*f, out);
            false
        }
        Value::Str(s) => write_pystr(s, out),
        Value::Array(items) => {
            write_array_header(items.len(), out);
            items
                .iter()
                .fold(false, |lossy, item| write_value(item, out) | lossy)
        }
        Value::Object(obj) => {
            write_map_header(obj.len(), out);
            obj.iter().fold(false, |lossy, (k, item)| {
                let key_lossy = write_pystr(k, out);
                write_value(item, out) | key_lossy | lossy
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// What a map entry's value is, for callers that walk a map themselves.
pub enum Item<'a> {
    Value(Value),
    Bytes(&'a [u8]),
}

/// A cursor over one msgpack payload.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), MsgpackError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(MsgpackError::Trailing)
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MsgpackError> {
        let end = self.pos.checked_add(n).ok_or(MsgpackError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(MsgpackError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, MsgpackError> {
        Ok(self.take(1)?[0])
    }

    fn be(&mut self, n: usize) -> Result<u64, MsgpackError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn peek(&self) -> Result<u8, MsgpackError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(MsgpackError::Truncated)
    }

    /// A container of `n` elements needs at least `n * min_each` more bytes: checked before
    /// allocating, so a forged length cannot reserve memory.
    fn check_room(&self, n: usize, min_each: usize) -> Result<(), MsgpackError> {
        let need = n.checked_mul(min_each).ok_or(MsgpackError::Truncated)?;
        if self.buf.len() - self.pos < need {
            return Err(MsgpackError::Truncated);
        }
        Ok(())
    }

    /// A map header's entry count.
    pub fn map_len(&mut self) -> Result<usize, MsgpackError> {
        let n = match self.byte()? {
            b @ 0x80..=0x8f => usize::from(b & 0x0f),
            0xde => self.be(2)? as usize,
            0xdf => self.be(4)? as usize,
            _ => return Err(MsgpackError::Unsupported("expected a map")),
        };
        self.check_room(n, 2)?;
        Ok(n)
    }

    fn str_len(&mut self, first: u8) -> Result<Option<usize>, MsgpackError> {
        Ok(Some(match first {
            0xa0..=0xbf => usize::from(first & 0x1f),
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => return Ok(None),
        }))
    }

    /// A string (map keys, channel names).
    pub fn read_str(&mut self) -> Result<&'a str, MsgpackError> {
        let first = self.byte()?;
        let n = self.str_len(first)?.ok_or(MsgpackError::MapKey)?;
        std::str::from_utf8(self.take(n)?).map_err(|_| MsgpackError::InvalidUtf8)
    }

    /// A value that may also be `bytes` (Whisper's own markers).
    pub fn read_item(&mut self) -> Result<Item<'a>, MsgpackError> {
        let n = match self.peek()? {
            0xc4 => {
                self.pos += 1;
                self.be(1)?
            }
            0xc5 => {
                self.pos += 1;
                self.be(2)?
            }
            0xc6 => {
                self.pos += 1;
                self.be(4)?
            }
            _ => return self.read_value().map(Item::Value),
        };
        Ok(Item::Bytes(self.take(n as usize)?))
    }

    /// One JSON-able value.
    pub fn read_value(&mut self) -> Result<Value, MsgpackError> {
        self.value(0)
    }

    fn value(&mut self, depth: usize) -> Result<Value, MsgpackError> {
        let first = self.byte()?;
        if let Some(n) = self.str_len(first)? {
            let text = std::str::from_utf8(self.take(n)?).map_err(|_| MsgpackError::InvalidUtf8)?;
            return Ok(Value::str(text));
        }
        let int = |n: i128| Value::Int(BigInt::from(n));
        Ok(match first {
            0x00..=0x7f => int(i128::from(first)),
            0xe0..=0xff => int(i128::from(first as i8)),
            0xc0 => Value::Null,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xcc => int(i128::from(self.be(1)?)),
            0xcd => int(i128::from(self.be(2)?)),
            0xce => int(i128::from(self.be(4)?)),
            0xcf => int(i128::from(self.be(8)?)),
            0xd0 => int(i128::from(self.be(1)? as u8 as i8)),
            0xd1 => int(i128::from(self.be(2)? as u16 as i16)),
            0xd2 => int(i128::from(self.be(4)? as u32 as i32)),
            0xd3 => int(i128::from(self.be(8)? as i64)),
            0xca => Value::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => Value::Float(f64::from_bits(self.be(8)?)),
            0x90..=0x9f | 0xdc | 0xdd => {
                let n = match first {
                    0xdc => self.be(2)? as usize,
                    0xdd => self.be(4)? as usize,
                    _ => usize::from(first & 0x0f),
                };
                if depth >= MAX_DEPTH {
                    return Err(MsgpackError::TooDeep);
                }
                self.check_room(n, 1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            0x80..=0x8f | 0xde | 0xdf => {
                self.pos -= 1;
                let n = self.map_len()?;
                if depth >= MAX_DEPTH {
                    return Err(MsgpackError::TooDeep);
                }
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = PyStr::from(self.read_str()?);
                    pairs.push((key, self.value(depth + 1)?));
                }
                Value::Object(Object::from_pairs(pairs))
            }
            0xc4..=0xc6 => return Err(MsgpackError::Unsupported("bytes")),
            0xc7..=0xc9 | 0xd4..=0xd8 => return Err(MsgpackError::Unsupported("ext")),
            _ => return Err(MsgpackError::Unsupported("reserved byte 0xc1")),
        })
    }
}

/// Decodes a payload holding exactly one value.
pub fn read_value(buf: &[u8]) -> Result<Value, MsgpackError> {
    let mut r = Reader::new(buf);
    let v = r.read_value()?;
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::django::pyjson;

    fn packed(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(!write_value(v, &mut out));
        out
    }

    /// Bytes written by Python's `msgpack.packb` (msgpack 1.x), pasted as hex.
    #[test]
    fn matches_python_packb() {
        let cases: &[(&str, &str)] = &[
            ("null", "c0"),
            ("true", "c3"),
            ("127", "7f"),
            ("128", "cc80"),
            ("-32", "e0"),
            ("-33", "d0df"),
            ("65536", "ce00010000"),
            ("-2147483649", "d3ffffffff7fffffff"),
            ("18446744073709551615", "cfffffffffffffffff"),
            ("1.5", "cb3ff8000000000000"),
            (r#""Zo\u00eb""#, "a45a6fc3ab"),
            (r#"[1, "a"]"#, "9201a161"),
            (
                r#"{"type": "chat.join"}"#,
                "81a474797065a9636861742e6a6f696e",
            ),
        ];
        for (json, hex_bytes) in cases {
            let v = pyjson::loads(json).unwrap();
            assert_eq!(hex::encode(packed(&v)), *hex_bytes, "{json}");
            assert_eq!(read_value(&hex::decode(hex_bytes).unwrap()).unwrap(), v);
        }
        let long = "x".repeat(40);
        let mut out = Vec::new();
        write_str(&long, &mut out);
        assert_eq!(&out[..2], &[0xd9, 40]);
        let many: Vec<Value> = (0..20).map(Value::int).collect();
        let v = Value::Array(many);
        assert_eq!(&packed(&v)[..3], &[0xdc, 0, 20]);
        assert_eq!(read_value(&packed(&v)).unwrap(), v);
    }

    #[test]
    fn what_python_cannot_hold_is_replaced_and_reported() {
        let v = pyjson::loads(r#"["\ud800", 123456789012345678901234567890]"#).unwrap();
        let mut out = Vec::new();
        assert!(write_value(&v, &mut out));
        assert_eq!(
            read_value(&out).unwrap(),
            pyjson::loads(r#"["\ufffd", "123456789012345678901234567890"]"#).unwrap()
        );
    }

    #[test]
    fn hostile_payloads_are_refused() {
        for (bytes, err) in [
            (&b""[..], MsgpackError::Truncated),
            (&[0xdd, 0xff, 0xff, 0xff, 0xff][..], MsgpackError::Truncated),
            (&[0xdf, 0xff, 0xff, 0xff, 0xff][..], MsgpackError::Truncated),
            (&[0xc4, 1, 0][..], MsgpackError::Unsupported("bytes")),
            (&[0xd4, 1, 0][..], MsgpackError::Unsupported("ext")),
            (&[0xc1][..], MsgpackError::Unsupported("reserved byte 0xc1")),
            (&[0x81, 1, 1][..], MsgpackError::MapKey),
            (&[0xa1, 0xff][..], MsgpackError::InvalidUtf8),
            (&[0xc0, 0xc0][..], MsgpackError::Trailing),
        ] {
            assert_eq!(read_value(bytes), Err(err), "{bytes:?}");
        }
        let deep = vec![0x91; 10_000];
        assert_eq!(read_value(&deep), Err(MsgpackError::TooDeep));
    }

    #[test]
    fn duplicate_map_keys_follow_python() {
        // {"a": 1, "b": 2, "a": 3} unpacks as {"a": 3, "b": 2}.
        let bytes = hex::decode("83a16101a16202a16103").unwrap();
        assert_eq!(
            read_value(&bytes).unwrap(),
            pyjson::loads(r#"{"a": 3, "b": 2}"#).unwrap()
        );
    }
}
