"""Settings of the compat project: the Django side that runs beside Whisper.

Every value comes from the same environment variables Whisper reads (see Whisper's
src/config.rs and README), with the same defaults, plus a `.env` file in BASE_DIR (the repo
root, the parent of compat/) that never overrides variables already set. One `.env`
therefore configures both servers.
"""
import json
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

COMPAT_DIR = Path(__file__).resolve().parent.parent
BASE_DIR = Path(os.environ.get("BASE_DIR") or COMPAT_DIR.parent).resolve()


def _load_dotenv(path):
    """KEY=VALUE lines (optional `export `, quotes, # comments); existing variables win."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        os.environ.setdefault(key, value)


_load_dotenv(BASE_DIR / ".env")


def env(name, default=None):
    return os.environ.get(name, default)


def env_bool(name, default):
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("setting %s: %r is not a boolean (use true or false)" % (name, raw))


def env_list(name, default=""):
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def parse_database_url(url, base_dir):
    """DATABASES["default"] from the URL forms Whisper accepts (dj-database-url's, plus
    sqlx's `sqlite:path`): sqlite:///relative.db (against BASE_DIR), sqlite:////abs.db,
    sqlite://:memory:, postgres://user:pass@host:port/name?option=value."""
    url = url.strip()
    if url.startswith("sqlite:"):
        rest = url[len("sqlite:"):].split("?", 1)[0]
        if rest.startswith("//"):
            rest = rest[2:]
            if rest.startswith("/"):
                rest = rest[1:]
        if rest in ("", ":memory:"):
            name = ":memory:"
        else:
            path = Path(unquote(rest))
            name = str(path if path.is_absolute() else Path(base_dir) / path)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        config = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": unquote(parts.hostname or ""),
            "PORT": str(parts.port or ""),
        }
        options = dict(parse_qsl(parts.query))
        if options:
            config["OPTIONS"] = options
        return config
    raise ValueError(
        "unsupported DATABASE_URL: use sqlite:///relative.db, sqlite:////absolute/path.db, "
        "sqlite:path or postgres://user:pass@host:port/name"
    )


DATABASES = {"default": parse_database_url(env("DATABASE_URL", "sqlite:///db.sqlite3"), BASE_DIR)}


def _secret_key():
    """SECRET_KEY, or, on SQLite, the key Whisper keeps beside the database file
    (`<db>.secret_key`, generated here with mode 0600 when neither exists)."""
    key = env("SECRET_KEY", "")
    if key:
        return key
    db = DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.sqlite3" or db["NAME"] == ":memory:":
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "SECRET_KEY is not set; set it to the same value as Whisper's"
        )
    path = Path(db["NAME"] + ".secret_key")
    try:
        key = path.read_text().strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)"
    key = "".join(secrets.choice(alphabet) for _ in range(50))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


SECRET_KEY = _secret_key()
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "multichat.urls"
WSGI_APPLICATION = "multichat.wsgi.application"
ASGI_APPLICATION = "multichat.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # compat/templates: Whisper's own templates/ are minijinja, not Django templates.
        "DIRS": [COMPAT_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = []

# PASSWORD_HASHERS: the JSON list of Django's dotted hasher names Whisper reads (the first one
# hashes, all of them verify); unset means Django's default list.
if env("PASSWORD_HASHERS", "").strip():
    PASSWORD_HASHERS = json.loads(env("PASSWORD_HASHERS"))

# The user model, as Whisper reads it: AUTH_USER_MODEL "users.User" (the Whisper fork's) or
# "emailusers.EmailUser" (login by email) installs that app; unset keeps auth.User and exactly
# Django's default schema. AUTHENTICATION_BACKENDS: comma-separated dotted paths (Whisper's
# format); users.backends.AuthenticationBackend stands in for django-allauth's.
AUTH_USER_MODEL = env("AUTH_USER_MODEL", "auth.User")
_USER_APPS = {"users.User": "users", "emailusers.EmailUser": "emailusers"}
if AUTH_USER_MODEL in _USER_APPS:
    INSTALLED_APPS.append(_USER_APPS[AUTH_USER_MODEL])
AUTHENTICATION_BACKENDS = env_list(
    "AUTHENTICATION_BACKENDS", "django.contrib.auth.backends.ModelBackend"
)

# Sessions and CSRF: Whisper supports the db, signed_cookies, cache and cached_db engines; the
# cache ones use CACHES (JSON, as Whisper reads it) and SESSION_CACHE_ALIAS.
_SESSION_ENGINES = {
    "db": "django.contrib.sessions.backends.db",
    "signed_cookies": "django.contrib.sessions.backends.signed_cookies",
    "cache": "django.contrib.sessions.backends.cache",
    "cached_db": "django.contrib.sessions.backends.cached_db",
}
if env("CACHES"):
    CACHES = json.loads(env("CACHES"))
SESSION_CACHE_ALIAS = env("SESSION_CACHE_ALIAS") or "default"
SESSION_ENGINE = _SESSION_ENGINES.get(
    env("SESSION_ENGINE", "db").strip(), env("SESSION_ENGINE", "db").strip()
)
SESSION_COOKIE_NAME = env("SESSION_COOKIE_NAME", "sessionid")
SESSION_COOKIE_AGE = int(env("SESSION_COOKIE_AGE", "1209600"))
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
SESSION_COOKIE_DOMAIN = env("SESSION_COOKIE_DOMAIN") or None
CSRF_COOKIE_NAME = env("CSRF_COOKIE_NAME", "csrftoken")
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)

LOGIN_URL = env("LOGIN_URL", "/accounts/login/")
LOGIN_REDIRECT_URL = env("LOGIN_REDIRECT_URL", "/")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

# Channels: CHANNEL_LAYERS (JSON, as Whisper reads it) if set; else Redis when REDIS_URL is set
# (as Whisper), else in-process.
# CHANNEL_LAYER_BACKEND picks channels_redis' layer: "core" (RedisChannelLayer, the default, as
# the original) or "pubsub" (RedisPubSubChannelLayer). CHANNEL_LAYER_PREFIX is its "prefix"
# (channels_redis' own default "asgi"); tests isolate runs with their own.
REDIS_URL = env("REDIS_URL", "")
CHANNEL_LAYER_BACKENDS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
if env("CHANNEL_LAYERS"):
    # The same JSON Whisper reads (Whisper's README: "Several processes"), so one variable
    # configures both sides of a mixed fleet.
    CHANNEL_LAYERS = json.loads(env("CHANNEL_LAYERS"))
elif REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": CHANNEL_LAYER_BACKENDS[env("CHANNEL_LAYER_BACKEND", "core")],
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": env("CHANNEL_LAYER_PREFIX", "asgi"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The chat's own settings (multichat's names and values).
NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS = env_bool("NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS", True)
MSG_TYPE_MESSAGE = 0  # a chat message
MSG_TYPE_WARNING = 1
MSG_TYPE_ALERT = 2
MSG_TYPE_MUTED = 3
MSG_TYPE_ENTER = 4  # "joined the room"
MSG_TYPE_LEAVE = 5  # "left the room"
MESSAGE_TYPES_CHOICES = (
    (MSG_TYPE_MESSAGE, "MESSAGE"),
    (MSG_TYPE_WARNING, "WARNING"),
    (MSG_TYPE_ALERT, "ALERT"),
    (MSG_TYPE_MUTED, "MUTED"),
    (MSG_TYPE_ENTER, "ENTER"),
    (MSG_TYPE_LEAVE, "LEAVE"),
)
MESSAGE_TYPES_LIST = [value for value, _ in MESSAGE_TYPES_CHOICES]

# The WebSocket consumer: "multichat" (the original, default) or "fork" (the Whisper fork's, with
# room_users and room presence in the Django cache for ROOM_PRESENCE_TIMEOUT seconds, as Whisper).
CHAT_CONSUMER = env("CHAT_CONSUMER", "multichat").strip()
if CHAT_CONSUMER not in ("multichat", "fork"):
    raise ValueError("setting CHAT_CONSUMER: %r (use multichat or fork)" % CHAT_CONSUMER)
ROOM_PRESENCE_TIMEOUT = int(env("ROOM_PRESENCE_TIMEOUT", "3600"))
MSG_TYPE_INTERNAL = 6  # the fork's room_users reply
