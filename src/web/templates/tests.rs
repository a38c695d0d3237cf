//! Unit tests for `templates`: every embedded page rendered with its context contract, Django
//! escaping, the formatter and globals, and directory loading.

use super::environment::{django_escape, new_environment};
use super::*;
use minijinja::context;
use minijinja::value::Serde;
use serde::Serialize;

const TOKEN: &str = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrStUvWxYz01";
const NASTY: &str = r#"Staff <room> & "quotes" 'x'"#;
const NASTY_ESCAPED: &str = "Staff &lt;room&gt; &amp; &quot;quotes&quot; &#x27;x&#x27;";

#[derive(Serialize)]
struct Room {
    id: i64,
    title: &'static str,
    staff_only: bool,
}

fn embedded() -> Templates {
    Templates::load(Path::new("/nonexistent/whisper-templates-dir")).expect("embedded load")
}

#[test]
fn missing_dir_falls_back_to_embedded_templates() {
    let t = embedded();
    assert!(t.source_dir().is_none());
    for (name, _) in EMBEDDED {
        let html = t
            .render(name, context! {})
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(html.starts_with("<!DOCTYPE html>\n"), "{name}: {html}");
        assert!(html.contains(r#"<meta charset="UTF-8">"#), "{name}");
    }
}

#[test]
fn django_escape_table() {
    assert_eq!(django_escape(NASTY), NASTY_ESCAPED);
    assert_eq!(django_escape("a/b </script>"), "a/b &lt;/script&gt;");
    assert_eq!(django_escape("Ärger ☃"), "Ärger ☃");
    assert_eq!(django_escape(""), "");
}

#[test]
fn index_lists_rooms_escaped() {
    let rooms = vec![
        Room {
            id: 1,
            title: "Lobby",
            staff_only: false,
        },
        Room {
            id: 7,
            title: NASTY,
            staff_only: true,
        },
    ];
    let html = embedded()
        .render(
            "index.html",
            context! { user => "bob", csrf_token => TOKEN, rooms => Serde(&rooms) },
        )
        .unwrap();
    assert!(html.contains("<title>MultiChat Example</title>"), "{html}");
    assert!(html.contains("<h1>MultiChat Example</h1>"), "{html}");
    assert!(html.contains(r#"<ul class="rooms">"#));
    assert!(html.contains(r#"<li class="room-link" data-room-id="1">Lobby</li>"#));
    assert!(html.contains(&format!(
        r#"<li class="room-link" data-room-id="7">{NASTY_ESCAPED}</li>"#
    )));
    assert!(!html.contains("class=\"empty\""));
    assert!(html.contains(r#"<div id="chats"></div>"#));
    assert!(html.contains(r#"<script src="/static/js/chat.js" defer></script>"#));
    assert!(html.contains(r#"<link rel="stylesheet" href="/static/css/style.css">"#));
    assert!(!html.contains("<script>"), "no inline script");
    // logged in: POST logout form with the CSRF input
    assert!(html.contains(r#"<form method="post" action="/accounts/logout/" class="logout">"#));
    assert!(html.contains(&format!(
        r#"<input type="hidden" name="csrfmiddlewaretoken" value="{TOKEN}">"#
    )));
    assert!(html.contains(r#"<button type="submit" title="Logged in as bob">Logout</button>"#));
}

#[test]
fn index_empty_state() {
    let rooms: Vec<Room> = Vec::new();
    let html = embedded()
        .render(
            "index.html",
            context! { user => "bob", csrf_token => TOKEN, rooms => Serde(&rooms) },
        )
        .unwrap();
    assert!(html.contains(
        r#"<p class="empty">No chat rooms defined. Maybe make some in the <a href="/admin/">admin</a>?</p>"#
    ));
    let ul = html.find(r#"<ul class="rooms">"#).unwrap();
    let p = html.find(r#"<p class="empty">"#).unwrap();
    let end = html.find("</ul>").unwrap();
    assert!(ul < p && p < end, "empty text sits inside the ul");
    assert!(!html.contains("room-link"));
}

#[test]
fn anonymous_pages_have_no_logout_form() {
    let html = embedded().render("404.html", context! {}).unwrap();
    assert!(!html.contains("logout"));
    assert!(html.contains("<title>Not Found</title>"));
    assert!(html.contains("<h1>Not Found</h1>"));
    assert!(html.contains("<p>Sorry, but we can't find that page.</p>"));
    let html = embedded()
        .render(
            "index.html",
            context! { user => (), rooms => Vec::<Value>::new() },
        )
        .unwrap();
    assert!(!html.contains("logout"));
}

#[test]
fn username_in_header_is_escaped() {
    let html = embedded()
        .render("500.html", context! { user => NASTY, csrf_token => TOKEN })
        .unwrap();
    assert!(html.contains(&format!(r#"title="Logged in as {NASTY_ESCAPED}""#)));
    assert!(html.contains("<h1>Server Error</h1>"));
    assert!(
        html.contains(
            "<p>The server has encountered an internal error. Please try again later.</p>"
        )
    );
}

#[test]
fn login_plain_get() {
    let html = embedded()
        .render("registration/login.html", context! { csrf_token => TOKEN })
        .unwrap();
    assert!(html.contains("<title>Login</title>"));
    assert!(html.contains("<h1>Login</h1>"));
    assert!(html.contains(r#"<form action="" method="post" class="login">"#));
    assert!(html.contains(r#"<label for="id_username">Username:</label>"#));
    assert!(html.contains(
        r#"<input type="text" name="username" autofocus autocapitalize="none" autocomplete="username" maxlength="150" required id="id_username">"#
    ));
    assert!(html.contains(r#"<label for="id_password">Password:</label>"#));
    assert!(html.contains(
        r#"<input type="password" name="password" autocomplete="current-password" required id="id_password">"#
    ));
    assert!(html.contains(&format!(
        r#"<input type="hidden" name="csrfmiddlewaretoken" value="{TOKEN}">"#
    )));
    assert!(html.contains(r#"<button type="submit">Login</button>"#));
    assert!(!html.contains("errorlist"));
    assert!(!html.contains(r#"name="next""#));
}

#[test]
fn login_field_follows_username_field() {
    let html = embedded()
        .render(
            "registration/login.html",
            context! {
                csrf_token => TOKEN,
                username_label => "Email address",
                username_max_length => 254,
            },
        )
        .unwrap();
    assert!(html.contains(r#"<label for="id_username">Email address:</label>"#));
    assert!(html.contains(r#"autocomplete="username" maxlength="254" required"#));
}

#[test]
fn login_with_errors_and_next() {
    let message = "Please enter a correct username and password. Note that both fields may be case-sensitive.";
    let html = embedded()
        .render(
            "registration/login.html",
            context! {
                csrf_token => TOKEN,
                next => "/?a=1&b=\"2\"",
                form => context! {
                    username => NASTY,
                    errors => vec![message],
                    username_errors => Vec::<String>::new(),
                    password_errors => vec!["This field is required."],
                },
            },
        )
        .unwrap();
    assert!(html.contains(&format!(
        r#"<ul class="errorlist nonfield"><li>{message}</li></ul>"#
    )));
    assert!(html.contains(&format!(
        r#"<input type="text" name="username" value="{NASTY_ESCAPED}" autofocus autocapitalize="none" autocomplete="username" maxlength="150" required id="id_username">"#
    )));
    let err = html
        .find(r#"<ul class="errorlist"><li>This field is required.</li></ul>"#)
        .expect("password error");
    let field = html.find(r#"name="password""#).unwrap();
    assert!(err < field, "errors precede the field");
    assert!(html.contains(
        r#"<input type="password" name="password" autocomplete="current-password" required aria-invalid="true" id="id_password">"#
    ));
    assert!(
        html.contains(r#"<input type="hidden" name="next" value="/?a=1&amp;b=&quot;2&quot;">"#)
    );
}

#[test]
fn login_username_required_error() {
    let html = embedded()
        .render(
            "registration/login.html",
            context! {
                csrf_token => TOKEN,
                next => (),
                form => context! {
                    username => "",
                    errors => Vec::<String>::new(),
                    username_errors => vec!["This field is required."],
                    password_errors => vec!["This field is required."],
                },
            },
        )
        .unwrap();
    assert_eq!(
        html.matches(r#"<ul class="errorlist"><li>This field is required.</li></ul>"#)
            .count(),
        2
    );
    assert!(!html.contains("nonfield"));
    assert!(!html.contains(r#"value="""#));
    assert!(!html.contains(r#"name="next""#));
}

#[test]
fn logged_out_page() {
    let t = embedded();
    let html = t
        .render("registration/logged_out.html", context! {})
        .unwrap();
    assert!(html.contains("<h1>Logged out</h1>"));
    assert!(html.contains("Thanks for spending some quality time with the web site today."));
    assert!(html.contains(r#"<a href="/accounts/login/">Log in again</a>"#));
    let html = t
        .render(
            "registration/logged_out.html",
            context! { login_url => "/login/?x=1&y=2" },
        )
        .unwrap();
    assert!(html.contains(r#"<a href="/login/?x=1&amp;y=2">Log in again</a>"#));
}

#[test]
fn csrf_failure_page() {
    let html = embedded()
        .render(
            "403_csrf.html",
            context! { reason => "CSRF token from POST <missing>." },
        )
        .unwrap();
    assert!(html.contains("<title>Forbidden (403)</title>"));
    assert!(html.contains("<h1>Forbidden (403)</h1>"));
    assert!(html.contains("CSRF verification failed. Request aborted."));
    assert!(html.contains("CSRF token from POST &lt;missing&gt;."));
}

#[test]
fn formatter_details() {
    let mut env = new_environment();
    env.add_template(
        "x.html",
        "{{ a }}|{{ b }}|{{ c }}|{{ d }}|{{ e|safe }}|{{ e|escape }}|{{ n }}|{{ missing.attr }}|{{ static('/css/x.css') }}",
    )
    .unwrap();
    env.add_template("x.txt", "{{ e }}").unwrap();
    let ctx = context! { a => "a/b", b => true, c => 3, d => (), e => "<&>" , n => 1.5 };
    assert_eq!(
        env.get_template("x.html")
            .unwrap()
            .render(ctx.clone())
            .unwrap(),
        "a/b|True|3||<&>|&lt;&amp;&gt;|1.5||/static/css/x.css"
    );
    assert_eq!(
        env.get_template("x.txt").unwrap().render(ctx).unwrap(),
        "<&>"
    );
}

#[test]
fn csrf_input_escapes_and_handles_missing_token() {
    let mut env = new_environment();
    env.add_template("f.html", "[{{ csrf_input() }}]").unwrap();
    let t = env.get_template("f.html").unwrap();
    assert_eq!(t.render(context! {}).unwrap(), "[]");
    assert_eq!(
        t.render(context! { csrf_token => "a\"b" }).unwrap(),
        r#"[<input type="hidden" name="csrfmiddlewaretoken" value="a&quot;b">]"#
    );
}

#[test]
fn render_unknown_template_is_not_found() {
    match embedded().render("nope.html", context! {}) {
        Err(TemplateError::NotFound { name }) => assert_eq!(name, "nope.html"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn directory_overrides_and_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("registration")).unwrap();
    fs::write(
        dir.path().join("404.html"),
        "{% extends 'base.html' %}{% block content %}custom {{ 'x' }}{% endblock %}",
    )
    .unwrap();
    fs::write(dir.path().join("registration/extra.txt"), "plain <{{ v }}>").unwrap();
    fs::write(dir.path().join(".hidden.html"), "{% broken").unwrap();
    fs::write(dir.path().join("notes.md"), "{% broken").unwrap();
    let t = Templates::load(dir.path()).unwrap();
    assert_eq!(t.source_dir(), Some(dir.path()));
    assert!(
        t.render("404.html", context! {})
            .unwrap()
            .contains("custom x")
    );
    assert_eq!(
        t.render("registration/extra.txt", context! { v => "&" })
            .unwrap(),
        "plain <&>"
    );
    // not in the directory: embedded copy
    assert!(
        t.render("500.html", context! {})
            .unwrap()
            .contains("Server Error")
    );
}

#[test]
fn syntax_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("registration")).unwrap();
    fs::write(
        dir.path().join("registration/login.html"),
        "<p>\n{% if form %}\n",
    )
    .unwrap();
    let err = Templates::load(dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TemplateError::Syntax { .. }), "{text}");
    assert!(text.contains("registration/login.html"), "{text}");
}

#[test]
fn templates_can_be_shared_across_tasks() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Templates>();
}

#[test]
fn path_that_is_a_file_is_rejected() {
    let file = tempfile::NamedTempFile::new().unwrap();
    assert!(matches!(
        Templates::load(file.path()),
        Err(TemplateError::NotADirectory { .. })
    ));
}
