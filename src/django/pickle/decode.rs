//! `pickle.loads` for the plain-data subset: one pass over the opcodes CPython writes for plain
//! data, a stack machine that builds each value bottom-up (no recursion) and enforces the
//! module's guards (see [`super`]) as it goes.

use std::collections::BTreeMap;

use num_bigint::BigInt;

use super::{DictKey, Limits, PickleError, PyDict, PyValue};

/// `pickle.loads(data)` within the default [`Limits`].
pub fn loads(data: &[u8]) -> Result<PyValue, PickleError> {
    loads_with(data, Limits::default())
}

/// `pickle.loads(data)` within `limits`. Nothing is imported or called, whatever the input.
pub fn loads_with(data: &[u8], limits: Limits) -> Result<PyValue, PickleError> {
    if data.is_empty() {
        return Err(PickleError::Empty);
    }
    if data.len() > limits.max_bytes {
        return Err(PickleError::TooLarge {
            size: data.len(),
            limit: limits.max_bytes,
        });
    }
    let mut machine = Machine {
        input: data,
        pos: 0,
        limits,
        stack: Vec::with_capacity(32),
        marks: Vec::new(),
        // Every memo write follows a value of at least one byte; sized from bytes present.
        memo: Vec::with_capacity((data.len() / 8).min(1024)),
        sparse: BTreeMap::new(),
        memo_len: 0,
        values: 0,
        text: 0,
    };
    machine.run()
}

/// What the memo keeps of a value: scalars by value, strings and bytes as their place in the
/// (already checked) input, copied out again at each read, and containers as a marker only,
/// since they are never read.
#[derive(Clone, Copy, Debug)]
enum Memo<'a> {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    Container,
    /// (On the stack only) a value already written to or read from the memo.
    Written,
}

impl Memo<'_> {
    /// The value a memo read yields; `None` for a container.
    fn value(self) -> Option<PyValue> {
        Some(match self {
            Memo::None => PyValue::None,
            Memo::Bool(b) => PyValue::Bool(b),
            Memo::Int(n) => PyValue::Int(BigInt::from(n)),
            Memo::Float(f) => PyValue::Float(f),
            Memo::Str(s) => PyValue::Str(s.to_owned()),
            Memo::Bytes(b) => PyValue::Bytes(b.to_vec()),
            Memo::Container | Memo::Written => return None,
        })
    }
}

/// A value on the stack.
struct Item<'a> {
    value: PyValue,
    /// What a memo write of it keeps.
    memo: Memo<'a>,
    /// Nesting levels below and including this value (0 for scalars).
    depth: usize,
}

/// The decoder's state over one input.
struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    limits: Limits,
    stack: Vec<Item<'a>>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    /// Memo slots `0..memo.len()`: `MEMOIZE` numbers them in order, so this holds every slot
    /// CPython writes, without hashing.
    memo: Vec<Memo<'a>>,
    /// Slots a `BINPUT` set out of order (never CPython); a tree, which hostile ids cannot
    /// degrade, and nothing is allocated by id value.
    sparse: BTreeMap<u32, Memo<'a>>,
    /// Slots set: the id `MEMOIZE` takes (Python's `len(memo)`).
    memo_len: u32,
    /// Values pushed and payload bytes copied so far, against [`Limits`].
    values: usize,
    text: usize,
}

fn refused(name: &'static str, why: &'static str) -> PickleError {
    PickleError::Refused { name, why }
}

fn malformed(what: impl Into<String>) -> PickleError {
    PickleError::Malformed(what.into())
}

/// A dict key: `str` or `int`; other (hashable) Python keys are refused.
fn key(value: PyValue) -> Result<DictKey, PickleError> {
    match value {
        PyValue::Str(s) => Ok(DictKey::Str(s)),
        PyValue::Int(n) => Ok(DictKey::Int(n)),
        other => Err(PickleError::Unsupported(format!(
            "a dict key of type {} (only str and int keys are read)",
            other.type_name()
        ))),
    }
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PickleError> {
        let input = self.input;
        if input.len() - self.pos < n {
            return Err(PickleError::Truncated(what));
        }
        let bytes = &input[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], PickleError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, PickleError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A payload whose length was just read: it must lie within the input.
    fn payload(&mut self, len: u64, what: &'static str) -> Result<&'a [u8], PickleError> {
        let left = self.input.len() - self.pos;
        if len > left as u64 {
            return Err(PickleError::Length {
                what,
                declared: len,
                left,
            });
        }
        self.take(len as usize, what)
    }

    fn count_value(&mut self) -> Result<(), PickleError> {
        self.values += 1;
        if self.values > self.limits.max_nodes {
            return Err(PickleError::Budget("too many values"));
        }
        Ok(())
    }

    fn count_text(&mut self, len: usize) -> Result<(), PickleError> {
        self.text = self.text.saturating_add(len);
        if self.text > self.limits.max_text_bytes {
            return Err(PickleError::Budget("too much text"));
        }
        Ok(())
    }

    fn push(&mut self, value: PyValue, memo: Memo<'a>) -> Result<(), PickleError> {
        self.count_value()?;
        let depth = usize::from(matches!(memo, Memo::Container));
        self.stack.push(Item { value, memo, depth });
        Ok(())
    }

    fn push_int(&mut self, n: i64) -> Result<(), PickleError> {
        self.push(PyValue::Int(BigInt::from(n)), Memo::Int(n))
    }

    /// Where the values since the innermost open `MARK` begin.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    /// Closes the innermost `MARK`; where its values begin.
    fn pop_mark(&mut self) -> Result<usize, PickleError> {
        self.marks
            .pop()
            .ok_or_else(|| malformed("stack underflow (no MARK)"))
    }

    /// The depth of a container holding the values `stack[from..]`.
    fn depth_over(&self, from: usize) -> usize {
        self.stack[from..]
            .iter()
            .fold(1, |depth, item| depth.max(item.depth + 1))
    }

    /// The container below the values `stack[from..]` (above the innermost `MARK`), taken
    /// out of the stack for filling, with its new depth; [`Machine::put_back`] returns it.
    fn take_container(&mut self, from: usize) -> Result<PyValue, PickleError> {
        if from <= self.floor() {
            return Err(malformed("stack underflow"));
        }
        let depth = self.depth_over(from);
        let container = &mut self.stack[from - 1];
        container.depth = container.depth.max(depth);
        if container.depth > self.limits.max_depth {
            return Err(PickleError::TooDeep(self.limits.max_depth));
        }
        Ok(std::mem::replace(&mut container.value, PyValue::None))
    }

    fn put_back(&mut self, from: usize, container: PyValue) {
        self.stack.truncate(from);
        if let Some(top) = self.stack.last_mut() {
            top.value = container;
        }
    }

    /// `APPEND`, `APPENDS`: the values `stack[from..]` into the list below them.
    fn append(&mut self, from: usize) -> Result<(), PickleError> {
        let mut container = self.take_container(from)?;
        let PyValue::List(list) = &mut container else {
            return Err(malformed(format!("APPEND on a {}", container.type_name())));
        };
        list.extend(self.stack.drain(from..).map(|item| item.value));
        self.put_back(from, container);
        Ok(())
    }

    /// `SETITEM`, `SETITEMS`: the pairs `stack[from..]` into the dict below them.
    fn set_items(&mut self, from: usize) -> Result<(), PickleError> {
        if !(self.stack.len() - from).is_multiple_of(2) {
            return Err(malformed("SETITEMS with an odd number of items"));
        }
        let mut container = self.take_container(from)?;
        let PyValue::Dict(dict) = &mut container else {
            return Err(malformed(format!("SETITEM on a {}", container.type_name())));
        };
        // Sized by values already read, never by a declared length.
        dict.reserve((self.stack.len() - from) / 2);
        let mut items = self.stack.drain(from..);
        while let (Some(k), Some(v)) = (items.next(), items.next()) {
            // Python: a repeated key keeps its first position and takes the last value.
            dict.insert(key(k.value)?, v.value);
        }
        drop(items);
        self.put_back(from, container);
        Ok(())
    }

    /// `TUPLE…`: the values `stack[from..]` become one tuple.
    fn tuple(&mut self, from: usize) -> Result<(), PickleError> {
        let depth = self.depth_over(from);
        let items: Vec<PyValue> = self.stack.drain(from..).map(|item| item.value).collect();
        self.push(PyValue::Tuple(items), Memo::Container)?;
        if depth > self.limits.max_depth {
            return Err(PickleError::TooDeep(self.limits.max_depth));
        }
        if let Some(top) = self.stack.last_mut() {
            top.depth = depth;
        }
        Ok(())
    }

    fn memo_entry(&self, id: u32) -> Option<Memo<'a>> {
        match self.memo.get(id as usize) {
            Some(entry) => Some(*entry),
            None => self.sparse.get(&id).copied(),
        }
    }

    fn memoize(&mut self, id: u32) -> Result<(), PickleError> {
        if self.stack.len() <= self.floor() {
            return Err(malformed("stack underflow at a memo write"));
        }
        let Some(top) = self.stack.last_mut() else {
            return Err(malformed("stack underflow at a memo write"));
        };
        let entry = std::mem::replace(&mut top.memo, Memo::Written);
        if matches!(entry, Memo::Written) {
            return Err(malformed("a value memoized twice"));
        }
        let reused = match self.memo_entry(id) {
            Some(_) => true,
            // Not in `sparse` either (looked up above), so the two stay apart.
            None if id as usize == self.memo.len() => {
                self.memo.push(entry);
                false
            }
            None => self.sparse.insert(id, entry).is_some(),
        };
        if reused {
            return Err(malformed(format!("memo slot {id} reused")));
        }
        self.memo_len = self.memo_len.saturating_add(1);
        Ok(())
    }

    fn memo_get(&mut self, id: u32) -> Result<(), PickleError> {
        let Some(entry) = self.memo_entry(id) else {
            return Err(malformed(format!("memo slot {id} read before it is set")));
        };
        let Some(value) = entry.value() else {
            return Err(refused(
                "BINGET",
                "a shared or recursive container (the memo read again)",
            ));
        };
        if let Memo::Str(s) = entry {
            self.count_text(s.len())?;
        } else if let Memo::Bytes(b) = entry {
            self.count_text(b.len())?;
        }
        self.count_value()?;
        self.stack.push(Item {
            value,
            memo: Memo::Written,
            depth: 0,
        });
        Ok(())
    }

    fn long(&mut self, len: u64) -> Result<(), PickleError> {
        let bytes = self.payload(len, "LONG")?;
        // Little-endian two's complement; beyond 8 bytes the value fits an i64 only when the
        // extra bytes repeat the sign.
        let n = bytes.len().min(8);
        if bytes.len() > 8 {
            let sign = if bytes[7] & 0x80 != 0 { 0xff } else { 0 };
            if bytes[8..].iter().any(|&b| b != sign) {
                return Err(PickleError::BigInt);
            }
        }
        let negative = n > 0 && bytes[n - 1] & 0x80 != 0;
        let mut le = [if negative { 0xff } else { 0 }; 8];
        le[..n].copy_from_slice(&bytes[..n]);
        self.push_int(i64::from_le_bytes(le))
    }

    fn unicode(&mut self, len: u64) -> Result<(), PickleError> {
        let bytes = self.payload(len, "a string")?;
        let text = std::str::from_utf8(bytes).map_err(|_| PickleError::Utf8)?;
        self.count_text(text.len())?;
        self.push(PyValue::Str(text.to_owned()), Memo::Str(text))
    }

    fn bytes(&mut self, len: u64) -> Result<(), PickleError> {
        let bytes = self.payload(len, "bytes")?;
        self.count_text(bytes.len())?;
        self.push(PyValue::Bytes(bytes.to_vec()), Memo::Bytes(bytes))
    }

    /// Runs to `STOP`; the root value.
    fn run(&mut self) -> Result<PyValue, PickleError> {
        loop {
            let op = self.byte("an opcode")?;
            match op {
                // PROTO
                0x80 => {
                    let proto = self.byte("PROTO")?;
                    if proto > 5 {
                        return Err(PickleError::Protocol(proto));
                    }
                }
                // FRAME: only a length, which must lie within the input.
                0x95 => {
                    let len = self.u64("FRAME")?;
                    let left = self.input.len() - self.pos;
                    if len > left as u64 {
                        return Err(PickleError::FrameOverrun {
                            declared: len,
                            left,
                        });
                    }
                }
                // STOP
                b'.' => return self.stop(),
                // MARK
                b'(' => {
                    if self.marks.len() >= self.limits.max_depth {
                        return Err(PickleError::TooDeep(self.limits.max_depth));
                    }
                    self.marks.push(self.stack.len());
                }
                b'}' => self.push(PyValue::Dict(PyDict::new()), Memo::Container)?,
                b']' => self.push(PyValue::List(Vec::new()), Memo::Container)?,
                b')' => self.push(PyValue::Tuple(Vec::new()), Memo::Container)?,
                b'N' => self.push(PyValue::None, Memo::None)?,
                // NEWTRUE, NEWFALSE
                0x88 => self.push(PyValue::Bool(true), Memo::Bool(true))?,
                0x89 => self.push(PyValue::Bool(false), Memo::Bool(false))?,
                // BININT, BININT1, BININT2, BINFLOAT
                b'J' => {
                    let n = i32::from_le_bytes(self.array("a number")?);
                    self.push_int(n.into())?;
                }
                b'K' => {
                    let n = self.byte("a number")?;
                    self.push_int(n.into())?;
                }
                b'M' => {
                    let n = u16::from_le_bytes(self.array("a number")?);
                    self.push_int(n.into())?;
                }
                b'G' => {
                    let f = f64::from_be_bytes(self.array("a number")?);
                    self.push(PyValue::Float(f), Memo::Float(f))?;
                }
                // LONG1, LONG4
                0x8a => {
                    let len = self.byte("LONG1")?;
                    self.long(u64::from(len))?;
                }
                0x8b => {
                    let len = self.u32("LONG4")? as i32;
                    if len < 0 {
                        return Err(malformed("negative LONG4 length"));
                    }
                    self.long(len as u64)?;
                }
                // SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
                0x8c => {
                    let len = self.byte("SHORT_BINUNICODE")?;
                    self.unicode(u64::from(len))?;
                }
                b'X' => {
                    let len = self.u32("BINUNICODE")?;
                    self.unicode(u64::from(len))?;
                }
                0x8d => {
                    let len = self.u64("BINUNICODE8")?;
                    self.unicode(len)?;
                }
                // SHORT_BINBYTES, BINBYTES, BINBYTES8
                b'C' => {
                    let len = self.byte("SHORT_BINBYTES")?;
                    self.bytes(u64::from(len))?;
                }
                b'B' => {
                    let len = self.u32("BINBYTES")?;
                    self.bytes(u64::from(len))?;
                }
                0x8e => {
                    let len = self.u64("BINBYTES8")?;
                    self.bytes(len)?;
                }
                // MEMOIZE, BINPUT, LONG_BINPUT
                0x94 => self.memoize(self.memo_len)?,
                b'q' => {
                    let id = self.byte("BINPUT")?;
                    self.memoize(u32::from(id))?;
                }
                b'r' => {
                    let id = self.u32("LONG_BINPUT")?;
                    self.memoize(id)?;
                }
                // BINGET, LONG_BINGET
                b'h' => {
                    let id = self.byte("BINGET")?;
                    self.memo_get(u32::from(id))?;
                }
                b'j' => {
                    let id = self.u32("LONG_BINGET")?;
                    self.memo_get(id)?;
                }
                // APPEND, APPENDS
                b'a' => {
                    if self.stack.len() <= self.floor() {
                        return Err(malformed("stack underflow"));
                    }
                    self.append(self.stack.len() - 1)?;
                }
                b'e' => {
                    let from = self.pop_mark()?;
                    self.append(from)?;
                }
                // SETITEM, SETITEMS
                b's' => {
                    if self.stack.len() < self.floor() + 2 {
                        return Err(malformed("stack underflow"));
                    }
                    self.set_items(self.stack.len() - 2)?;
                }
                b'u' => {
                    let from = self.pop_mark()?;
                    self.set_items(from)?;
                }
                // TUPLE, TUPLE1, TUPLE2, TUPLE3
                b't' => {
                    let from = self.pop_mark()?;
                    self.tuple(from)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < self.floor() + n {
                        return Err(malformed("stack underflow"));
                    }
                    self.tuple(self.stack.len() - n)?;
                }
                other => return Err(refuse(other)),
            }
        }
    }

    fn stop(&mut self) -> Result<PyValue, PickleError> {
        if self.pos != self.input.len() {
            return Err(malformed("data after STOP"));
        }
        if !self.marks.is_empty() {
            return Err(malformed("a MARK still open at STOP"));
        }
        match (self.stack.pop(), self.stack.len()) {
            (Some(root), 0) => Ok(root.value),
            (None, _) => Err(malformed("stack underflow at STOP")),
            (Some(_), more) => Err(malformed(format!(
                "the stack holds {} values at STOP",
                more + 1
            ))),
        }
    }
}

/// The refusal of an opcode outside the allowlist, saying what Python would do with it.
fn refuse(op: u8) -> PickleError {
    let (name, why) = match op {
        b'c' => ("GLOBAL", "imports a global (code execution in Python)"),
        0x93 => (
            "STACK_GLOBAL",
            "imports a global (code execution in Python)",
        ),
        b'R' => ("REDUCE", "calls an object"),
        b'b' => ("BUILD", "sets an object's state"),
        b'i' => ("INST", "creates an object"),
        b'o' => ("OBJ", "creates an object"),
        0x81 => ("NEWOBJ", "creates an object"),
        0x92 => ("NEWOBJ_EX", "creates an object"),
        b'P' | b'Q' => ("BINPERSID", "a persistent id (resolved by Python code)"),
        0x82..=0x84 => (
            "EXT",
            "an extension code (resolved by the copyreg registry)",
        ),
        0x8f..=0x91 => ("EMPTY_SET/FROZENSET", "sets are not supported"),
        0x96 => ("BYTEARRAY8", "bytearray is not supported"),
        0x97 | 0x98 => ("NEXT_BUFFER", "out-of-band buffers are not supported"),
        b'2' => ("DUP", "not written by CPython (copies a value)"),
        b'0' | b'1' => ("POP", "not written by CPython for plain data"),
        b'l' | b'd' | b'I' | b'L' | b'F' | b'S' | b'T' | b'U' | b'V' | b'p' | b'g' => (
            "protocol 0/1 opcode",
            "text protocols are not supported (Django writes protocol 4 or 5)",
        ),
        other => return PickleError::UnknownOpcode(other),
    };
    refused(name, why)
}
