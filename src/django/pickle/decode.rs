//! `pickle.loads` for the plain-data subset: [`guard`](super::guard) first, then serde-pickle's
//! `Deserializer` driven by this module's visitor, which keeps dicts in stream order and turns
//! the sequences the guard marked as tuples into tuples.

use std::cell::{Cell, RefCell};
use std::fmt;

use num_bigint::BigInt;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::guard::{self, Plan};
use super::{DictKey, Limits, PickleError, PyDict, PyValue};

/// `pickle.loads(data)` within the default [`Limits`].
pub fn loads(data: &[u8]) -> Result<PyValue, PickleError> {
    loads_with(data, Limits::default())
}

/// `pickle.loads(data)` within `limits`. Nothing is imported or called, whatever the input.
pub fn loads_with(data: &[u8], limits: Limits) -> Result<PyValue, PickleError> {
    let plan = guard::check(data, limits)?;
    let state = State {
        plan: &plan,
        next_seq: Cell::new(0),
        refusal: RefCell::new(None),
    };
    let mut de = serde_pickle::Deserializer::new(data, serde_pickle::DeOptions::new());
    let result = ValueSeed(&state)
        .deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value));
    match result {
        Ok(value) => Ok(value),
        // A refusal of this visitor beats the crate's wording of it.
        Err(e) => Err(state
            .refusal
            .into_inner()
            .unwrap_or_else(|| PickleError::Malformed(e.to_string()))),
    }
}

/// What the visitors share while one pickle is read.
struct State<'a> {
    plan: &'a Plan,
    /// Sequences seen so far (index into `plan.tuples`).
    next_seq: Cell<usize>,
    refusal: RefCell<Option<PickleError>>,
}

impl State<'_> {
    fn refuse<E: de::Error>(&self, error: PickleError) -> E {
        let text = error.to_string();
        self.refusal.borrow_mut().get_or_insert(error);
        E::custom(text)
    }
}

#[derive(Clone, Copy)]
struct ValueSeed<'a, 'p>(&'a State<'p>);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = PyValue;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<PyValue, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = PyValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a plain Python value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<PyValue, E> {
        Ok(PyValue::None)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<PyValue, E> {
        Ok(PyValue::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<PyValue, E> {
        Ok(PyValue::Int(BigInt::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<PyValue, E> {
        Ok(PyValue::Int(BigInt::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<PyValue, E> {
        Ok(PyValue::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<PyValue, E> {
        Ok(PyValue::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<PyValue, E> {
        Ok(PyValue::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<PyValue, E> {
        Ok(PyValue::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<PyValue, E> {
        Ok(PyValue::Bytes(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PyValue, A::Error> {
        let state = self.0;
        let index = state.next_seq.get();
        state.next_seq.set(index + 1);
        let Some(&tuple) = state.plan.tuples.get(index) else {
            return Err(state.refuse(PickleError::Malformed(
                "more sequences than the guard saw".into(),
            )));
        };
        // The length comes from values the crate holds already, so this allocates no more
        // than the guard allowed.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(if tuple {
            PyValue::Tuple(items)
        } else {
            PyValue::List(items)
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PyValue, A::Error> {
        let mut dict = PyDict::new();
        while let Some(key) = map.next_key_seed(KeySeed(self.0))? {
            let value = map.next_value_seed(self)?;
            // Python: a repeated key keeps its first position and takes the last value.
            dict.insert(key, value);
        }
        Ok(PyValue::Dict(dict))
    }
}

/// A dict key: `str` or `int`; other (hashable) Python keys are refused.
struct KeySeed<'a, 'p>(&'a State<'p>);

impl KeySeed<'_, '_> {
    fn refuse<E: de::Error>(&self, type_name: &str) -> E {
        self.0.refuse(PickleError::Unsupported(format!(
            "a dict key of type {type_name} (only str and int keys are read)"
        )))
    }
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_> {
    type Value = DictKey;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<DictKey, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, '_> {
    type Value = DictKey;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a str or int dict key")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<DictKey, E> {
        Ok(DictKey::Int(BigInt::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<DictKey, E> {
        Ok(DictKey::Int(BigInt::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<DictKey, E> {
        Ok(DictKey::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<DictKey, E> {
        Ok(DictKey::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<DictKey, E> {
        Err(self.refuse("NoneType"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<DictKey, E> {
        Err(self.refuse("bool"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<DictKey, E> {
        Err(self.refuse("float"))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<DictKey, E> {
        Err(self.refuse("bytes"))
    }

    fn visit_byte_buf<E: de::Error>(self, _: Vec<u8>) -> Result<DictKey, E> {
        Err(self.refuse("bytes"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<DictKey, A::Error> {
        Err(self.refuse("tuple"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<DictKey, A::Error> {
        Err(self.refuse("dict"))
    }
}
