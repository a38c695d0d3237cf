//! The pre-scan every pickle passes before the crate reads it: a small stack machine over the
//! opcodes CPython writes for plain data, tracking only the kind, size and depth of each
//! value. It refuses (see the module documentation of [`super`]) whatever the crate would
//! turn into data silently, copy without bound, or recurse on too deeply, and it records
//! which of the sequences are tuples, in the order the crate will visit them.

use std::collections::HashMap;

use super::{Limits, PickleError};

/// What the crate may decode, and how: `tuples[i]` says whether the `i`-th sequence in
/// depth-first order (the order a serde visitor sees them) is a tuple.
#[derive(Debug)]
pub(super) struct Plan {
    pub tuples: Vec<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Scalar,
    /// `str` or `bytes` with its payload length.
    Text(usize),
    List,
    Tuple,
    Dict,
}

impl Kind {
    fn is_container(self) -> bool {
        matches!(self, Kind::List | Kind::Tuple | Kind::Dict)
    }
}

#[derive(Clone, Copy, Debug)]
struct Item {
    kind: Kind,
    /// Nesting levels below and including this value (0 for scalars).
    depth: usize,
    /// Already moved into the memo (the crate now holds a reference to it).
    memoized: bool,
    /// For containers: its node in `Scan::nodes`.
    node: u32,
}

/// A container of the shadow tree: whether it is a tuple, and its container children in
/// stream order (dict keys before their values).
struct Node {
    tuple: bool,
    is_seq: bool,
    children: Vec<u32>,
}

struct Scan<'a> {
    input: &'a [u8],
    pos: usize,
    limits: Limits,
    stack: Vec<Item>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u32, Item>,
    nodes: Vec<Node>,
    values: usize,
    text: usize,
}

fn refused(name: &'static str, why: &'static str) -> PickleError {
    PickleError::Refused { name, why }
}

fn malformed(what: impl Into<String>) -> PickleError {
    PickleError::Malformed(what.into())
}

/// Checks `input` against `limits`; the plan for decoding it, or why it is refused.
pub(super) fn check(input: &[u8], limits: Limits) -> Result<Plan, PickleError> {
    if input.is_empty() {
        return Err(PickleError::Empty);
    }
    if input.len() > limits.max_bytes {
        return Err(PickleError::TooLarge {
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    let mut scan = Scan {
        input,
        pos: 0,
        limits,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        nodes: Vec::new(),
        values: 0,
        text: 0,
    };
    let root = scan.run()?;
    Ok(Plan {
        tuples: scan.preorder(root),
    })
}

impl Scan<'_> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], PickleError> {
        if self.input.len() - self.pos < n {
            return Err(PickleError::Truncated(what));
        }
        let bytes = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn uint(&mut self, n: usize, what: &'static str) -> Result<u64, PickleError> {
        let bytes = self.take(n, what)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A payload whose length was just read: it must lie within the input.
    fn payload(&mut self, len: u64, what: &'static str) -> Result<&[u8], PickleError> {
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

    fn push(&mut self, kind: Kind) -> Result<(), PickleError> {
        self.count_value()?;
        let node = if kind.is_container() {
            self.nodes.push(Node {
                tuple: kind == Kind::Tuple,
                is_seq: kind != Kind::Dict,
                children: Vec::new(),
            });
            (self.nodes.len() - 1) as u32
        } else {
            0
        };
        self.stack.push(Item {
            kind,
            depth: usize::from(kind.is_container()),
            memoized: false,
            node,
        });
        Ok(())
    }

    fn push_text(&mut self, len: usize) -> Result<(), PickleError> {
        self.count_text(len)?;
        self.push(Kind::Text(len))
    }

    fn pop(&mut self) -> Result<Item, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(malformed("stack underflow"));
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    /// The items pushed since the last `MARK`, which is closed.
    fn pop_mark(&mut self) -> Result<Vec<Item>, PickleError> {
        let start = self
            .marks
            .pop()
            .ok_or_else(|| malformed("stack underflow (no MARK)"))?;
        Ok(self.stack.split_off(start))
    }

    /// Adds `children` to the container on top of the stack, which must be of `kind`.
    fn add_to_top(&mut self, kind: Kind, children: &[Item]) -> Result<(), PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(malformed("stack underflow"));
        }
        let top = self.stack.last().copied().expect("checked above");
        if top.kind != kind {
            return Err(malformed(format!("{kind:?} opcode on a {:?}", top.kind)));
        }
        let depth = self.link(top, children)?;
        self.stack.last_mut().expect("checked above").depth = depth;
        Ok(())
    }

    /// Records `children` under `parent`; the parent's new depth.
    fn link(&mut self, parent: Item, children: &[Item]) -> Result<usize, PickleError> {
        let mut depth = parent.depth.max(1);
        for child in children {
            depth = depth.max(child.depth + 1);
            if child.kind.is_container() {
                self.nodes[parent.node as usize].children.push(child.node);
            }
        }
        if depth > self.limits.max_depth {
            return Err(PickleError::TooDeep(self.limits.max_depth));
        }
        Ok(depth)
    }

    fn tuple(&mut self, items: Vec<Item>) -> Result<(), PickleError> {
        self.push(Kind::Tuple)?;
        let tuple = *self.stack.last().expect("just pushed");
        let depth = self.link(tuple, &items)?;
        self.stack.last_mut().expect("just pushed").depth = depth;
        Ok(())
    }

    fn memoize(&mut self, id: u32) -> Result<(), PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(malformed("stack underflow at a memo write"));
        }
        let top = self.stack.last_mut().expect("checked above");
        // The crate deep-copies an already memoized value here; CPython never does this.
        if top.memoized {
            return Err(malformed("a value memoized twice"));
        }
        top.memoized = true;
        let item = *top;
        if self.memo.insert(id, item).is_some() {
            return Err(malformed(format!("memo slot {id} reused")));
        }
        Ok(())
    }

    fn memo_get(&mut self, id: u32) -> Result<(), PickleError> {
        let item = *self
            .memo
            .get(&id)
            .ok_or_else(|| malformed(format!("memo slot {id} read before it is set")))?;
        if item.kind.is_container() {
            return Err(refused(
                "BINGET",
                "a shared or recursive container (the memo read again)",
            ));
        }
        if let Kind::Text(len) = item.kind {
            self.count_text(len)?;
        }
        self.count_value()?;
        self.stack.push(item);
        Ok(())
    }

    fn long(&mut self, len: u64) -> Result<(), PickleError> {
        let bytes = self.payload(len, "LONG")?;
        // Beyond 8 bytes the value fits an i64 only when the extra bytes repeat the sign.
        if bytes.len() > 8 {
            let sign = if bytes[7] & 0x80 != 0 { 0xff } else { 0 };
            if bytes[8..].iter().any(|&b| b != sign) {
                return Err(PickleError::BigInt);
            }
        }
        self.push(Kind::Scalar)
    }

    fn unicode(&mut self, len: u64) -> Result<(), PickleError> {
        let bytes = self.payload(len, "a string")?;
        if std::str::from_utf8(bytes).is_err() {
            return Err(PickleError::Utf8);
        }
        self.push_text(len as usize)
    }

    fn bytes(&mut self, len: u64) -> Result<(), PickleError> {
        self.payload(len, "bytes")?;
        self.push_text(len as usize)
    }

    /// Runs to `STOP`; the root value.
    fn run(&mut self) -> Result<Item, PickleError> {
        loop {
            let op = *self.take(1, "an opcode")?.first().expect("one byte");
            match op {
                // PROTO
                0x80 => {
                    let proto = self.take(1, "PROTO")?[0];
                    if proto > 5 {
                        return Err(PickleError::Protocol(proto));
                    }
                }
                // FRAME: the crate skips the length; it must still lie within the input.
                0x95 => {
                    let len = self.uint(8, "FRAME")?;
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
                b'}' => self.push(Kind::Dict)?,
                b']' => self.push(Kind::List)?,
                b')' => self.push(Kind::Tuple)?,
                // NONE, NEWTRUE, NEWFALSE
                b'N' | 0x88 | 0x89 => self.push(Kind::Scalar)?,
                // BININT, BININT1, BININT2, BINFLOAT
                b'J' | b'K' | b'M' | b'G' => {
                    let n = match op {
                        b'J' => 4,
                        b'K' => 1,
                        b'M' => 2,
                        _ => 8,
                    };
                    self.take(n, "a number")?;
                    self.push(Kind::Scalar)?;
                }
                // LONG1, LONG4
                0x8a => {
                    let len = self.uint(1, "LONG1")?;
                    self.long(len)?;
                }
                0x8b => {
                    let len = self.uint(4, "LONG4")? as u32 as i32;
                    if len < 0 {
                        return Err(malformed("negative LONG4 length"));
                    }
                    self.long(len as u64)?;
                }
                // SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
                0x8c => {
                    let len = self.uint(1, "SHORT_BINUNICODE")?;
                    self.unicode(len)?;
                }
                b'X' => {
                    let len = self.uint(4, "BINUNICODE")?;
                    self.unicode(len)?;
                }
                0x8d => {
                    let len = self.uint(8, "BINUNICODE8")?;
                    self.unicode(len)?;
                }
                // SHORT_BINBYTES, BINBYTES, BINBYTES8
                b'C' => {
                    let len = self.uint(1, "SHORT_BINBYTES")?;
                    self.bytes(len)?;
                }
                b'B' => {
                    let len = self.uint(4, "BINBYTES")?;
                    self.bytes(len)?;
                }
                0x8e => {
                    let len = self.uint(8, "BINBYTES8")?;
                    self.bytes(len)?;
                }
                // MEMOIZE, BINPUT, LONG_BINPUT
                0x94 => {
                    let id = self.memo.len() as u32;
                    self.memoize(id)?;
                }
                b'q' => {
                    let id = self.uint(1, "BINPUT")? as u32;
                    self.memoize(id)?;
                }
                b'r' => {
                    let id = self.uint(4, "LONG_BINPUT")? as u32;
                    self.memoize(id)?;
                }
                // BINGET, LONG_BINGET
                b'h' => {
                    let id = self.uint(1, "BINGET")? as u32;
                    self.memo_get(id)?;
                }
                b'j' => {
                    let id = self.uint(4, "LONG_BINGET")? as u32;
                    self.memo_get(id)?;
                }
                // APPEND, APPENDS
                b'a' => {
                    let item = self.pop()?;
                    self.add_to_top(Kind::List, &[item])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.add_to_top(Kind::List, &items)?;
                }
                // SETITEM, SETITEMS
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.add_to_top(Kind::Dict, &[key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        // The crate would drop the last key silently.
                        return Err(malformed("SETITEMS with an odd number of items"));
                    }
                    self.add_to_top(Kind::Dict, &items)?;
                }
                // TUPLE, TUPLE1, TUPLE2, TUPLE3
                b't' => {
                    let items = self.pop_mark()?;
                    self.tuple(items)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return Err(malformed("stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.tuple(items)?;
                }
                other => return Err(refuse(other)),
            }
        }
    }

    fn stop(&mut self) -> Result<Item, PickleError> {
        if self.pos != self.input.len() {
            return Err(malformed("data after STOP"));
        }
        if !self.marks.is_empty() {
            return Err(malformed("a MARK still open at STOP"));
        }
        match self.stack.as_slice() {
            [root] => Ok(*root),
            [] => Err(malformed("stack underflow at STOP")),
            more => Err(malformed(format!(
                "the stack holds {} values at STOP",
                more.len()
            ))),
        }
    }

    /// Tuple flags of the sequences under `root`, depth-first, children in stream order.
    fn preorder(&self, root: Item) -> Vec<bool> {
        let mut out = Vec::new();
        if !root.kind.is_container() {
            return out;
        }
        let mut todo = vec![root.node];
        while let Some(n) = todo.pop() {
            let node = &self.nodes[n as usize];
            if node.is_seq {
                out.push(node.tuple);
            }
            todo.extend(node.children.iter().rev());
        }
        out
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
