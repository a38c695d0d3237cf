//! `json.loads`: an iterative parser that follows CPython's scanner (grammar, error messages and
//! positions), with the deliberate refusals described in the parent module.

use num_bigint::BigInt;

use super::{JsonError, MAX_DEPTH, MAX_INT_DIGITS, Object, PyStr, Value};

pub(super) const E_VALUE: &str = "Expecting value";
pub(super) const E_EXTRA: &str = "Extra data";
pub(super) const E_COMMA: &str = "Expecting ',' delimiter";
pub(super) const E_COLON: &str = "Expecting ':' delimiter";
pub(super) const E_PROP: &str = "Expecting property name enclosed in double quotes";
pub(super) const E_UNTERMINATED: &str = "Unterminated string starting at";
pub(super) const E_CONTROL: &str = "Invalid control character at";
pub(super) const E_ESCAPE: &str = "Invalid \\escape";
pub(super) const E_UESCAPE: &str = "Invalid \\uXXXX escape";

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
