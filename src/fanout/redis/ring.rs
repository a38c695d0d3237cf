//! Which Redis host holds a key when `CHANNEL_LAYERS` lists several: channels_redis' sharding,
//! reproduced exactly so Python workers and Whisper processes on one config agree.
//!
//! channels_redis 4.x `utils.py`, `_consistent_hash(value, ring_size)`: the CRC-32 of the
//! UTF-8 bytes, its low 12 bits (0–4095), divided by `4096 / ring_size` as a Python float and
//! truncated; 0 for one host. What is hashed (read from the same sources):
//!
//! | layer | key | hashed string |
//! |---|---|---|
//! | core (`core.py`) | group set `prefix:group:<group>` (`group_add`, `group_discard`, `group_send`) | the group name, without prefix |
//! | core | a process's queue `prefix + "specific.<id>!"` (`receive_single`, `_map_channel_keys_to_connection`) | `"specific.<id>!"`, the channel's non-local name, without prefix |
//! | pub/sub (`pubsub.py`, `_get_shard`) | channel `prefix + "__group__" + group` (publish and subscribe) | the whole channel name, prefix included |

/// `_consistent_hash(value, ring_size)`.
pub(super) fn consistent_hash(value: &str, ring_size: usize) -> usize {
    if ring_size <= 1 {
        return 0;
    }
    let mut crc = flate2::Crc::new();
    crc.update(value.as_bytes());
    let bigval = crc.sum() & 0xFFF;
    // Python: `int(bigval / (4096 / float(ring_size)))`, in binary64 like Python's float.
    let divisor = 4096.0 / ring_size as f64;
    ((f64::from(bigval) / divisor) as usize).min(ring_size - 1)
}

/// The hosts of one layer and how a group maps to the host holding its state.
#[derive(Clone, Debug)]
pub(super) struct Ring {
    size: usize,
    /// Put before the group name to make the hashed string: empty for the core layer, the
    /// pub/sub channel prefix (`prefix + "__group__"`) for the pub/sub layer.
    group_prefix: String,
}

impl Ring {
    pub fn new(size: usize, group_prefix: &str) -> Ring {
        Ring {
            size: size.max(1),
            group_prefix: group_prefix.to_string(),
        }
    }

    /// The host of a key named by `value` (hashed as is).
    pub fn host_of(&self, value: &str) -> usize {
        consistent_hash(value, self.size)
    }

    /// The host holding `group`'s subscription (pub/sub) or group set (core).
    pub fn group_host(&self, group: &str) -> usize {
        if self.size == 1 {
            return 0;
        }
        if self.group_prefix.is_empty() {
            self.host_of(group)
        } else {
            self.host_of(&format!("{}{group}", self.group_prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from channels_redis 4.3.0 in compat/.venv:
    /// `[_consistent_hash(name, n) for n in (2, 3, 4, 5, 6, 7, 16)]`
    /// (`from channels_redis.utils import _consistent_hash`). The `room-…` names sit on both
    /// sides of a float boundary of the ring division (their CRC's low 12 bits are in the
    /// comment), so a rounding difference would show.
    const PYTHON: &[(&str, [usize; 7])] = &[
        ("room-1", [1, 1, 2, 2, 3, 3, 8]),
        ("room-2", [1, 1, 2, 3, 3, 4, 9]),
        ("room-12", [1, 2, 3, 4, 5, 6, 15]),
        ("room-404", [0, 0, 0, 0, 1, 1, 3]),
        ("asgi__group__room-1", [0, 1, 1, 2, 2, 3, 7]),
        ("asgi__group__room-2", [0, 1, 1, 1, 2, 2, 6]),
        (
            "specific.0123456789abcdef0123456789abcdef!",
            [0, 1, 1, 1, 2, 2, 5],
        ),
        ("", [0, 0, 0, 0, 0, 0, 0]),
        ("caf\u{e9}", [0, 0, 0, 0, 1, 1, 2]),
        ("room-80", [0, 0, 1, 1, 1, 2, 5]),    // 1365
        ("room-1623", [0, 1, 1, 1, 2, 2, 5]),  // 1366
        ("room-1877", [1, 1, 2, 2, 3, 3, 8]),  // 2048
        ("room-382", [1, 1, 2, 3, 3, 4, 10]),  // 2730
        ("room-449", [1, 2, 2, 3, 4, 4, 10]),  // 2731
        ("room-4747", [1, 2, 3, 3, 4, 5, 12]), // 3276
        ("room-3869", [1, 2, 3, 4, 4, 5, 12]), // 3277
        ("room-2166", [1, 2, 3, 4, 5, 5, 13]), // 3510
        ("room-6345", [1, 2, 3, 4, 5, 6, 13]), // 3511
    ];

    #[test]
    fn matches_channels_redis() {
        for (name, want) in PYTHON {
            let got: Vec<usize> = [2, 3, 4, 5, 6, 7, 16]
                .into_iter()
                .map(|n| consistent_hash(name, n))
                .collect();
            assert_eq!(got, want, "{name:?}");
            assert_eq!(consistent_hash(name, 1), 0);
        }
        let long = "x".repeat(200);
        assert_eq!(consistent_hash(&long, 7), 5);
    }

    #[test]
    fn groups_hash_as_each_layer_does() {
        let core = Ring::new(2, "");
        assert_eq!(core.group_host("room-1"), 1);
        assert_eq!(core.group_host("room-404"), 0);
        let pubsub = Ring::new(2, "asgi__group__");
        assert_eq!(pubsub.group_host("room-1"), 0);
        assert_eq!(Ring::new(1, "").group_host("room-1"), 0);
    }
}
