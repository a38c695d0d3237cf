//! `json.dumps` with `ensure_ascii=True`: separators, string escaping (`\u` with lowercase hex,
//! surrogate pairs) and Python's float `repr`.

use std::fmt;
use std::fmt::Write as _;

use num_bigint::BigInt;

use super::{PyStr, Value};

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
/// Recursive: values from [`loads`](super::loads) are at most [`MAX_DEPTH`](super::MAX_DEPTH)
/// deep, which is safe.
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
