//! Pure Django-compatible primitives: no I/O, no database, no clock reads except where a
//! function says so. Everything here is checked against vectors made by real Django
//! (`tests/data/django-vectors.json`, made by `compat/make_testdata.py`).

pub mod cookies;
pub mod crypto;
pub mod csrf;
pub mod hashers;
pub mod hosts;
pub mod pickle;
pub mod pyjson;
pub mod sessions;
pub mod signing;
