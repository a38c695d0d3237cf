"""One Django version's password hashers, read from its installed source (`django-hashers.json`):
their parameters, the default PASSWORD_HASHERS, which hasher classes exist, a known-answer hash
for every hasher with fixed salts, and (`verdicts`) that version's `must_update` rule over the
hashes every other version makes. Also Django 4.2's legacy hashers (`probe_4_2`)."""
import hashlib
import inspect
import warnings

import refs

PASSWORD = "correct horse battery staple"
SALT = "abcdefghijklmnopqrstuv"  # 22 characters
BCRYPT_SALT = "R9h/cIPz0gi.URNNX3kh2O"  # bcrypt's 22-character salt, cost added per version


def hasher_classes():
    """{dotted name: class} of every concrete hasher this Django ships."""
    from django.contrib.auth import hashers as H

    found = {}
    for name, cls in vars(H).items():
        if (inspect.isclass(cls) and issubclass(cls, H.BasePasswordHasher)
                and cls is not H.BasePasswordHasher and getattr(cls, "algorithm", None)):
            found["django.contrib.auth.hashers." + name] = cls
    return dict(sorted(found.items()))


def enable_all():
    """PASSWORD_HASHERS = the default list followed by every other shipped hasher (so the
    default's first one stays preferred)."""
    from django.conf import settings
    from django.conf import global_settings
    from django.contrib.auth.hashers import get_hashers

    default = list(global_settings.PASSWORD_HASHERS)
    settings.PASSWORD_HASHERS = default + [n for n in hasher_classes() if n not in default]
    get_hashers.cache_clear()
    from django.contrib.auth.hashers import get_hashers_by_algorithm

    get_hashers_by_algorithm.cache_clear()


def verify_password(password, encoded):
    """(ok, must_update) by Django's own code: `verify_password` (5.0+), or 4.2's
    `check_password`, whose setter runs exactly when it would rehash."""
    from django.contrib.auth import hashers as H

    if hasattr(H, "verify_password"):
        return H.verify_password(password, encoded)
    rehashed = []
    ok = H.check_password(password, encoded, setter=rehashed.append)
    return ok, bool(rehashed)


def known_salt(cls):
    if cls.algorithm.startswith("bcrypt"):
        return "$2b$%02d$%s" % (cls.rounds, BCRYPT_SALT)
    if cls.algorithm.startswith("unsalted"):
        return ""
    return SALT


def version_record():
    import django
    from django.conf import global_settings
    from django.contrib.auth import hashers as H

    warnings.simplefilter("ignore")
    enable_all()
    classes = hasher_classes()
    usable = {name: cls for name, cls in classes.items() if cls.algorithm != "crypt"}
    params = {
        "pbkdf2_sha256_iterations": H.PBKDF2PasswordHasher.iterations,
        "pbkdf2_sha1_iterations": H.PBKDF2SHA1PasswordHasher.iterations,
        "salt_entropy": H.BasePasswordHasher.salt_entropy,
        "salt_length_chars": len(H.PBKDF2PasswordHasher().salt()),
        "argon2": {"time_cost": H.Argon2PasswordHasher.time_cost,
                   "memory_cost": H.Argon2PasswordHasher.memory_cost,
                   "parallelism": H.Argon2PasswordHasher.parallelism},
        "bcrypt_sha256_rounds": H.BCryptSHA256PasswordHasher.rounds,
        "bcrypt_rounds": H.BCryptPasswordHasher.rounds,
        "scrypt": {"work_factor": H.ScryptPasswordHasher.work_factor,
                   "block_size": H.ScryptPasswordHasher.block_size,
                   "parallelism": H.ScryptPasswordHasher.parallelism,
                   "maxmem": H.ScryptPasswordHasher.maxmem},
    }
    answers = []
    for name, cls in usable.items():
        salt = known_salt(cls)
        # bcrypt takes its salt as bytes (Django 4.2 passes it through unchanged).
        given = salt.encode() if cls.algorithm.startswith("bcrypt") else salt
        encoded = H.make_password(PASSWORD, given, hasher=cls.algorithm)
        ok, must_update = verify_password(PASSWORD, encoded)
        assert ok and not H.check_password(PASSWORD + "x", encoded), name
        if cls.algorithm == "pbkdf2_sha256":
            assert encoded == refs.pbkdf2(PASSWORD, salt, cls.iterations)
        if cls.algorithm == "scrypt":
            s = H.ScryptPasswordHasher
            assert encoded == refs.scrypt(PASSWORD, salt, s.work_factor, s.block_size, s.parallelism)
        answers.append({
            "hasher": name,
            "algorithm": cls.algorithm,
            "password": PASSWORD,
            "salt": salt,
            "encoded": encoded,
            "fresh_salt_length": len(cls().salt()) if not cls.algorithm.startswith(("bcrypt", "unsalted")) else None,
            "verify_password": {"ok": ok, "must_update": must_update},
            "hasher_must_update": cls().must_update(encoded),
        })
    return {
        "django_version": django.get_version(),
        "parameters": params,
        "default_password_hashers": list(global_settings.PASSWORD_HASHERS),
        "hasher_classes": {name: cls.algorithm for name, cls in classes.items()},
        "known_answers": answers,
    }


def verdicts(hashes):
    """This version's rules over other versions' hashes: identified at all (with every shipped
    hasher enabled), and the identified hasher's own must_update (no hashing needed)."""
    from django.contrib.auth import hashers as H

    warnings.simplefilter("ignore")
    enable_all()
    preferred = H.get_hasher("default").algorithm
    out = []
    for encoded in hashes:
        try:
            hasher = H.identify_hasher(encoded)
        except ValueError:
            out.append({"identified": False})
            continue
        own = hasher.must_update(encoded)
        out.append({"identified": True, "hasher_must_update": own,
                    "must_update_with_default_preferred": hasher.algorithm != preferred or own})
    return out


def probe_4_2():
    """Django 4.2's legacy hashers (removed in 5.0/5.1), its defaults, and its session and
    auth-hash formats compared with the independent encoders."""
    import django
    from django.contrib.auth import hashers as H
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore

    warnings.simplefilter("ignore")
    enable_all()
    out = {"django_version": django.get_version()}
    rows = []
    for cls, salt in [
        (H.SHA1PasswordHasher, SALT),
        (H.UnsaltedSHA1PasswordHasher, ""),
        (H.UnsaltedMD5PasswordHasher, ""),
        (H.MD5PasswordHasher, SALT),
    ]:
        encoded = cls().encode("password", salt)
        rows.append({"algorithm": cls.algorithm, "password": "password", "salt": salt,
                     "encoded": encoded, "check_password": H.check_password("password", encoded)})
    md5_empty = "md5$$" + hashlib.md5(b"password").hexdigest()
    rows.append({"algorithm": "unsalted_md5 (md5$$ form)", "password": "password", "encoded": md5_empty,
                 "check_password": H.check_password("password", md5_empty)})
    encoded = H.CryptPasswordHasher().encode("password", "ab")
    rows.append({"algorithm": "crypt", "password": "password", "salt": "ab", "encoded": encoded,
                 "check_password": H.check_password("password", encoded)})
    out["legacy_hashers"] = rows
    out["pbkdf2_default_iterations"] = H.PBKDF2PasswordHasher.iterations
    out["scrypt_default"] = {"n": H.ScryptPasswordHasher.work_factor,
                             "r": H.ScryptPasswordHasher.block_size,
                             "p": H.ScryptPasswordHasher.parallelism}
    out["pbkdf2_default_example"] = H.PBKDF2PasswordHasher().encode("password", SALT)
    sess = {"_auth_user_id": "1", "_auth_user_backend": refs.MODEL_BACKEND, "_auth_user_hash": "x" * 64}
    out["session_encode_same_as_ref"] = SessionStore().encode(sess) == refs.dumps(
        sess, refs.SESSION_SALT, refs.SECRET_KEY, refs.FIXED_TS, True)
    user = User(password=H.PBKDF2PasswordHasher().encode(PASSWORD, SALT, 1000000))
    out["auth_hash_same_as_ref"] = user.get_session_auth_hash() == refs.auth_hash(user.password, refs.SECRET_KEY)
    return out
