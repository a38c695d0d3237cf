"""Django 5.2 end to end through its test Client (login, CSRF, sessions, logout, rehash),
how SQLite stores datetimes, and channels' OriginValidator (`django-vectors.json`)."""
import re

import djsite
import refs
from djsite import raw_rows, execute, set_cookie_headers, typed_row
from refs import OLD_SECRET, SECRET_KEY, SESSION_SALT

FORM_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def install_views():
    from django.contrib.auth import views as auth_views
    from django.http import HttpResponse
    from django.middleware.csrf import get_token
    from django.urls import path

    def whoami(request):
        user = request.user
        return HttpResponse(user.get_username() if user.is_authenticated else "<anonymous>")

    djsite.urlpatterns[:] = [
        path("login/", auth_views.LoginView.as_view(next_page="/whoami/")),
        path("logout/", auth_views.LogoutView.as_view()),
        path("whoami/", whoami),
        path("token/", lambda request: HttpResponse(get_token(request))),
        path("protected/", lambda request: HttpResponse("ok")),
    ]


def session_exists(db, key):
    return bool(raw_rows(db, "SELECT 1 AS x FROM django_session WHERE session_key=?", (key,)))


def http_flow(db):
    from django.contrib.auth.hashers import PBKDF2PasswordHasher
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore as DBStore
    from django.test import Client

    install_views()
    flow = {}
    user = User.objects.create_user("alice", "alice@example.com", "correct horse battery staple")
    flow["new_user_row_sqlite"] = typed_row(db, "auth_user", "id=?", (user.pk,))

    c = Client(enforce_csrf_checks=True)
    r = c.get("/login/")
    csrf_cookie = r.cookies["csrftoken"].value
    form_token = FORM_TOKEN.search(r.content.decode()).group(1)
    flow["get_login"] = {
        "status": r.status_code,
        "set_cookie": set_cookie_headers(r),
        "csrf_cookie_len": len(csrf_cookie),
        "form_token_len": len(form_token),
        "form_token_unmasks_to_cookie": refs.csrf_unmask(form_token) == csrf_cookie,
        "cache_control": r.get("Cache-Control"),
        "vary": r.get("Vary"),
    }
    r = Client(enforce_csrf_checks=True).post("/login/", {"username": "alice", "password": "x"})
    flow["post_login_without_csrf"] = {"status": r.status_code}
    r = c.post("/login/", {"username": "alice", "password": "nope", "csrfmiddlewaretoken": form_token})
    flow["post_login_wrong_password"] = {"status": r.status_code, "set_cookie": set_cookie_headers(r)}
    r = c.post("/login/", {"username": "alice", "password": "correct horse battery staple",
                           "csrfmiddlewaretoken": form_token})
    skey = r.cookies["sessionid"].value
    row = raw_rows(db, "SELECT session_key, session_data, expire_date, typeof(expire_date) AS t "
                       "FROM django_session WHERE session_key=?", (skey,))[0]
    decoded = DBStore().decode(row["session_data"])
    user.refresh_from_db()
    assert decoded["_auth_user_hash"] == refs.auth_hash(user.password, SECRET_KEY)
    flow["post_login_ok"] = {
        "status": r.status_code,
        "location": r["Location"],
        "set_cookie": set_cookie_headers(r),
        "session_key": skey,
        "session_row_sqlite": row,
        "session_decoded": decoded,
        "expected_auth_hash": refs.auth_hash(user.password, SECRET_KEY),
        "csrf_rotated": r.cookies["csrftoken"].value != csrf_cookie,
        "last_login_raw_sqlite": raw_rows(db, "SELECT last_login FROM auth_user WHERE id=?", (user.pk,))[0]["last_login"],
        "session_payload_verifies_independently": refs.loads(row["session_data"], SESSION_SALT, [SECRET_KEY]) == decoded,
    }
    flow["whoami_after_login"] = c.get("/whoami/").content.decode()
    # Logging in again as the same user keeps the session key (no flush, no cycle).
    tok = FORM_TOKEN.search(c.get("/login/").content.decode()).group(1)
    r = c.post("/login/", {"username": "alice", "password": "correct horse battery staple",
                           "csrfmiddlewaretoken": tok})
    flow["relogin_same_user"] = {"status": r.status_code,
                                 "session_key_unchanged": c.cookies["sessionid"].value == skey,
                                 "old_row_still_exists": session_exists(db, skey)}

    secret = c.cookies["csrftoken"].value
    post = lambda **kw: c.post("/protected/", {}, **kw).status_code  # noqa: E731
    flow["csrf_checks"] = {
        "header_unmasked_secret": post(HTTP_X_CSRFTOKEN=secret),
        "header_masked_token": post(HTTP_X_CSRFTOKEN=refs.csrf_mask(secret, "A" * 32)),
        "bad_origin": post(HTTP_X_CSRFTOKEN=secret, HTTP_ORIGIN="https://evil.example"),
        "good_origin_http": post(HTTP_X_CSRFTOKEN=secret, HTTP_ORIGIN="http://testserver"),
        "https_no_origin_no_referer": post(HTTP_X_CSRFTOKEN=secret, secure=True),
        "https_good_referer": post(HTTP_X_CSRFTOKEN=secret, secure=True, HTTP_REFERER="https://testserver/page"),
        "https_good_origin": post(HTTP_X_CSRFTOKEN=secret, secure=True, HTTP_ORIGIN="https://testserver"),
    }

    # A session made by the independent encoder is accepted by Django.
    from determinism import CLOCK

    hand_key = "0123456789abcdefghijklmnopqrstuv"
    hand = {"_auth_user_id": str(user.pk), "_auth_user_backend": refs.MODEL_BACKEND,
            "_auth_user_hash": refs.auth_hash(user.password, SECRET_KEY)}
    hand_data = refs.dumps(hand, SESSION_SALT, SECRET_KEY, int(CLOCK.ts), True)
    execute(db, "INSERT INTO django_session VALUES (?,?,?)", (hand_key, hand_data, "2099-01-01 00:00:00"))
    c2 = Client()
    c2.cookies["sessionid"] = hand_key
    flow["hand_made_session_whoami"] = c2.get("/whoami/").content.decode()

    # An auth hash made with the fallback secret: accepted, key cycled, hash updated.
    fb_key = "fallbackfallbackfallbackfallback"
    fb = dict(hand, _auth_user_hash=refs.auth_hash(user.password, OLD_SECRET))
    execute(db, "INSERT INTO django_session VALUES (?,?,?)",
            (fb_key, refs.dumps(fb, SESSION_SALT, SECRET_KEY, int(CLOCK.ts), True), "2099-01-01 00:00:00"))
    c3 = Client()
    c3.cookies["sessionid"] = fb_key
    r = c3.get("/whoami/")
    new_key = r.cookies["sessionid"].value if "sessionid" in r.cookies else None
    flow["fallback_secret_auth_hash"] = {
        "whoami": r.content.decode(),
        "new_session_cookie_issued": new_key is not None and new_key != fb_key,
        "old_row_exists": session_exists(db, fb_key),
        "new_row_hash_is_current": bool(new_key) and DBStore(new_key).load().get("_auth_user_hash")
        == refs.auth_hash(user.password, SECRET_KEY),
    }

    exp_key = "expiredexpiredexpiredexpiredexpi"
    execute(db, "INSERT INTO django_session VALUES (?,?,?)", (exp_key, hand_data, "2000-01-01 00:00:00"))
    c4 = Client()
    c4.cookies["sessionid"] = exp_key
    flow["expired_row_whoami"] = c4.get("/whoami/").content.decode()

    # A password change flushes sessions whose hash no longer matches.
    before = session_exists(db, hand_key)
    user.set_password("new password 123")
    user.save()
    r = c2.get("/whoami/")
    flow["after_password_change"] = {"whoami": r.content.decode(), "row_existed_before": before,
                                     "row_exists_after": session_exists(db, hand_key),
                                     "set_cookie": set_cookie_headers(r)}

    r = c.post("/logout/", {}, HTTP_X_CSRFTOKEN=c.cookies["csrftoken"].value)
    flow["logout"] = {"status": r.status_code, "set_cookie": set_cookie_headers(r),
                      "row_exists_after": session_exists(db, skey),
                      "get_logout_status": Client().get("/logout/").status_code}

    # A 1000-iteration hash is rehashed at login.
    bob = User.objects.create_user("bob", "", "x")
    low = PBKDF2PasswordHasher().encode("bob password", "abcdefghijklmnopqrstuv", 1000)
    User.objects.filter(pk=bob.pk).update(password=low)
    r = Client().post("/login/", {"username": "bob", "password": "bob password"})
    bob.refresh_from_db()
    flow["rehash_on_login"] = {"before": low,
                               "after_prefix": "$".join(bob.password.split("$")[:2]),
                               "salt_changed": bob.password.split("$")[2] != "abcdefghijklmnopqrstuv",
                               "status": r.status_code}
    r = Client().post("/login/", {"username": "BOB", "password": "bob password"})
    flow["login_username_case"] = {"username_sent": "BOB", "stored": "bob", "status": r.status_code,
                                   "logged_in": r.status_code == 302}

    from django.contrib.sessions.middleware import SessionMiddleware
    from django.http import HttpResponse
    from django.test import RequestFactory

    def view(request):
        request.session["x"] = 1
        request.session.set_expiry(0)
        return HttpResponse("ok")

    resp = SessionMiddleware(view)(RequestFactory().get("/"))
    k = resp.cookies["sessionid"].value
    flow["browser_close_session"] = {
        "set_cookie": set_cookie_headers(resp),
        "row": raw_rows(db, "SELECT session_data, expire_date FROM django_session WHERE session_key=?", (k,))[0],
        "decoded": DBStore(k).load(),
    }
    return flow


def channels_checks():
    """channels' OriginValidator matching rules."""
    from urllib.parse import urlparse

    import channels
    from channels.security.websocket import OriginValidator

    cases = []
    for allowed, origin in [
        (["example.com"], "https://example.com"),
        (["example.com"], "http://example.com:8000"),
        (["example.com"], "https://evil.com"),
        ([".example.com"], "https://sub.example.com"),
        ([".example.com"], "https://example.com"),
        (["https://example.com"], "https://example.com:443"),
        (["https://example.com"], "http://example.com"),
        (["http://example.com:8000"], "http://example.com:8000"),
        (["example.com"], None),
        (["*"], None),
        (["example.com"], "null"),
        (["EXAMPLE.com"], "https://example.com"),
    ]:
        parsed = urlparse(origin) if origin is not None else None
        cases.append({"allowed": allowed, "origin": origin,
                      "valid": OriginValidator(None, allowed).valid_origin(parsed)})
    return {"channels_version": channels.__version__, "cases": cases}


def sqlite_aware_probe(db):
    import datetime as dt

    from django.contrib.auth.models import User

    u = User.objects.create_user("aware", "", "pw")
    u.last_login = dt.datetime(2024, 1, 15, 12, 30, 45, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    u.date_joined = dt.datetime(2024, 1, 15, 10, 0, 0, tzinfo=dt.timezone.utc)
    u.is_staff = True
    u.save()
    return {"settings": {"USE_TZ": True, "TIME_ZONE": "UTC"},
            "input_last_login": u.last_login.isoformat(),
            "input_date_joined": u.date_joined.isoformat(),
            "row": typed_row(db, "auth_user", "username=?", ("aware",))}


def sqlite_naive_probe(db):
    """USE_TZ=False, TIME_ZONE=Europe/Paris: naive local wall-clock storage."""
    import datetime as dt

    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore

    s = SessionStore()
    s["x"] = 1
    s.create()
    s.save()
    u = User.objects.create_user("naive", "", "pw")
    u.last_login = dt.datetime(2024, 1, 15, 12, 30, 45, 123456)
    u.save()
    return {
        "settings": {"USE_TZ": False, "TIME_ZONE": "Europe/Paris"},
        "session_row": raw_rows(db, "SELECT expire_date, typeof(expire_date) AS t FROM django_session")[0],
        "last_login_raw": raw_rows(db, "SELECT last_login FROM auth_user WHERE username='naive'")[0]["last_login"],
        "note": "stored value is local wall-clock time in TIME_ZONE with no offset "
                "(the clock stands at meta.fixed_timestamp)",
    }
