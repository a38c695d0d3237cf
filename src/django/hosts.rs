//! Host and URL rules: Django's `ALLOWED_HOSTS` validation (`validate_host`,
//! `split_domain_port`, `host_validation_re`, `request.get_host()`), the safe-redirect check
//! `url_has_allowed_host_and_scheme`, `is_same_domain`, the Channels `OriginValidator` rule
//! (spec §8), and the subset of Python's `urllib.parse.urlsplit` these need (so URL parsing
//! quirks match the Python side exactly).

/// A `urllib.parse.SplitResult` (Python 3.11 semantics).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SplitUrl {
    /// Lowercased scheme, or empty.
    pub scheme: String,
    /// Text between `//` and the next `/`, `?` or `#` (userinfo and port included).
    pub netloc: String,
    /// Path.
    pub path: String,
    /// Query without `?`.
    pub query: String,
    /// Fragment without `#`.
    pub fragment: String,
}

/// Why [`urlsplit`] raised `ValueError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUrl;

const SCHEME_CHARS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.";

/// `urllib.parse.urlsplit(url)` (Python 3.11.4+): leading C0/space stripped, tab/CR/LF
/// removed, bracket checks on the netloc. Raises (`Err`) where Python raises `ValueError`.
/// The NFKC netloc check for non-ASCII hosts is not reproduced (such hosts never match an
/// ASCII allow-list anyway).
pub fn urlsplit(url: &str) -> Result<SplitUrl, InvalidUrl> {
    let url = url.trim_start_matches(|c: char| c <= ' ');
    let url: String = url
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut rest: &str = &url;
    let mut out = SplitUrl::default();
    if let Some(i) = rest.find(':') {
        let candidate = &rest[..i];
        if i > 0
            && candidate.as_bytes()[0].is_ascii_alphabetic()
            && candidate.chars().all(|c| SCHEME_CHARS.contains(c))
        {
            out.scheme = candidate.to_ascii_lowercase();
            rest = &rest[i + 1..];
        }
    }
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let netloc = &after[..end];
        rest = &after[end..];
        let (open, close) = (netloc.contains('['), netloc.contains(']'));
        if open != close {
            return Err(InvalidUrl);
        }
        if open {
            check_bracketed_netloc(netloc)?;
        }
        out.netloc = netloc.to_owned();
    }
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((a, b)) => (a, b),
        None => (rest, ""),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((a, b)) => (a, b),
        None => (before_fragment, ""),
    };
    out.path = path.to_owned();
    out.query = query.to_owned();
    out.fragment = fragment.to_owned();
    Ok(out)
}

fn check_bracketed_netloc(netloc: &str) -> Result<(), InvalidUrl> {
    let hostinfo = netloc.rsplit_once('@').map_or(netloc, |(_, h)| h);
    let hostname = match hostinfo.split_once('[') {
        Some((before, bracketed)) => {
            if !before.is_empty() {
                return Err(InvalidUrl);
            }
            let (host, port) = bracketed.split_once(']').unwrap_or((bracketed, ""));
            if !port.is_empty() && !port.starts_with(':') {
                return Err(InvalidUrl);
            }
            host
        }
        None => hostinfo.split_once(':').map_or(hostinfo, |(h, _)| h),
    };
    // `_check_bracketed_host`: IPvFuture `v<hex>.<…>`, else it must be an IPv6 address.
    if let Some(rest) = hostname.strip_prefix('v') {
        let ok = rest.split_once('.').is_some_and(|(hex, tail)| {
            !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) && !tail.is_empty()
        });
        return if ok { Ok(()) } else { Err(InvalidUrl) };
    }
    // Python's ipaddress accepts a `%scope` suffix on IPv6.
    let addr = hostname.split_once('%').map_or(hostname, |(a, _)| a);
    addr.parse::<std::net::Ipv6Addr>()
        .map(|_| ())
        .map_err(|_| InvalidUrl)
}

impl SplitUrl {
    fn hostinfo(&self) -> (&str, Option<&str>) {
        let hostinfo = self
            .netloc
            .rsplit_once('@')
            .map_or(self.netloc.as_str(), |(_, h)| h);
        let (host, port) = match hostinfo.split_once('[') {
            Some((_, bracketed)) => {
                let (host, after) = bracketed.split_once(']').unwrap_or((bracketed, ""));
                (host, after.split_once(':').map_or("", |(_, p)| p))
            }
            None => hostinfo.split_once(':').unwrap_or((hostinfo, "")),
        };
        (host, (!port.is_empty()).then_some(port))
    }

    /// `.hostname`: lowercased (the `%zone` part kept as is), `None` if empty.
    pub fn hostname(&self) -> Option<String> {
        let (host, _) = self.hostinfo();
        if host.is_empty() {
            return None;
        }
        Some(match host.split_once('%') {
            Some((h, zone)) => format!("{}%{zone}", h.to_lowercase()),
            None => host.to_lowercase(),
        })
    }

    /// `.port`: `Ok(None)` if absent, `Err` where Python raises (non-digits, > 65535).
    pub fn port(&self) -> Result<Option<u16>, InvalidUrl> {
        match self.hostinfo().1 {
            None => Ok(None),
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                let v: u64 = p.trim_start_matches('0').parse().unwrap_or(0);
                if p.len() > 20 || v > 65535 {
                    Err(InvalidUrl)
                } else {
                    Ok(Some(v as u16))
                }
            }
            Some(_) => Err(InvalidUrl),
        }
    }

    /// `.geturl()` (`urlunsplit`), as used in Django's Referer error message.
    pub fn geturl(&self) -> String {
        let mut url = self.path.clone();
        if !self.netloc.is_empty() {
            if !url.is_empty() && !url.starts_with('/') {
                url.insert(0, '/');
            }
            url = format!("//{}{url}", self.netloc);
        } else if url.starts_with("//") {
            url = format!("//{url}");
        }
        if !self.scheme.is_empty() {
            url = format!("{}:{url}", self.scheme);
        }
        if !self.query.is_empty() {
            url = format!("{url}?{}", self.query);
        }
        if !self.fragment.is_empty() {
            url = format!("{url}#{}", self.fragment);
        }
        url
    }
}

/// `django.utils.http.is_same_domain(host, pattern)`: `pattern` (lowercased) equals `host`, or
/// starts with `.` and `host` is that domain or a subdomain of it. `host` is compared as given
/// (Django passes already-lowercased hosts).
pub fn is_same_domain(host: &str, pattern: &str) -> bool {
    if pattern.is_empty() {
        return false;
    }
    let pattern = pattern.to_lowercase();
    match pattern.strip_prefix('.') {
        Some(bare) => host.ends_with(&pattern) || host == bare,
        None => host == pattern,
    }
}

/// `host_validation_re` = `^([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(?::([0-9]+))?$`, applied to
/// the lowercased host. Returns `(domain, port)` on a match.
fn match_host(host: &str) -> Option<(&str, &str)> {
    let (domain, port) = if host.starts_with('[') {
        let close = host.find(']')?;
        let (d, rest) = host.split_at(close + 1);
        let inner = &d[1..d.len() - 1];
        let colon = inner.find(':')?;
        let (a, b) = (&inner[..colon], &inner[colon + 1..]);
        if !a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            || b.is_empty()
            || !b
                .bytes()
                .all(|c| matches!(c, b'a'..=b'f' | b'0'..=b'9' | b'.' | b':'))
        {
            return None;
        }
        (d, rest)
    } else {
        let end = host
            .find(|c: char| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-'))
            .unwrap_or(host.len());
        if end == 0 {
            return None;
        }
        host.split_at(end)
    };
    let port = if port.is_empty() {
        ""
    } else {
        let digits = port.strip_prefix(':')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits
    };
    Some((domain, port))
}

/// Whether `host` (a `Host` header) has the syntax Django accepts (`host_validation_re`,
/// case-insensitive).
pub fn is_valid_host_header(host: &str) -> bool {
    match_host(&host.to_ascii_lowercase()).is_some()
}

/// `split_domain_port(host)` (Django 5.x): lowercased domain without a trailing dot, and the
/// port (may be empty); `("", "")` for a syntactically invalid host. IPv6 keeps its brackets:
/// `[::1]:8000` → (`[::1]`, `8000`).
pub fn split_domain_port(host: &str) -> (String, String) {
    let lower = host.to_ascii_lowercase();
    match match_host(&lower) {
        Some((domain, port)) => (
            domain.strip_suffix('.').unwrap_or(domain).to_owned(),
            port.to_owned(),
        ),
        None => (String::new(), String::new()),
    }
}

/// `validate_host(domain, allowed_hosts)`: any pattern is `*`, equals the domain, or is a
/// leading-dot pattern matching the domain or a subdomain; case-insensitive. Pass the domain
/// part (see [`split_domain_port`]); it is lowercased and a trailing dot is ignored here too.
pub fn validate_host(host: &str, allowed_hosts: &[String]) -> bool {
    let lower = host.to_lowercase();
    let domain = lower.strip_suffix('.').unwrap_or(&lower);
    allowed_hosts
        .iter()
        .any(|pattern| pattern == "*" || is_same_domain(domain, pattern))
}

/// `request.get_host()` acceptance for a raw `Host` header (port included): syntax check, then
/// [`validate_host`] on the domain. With `debug` and an empty list Django allows
/// `.localhost`, `127.0.0.1` and `[::1]`.
pub fn is_allowed_host(raw_host: &str, allowed_hosts: &[String], debug: bool) -> bool {
    let (domain, _) = split_domain_port(raw_host);
    if domain.is_empty() {
        return false;
    }
    if debug && allowed_hosts.is_empty() {
        let defaults = [".localhost", "127.0.0.1", "[::1]"].map(String::from);
        return validate_host(&domain, &defaults);
    }
    validate_host(&domain, allowed_hosts)
}

/// Django's `MAX_URL_LENGTH` for the redirect check (added in 4.2.20/5.1.8 against slow NFKC
/// on Windows; longer URLs are refused).
pub const MAX_URL_LENGTH: usize = 2048;

/// Python's `str.isspace` (what `str.strip()` removes): Unicode White_Space plus the
/// information separators U+001C–U+001F.
fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `url_has_allowed_host_and_scheme(url, allowed_hosts, require_https)`: true only for a
/// relative URL or an absolute `http(s)` URL whose netloc is exactly one of `allowed_hosts`
/// (e.g. `request.get_host()`); rejects `//evil`, `\\evil`, `///evil`, `http:///evil`,
/// `javascript:`, leading control characters, over-long URLs…
pub fn url_has_allowed_host_and_scheme(
    url: &str,
    allowed_hosts: &[String],
    require_https: bool,
) -> bool {
    let url = url.trim_matches(py_isspace);
    if url.is_empty() || url.chars().count() > MAX_URL_LENGTH {
        return false;
    }
    // Chrome treats `\` as `/` in paths, but it may also be part of credentials: check both.
    allowed_host_and_scheme(url, allowed_hosts, require_https)
        && allowed_host_and_scheme(&url.replace('\\', "/"), allowed_hosts, require_https)
}

fn allowed_host_and_scheme(url: &str, allowed_hosts: &[String], require_https: bool) -> bool {
    // Chrome considers any URL with more than two slashes to be absolute.
    if url.starts_with("///") {
        return false;
    }
    let Ok(info) = urlsplit(url) else {
        return false;
    };
    // `http:///example.com`: a scheme but no host; Chrome would still use example.com.
    if info.netloc.is_empty() && !info.scheme.is_empty() {
        return false;
    }
    // Browsers ignore some leading control characters (category Cc).
    if url.chars().next().is_some_and(char::is_control) {
        return false;
    }
    let scheme = if info.scheme.is_empty() && !info.netloc.is_empty() {
        "http"
    } else {
        info.scheme.as_str()
    };
    let scheme_ok = scheme.is_empty() || scheme == "https" || (!require_https && scheme == "http");
    (info.netloc.is_empty() || allowed_hosts.contains(&info.netloc)) && scheme_ok
}

/// Channels `OriginValidator` (spec §8): may a WebSocket with this `Origin` header value
/// (`None` = no header) connect, given `allowed` patterns (e.g. `ALLOWED_HOSTS`)?
/// `*` allows everything (even no header); a pattern without scheme compares hostnames only
/// (leading `.` = domain and subdomains); a pattern with scheme needs the same scheme,
/// hostname and port (defaults 80 for http/ws, 443 for https/wss). `null` never matches.
pub fn origin_allowed_opt(origin: Option<&str>, allowed: &[String]) -> bool {
    // An Origin that does not parse behaves like a missing one (Channels catches the error).
    let parsed = origin.and_then(|o| urlsplit(o).ok());
    if parsed.is_none() && !allowed.iter().any(|p| p == "*") {
        return false;
    }
    allowed
        .iter()
        .any(|pattern| pattern == "*" || match_allowed_origin(parsed.as_ref(), pattern))
}

/// [`origin_allowed_opt`] for a present `Origin` header.
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    origin_allowed_opt(Some(origin), allowed)
}

fn default_port(url: &SplitUrl) -> Result<Option<u16>, InvalidUrl> {
    Ok(match url.port()? {
        Some(p) => Some(p),
        None => match url.scheme.as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        },
    })
}

fn match_allowed_origin(origin: Option<&SplitUrl>, pattern: &str) -> bool {
    let Some(origin) = origin else {
        return false;
    };
    let Ok(parsed_pattern) = urlsplit(&pattern.to_lowercase()) else {
        return false;
    };
    let Some(origin_host) = origin.hostname() else {
        return false;
    };
    if parsed_pattern.scheme.is_empty() {
        let pattern_host = urlsplit(&format!("//{pattern}"))
            .ok()
            .and_then(|u| u.hostname())
            .unwrap_or_else(|| pattern.to_owned());
        return is_same_domain(&origin_host, &pattern_host);
    }
    // Channels raises on a malformed port; treat that as no match.
    let (Ok(origin_port), Ok(pattern_port)) = (default_port(origin), default_port(&parsed_pattern))
    else {
        return false;
    };
    parsed_pattern.scheme == origin.scheme
        && origin_port == pattern_port
        && parsed_pattern
            .hostname()
            .is_some_and(|h| is_same_domain(&origin_host, &h))
}
