//! `CACHES` parsing: accepted and refused configurations, keys and options.

use super::*;

fn caches(json: &str) -> Result<Caches, ConfigError> {
    parse(Some(json), None, true)
}

#[test]
fn the_forks_settings_and_djangos_backend() {
    let c = caches(
        r#"{"default": {"BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/1",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
            "KEY_PREFIX": "whisper"}}"#,
    )
    .unwrap();
    let s = c.session_cache().unwrap();
    assert_eq!(s.backend, CacheBackend::DjangoRedis);
    assert_eq!(s.url.expose(), "redis://127.0.0.1:6379/1");
    assert_eq!(s.protocol, Protocol::V4);
    assert_eq!(s.default_timeout, Some(300));
    assert_eq!(
        s.make_key("django.contrib.sessions.cacheabc"),
        "whisper:1:django.contrib.sessions.cacheabc"
    );
    let c = parse(
        Some(
            r#"{"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
                "sessions": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": "redis://h:6380", "VERSION": 3, "TIMEOUT": null,
                "OPTIONS": {"db": 2, "password": "p w"}}}"#,
        ),
        Some("sessions".into()),
        true,
    )
    .unwrap();
    let s = c.session_cache().unwrap();
    assert_eq!(s.backend, CacheBackend::Django);
    assert_eq!(s.url.expose(), "redis://:p+w@h:6380/2");
    assert_eq!((s.version, s.default_timeout), (3, None));
    assert_eq!(s.protocol, Protocol::V5);
    assert_eq!(s.make_key("k"), ":3:k");
    assert!(!format!("{c:?}").contains("p+w"));
}

#[test]
fn what_cannot_be_honoured_is_refused_with_the_reason() {
    let redis = |rest: &str| {
        format!(r#"{{"default": {{"BACKEND": "{DJANGO_REDIS}", "LOCATION": "redis://h"{rest}}}}}"#)
    };
    for (json, reason) in [
        ("{}".to_string(), "'default'"),
        ("[1]".to_string(), "object"),
        ("{nope".to_string(), "JSON"),
        (
            r#"{"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}"#
                .to_string(),
            "cannot be shared",
        ),
        (
            format!(
                r#"{{"default": {{"BACKEND": "{DJANGO_REDIS}", "LOCATION": "redis://a,redis://b"}}}}"#
            ),
            "several LOCATIONs",
        ),
        (
            format!(
                r#"{{"default": {{"BACKEND": "{DJANGO_REDIS_CACHE}", "LOCATION": "redis://a;redis://b"}}}}"#
            ),
            "several LOCATIONs",
        ),
        (
            format!(r#"{{"default": {{"BACKEND": "{DJANGO_REDIS}"}}}}"#),
            "LOCATION",
        ),
        (
            format!(r#"{{"default": {{"BACKEND": "{DJANGO_REDIS}", "LOCATION": "rediss://h"}}}}"#),
            "TLS",
        ),
        (
            redis(r#", "KEY_FUNCTION": "app.keys.make""#),
            "KEY_FUNCTION",
        ),
        (
            redis(r#", "OPTIONS": {"CLIENT_CLASS": "django_redis.client.ShardClient"}"#),
            "CLIENT_CLASS",
        ),
        (
            redis(r#", "OPTIONS": {"CLIENT_CLASS": "django_redis.client.SentinelClient"}"#),
            "CLIENT_CLASS",
        ),
        (
            redis(r#", "OPTIONS": {"SERIALIZER": "django_redis.serializers.json.JSONSerializer"}"#),
            "SERIALIZER",
        ),
        (
            redis(r#", "OPTIONS": {"COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor"}"#),
            "COMPRESSOR",
        ),
        (
            redis(r#", "OPTIONS": {"PICKLE_VERSION": 2}"#),
            "PICKLE_VERSION",
        ),
        (
            redis(r#", "OPTIONS": {"IGNORE_EXCEPTIONS": true}"#),
            "IGNORE_EXCEPTIONS",
        ),
        (
            redis(r#", "OPTIONS": {"MAX_ENTRIES": 5}"#),
            "unknown OPTIONS key",
        ),
        (redis(r#", "VERSION": "two""#), "VERSION"),
        (redis(r#", "TIMEOUT": "soon""#), "TIMEOUT"),
    ] {
        let err = caches(&json).unwrap_err().to_string();
        assert!(err.contains("CACHES"), "{json}: {err}");
        assert!(err.contains(reason), "{json}: {err}");
    }
    let err = parse(None, None, true).unwrap_err().to_string();
    assert!(err.contains("LocMemCache"), "{err}");
    let err = parse(Some(&redis("")), Some("other".into()), true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("SESSION_CACHE_ALIAS"), "{err}");
    // Unused aliases may use any backend; without cache sessions nothing is required.
    assert!(parse(None, None, false).unwrap().aliases.is_empty());
    assert!(
        parse(
            Some(r#"{"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}"#),
            None,
            false
        )
        .is_ok()
    );
}

#[test]
fn pickle_versions_and_timeouts() {
    let with = |options: &str, rest: &str| {
        caches(&format!(
            r#"{{"default": {{"BACKEND": "{DJANGO_REDIS}", "LOCATION": "redis://h/0",
                "OPTIONS": {options}{rest}}}}}"#
        ))
        .unwrap()
        .session_cache()
        .unwrap()
        .clone()
    };
    assert_eq!(with(r#"{"PICKLE_VERSION": -1}"#, "").protocol, Protocol::V5);
    assert_eq!(with(r#"{"PICKLE_VERSION": 4}"#, "").protocol, Protocol::V4);
    let c = with(
        r#"{"SOCKET_TIMEOUT": 0.5, "PASSWORD": "x"}"#,
        r#", "TIMEOUT": 0.9"#,
    );
    assert_eq!(c.response_timeout, Duration::from_millis(500));
    assert_eq!(c.default_timeout, Some(0));
    assert_eq!(c.url.expose(), "redis://:x@h/0");
    let c = with("{}", r#", "TIMEOUT": -5"#);
    assert_eq!(c.default_timeout, Some(-5));
}
