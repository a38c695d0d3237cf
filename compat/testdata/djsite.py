"""A minimal Django configured in-process for the probes (no settings module): SQLite in a
temporary file, the auth/sessions/contenttypes apps, a login view and a few test views."""
import sqlite3

from refs import OLD_SECRET, SECRET_KEY

LOGIN_TEMPLATE = (
    '<form method="post">{% csrf_token %}{{ form.as_p }}'
    '<input type="hidden" name="next" value="{{ next }}"></form>'
)

# Every hasher Django ships (by version), enabled so the probes can verify each kind.
VECTOR_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.BCryptPasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "django.contrib.auth.hashers.MD5PasswordHasher",
]


def configure(db_path, use_tz=True, hashers=None, fallback=True, urls=None):
    """settings.configure() + django.setup() + migrate. `hashers=None`: VECTOR_HASHERS;
    `"default"`: the version's own default PASSWORD_HASHERS."""
    import django
    from django.conf import settings

    kw = dict(
        SECRET_KEY=SECRET_KEY,
        DEBUG=False,
        ALLOWED_HOSTS=["testserver", "example.com"],
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db_path}},
        USE_TZ=use_tz,
        TIME_ZONE="UTC" if use_tz else "Europe/Paris",
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        ROOT_URLCONF=urls or __name__,
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "OPTIONS": {
                    "loaders": [
                        (
                            "django.template.loaders.locmem.Loader",
                            {
                                "registration/login.html": LOGIN_TEMPLATE,
                                "registration/logged_out.html": "logged out",
                            },
                        )
                    ],
                    "context_processors": ["django.template.context_processors.csrf"],
                },
            }
        ],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    if hashers != "default":
        kw["PASSWORD_HASHERS"] = list(hashers or VECTOR_HASHERS)
    if fallback:
        kw["SECRET_KEY_FALLBACKS"] = [OLD_SECRET]
    settings.configure(**kw)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


urlpatterns = []  # set by flows.install_views() once settings exist


def raw_rows(db_path, sql, args=()):
    con = sqlite3.connect(db_path)
    try:
        cur = con.execute(sql, args)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]
    finally:
        con.close()


def execute(db_path, sql, args=()):
    con = sqlite3.connect(db_path)
    try:
        con.execute(sql, args)
        con.commit()
    finally:
        con.close()


def typed_row(db_path, table, where, args):
    con = sqlite3.connect(db_path)
    try:
        cols = [r[1] for r in con.execute("PRAGMA table_info(%s)" % table)]
        sel = ", ".join('"%s", typeof("%s")' % (c, c) for c in cols)
        row = con.execute("SELECT %s FROM %s WHERE %s" % (sel, table, where), args).fetchone()
        return {c: {"value": row[2 * i], "sqlite_type": row[2 * i + 1]} for i, c in enumerate(cols)}
    finally:
        con.close()


def set_cookie_headers(resp):
    return [m.output(header="").strip() for m in resp.cookies.values()]


def attempt(fn):
    """{"ok": result} or {"error": "Type: message"}."""
    try:
        return {"ok": fn()}
    except Exception as e:  # noqa: BLE001 - the error is the recorded answer
        return {"error": "%s: %s" % (type(e).__name__, e)}
