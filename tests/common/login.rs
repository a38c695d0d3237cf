//! A login as a browser does it, against any server at `base` ("http://host:port"): GET the
//! login form for its CSRF cookie and token, POST the form, keep the session cookie.

/// The masked token of the form's hidden `csrfmiddlewaretoken` input.
pub fn form_token(page: &str) -> Option<String> {
    let marker = r#"name="csrfmiddlewaretoken" value=""#;
    let start = page.find(marker)? + marker.len();
    let end = start + page[start..].find('"')?;
    Some(page[start..end].to_string())
}

/// The value of the `name` cookie among a response's `Set-Cookie` headers.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| Some(c.strip_prefix(&prefix)?.split(';').next()?.to_string()))
}

/// Logs in through the form; `Ok(sessionid)` on the login view's redirect, `Err(status)` when
/// the form was answered again (wrong password: 200; locked out: 429).
pub async fn browser_login(base: &str, username: &str, password: &str) -> Result<String, u16> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!("{base}/accounts/login/");
    let page = client.get(&url).send().await.expect("GET the login form");
    assert_eq!(page.status(), 200, "GET {url}");
    let csrf = set_cookie(&page, "csrftoken").expect("csrftoken cookie on the login form");
    let body = page.text().await.unwrap();
    let token = form_token(&body).expect("csrfmiddlewaretoken in the login form");
    let response = client
        .post(&url)
        .header(reqwest::header::COOKIE, format!("csrftoken={csrf}"))
        // Django's CSRF check wants a same-origin Referer or Origin on HTTPS only; over HTTP
        // the token suffices, but a browser sends Origin, so send it too.
        .header(reqwest::header::ORIGIN, base)
        .form(&[
            ("username", username),
            ("password", password),
            ("csrfmiddlewaretoken", token.as_str()),
        ])
        .send()
        .await
        .expect("POST the login form");
    match response.status().as_u16() {
        302 => Ok(set_cookie(&response, "sessionid").expect("sessionid cookie after login")),
        status => Err(status),
    }
}
