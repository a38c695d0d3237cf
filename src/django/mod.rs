//! Pure Django-compatible primitives: no I/O, no database, no clock reads except where a
//! function says so. Everything here is checked against vectors made by real Django
//! (`shared/spec/django-vectors.json`, spec `django-internals.md`).

pub mod cookies;
pub mod crypto;
pub mod csrf;
pub mod hashers;
pub mod hosts;
pub mod pickle;
pub mod pyjson;
pub mod sessions;
pub mod signing;
