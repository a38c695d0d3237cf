//! Django's cache on the machine's Redis (127.0.0.1:6379; a missing server fails these tests),
//! under a random `KEY_PREFIX` per test: `DjangoCache::update`, the read-modify-write the fork's
//! presence uses, never loses a concurrent writer's change and keeps Django's timeout rules.

use std::sync::Arc;

use whisper::config::CacheConfig;
use whisper::django::pickle::{PyDict, PyValue};
use whisper::store::{Cached, DjangoCache, Timeout};

use super::*;

fn cache() -> DjangoCache {
    let prefix = format!("whisper-store-{:016x}", rand::random::<u64>());
    let config =
        CacheConfig::django_defaults("default", Secret::new("redis://127.0.0.1:6379/0"), &prefix);
    DjangoCache::new(&config).expect("a client")
}

async fn ttl(cache: &DjangoCache, key: &str) -> i64 {
    let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis on 127.0.0.1:6379 is required (.ci/run starts it)");
    redis::cmd("TTL")
        .arg(cache.key(key))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_update_keeps_every_concurrent_change() {
    let cache = Arc::new(cache());
    cache
        .ping()
        .await
        .expect("Redis on 127.0.0.1:6379 is required");
    let key = "room-presence-1";
    // 16 writers, each adding its own entry to the same dict at the same time: a plain
    // get-then-set would lose some; the compare-and-set retries instead.
    let writers = (0..16i64).map(|i| {
        let cache = cache.clone();
        tokio::spawn(async move {
            loop {
                let wrote = cache
                    .update(key, Timeout::Seconds(60), |current| {
                        let mut dict = match current {
                            Some(Cached::Value(PyValue::Dict(d))) => d,
                            _ => PyDict::new(),
                        };
                        dict.insert(i, PyValue::str(format!("writer {i}")));
                        Some(PyValue::Dict(dict))
                    })
                    .await
                    .unwrap();
                // Given up after UPDATE_ATTEMPTS conflicts (logged): try again, as a
                // later join or send would.
                if wrote {
                    break;
                }
            }
        })
    });
    for w in writers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    let Some(Cached::Value(PyValue::Dict(dict))) = cache.get(key).await.unwrap() else {
        panic!("no dict stored");
    };
    assert_eq!(dict.len(), 16, "{dict:?}");
    let ttl = ttl(&cache, key).await;
    assert!((1..=60).contains(&ttl), "timeout {ttl}");

    // `None` from the change leaves the key alone; a timeout of 0 deletes (Django's rule).
    assert!(
        !cache
            .update(key, Timeout::Seconds(60), |_| None)
            .await
            .unwrap()
    );
    assert!(cache.get(key).await.unwrap().is_some());
    cache
        .update(key, Timeout::Seconds(0), |_| Some(PyValue::None))
        .await
        .unwrap();
    assert_eq!(cache.get(key).await.unwrap(), None);
}

/// `update` starts from the dict it wrote last, without a read: a change another process made
/// meanwhile (another update, or a plain `cache.set` as Python code does) must still be what
/// the next change applies to, never overwritten by the remembered dict.
#[tokio::test]
async fn a_remembered_write_never_hides_another_writers_change() {
    let prefix = format!("whisper-store-{:016x}", rand::random::<u64>());
    let open = || {
        let config = CacheConfig::django_defaults(
            "default",
            Secret::new("redis://127.0.0.1:6379/0"),
            &prefix,
        );
        DjangoCache::new(&config).expect("a client")
    };
    let (a, b, python) = (open(), open(), open());
    a.ping().await.expect("Redis on 127.0.0.1:6379 is required");
    let key = "room-presence-7";
    let add = |cache: &DjangoCache, entry: &'static str| {
        let cache = cache.clone();
        async move {
            let wrote = cache
                .update(key, Timeout::Seconds(60), |current| {
                    let mut dict = match current {
                        Some(Cached::Value(PyValue::Dict(d))) => d,
                        _ => PyDict::new(),
                    };
                    dict.insert(entry, PyValue::Bool(true));
                    Some(PyValue::Dict(dict))
                })
                .await
                .unwrap();
            assert!(wrote);
        }
    };
    let keys = |cache: DjangoCache| async move {
        let Some(Cached::Value(PyValue::Dict(dict))) = cache.get(key).await.unwrap() else {
            panic!("no dict stored");
        };
        dict.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>()
    };
    add(&a, "a1").await;
    add(&b, "b1").await;
    // a's remembered dict lacks b1: the script refuses it and hands over what is there.
    add(&a, "a2").await;
    assert_eq!(keys(a.clone()).await, [r#""a1""#, r#""b1""#, r#""a2""#]);
    let mut replaced = PyDict::new();
    replaced.insert("x", PyValue::Bool(false));
    python
        .set(key, &PyValue::Dict(replaced), Timeout::Seconds(60))
        .await
        .unwrap();
    add(&a, "a3").await;
    assert_eq!(keys(b.clone()).await, [r#""x""#, r#""a3""#]);
    // Nothing under the key: the remembered dict is not resurrected either.
    python.delete(key).await.unwrap();
    add(&a, "a4").await;
    assert_eq!(keys(python.clone()).await, [r#""a4""#]);
}
