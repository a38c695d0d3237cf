#!/usr/bin/env python
"""Real Django as a test oracle for Whisper's interop suite (tests/interop.rs).

    python compat/oracle.py SUBCOMMAND [options]

Django is configured exactly like the compat project (multichat.settings: DATABASE_URL,
SECRET_KEY, SECRET_KEY_FALLBACKS, SESSION_ENGINE, ... from the environment). Every subcommand
prints ONE JSON object on stdout and exits 0; a failure prints {"error": ...} and exits 1.
HTTP subcommands go through Django's test Client with CSRF checks enforced, i.e. through the
real middleware, views and admin. `--cookie NAME=VALUE` may be repeated.

Users are those of get_user_model() (AUTH_USER_MODEL: auth.User, users.User or
emailusers.EmailUser): `--username` is always the login, i.e. the USERNAME_FIELD value
(`get_username()`), and a new user's other fields are derived from it (see new_user_fields).

Subcommands:
  migrate                      Django's `migrate` (exit code, output)
  migrate-check                `migrate --check` and `makemigrations --check --dry-run` codes
  snapshot                     schema + migration/content-type/permission rows (for diffs)
  create-user --username U --password P [--staff] [--superuser] [--inactive]
              [--hasher NAME] [--iterations N] [--via create_user|createsuperuser|set_password]
  user --username U            the user's row (password, flags, last_login; name if the model has it)
  check-password --username U --password P   user.check_password (saves an upgrade, as login)
  set-password --username U --password P    user.set_password + save (ORM)
  set-active --username U --active 0|1
  set-staff --username U --value 0|1
  set-name --username U --name N            the users.User `name` (the Whisper fork's model)
  login --username U --password P [--path /accounts/login/|/admin/login/]
  get --path P [--cookie ...]  status, Location, body, Set-Cookie of a GET
  admin-index [--cookie ...]   GET /admin/
  logout [--cookie ...]        POST /accounts/logout/ (with a CSRF token)
  admin-password-change --cookie ... --username U --password P   the admin's password form
  session-decode --key K       the session's dict (db row or signed cookie), or null
  cache-get --key K            Django's default cache: cache.get(K) as repr and JSON
  session-set --key K --name N --value V   adds a key to a session; prints the (new) key
  session-expire --key K       expires a session: the db row's expire_date moves into the past
                               (db, cached_db) and the cache entry gets a 1-second timeout
                               (cache, cached_db; `cache.touch`)
  cache-entry --key K          the session's raw cache entry (hex), and the bytes the cache's
                               serializer writes for the dict it decodes to (cache engines)
  room-create --title T [--staff-only] | room-rename --id N --title T
  room-set-staff --id N --staff-only 0|1 | room-delete --id N | rooms
  serve                        reads one JSON array of arguments per stdin line (a subcommand
                               and its options) and answers each with one JSON line: one
                               Django start-up for a whole test
"""
import argparse
import io
import json
import os
import re
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multichat.settings")


def setup():
    import django
    from django.conf import settings

    django.setup()
    # The test Client sends Host: testserver (Django's test runner allows it the same way).
    if "testserver" not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]


def manage(*args):
    proc = subprocess.run(
        [sys.executable, str(HERE / "manage.py"), *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    return proc.returncode, proc.stdout + proc.stderr


def client(cookies=()):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    for item in cookies or ():
        name, _, value = item.partition("=")
        c.cookies[name] = value
    return c


def response_json(resp, body_limit=20000):
    set_cookies = {}
    for name, morsel in resp.cookies.items():
        set_cookies[name] = {
            "value": morsel.value,
            "max_age": morsel["max-age"],
            "expires": morsel["expires"],
        }
    body = resp.content.decode("utf-8", "replace")
    return {
        "status": resp.status_code,
        "location": resp.get("Location"),
        "set_cookies": set_cookies,
        "body": body[:body_limit],
    }


def csrf_pair():
    """A CSRF cookie secret and the same value as form token (Django accepts the bare secret)."""
    from django.utils.crypto import get_random_string

    secret = get_random_string(32)
    return secret, secret


def get_user(username):
    """The user whose USERNAME_FIELD is `username` (ModelBackend's get_by_natural_key)."""
    from django.contrib.auth import get_user_model

    return get_user_model()._default_manager.get_by_natural_key(username)


def has_field(model, name):
    from django.core.exceptions import FieldDoesNotExist

    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def new_user_fields(login):
    """A new user's fields from its login (the USERNAME_FIELD value): for auth.User and
    users.User, username=login and email=login@example.com; for a model logging in by email,
    email=login and username=its local part."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    fields = {User.USERNAME_FIELD: login}
    if User.USERNAME_FIELD != "email" and has_field(User, "email"):
        fields["email"] = "%s@example.com" % login
    if User.USERNAME_FIELD != "username" and has_field(User, "username"):
        fields["username"] = login.split("@")[0]
    return fields


def user_json(user):
    out = {
        "id": user.pk,
        "username": user.get_username(),
        "password": user.password,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "last_login": user.last_login.isoformat() if user.last_login else None,
    }
    if has_field(type(user), "name"):
        out["name"] = user.name
    return out


def encode_password(password, hasher_name=None, iterations=None):
    from django.contrib.auth.hashers import get_hasher, make_password

    if iterations is None:
        return make_password(password, hasher=hasher_name or "default")
    hasher = get_hasher(hasher_name or "default")
    if not hasattr(hasher, "iterations"):
        raise ValueError("--iterations applies to pbkdf2 hashers only")
    # Same algorithm at another work factor: what an older Django (or a hand-made hash) left.
    return hasher.encode(password, hasher.salt(), iterations=iterations)


# ---------------------------------------------------------------------------------------------


def cmd_migrate(a):
    code, out = manage("migrate", "--noinput")
    return {"code": code, "output": out}


def cmd_migrate_check(a):
    m_code, m_out = manage("migrate", "--check")
    mm_code, mm_out = manage("makemigrations", "--check", "--dry-run")
    return {
        "migrate_check": m_code,
        "migrate_output": m_out,
        "makemigrations_check": mm_code,
        "makemigrations_output": mm_out,
    }


def cmd_snapshot(a):
    from django.db import connection

    out = {"vendor": connection.vendor}
    with connection.cursor() as cur:
        if connection.vendor == "sqlite":
            cur.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master "
                "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
            )
            out["schema"] = [list(r) for r in cur.fetchall()]
        else:
            cur.execute(
                "SELECT table_name, column_name, data_type, character_maximum_length, "
                "is_nullable, column_default, is_identity, identity_generation "
                "FROM information_schema.columns WHERE table_schema = 'public' "
                "ORDER BY table_name, column_name"
            )
            out["columns"] = [list(r) for r in cur.fetchall()]
            cur.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                "ORDER BY indexname"
            )
            out["indexes"] = [list(r) for r in cur.fetchall()]
            cur.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE connamespace = 'public'::regnamespace ORDER BY conname"
            )
            out["constraints"] = [list(r) for r in cur.fetchall()]
        cur.execute("SELECT id, app, name, applied FROM django_migrations ORDER BY id")
        out["migrations"] = [[r[0], r[1], r[2], str(r[3])] for r in cur.fetchall()]
        cur.execute("SELECT id, app_label, model FROM django_content_type ORDER BY id")
        out["content_types"] = [list(r) for r in cur.fetchall()]
        cur.execute(
            "SELECT id, content_type_id, codename, name FROM auth_permission ORDER BY id"
        )
        out["permissions"] = [list(r) for r in cur.fetchall()]
    return out


def cmd_create_user(a):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    User = get_user_model()
    superuser = a.superuser
    staff = a.staff or superuser
    fields = new_user_fields(a.username)
    if a.via == "createsuperuser":
        # The management command, non-interactive (reads DJANGO_SUPERUSER_PASSWORD); its
        # options are USERNAME_FIELD and REQUIRED_FIELDS.
        os.environ["DJANGO_SUPERUSER_PASSWORD"] = a.password
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            call_command("createsuperuser", interactive=False, **fields)
        user = get_user(a.username)
        if a.hasher or a.iterations:
            user.password = encode_password(a.password, a.hasher, a.iterations)
            user.save(update_fields=["password"])
    elif a.via == "set_password":
        user = User(**fields)
        user.is_staff, user.is_superuser = staff, superuser
        user.set_password(a.password)
        if a.hasher or a.iterations:
            user.password = encode_password(a.password, a.hasher, a.iterations)
        user.save()
    else:
        if a.hasher or a.iterations:
            user = User.objects.create_user(
                **fields, password=None, is_staff=staff, is_superuser=superuser
            )
            user.password = encode_password(a.password, a.hasher, a.iterations)
            user.save(update_fields=["password"])
        else:
            user = User.objects.create_user(
                **fields, password=a.password, is_staff=staff, is_superuser=superuser
            )
    if a.inactive:
        user.is_active = False
        user.save(update_fields=["is_active"])
    user.refresh_from_db()
    return user_json(user)


def cmd_user(a):
    return user_json(get_user(a.username))


def cmd_check_password(a):
    user = get_user(a.username)
    before = user.password
    ok = user.check_password(a.password)
    user.refresh_from_db()
    return {"ok": ok, "changed": user.password != before, "before": before, "after": user.password}


def cmd_set_password(a):
    user = get_user(a.username)
    user.set_password(a.password)
    user.save()
    return user_json(user)


def cmd_set_active(a):
    user = get_user(a.username)
    user.is_active = bool(int(a.active))
    user.save(update_fields=["is_active"])
    return user_json(user)


def cmd_set_staff(a):
    user = get_user(a.username)
    user.is_staff = bool(int(a.value))
    user.save(update_fields=["is_staff"])
    return user_json(user)


def cmd_set_name(a):
    user = get_user(a.username)
    user.name = a.name
    user.save(update_fields=["name"])
    return user_json(user)


def cmd_login(a):
    from django.conf import settings

    c = client()
    page = c.get(a.path)
    if page.status_code != 200:
        return {"status": page.status_code, "step": "GET", **response_json(page)}
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    data = {"username": a.username, "password": a.password}
    if token:
        data["csrfmiddlewaretoken"] = token.group(1)
    if a.path.startswith("/admin/"):
        data["next"] = "/admin/"
    resp = c.post(a.path, data)
    out = response_json(resp, body_limit=2000)
    morsel = resp.cookies.get(settings.SESSION_COOKIE_NAME)
    out["session"] = morsel.value if morsel is not None and morsel.value else None
    return out


def cmd_get(a):
    return response_json(client(a.cookie).get(a.path))


def cmd_admin_index(a):
    return response_json(client(a.cookie).get("/admin/"), body_limit=4000)


def cmd_logout(a):
    from django.conf import settings

    c = client(a.cookie)
    secret, token = csrf_pair()
    c.cookies[settings.CSRF_COOKIE_NAME] = secret
    return response_json(c.post("/accounts/logout/", {"csrfmiddlewaretoken": token}), 2000)


def cmd_admin_password_change(a):
    """The admin's "Change password" form for user U, posted by the session in --cookie."""
    from django.conf import settings
    from django.urls import reverse

    user = get_user(a.username)
    c = client(a.cookie)
    # UserAdmin names its view "auth_user_password_change" whatever the model:
    # /admin/auth/user/<id>/password/ for auth.User, /admin/users/user/<id>/password/ ...
    path = reverse("admin:auth_user_password_change", args=[user.pk])
    page = c.get(path)
    if page.status_code != 200:
        return {"step": "GET", **response_json(page, 2000)}
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    resp = c.post(
        path,
        {
            "csrfmiddlewaretoken": token.group(1),
            "password1": a.password,
            "password2": a.password,
            "usable_password": "true",
        },
    )
    out = response_json(resp, 4000)
    user.refresh_from_db()
    out["password_changed"] = user.check_password(a.password)
    morsel = resp.cookies.get(settings.SESSION_COOKIE_NAME)
    out["session"] = morsel.value if morsel is not None and morsel.value else None
    return out


def session_store(key):
    from importlib import import_module

    from django.conf import settings

    return import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)


def cmd_session_decode(a):
    from django.conf import settings

    store = session_store(a.key)
    data = store.load()
    engine = settings.SESSION_ENGINE.rsplit(".", 1)[1]
    if engine in ("db", "cached_db") and not store.exists(a.key):
        data = None
    elif not data:
        data = None
    return {"data": data}


def session_cache_key(key):
    """The session's cache key and the cache (cache and cached_db engines)."""
    from django.conf import settings
    from django.core.cache import caches

    store = session_store(key)
    return store.cache_key_prefix + key, caches[settings.SESSION_CACHE_ALIAS]


def raw_redis(cache):
    """The redis-py client under either Redis backend."""
    if hasattr(cache, "client") and hasattr(cache.client, "get_client"):  # django-redis
        return cache.client.get_client(write=True)
    return cache._cache.get_client(None, write=True)  # Django's RedisCache


def cmd_cache_entry(a):
    cache_key, cache = session_cache_key(a.key)
    full = cache.make_key(cache_key)
    raw = raw_redis(cache).get(full)
    out = {"redis_key": full, "raw": raw.hex() if raw is not None else None}
    if raw is not None:
        value = cache.get(cache_key)
        if hasattr(cache, "client") and hasattr(cache.client, "encode"):
            again = cache.client.encode(value)
        else:
            again = cache._cache._serializer.dumps(value)
        out["redumped"] = again.hex() if isinstance(again, bytes) else str(again)
        out["data"] = value
        out["ttl_ms"] = raw_redis(cache).pttl(full)
    return out


def cmd_cache_get(a):
    """`cache.get(key)` of Django's default cache: its repr (int keys stay ints) and its JSON."""
    from django.core.cache import cache

    value = cache.get(a.key)
    return {"repr": repr(value), "json": json.dumps(value)}


def cmd_session_set(a):
    store = session_store(a.key)
    store.load()
    store[a.name] = a.value
    store.save()
    return {"key": store.session_key}


def cmd_session_expire(a):
    from datetime import timedelta

    from django.conf import settings
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    engine = settings.SESSION_ENGINE.rsplit(".", 1)[1]
    out = {}
    if engine in ("db", "cached_db"):
        out["updated"] = Session.objects.filter(session_key=a.key).update(
            expire_date=timezone.now() - timedelta(seconds=5)
        )
    if engine in ("cache", "cached_db"):
        cache_key, cache = session_cache_key(a.key)
        out["touched"] = cache.touch(cache_key, 1)
    return out


def room_json(room):
    return {"id": room.pk, "title": room.title, "staff_only": room.staff_only}


def cmd_room_create(a):
    from chat.models import Room

    return room_json(Room.objects.create(title=a.title, staff_only=a.staff_only))


def cmd_room_rename(a):
    from chat.models import Room

    room = Room.objects.get(pk=a.id)
    room.title = a.title
    room.save()
    return room_json(room)


def cmd_room_set_staff(a):
    from chat.models import Room

    room = Room.objects.get(pk=a.id)
    room.staff_only = bool(int(a.staff_only))
    room.save()
    return room_json(room)


def cmd_room_delete(a):
    from chat.models import Room

    deleted, _ = Room.objects.filter(pk=a.id).delete()
    return {"deleted": deleted}


def cmd_rooms(a):
    from chat.models import Room

    return {"rooms": [room_json(r) for r in Room.objects.order_by("title")]}


def parser():
    p = argparse.ArgumentParser(prog="oracle.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name, fn, *args):
        sp = sub.add_parser(name)
        sp.set_defaults(fn=fn)
        for arg in args:
            if arg == "cookie":
                sp.add_argument("--cookie", action="append", default=[])
            elif arg in ("staff", "superuser", "inactive", "staff-only-flag"):
                sp.add_argument("--" + arg.replace("-flag", ""), action="store_true")
            else:
                sp.add_argument("--" + arg, required=arg not in ("hasher", "iterations", "via", "path"))
        return sp

    add("migrate", cmd_migrate)
    add("migrate-check", cmd_migrate_check)
    add("snapshot", cmd_snapshot)
    sp = add("create-user", cmd_create_user, "username", "password", "staff", "superuser",
             "inactive", "hasher", "via")
    sp.add_argument("--iterations", type=int)
    add("user", cmd_user, "username")
    add("check-password", cmd_check_password, "username", "password")
    add("set-password", cmd_set_password, "username", "password")
    add("set-active", cmd_set_active, "username", "active")
    add("set-staff", cmd_set_staff, "username", "value")
    add("set-name", cmd_set_name, "username", "name")
    sp = add("login", cmd_login, "username", "password")
    sp.add_argument("--path", default="/accounts/login/")
    add("get", cmd_get, "path", "cookie")
    add("admin-index", cmd_admin_index, "cookie")
    add("logout", cmd_logout, "cookie")
    add("admin-password-change", cmd_admin_password_change, "cookie", "username", "password")
    add("session-decode", cmd_session_decode, "key")
    add("cache-get", cmd_cache_get, "key")
    add("session-set", cmd_session_set, "key", "name", "value")
    add("session-expire", cmd_session_expire, "key")
    add("cache-entry", cmd_cache_entry, "key")
    add("room-create", cmd_room_create, "title", "staff-only-flag")
    add("room-rename", cmd_room_rename, "id", "title")
    add("room-set-staff", cmd_room_set_staff, "id", "staff_only")
    add("room-delete", cmd_room_delete, "id")
    add("rooms", cmd_rooms)
    return p


def execute(argv):
    """Runs one subcommand: (result or error object, ok)."""
    try:
        args = parser().parse_args(argv)
        if args.cmd not in ("migrate", "migrate-check"):
            setup()
        return args.fn(args), True
    except SystemExit as exc:  # argparse
        return {"error": "bad arguments %r (exit %s)" % (argv, exc.code)}, False
    except Exception as exc:  # reported as JSON so the Rust side can show it
        import traceback

        return {"error": "%s: %s" % (type(exc).__name__, exc),
                "traceback": traceback.format_exc()}, False


def serve():
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        # Anything a command prints goes to stderr; stdout carries only the answers.
        with redirect_stdout(sys.stderr):
            result, _ = execute(json.loads(line))
            from django.db import connections

            connections.close_all()
        out.write(json.dumps(result, default=str) + "\n")
        out.flush()
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve()
    result, ok = execute(argv)
    print(json.dumps(result, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
