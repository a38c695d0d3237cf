//! The limits that make Whisper safe to expose (SECURITY.md): what one socket may ask, how long
//! a write may take, how long HTTP may wait. None of these exists in the original; each is a
//! setting with a documented default (README, "Settings").

use std::time::Duration;

use super::{ConfigError, invalid, parse_num};

/// A token bucket's refill rate and capacity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// What one socket may ask of the server (enforced by `chat::consumer`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SocketLimits {
    /// `WS_MAX_ROOMS_PER_SOCKET`: distinct raw room values joined at once; one more join is
    /// answered `TOO_MANY_ROOMS`.
    pub max_rooms: usize,
    /// `WS_MAX_ROOM_BYTES`: the longest raw `room` value, as JSON text; longer is
    /// `ROOM_INVALID`.
    pub max_room_bytes: usize,
    /// `WS_MAX_MESSAGE_BYTES` again: no frame sent to a room is larger than what the server
    /// accepts (escaping makes a frame up to 6× its message); larger is `MESSAGE_TOO_LARGE`.
    pub max_event_bytes: usize,
    /// `WS_MESSAGES_PER_SECOND` / `WS_MESSAGES_BURST`: inbound frames.
    pub messages: Rate,
    /// `WS_BYTES_PER_SECOND` / `WS_BYTES_BURST`: bytes of the frames sent to rooms on this
    /// socket's behalf (messages, enter and leave notices).
    pub bytes: Rate,
}

impl Default for SocketLimits {
    fn default() -> Self {
        SocketLimits {
            max_rooms: 100,
            max_room_bytes: 64,
            max_event_bytes: 1 << 20,
            messages: Rate {
                per_second: 20.0,
                burst: 60.0,
            },
            bytes: Rate {
                per_second: 256.0 * 1024.0,
                burst: (1 << 20) as f64,
            },
        }
    }
}

/// Every limit, with its setting name.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub socket: SocketLimits,
    /// `WS_WRITE_TIMEOUT` (seconds): the longest one socket write may take; a socket whose
    /// reader is stuck that long is closed (1013) after its leave notices.
    pub ws_write_timeout: Duration,
    /// `WS_PING_INTERVAL` / `WS_PING_TIMEOUT` (seconds; Daphne's `--ping-interval` and
    /// `--ping-timeout`): a keep-alive ping every interval, and a socket silent for interval +
    /// timeout is dropped.
    pub ws_ping_interval: Duration,
    pub ws_ping_timeout: Duration,
    /// `HTTP_HEADER_READ_TIMEOUT` (seconds): a request's headers must arrive within it.
    pub http_header_read_timeout: Duration,
    /// `HTTP_KEEPALIVE_TIMEOUT` (seconds): an idle keep-alive connection is closed after it.
    pub http_keepalive_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS`: open TCP connections (WebSockets included) at once; more are
    /// accepted and closed at once.
    pub http_max_connections: usize,
    /// `HTTP_MAX_CONNECTIONS_PER_ADDRESS`: the same, per client address.
    pub http_max_connections_per_address: usize,
    /// `SHUTDOWN_TIMEOUT` (seconds): after SIGTERM, how long in-flight HTTP and open sockets
    /// get to finish before the process exits anyway.
    pub shutdown_timeout: Duration,
    /// `WS_MAX_SOCKETS_PER_USER`: open sockets of one user; one more handshake is HTTP 429.
    pub ws_max_sockets_per_user: usize,
    /// `WS_HANDSHAKES_PER_MINUTE`: handshakes from one client address (a bucket of that many,
    /// refilled over a minute); past it, HTTP 429.
    pub ws_handshakes: Rate,
    /// `LOGIN_FAILURES_PER_USERNAME` / `LOGIN_FAILURES_PER_ADDRESS` within
    /// `LOGIN_FAILURE_WINDOW` (seconds): past either, the login page answers 429.
    pub login_failures_per_username: usize,
    pub login_failures_per_address: usize,
    pub login_failure_window: Duration,
    /// `SESSION_RECHECK_SECONDS`: how often open sockets' sessions and users are re-checked
    /// (live revocation, `web::revocation`).
    pub session_recheck: Duration,
    /// `SECURE_PROXY_SSL_HEADER` (Django's, as `HTTP_X_FORWARDED_PROTO,https` or a JSON pair):
    /// the request header (its `META` name) and value that mark a request as secure.
    pub secure_proxy_ssl_header: Option<(String, String)>,
    /// `TRUSTED_PROXIES` (comma-separated addresses): peers whose `X-Forwarded-For` names the
    /// client address (for the per-address limits); any other peer is the client itself.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Limits {
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
        ws_max_message_bytes: usize,
    ) -> Result<Limits, ConfigError> {
        let d = SocketLimits::default();
        let count = |name: &'static str, default: usize| -> Result<usize, ConfigError> {
            let n: usize = get(name).map_or(Ok(default), |v| parse_num(name, &v))?;
            if n == 0 {
                return Err(invalid(name, "must be at least 1"));
            }
            Ok(n)
        };
        let rate = |name: &'static str, default: f64| -> Result<f64, ConfigError> {
            let n: f64 = get(name).map_or(Ok(default), |v| parse_num(name, &v))?;
            if !n.is_finite() || n <= 0.0 {
                return Err(invalid(name, "must be a number above 0"));
            }
            Ok(n)
        };
        let seconds = |name: &'static str, default: f64| -> Result<Duration, ConfigError> {
            let n: f64 = get(name).map_or(Ok(default), |v| parse_num(name, &v))?;
            if !(0.001..=86_400.0).contains(&n) {
                return Err(invalid(name, "must be between 0.001 and 86400 seconds"));
            }
            Ok(Duration::from_secs_f64(n))
        };
        let bytes_burst = rate(
            "WS_BYTES_BURST",
            d.bytes.burst.max(ws_max_message_bytes as f64),
        )?;
        if bytes_burst < ws_max_message_bytes as f64 {
            return Err(invalid(
                "WS_BYTES_BURST",
                format!(
                    "must be at least WS_MAX_MESSAGE_BYTES ({ws_max_message_bytes}), or the \
                     largest message could never be sent"
                ),
            ));
        }
        let socket = SocketLimits {
            max_rooms: count("WS_MAX_ROOMS_PER_SOCKET", d.max_rooms)?,
            max_room_bytes: count("WS_MAX_ROOM_BYTES", d.max_room_bytes)?,
            max_event_bytes: ws_max_message_bytes,
            messages: Rate {
                per_second: rate("WS_MESSAGES_PER_SECOND", d.messages.per_second)?,
                burst: rate("WS_MESSAGES_BURST", d.messages.burst)?.max(1.0),
            },
            bytes: Rate {
                per_second: rate("WS_BYTES_PER_SECOND", d.bytes.per_second)?,
                burst: bytes_burst,
            },
        };
        Ok(Limits {
            socket,
            ws_write_timeout: seconds("WS_WRITE_TIMEOUT", 10.0)?,
            ws_ping_interval: seconds("WS_PING_INTERVAL", 20.0)?,
            ws_ping_timeout: seconds("WS_PING_TIMEOUT", 30.0)?,
            http_header_read_timeout: seconds("HTTP_HEADER_READ_TIMEOUT", 10.0)?,
            http_keepalive_timeout: seconds("HTTP_KEEPALIVE_TIMEOUT", 60.0)?,
            http_max_connections: count("HTTP_MAX_CONNECTIONS", 20_000)?,
            http_max_connections_per_address: count("HTTP_MAX_CONNECTIONS_PER_ADDRESS", 1_000)?,
            shutdown_timeout: seconds("SHUTDOWN_TIMEOUT", 10.0)?,
            ws_max_sockets_per_user: count("WS_MAX_SOCKETS_PER_USER", 50)?,
            ws_handshakes: {
                let n = count("WS_HANDSHAKES_PER_MINUTE", 120)? as f64;
                Rate {
                    per_second: n / 60.0,
                    burst: n,
                }
            },
            login_failures_per_username: count("LOGIN_FAILURES_PER_USERNAME", 5)?,
            login_failures_per_address: count("LOGIN_FAILURES_PER_ADDRESS", 20)?,
            login_failure_window: seconds("LOGIN_FAILURE_WINDOW", 900.0)?,
            session_recheck: seconds("SESSION_RECHECK_SECONDS", 5.0)?,
            secure_proxy_ssl_header: match get("SECURE_PROXY_SSL_HEADER") {
                None => None,
                Some(raw) if raw.trim().is_empty() => None,
                Some(raw) => Some(proxy_ssl_header(&raw)?),
            },
            trusted_proxies: get("TRUSTED_PROXIES")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse().map_err(|_| {
                        invalid("TRUSTED_PROXIES", format!("{s:?} is not an IP address"))
                    })
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

/// `("HTTP_X_FORWARDED_PROTO", "https")` from `HTTP_X_FORWARDED_PROTO,https` or
/// `["HTTP_X_FORWARDED_PROTO", "https"]`.
fn proxy_ssl_header(raw: &str) -> Result<(String, String), ConfigError> {
    let bad = || {
        invalid(
            "SECURE_PROXY_SSL_HEADER",
            format!("{raw:?} must be a header and a value, e.g. HTTP_X_FORWARDED_PROTO,https"),
        )
    };
    let (name, value) = match serde_json::from_str::<Vec<String>>(raw) {
        Ok(pair) if pair.len() == 2 => (pair[0].clone(), pair[1].clone()),
        Ok(_) => return Err(bad()),
        Err(_) => {
            let (n, v) = raw.split_once(',').ok_or_else(bad)?;
            (n.trim().to_string(), v.trim().to_string())
        }
    };
    if !name.starts_with("HTTP_") || name.len() == 5 || value.is_empty() {
        return Err(bad());
    }
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn limits(vars: &[(&str, &str)]) -> Result<Limits, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Limits::from_lookup(&|k: &str| map.get(k).cloned(), 1 << 20)
    }

    #[test]
    fn defaults_are_documented_values() {
        let l = limits(&[]).unwrap();
        assert_eq!(l.socket, SocketLimits::default());
        assert_eq!(l.ws_write_timeout, Duration::from_secs(10));
        assert_eq!(l.ws_ping_interval, Duration::from_secs(20));
        assert_eq!(l.ws_ping_timeout, Duration::from_secs(30));
        assert_eq!(l.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(l.http_max_connections_per_address, 1000);
    }

    #[test]
    fn the_proxy_settings_take_djangos_forms() {
        let l = limits(&[("SECURE_PROXY_SSL_HEADER", "HTTP_X_FORWARDED_PROTO, https")]).unwrap();
        let want = Some(("HTTP_X_FORWARDED_PROTO".to_string(), "https".to_string()));
        assert_eq!(l.secure_proxy_ssl_header, want);
        let l = limits(&[(
            "SECURE_PROXY_SSL_HEADER",
            r#"["HTTP_X_FORWARDED_PROTO", "https"]"#,
        )]);
        assert_eq!(l.unwrap().secure_proxy_ssl_header, want);
        let l = limits(&[("TRUSTED_PROXIES", "127.0.0.1, ::1")]).unwrap();
        assert_eq!(l.trusted_proxies.len(), 2);
    }

    #[test]
    fn bad_values_are_refused_with_their_name() {
        for (name, value) in [
            ("WS_MAX_ROOMS_PER_SOCKET", "0"),
            ("WS_MAX_ROOM_BYTES", "-1"),
            ("WS_MESSAGES_PER_SECOND", "0"),
            ("WS_MESSAGES_PER_SECOND", "inf"),
            ("WS_BYTES_PER_SECOND", "lots"),
            ("WS_BYTES_BURST", "1000"),
            ("WS_WRITE_TIMEOUT", "0"),
            ("WS_PING_INTERVAL", "0"),
            ("WS_PING_TIMEOUT", "-5"),
            ("SHUTDOWN_TIMEOUT", "1e9"),
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto"),
            ("SECURE_PROXY_SSL_HEADER", r#"["HTTP_X"]"#),
            ("TRUSTED_PROXIES", "proxy.local"),
        ] {
            let err = limits(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(name), "{name}={value}: {err}");
        }
    }
}
