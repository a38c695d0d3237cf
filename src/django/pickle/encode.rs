//! `pickle.dumps(value, protocol)` for protocols 4 and 5, byte for byte as CPython's C pickler
//! (`Modules/_pickle.c`) writes the same value, checked by `tests/data/pickle-golden.json`:
//!
//! * `PROTO`, then `FRAME`s: a frame is closed before a value is saved once it holds 64 KiB
//!   (`FRAME_SIZE_TARGET`), frames under 4 bytes lose their header, and a `str`/`bytes`
//!   payload of 64 KiB or more is written outside any frame;
//! * every `str`, `bytes`, `list`, `tuple` (but `()`) and `dict` is memoized (`MEMOIZE`);
//! * lists and dicts of one item use `APPEND`/`SETITEM`, longer ones `MARK … APPENDS`/
//!   `SETITEMS` in batches of 1000 (a dict of exactly 1000·n items ends with an empty batch,
//!   as CPython's loop does);
//! * ints: `BININT1`/`BININT2`/`BININT` within 32 bits, else `LONG1`/`LONG4` in minimal
//!   two's complement; floats `BINFLOAT`; `NEWTRUE`/`NEWFALSE`.
//!
//! CPython writes `BINGET` when it meets the *same object* again. Object identity is not in
//! this value model, so the rule is what Python code produces: dict keys equal to an earlier
//! key are the same object (literal and `json.loads` keys are shared), and so are `""`, the
//! one-character latin-1 strings and `bytes` of length 0 or 1 (CPython's singletons). Other
//! equal values are written again, as separately built Python objects are.

use std::collections::HashMap;

use num_bigint::{BigInt, Sign};

use super::{DictKey, Protocol, PyValue};

const FRAME: u8 = 0x95;
const FRAME_HEADER: usize = 9;
/// `FRAME_SIZE_TARGET` and `FRAME_SIZE_MIN` of `_pickle.c`.
const FRAME_TARGET: usize = 64 * 1024;
const FRAME_MIN: usize = 4;
const BATCH: usize = 1000;
const MEMOIZE: u8 = 0x94;

/// The bytes of `pickle.dumps(value, protocol)`.
pub fn dumps(value: &PyValue, protocol: Protocol) -> Vec<u8> {
    let mut p = Pickler {
        out: vec![0x80, protocol as u8],
        frame_start: None,
        memo_len: 0,
        shared_str: HashMap::new(),
        shared_bytes: HashMap::new(),
    };
    p.save(value);
    p.write(b".");
    p.commit_frame();
    p.out
}

struct Pickler {
    out: Vec<u8>,
    /// Where the open frame's 9-byte header was reserved.
    frame_start: Option<usize>,
    memo_len: u32,
    /// Memo slots of the strings Python shares (keys, singletons).
    shared_str: HashMap<String, u32>,
    shared_bytes: HashMap<Vec<u8>, u32>,
}

impl Pickler {
    /// `_Pickler_Write`: opens a frame when none is open.
    fn write(&mut self, bytes: &[u8]) {
        if self.frame_start.is_none() {
            self.frame_start = Some(self.out.len());
            self.out.extend_from_slice(&[0; FRAME_HEADER]);
        }
        self.out.extend_from_slice(bytes);
    }

    /// `_Pickler_CommitFrame`.
    fn commit_frame(&mut self) {
        let Some(start) = self.frame_start.take() else {
            return;
        };
        let len = self.out.len() - start - FRAME_HEADER;
        if len >= FRAME_MIN {
            self.out[start] = FRAME;
            self.out[start + 1..start + FRAME_HEADER].copy_from_slice(&(len as u64).to_le_bytes());
        } else {
            self.out.drain(start..start + FRAME_HEADER);
        }
    }

    /// `_Pickler_OpcodeBoundary`, run before each value is saved.
    fn boundary(&mut self) {
        if let Some(start) = self.frame_start
            && self.out.len() - start - FRAME_HEADER >= FRAME_TARGET
        {
            self.commit_frame();
        }
    }

    /// `_Pickler_write_bytes`: a large payload goes out unframed, with its header.
    fn write_payload(&mut self, header: &[u8], payload: &[u8]) {
        if payload.len() >= FRAME_TARGET {
            self.commit_frame();
            self.out.extend_from_slice(header);
            self.out.extend_from_slice(payload);
        } else {
            self.write(header);
            self.write(payload);
        }
    }

    fn memoize(&mut self) -> u32 {
        self.write(&[MEMOIZE]);
        self.memo_len += 1;
        self.memo_len - 1
    }

    fn get(&mut self, index: u32) {
        match u8::try_from(index) {
            Ok(i) => self.write(&[b'h', i]),
            Err(_) => {
                let mut op = vec![b'j'];
                op.extend_from_slice(&index.to_le_bytes());
                self.write(&op);
            }
        }
    }

    fn save(&mut self, value: &PyValue) {
        self.boundary();
        match value {
            PyValue::None => self.write(b"N"),
            PyValue::Bool(true) => self.write(&[0x88]),
            PyValue::Bool(false) => self.write(&[0x89]),
            PyValue::Int(n) => self.save_int(n),
            PyValue::Float(f) => {
                let mut op = vec![b'G'];
                op.extend_from_slice(&f.to_be_bytes());
                self.write(&op);
            }
            PyValue::Str(s) => self.save_str(s, is_singleton_str(s)),
            PyValue::Bytes(b) => self.save_bytes(b),
            PyValue::List(items) => {
                self.write(b"]");
                self.memoize();
                self.save_items(items);
            }
            PyValue::Tuple(items) => self.save_tuple(items),
            PyValue::Dict(dict) => {
                self.write(b"}");
                self.memoize();
                let entries: Vec<_> = dict.iter().collect();
                if let [(key, value)] = entries.as_slice() {
                    self.save_key(key);
                    self.save(value);
                    self.write(b"s");
                    return;
                }
                if entries.is_empty() {
                    return;
                }
                // `batch_dict_exact`: `do { MARK …up to 1000… SETITEMS } while (i == 1000)`.
                let mut chunks = entries.chunks(BATCH);
                loop {
                    let chunk = chunks.next().unwrap_or(&[]);
                    self.write(b"(");
                    for (key, value) in chunk {
                        self.save_key(key);
                        self.save(value);
                    }
                    self.write(b"u");
                    if chunk.len() < BATCH {
                        break;
                    }
                }
            }
        }
    }

    /// `batch_list_exact`.
    fn save_items(&mut self, items: &[PyValue]) {
        match items {
            [] => {}
            [item] => {
                self.save(item);
                self.write(b"a");
            }
            _ => {
                for chunk in items.chunks(BATCH) {
                    self.write(b"(");
                    for item in chunk {
                        self.save(item);
                    }
                    self.write(b"e");
                }
            }
        }
    }

    fn save_tuple(&mut self, items: &[PyValue]) {
        if items.is_empty() {
            self.write(b")");
            return;
        }
        if items.len() <= 3 {
            for item in items {
                self.save(item);
            }
            self.write(&[0x84 + items.len() as u8]);
        } else {
            self.write(b"(");
            for item in items {
                self.save(item);
            }
            self.write(b"t");
        }
        self.memoize();
    }

    fn save_key(&mut self, key: &DictKey) {
        match key {
            DictKey::Str(s) => {
                self.boundary();
                self.save_str(s, true);
            }
            DictKey::Int(n) => {
                self.boundary();
                self.save_int(n);
            }
        }
    }

    fn save_str(&mut self, s: &str, shared: bool) {
        if shared && let Some(&index) = self.shared_str.get(s) {
            self.get(index);
            return;
        }
        let len = s.len();
        let header = if len <= 0xff {
            vec![0x8c, len as u8]
        } else if len <= u32::MAX as usize {
            let mut h = vec![b'X'];
            h.extend_from_slice(&(len as u32).to_le_bytes());
            h
        } else {
            let mut h = vec![0x8d];
            h.extend_from_slice(&(len as u64).to_le_bytes());
            h
        };
        self.write_payload(&header, s.as_bytes());
        let index = self.memoize();
        if shared {
            self.shared_str.insert(s.to_string(), index);
        }
    }

    fn save_bytes(&mut self, b: &[u8]) {
        let shared = b.len() <= 1;
        if shared && let Some(&index) = self.shared_bytes.get(b) {
            self.get(index);
            return;
        }
        let len = b.len();
        let header = if len <= 0xff {
            vec![b'C', len as u8]
        } else if len <= u32::MAX as usize {
            let mut h = vec![b'B'];
            h.extend_from_slice(&(len as u32).to_le_bytes());
            h
        } else {
            let mut h = vec![0x8e];
            h.extend_from_slice(&(len as u64).to_le_bytes());
            h
        };
        self.write_payload(&header, b);
        let index = self.memoize();
        if shared {
            self.shared_bytes.insert(b.to_vec(), index);
        }
    }

    /// `save_long`.
    fn save_int(&mut self, n: &BigInt) {
        if let Ok(v) = i32::try_from(n) {
            match v {
                0..=0xff => self.write(&[b'K', v as u8]),
                0x100..=0xffff => {
                    let b = (v as u16).to_le_bytes();
                    self.write(&[b'M', b[0], b[1]]);
                }
                _ => {
                    let mut op = vec![b'J'];
                    op.extend_from_slice(&v.to_le_bytes());
                    self.write(&op);
                }
            }
            return;
        }
        // Minimal two's complement, little-endian: what CPython's byte count and trimming
        // amount to.
        let bytes = if n.sign() == Sign::NoSign {
            Vec::new()
        } else {
            n.to_signed_bytes_le()
        };
        let mut op = if bytes.len() < 256 {
            vec![0x8a, bytes.len() as u8]
        } else {
            let mut h = vec![0x8b];
            h.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            h
        };
        op.extend_from_slice(&bytes);
        self.write(&op);
    }
}

/// `""` and the one-character latin-1 strings: one object each in CPython.
fn is_singleton_str(s: &str) -> bool {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (None, _) => true,
        (Some(c), None) => u32::from(c) < 256,
        _ => false,
    }
}
