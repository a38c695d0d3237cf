//! Django's cookie handling: `django.http.cookie.parse_cookie` for requests and the exact
//! `Set-Cookie` shape `HttpResponse.set_cookie` writes (django-internals §4.1, §6.1).

use chrono::{DateTime, Utc};

/// `parse_cookie`: split on `;`, then on the first `=`, strip, un-quote; the last duplicate
/// wins. Returns the value of `name`.
pub fn get<'a>(header_values: impl IntoIterator<Item = &'a str>, name: &str) -> Option<String> {
    let mut found = None;
    for header in header_values {
        for chunk in header.split(';') {
            let (key, value) = match chunk.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                // Django: a chunk without '=' is a value with an empty name.
                None => ("", chunk.trim()),
            };
            if key == name {
                found = Some(unquote(value));
            }
        }
    }
    found
}

/// Python's `http.cookies._unquote`: strip surrounding double quotes, then undo `\"`, `\\`
/// and `\ooo` octal escapes.
fn unquote(value: &str) -> String {
    let bytes = value.as_bytes();
    if bytes.len() < 2 || bytes[0] != b'"' || bytes[bytes.len() - 1] != b'"' {
        return value.to_string();
    }
    let inner = &bytes[1..bytes.len() - 1];
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] == b'\\' && i + 1 < inner.len() {
            let octal = inner.get(i + 1..i + 4);
            if let Some(d) = octal.filter(|d| {
                d.iter()
                    .all(|c| (b'0'..=b'3').contains(&d[0]) && (b'0'..=b'7').contains(c))
            }) {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            } else {
                out.push(inner[i + 1]);
                i += 2;
            }
        } else {
            out.push(inner[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Options of one `Set-Cookie` header, as Django's `set_cookie` takes them.
#[derive(Clone, Debug, Default)]
pub struct CookieOptions<'a> {
    /// `Some(age)` writes `expires=…; Max-Age=age`; `None` is a browser-session cookie.
    pub max_age: Option<u64>,
    pub domain: Option<&'a str>,
    pub secure: bool,
    pub http_only: bool,
}

/// `name=value; expires=Wdy, DD Mon YYYY HH:MM:SS GMT; [HttpOnly; ]Max-Age=N; Path=/; SameSite=Lax`
/// (attribute order as Django writes it).
pub fn set_cookie(name: &str, value: &str, opts: &CookieOptions<'_>, now: DateTime<Utc>) -> String {
    let mut out = format!("{name}={value}");
    if let Some(domain) = opts.domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    if let Some(age) = opts.max_age {
        let expires = now + chrono::Duration::seconds(age.min(i64::MAX as u64 / 2) as i64);
        out.push_str("; expires=");
        out.push_str(&expires.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
    }
    if opts.http_only {
        out.push_str("; HttpOnly");
    }
    if let Some(age) = opts.max_age {
        out.push_str(&format!("; Max-Age={age}"));
    }
    out.push_str("; Path=/; SameSite=Lax");
    if opts.secure {
        out.push_str("; Secure");
    }
    out
}

/// The deletion cookie `delete_cookie` sends:
/// `name=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax`.
pub fn delete_cookie(name: &str, domain: Option<&str>, secure: bool) -> String {
    let mut out = format!("{name}=\"\"");
    if let Some(domain) = domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    out.push_str("; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax");
    if secure {
        out.push_str("; Secure");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parse_like_django() {
        let h = ["a=1; sessionid=abc ; csrftoken=x", "sessionid=\"q\\\"z\""];
        assert_eq!(get(h, "a").as_deref(), Some("1"));
        assert_eq!(get(h, "sessionid").as_deref(), Some("q\"z"));
        assert_eq!(get(["x=\"\\101b\""], "x").as_deref(), Some("Ab"));
        assert_eq!(get(["sessionid="], "sessionid").as_deref(), Some(""));
        assert_eq!(get(["nothing"], "sessionid"), None);
        assert_eq!(get(["s=1; s=2"], "s").as_deref(), Some("2"));
    }

    #[test]
    fn set_cookie_matches_djangos_header() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 37, 0).unwrap();
        let opts = CookieOptions {
            max_age: Some(1_209_600),
            http_only: true,
            ..Default::default()
        };
        assert_eq!(
            set_cookie("sessionid", "t9loiob9m76gks7fsylz04ow2fujlpqf", &opts, now),
            "sessionid=t9loiob9m76gks7fsylz04ow2fujlpqf; expires=Wed, 09 Dec 2026 12:37:00 GMT; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax"
        );
        let csrf = CookieOptions {
            max_age: Some(31_449_600),
            ..Default::default()
        };
        assert_eq!(
            set_cookie("csrftoken", "DkbwGjJee5zBTjX0K2J55xTqEfrj8Dwo", &csrf, now),
            "csrftoken=DkbwGjJee5zBTjX0K2J55xTqEfrj8Dwo; expires=Wed, 24 Nov 2027 12:37:00 GMT; Max-Age=31449600; Path=/; SameSite=Lax"
        );
        assert_eq!(
            delete_cookie("sessionid", None, false),
            "sessionid=\"\"; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax"
        );
    }
}
