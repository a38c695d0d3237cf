//! Pickled values as Python's `json` module sees them: what `json.dumps` writes for a dict a
//! cache holds (a session, the fork's presence dict), and back.

use super::{DictKey, PyDict, PyValue};
use crate::django::pyjson::{Object, PyStr, Value};

/// `json.loads(json.dumps(value))`: tuples become lists and `int` dict keys their decimal text
/// (as `json.dumps` writes them); `bytes`, which `json.dumps` refuses, give `Err` with the
/// reason.
pub fn to_json(value: &PyValue) -> Result<Value, String> {
    Ok(match value {
        PyValue::None => Value::Null,
        PyValue::Bool(b) => Value::Bool(*b),
        PyValue::Int(n) => Value::Int(n.clone()),
        PyValue::Float(f) => Value::Float(*f),
        PyValue::Str(s) => Value::str(s),
        PyValue::Bytes(_) => return Err("bytes, which JSON cannot hold".into()),
        PyValue::List(items) | PyValue::Tuple(items) => {
            Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?)
        }
        PyValue::Dict(d) => Value::Object(object_to_json(d)?),
    })
}

/// [`to_json`] of a dict.
pub fn object_to_json(dict: &PyDict) -> Result<Object, String> {
    let mut out = Object::with_capacity(dict.len());
    for (key, value) in dict.iter() {
        let key = match key {
            DictKey::Str(s) => PyStr::from(s.as_str()),
            DictKey::Int(n) => PyStr::from(n.to_string()),
        };
        out.insert(key, to_json(value)?);
    }
    Ok(out)
}

/// A JSON value as a cache pickles it (lists stay lists, keys stay strings).
pub fn from_json(value: &Value) -> PyValue {
    match value {
        Value::Null => PyValue::None,
        Value::Bool(b) => PyValue::Bool(*b),
        Value::Int(n) => PyValue::Int(n.clone()),
        Value::Float(f) => PyValue::Float(*f),
        // A lone surrogate (possible in JSON, not in UTF-8) becomes U+FFFD.
        Value::Str(s) => PyValue::Str(s.to_string_lossy()),
        Value::Array(items) => PyValue::List(items.iter().map(from_json).collect()),
        Value::Object(o) => PyValue::Dict(object_from_json(o)),
    }
}

/// [`from_json`] of an object.
pub fn object_from_json(object: &Object) -> PyDict {
    object
        .iter()
        .map(|(k, v)| (DictKey::Str(k.to_string_lossy()), from_json(v)))
        .collect()
}
