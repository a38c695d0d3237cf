//! Logging in as a browser does, through the target's real login page (Django's `LoginView` or
//! Whisper's copy of it): GET the form for the CSRF cookie and hidden token, POST the
//! credentials with a same-origin Referer and Origin, and keep the `sessionid` cookie of the
//! 302. Sockets then share these sessions, as browser tabs of one login do.

use anyhow::{Context, bail};
use reqwest::header::{COOKIE, ORIGIN, REFERER, SET_COOKIE};

/// A client that does not follow redirects (the 302 carries the session cookie).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

/// `name=value` of the cookie `name` among the response's `Set-Cookie` headers.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers().get_all(SET_COOKIE).iter().find_map(|v| {
        let pair = v.to_str().ok()?.split(';').next()?.trim();
        let (k, val) = pair.split_once('=')?;
        (k == name && !val.is_empty()).then(|| pair.to_string())
    })
}

/// The value of the form's hidden `csrfmiddlewaretoken` input (attributes in any order).
fn csrf_token(html: &str) -> Option<&str> {
    let at = html.find("csrfmiddlewaretoken")?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let start = tag.find("value=\"")? + "value=\"".len();
    let end = tag[start..].find('"')?;
    Some(&tag[start..start + end])
}

/// Logs `username` in at `base` (`http://host:port`); returns the `Cookie` header for sockets.
///
/// # Errors
/// When the page has no form, or the POST does not answer 302 with a session cookie.
pub async fn login(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<String> {
    let url = format!("{base}/accounts/login/");
    let page = http.get(&url).send().await.context("GET login page")?;
    let csrf_cookie = set_cookie(&page, "csrftoken").context("no csrftoken cookie")?;
    let html = page.text().await?;
    let token = csrf_token(&html)
        .context("no csrfmiddlewaretoken input")?
        .to_string();
    let form = [
        ("csrfmiddlewaretoken", token.as_str()),
        ("username", username),
        ("password", password),
    ];
    let resp = http
        .post(&url)
        .header(COOKIE, &csrf_cookie)
        .header(REFERER, &url)
        .header(ORIGIN, base)
        .form(&form)
        .send()
        .await
        .context("POST login")?;
    if resp.status() != reqwest::StatusCode::FOUND {
        bail!("login of {username} answered {}", resp.status());
    }
    let session = set_cookie(&resp, "sessionid").context("no sessionid cookie after login")?;
    Ok(format!("{session}; {csrf_cookie}"))
}

/// Logs in every user, two at a time; returns one cookie header per user.
pub async fn login_all(
    base: &str,
    users: &[String],
    password: &str,
) -> anyhow::Result<Vec<String>> {
    let http = http_client();
    let mut cookies = Vec::with_capacity(users.len());
    for pair in users.chunks(2) {
        let jobs = pair.iter().map(|u| login(&http, base, u, password));
        for cookie in futures_util::future::join_all(jobs).await {
            cookies.push(cookie?);
        }
    }
    Ok(cookies)
}

#[cfg(test)]
mod tests {
    use super::csrf_token;

    #[test]
    fn reads_the_hidden_token_whatever_the_attribute_order() {
        let a = r#"<input type="hidden" name="csrfmiddlewaretoken" value="abc123">"#;
        assert_eq!(csrf_token(a), Some("abc123"));
        let b = r#"<input value="xyz" type="hidden" name="csrfmiddlewaretoken"><p value="no">"#;
        assert_eq!(csrf_token(b), Some("xyz"));
        assert_eq!(csrf_token("<form></form>"), None);
    }
}
