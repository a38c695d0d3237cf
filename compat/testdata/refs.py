"""Independent restatements of Django's algorithms, with the standard library only.

Every deterministic value the probes take from Django is recomputed here and asserted equal
before it is written, so these helpers are also an executable description of the formats
(spec `django-internals.md`).
"""
import base64
import binascii
import hashlib
import hmac
import json
import zlib

SECRET_KEY = "test-secret-key-for-vectors"
OLD_SECRET = "old-secret-key-for-fallback"
FIXED_TS = 1700000000  # 2023-11-14T22:13:20Z
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CSRF_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
AUTH_HASH_SALT = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"
SESSION_SALT = "django.contrib.sessions.SessionStore"
SIGNED_COOKIE_SESSION_SALT = "django.contrib.sessions.backends.signed_cookies"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def salted_hmac(key_salt, value, secret, algorithm="sha1"):
    """HMAC keyed with H(key_salt + secret)."""
    digest = getattr(hashlib, algorithm)
    key = digest(key_salt.encode() + secret.encode()).digest()
    message = value.encode() if isinstance(value, str) else value
    return hmac.new(key, message, digest)


def b64e(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64d(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b62(n):
    if n == 0:
        return "0"
    sign, n, out = "-" if n < 0 else "", abs(n), ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    return sign + out


def b62_decode(text):
    n = 0
    for ch in text.lstrip("-"):
        n = n * 62 + B62.index(ch)
    return -n if text.startswith("-") else n


def signature(value, salt, secret, algorithm="sha256"):
    return b64e(salted_hmac(salt + "signer", value, secret, algorithm).digest())


def sign(value, salt, secret, ts=None, algorithm="sha256"):
    if ts is not None:
        value = "%s:%s" % (value, b62(ts))
    return "%s:%s" % (value, signature(value, salt, secret, algorithm))


def compact_json(obj):
    """Django's JSONSerializer: compact separators, ASCII escapes, latin-1 bytes."""
    return json.dumps(obj, separators=(",", ":")).encode("latin-1")


def dumps(obj, salt, secret, ts, compress=False):
    data, prefix = compact_json(obj), ""
    if compress:
        packed = zlib.compress(data)
        if len(packed) < len(data) - 1:
            data, prefix = packed, "."
    return sign(prefix + b64e(data), salt, secret, ts)


def loads(token, salt, secrets, now=None, max_age=None):
    """Verifies the signature with any of `secrets`, checks the age, returns the object."""
    value, sig = token.rsplit(":", 1)
    if not any(hmac.compare_digest(sig, signature(value, salt, s)) for s in secrets):
        raise ValueError("bad signature")
    payload, ts = value.rsplit(":", 1)
    if max_age is not None and now - b62_decode(ts) > max_age:
        raise ValueError("expired")
    raw = b64d(payload.lstrip("."))
    if payload.startswith("."):
        raw = zlib.decompress(raw)
    return json.loads(raw.decode("latin-1"))


def legacy_session_encode(obj, secret, class_name="SessionStore"):
    """Session data before Django 3.1: base64 of hex HMAC-SHA1 + ':' + JSON."""
    body = compact_json(obj)
    mac = salted_hmac("django.contrib.sessions" + class_name, body, secret, "sha1").hexdigest()
    return base64.b64encode(mac.encode() + b":" + body).decode("ascii")


def pbkdf2(password, salt, iterations, algorithm="sha256"):
    dk = hashlib.pbkdf2_hmac(algorithm, password.encode(), salt.encode(), iterations)
    return "pbkdf2_%s$%d$%s$%s" % (algorithm, iterations, salt, base64.b64encode(dk).decode())


def scrypt(password, salt, n, r, p):
    dk = hashlib.scrypt(password.encode(), salt=salt.encode(), n=n, r=r, p=p, maxmem=0, dklen=64)
    return "scrypt$%d$%s$%d$%d$%s" % (n, salt, r, p, base64.b64encode(dk).decode())


def bcrypt_sha256_prehash(password):
    return binascii.hexlify(hashlib.sha256(password.encode()).digest())


def csrf_mask(secret, mask):
    idx = CSRF_CHARS.index
    return mask + "".join(CSRF_CHARS[(idx(s) + idx(m)) % 62] for s, m in zip(secret, mask))


def csrf_unmask(token):
    idx = CSRF_CHARS.index
    mask, cipher = token[:32], token[32:]
    return "".join(CSRF_CHARS[(idx(c) - idx(m)) % 62] for c, m in zip(cipher, mask))


def auth_hash(password_field, secret):
    return salted_hmac(AUTH_HASH_SALT, password_field, secret, "sha256").hexdigest()
