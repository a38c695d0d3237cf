"""The main known answers, from Django 5.2: password hashers, salted_hmac, the session auth
hash, signing, session encodings and CSRF tokens (`django-vectors.json`)."""
import hashlib
import json
from unittest import mock

import refs
from refs import FIXED_TS, MODEL_BACKEND, OLD_SECRET, SECRET_KEY, SESSION_SALT
from djsite import attempt

PASSWORDS = ["password", "correct horse battery staple", "pässwörd✓", ""]
SALT = "abcdefghijklmnopqrstuv"  # 22 characters, the length Django generates


def password_hashers():
    """Known-answer hashes with Django 5.2's hashers, checked by Django itself."""
    from django.contrib.auth import hashers as H

    rows = []

    def add(algorithm, password, encoded, params, note=""):
        ok = H.check_password(password, encoded)
        wrong = H.check_password(password + "x", encoded)
        is_correct, must_update = H.verify_password(password, encoded)
        assert ok and is_correct and not wrong, (algorithm, password)
        rows.append({
            "algorithm": algorithm,
            "password": password,
            "params": params,
            "encoded": encoded,
            "check_password": ok,
            "hasher_must_update": H.identify_hasher(encoded).must_update(encoded),
            "verify_password_must_update_with_default_pbkdf2_preferred": must_update,
            "note": note,
        })

    iterations = H.PBKDF2PasswordHasher.iterations
    for pw in PASSWORDS:
        enc = H.PBKDF2PasswordHasher().encode(pw, SALT)
        assert enc == refs.pbkdf2(pw, SALT, iterations)
        add("pbkdf2_sha256", pw, enc, {"iterations": iterations, "salt": SALT},
            "Django 5.2 default iterations")
        enc = H.PBKDF2PasswordHasher().encode(pw, SALT, 1000)
        assert enc == refs.pbkdf2(pw, SALT, 1000)
        add("pbkdf2_sha256", pw, enc, {"iterations": 1000, "salt": SALT},
            "low iterations -> must_update, rehashed on next successful login")
    for pw in PASSWORDS[:2]:
        enc = H.PBKDF2SHA1PasswordHasher().encode(pw, SALT, 1000)
        assert enc == refs.pbkdf2(pw, SALT, 1000, "sha1")
        add("pbkdf2_sha1", pw, enc, {"iterations": 1000, "salt": SALT})
        enc = H.PBKDF2SHA1PasswordHasher().encode(pw, SALT)
        add("pbkdf2_sha1", pw, enc, {"iterations": iterations, "salt": SALT})
    enc = H.PBKDF2PasswordHasher().encode("password", "abcdefghijkl")
    add("pbkdf2_sha256", "password", enc, {"iterations": iterations, "salt": "abcdefghijkl"},
        "12-char salt (< 128 bits) -> must_update True")
    for it in (260000, 600000, 870000, 1200000):
        enc = H.PBKDF2PasswordHasher().encode("password", SALT, it)
        add("pbkdf2_sha256", "password", enc, {"iterations": it, "salt": SALT},
            "default of another Django version; must_update True under 5.2")

    a2 = H.Argon2PasswordHasher()
    for pw in PASSWORDS[:3]:
        add("argon2", pw, a2.encode(pw, SALT),
            {"salt": SALT, "time_cost": a2.time_cost, "memory_cost": a2.memory_cost,
             "parallelism": a2.parallelism}, "argon2id, Django 3.2+ defaults")
    import argon2

    raw = argon2.low_level.hash_secret(
        b"password", SALT.encode(), time_cost=2, memory_cost=512, parallelism=2, hash_len=16,
        type=argon2.low_level.Type.I).decode()
    add("argon2", "password", "argon2" + raw,
        {"salt": SALT, "type": "argon2i", "t": 2, "m": 512, "p": 2, "hash_len": 16},
        "constructed with argon2-cffi in the pre-3.2 style (argon2i, m=512, p=2, hash_len=16); "
        "Django verifies it and flags must_update")

    import bcrypt

    for rounds in ("12", "04"):
        bsalt = ("$2b$%s$R9h/cIPz0gi.URNNX3kh2O" % rounds).encode()
        for pw in PASSWORDS[:3]:
            enc = H.BCryptSHA256PasswordHasher().encode(pw, bsalt)
            assert enc == "bcrypt_sha256$" + bcrypt.hashpw(refs.bcrypt_sha256_prehash(pw), bsalt).decode()
            add("bcrypt_sha256", pw, enc, {"bcrypt_salt": bsalt.decode(), "rounds": int(rounds)},
                "password -> sha256 -> lowercase hex (64 ASCII bytes) -> bcrypt")
            add("bcrypt", pw, H.BCryptPasswordHasher().encode(pw, bsalt),
                {"bcrypt_salt": bsalt.decode(), "rounds": int(rounds)},
                "raw password bytes into bcrypt (72-byte limit)")

    sc = H.ScryptPasswordHasher()
    for pw in PASSWORDS[:3]:
        enc = sc.encode(pw, SALT)
        assert enc == refs.scrypt(pw, SALT, sc.work_factor, sc.block_size, sc.parallelism)
        add("scrypt", pw, enc, {"salt": SALT, "n": sc.work_factor, "r": sc.block_size,
                                "p": sc.parallelism}, "Django 5.1+ defaults (p=5)")
    enc = sc.encode("password", SALT, 2**14, 8, 1)
    assert enc == refs.scrypt("password", SALT, 2**14, 8, 1)
    add("scrypt", "password", enc, {"salt": SALT, "n": 2**14, "r": 8, "p": 1},
        "Django 4.0-5.0 defaults (p=1) -> must_update under 5.1+")

    for pw in PASSWORDS[:2]:
        add("md5", pw, H.MD5PasswordHasher().encode(pw, SALT), {"salt": SALT},
            "md5(salt + password) hex")
    return rows, bcrypt.__version__


def main_vectors():
    import django
    from django.contrib.auth import hashers as H

    out = {
        "meta": {
            "django_version": django.get_version(),
            "secret_key": SECRET_KEY,
            "secret_key_fallbacks": [OLD_SECRET],
            "fixed_timestamp": FIXED_TS,
            "fixed_timestamp_b62": refs.b62(FIXED_TS),
            "note": "Made by compat/make_testdata.py. All values produced by real Django unless "
            "a field says 'constructed'. Deterministic values were also recomputed by "
            "compat/testdata/refs.py (hashlib/hmac/zlib/base64 only) and asserted equal.",
        }
    }
    out["password_hashers"], out["bcrypt_library_version"] = password_hashers()
    out["password_hasher_defaults_5_2"] = {
        "pbkdf2_iterations": H.PBKDF2PasswordHasher.iterations,
        "argon2": {"time_cost": H.Argon2PasswordHasher.time_cost,
                   "memory_cost": H.Argon2PasswordHasher.memory_cost,
                   "parallelism": H.Argon2PasswordHasher.parallelism},
        "bcrypt_rounds": H.BCryptSHA256PasswordHasher.rounds,
        "scrypt": {"work_factor": H.ScryptPasswordHasher.work_factor,
                   "block_size": H.ScryptPasswordHasher.block_size,
                   "parallelism": H.ScryptPasswordHasher.parallelism,
                   "maxmem": H.ScryptPasswordHasher.maxmem},
        "salt_length_chars": len(H.PBKDF2PasswordHasher().salt()),
    }
    unusable = H.make_password(None)
    out["unusable_password"] = {
        "example": unusable,
        "length": len(unusable),
        "is_password_usable": H.is_password_usable(unusable),
        "check_password_any": H.check_password("anything", unusable),
        "note": "'!' + 40 random chars of [a-zA-Z0-9] (seeded here, random in Django)",
    }
    out["bcrypt_over_72_bytes"] = attempt(lambda: H.make_password("x" * 80, hasher="bcrypt"))
    out["bcrypt_over_72_bytes"] = (
        "accepted" if "ok" in out["bcrypt_over_72_bytes"]
        else "ValueError from bcrypt library: %s" % out["bcrypt_over_72_bytes"]["error"].split(": ", 1)[1]
    )
    out["salted_hmac"] = salted_hmac_vectors()
    out["session_auth_hash"], auth_hash = session_auth_hash()
    out["signing"] = signing_vectors()
    out["sessions"] = session_vectors(auth_hash)
    out["csrf"] = csrf_vectors()
    return out


def salted_hmac_vectors():
    from django.utils.crypto import salted_hmac

    rows = []
    for algo in ("sha1", "sha256"):
        for key_salt, value in (("my-salt", "hello"), (refs.AUTH_HASH_SALT, "pbkdf2_sha256$1000$abc$def")):
            digest = salted_hmac(key_salt, value, SECRET_KEY, algorithm=algo).hexdigest()
            assert digest == refs.salted_hmac(key_salt, value, SECRET_KEY, algo).hexdigest()
            rows.append({
                "key_salt": key_salt, "value": value, "secret": SECRET_KEY, "algorithm": algo,
                "derived_key_hex": getattr(hashlib, algo)((key_salt + SECRET_KEY).encode()).hexdigest(),
                "hmac_hex": digest,
            })
    return rows


def session_auth_hash():
    from django.contrib.auth import hashers as H
    from django.contrib.auth.models import User

    password = H.PBKDF2PasswordHasher().encode("correct horse battery staple", SALT)
    user = User(password=password)
    digest = user.get_session_auth_hash()
    assert digest == refs.auth_hash(password, SECRET_KEY)
    fallback = list(user.get_session_auth_fallback_hash())
    assert fallback == [refs.auth_hash(password, OLD_SECRET)]
    return {
        "key_salt": refs.AUTH_HASH_SALT,
        "password_field": password,
        "secret": SECRET_KEY,
        "sha256_hex": digest,
        "fallback_secret": OLD_SECRET,
        "fallback_sha256_hex": fallback[0],
        "legacy_sha1_hex_constructed": refs.salted_hmac(refs.AUTH_HASH_SALT, password, SECRET_KEY, "sha1").hexdigest(),
        "legacy_note": "sha1 variant = what Django <= 3.0 stored (3.1/3.2 still accepted it)",
    }, digest


def signing_vectors():
    from django.core import signing

    sg = {}
    s1 = signing.Signer(salt="my-salt", algorithm="sha1")
    sg["signer_default_salt"] = {"salt": "django.core.signing.Signer", "value": "hello",
                                 "signed": signing.Signer(salt=None).sign("hello")}
    assert sg["signer_default_salt"]["signed"] == refs.sign("hello", "django.core.signing.Signer", SECRET_KEY)
    sg["signer_sha1_legacy"] = {
        "salt": "my-salt", "value": "hello", "algorithm": "sha1", "signed": s1.sign("hello"),
        "accepted_by_5_2_default_signer": attempt(lambda: signing.Signer(salt="my-salt").unsign(s1.sign("hello"))),
    }
    sg["timestamp_signer"] = {"salt": "my-salt", "value": "hello",
                              "signed": signing.TimestampSigner(salt="my-salt").sign("hello")}
    assert sg["timestamp_signer"]["signed"] == refs.sign("hello", "my-salt", SECRET_KEY, FIXED_TS)
    d1 = signing.dumps("hello")
    assert d1 == refs.dumps("hello", "django.core.signing", SECRET_KEY, FIXED_TS)
    sg["dumps_plain"] = {"obj": "hello", "salt": "django.core.signing", "compress": False, "token": d1}
    obj = list(range(1, 20))
    d2 = signing.dumps(obj, compress=True)
    assert d2 == refs.dumps(obj, "django.core.signing", SECRET_KEY, FIXED_TS, True)
    sg["dumps_compressed"] = {"obj": obj, "salt": "django.core.signing", "compress": True, "token": d2}
    sg["dumps_compress_not_worth_it"] = {
        "obj": {"a": 1}, "compress": True, "token": signing.dumps({"a": 1}, compress=True),
        "note": "compression only used when len(zlib) < len(json)-1; no '.' prefix here"}
    d4 = signing.dumps({"k": "v"}, key=OLD_SECRET)
    sg["dumps_with_fallback_key"] = {"obj": {"k": "v"}, "signed_with": OLD_SECRET, "token": d4,
                                     "loads_with_current_key_and_fallbacks": signing.loads(d4)}
    from determinism import CLOCK

    for k in ("dumps_plain", "dumps_compressed"):
        tok = sg[k]["token"]
        sg[k]["loads_max_age_ok"] = attempt(lambda: refs.loads(tok, "django.core.signing", [SECRET_KEY], FIXED_TS + 100, 100))
        with CLOCK.at(FIXED_TS + 1000):
            sg[k]["loads_max_age_expired"] = attempt(lambda: signing.loads(tok, max_age=100))
    sg["b62"] = {str(n): signing.b62_encode(n) for n in (0, 1, 61, 62, 3843, 3844, FIXED_TS, -5)}
    for n, e in sg["b62"].items():
        assert refs.b62(int(n)) == e and signing.b62_decode(e) == int(n)
    plain = sg["dumps_plain"]["token"]
    tampered = plain[:-1] + ("A" if plain[-1] != "A" else "B")
    sg["tampered_token"] = {"token": tampered, "loads": attempt(lambda: signing.loads(tampered))}
    if hasattr(signing, "_cookie_signer_salt"):  # set_signed_cookie's salt (5.2.15+, 6.0.x)
        sg["set_signed_cookie_salt_v2"] = signing._cookie_signer_salt("mycookie", "")
    return sg


def session_vectors(auth_hash):
    from django.contrib.sessions.backends.db import SessionStore as DBStore
    from django.contrib.sessions.backends.signed_cookies import SessionStore as CookieStore

    sess = {"_auth_user_id": "1", "_auth_user_backend": MODEL_BACKEND, "_auth_user_hash": auth_hash}
    sess_big = dict(sess, _session_expiry=0, cart=[1, 2, 3], note="x" * 200)
    e1, e2 = DBStore().encode(sess), DBStore().encode(sess_big)
    cs = CookieStore()
    cs.update(sess)
    cookie = cs._get_session_key()
    assert e1 == refs.dumps(sess, SESSION_SALT, SECRET_KEY, FIXED_TS, True)
    assert e2 == refs.dumps(sess_big, SESSION_SALT, SECRET_KEY, FIXED_TS, True)
    assert cookie == refs.dumps(sess, refs.SIGNED_COOKIE_SESSION_SALT, SECRET_KEY, FIXED_TS, True)
    assert DBStore().decode(e1) == sess and DBStore().decode(e2) == sess_big
    sv = {
        "db_session_data_logged_in": {"session_dict": sess, "salt": SESSION_SALT, "session_data": e1,
                                      "compressed": e1.startswith(".")},
        "db_session_data_bigger": {"session_dict": sess_big, "salt": SESSION_SALT, "session_data": e2,
                                   "compressed": e2.startswith(".")},
        "signed_cookies_cookie_value": {"session_dict": sess, "salt": refs.SIGNED_COOKIE_SESSION_SALT,
                                        "cookie_value": cookie,
                                        "note": "max_age checked against SESSION_COOKIE_AGE on load"},
    }
    legacy = refs.legacy_session_encode(sess, SECRET_KEY)
    sv["legacy_pre_3_1_session_data_constructed"] = {
        "session_dict": sess, "session_data": legacy, "decoded_by_django_5_2": DBStore().decode(legacy),
        "note": "5.2 returns {} (Django >= 4.0 cannot read the pre-3.1 format)"}
    # What Django <= 3.0 wrote for a login: the pre-3.1 format with the sha1 auth hash.
    legacy_login = dict(sess, _auth_user_hash=refs.salted_hmac(
        refs.AUTH_HASH_SALT, "pbkdf2_sha256$1000000$x$y", SECRET_KEY, "sha1").hexdigest())
    sv["legacy_pre_3_1_login_constructed"] = {
        "session_dict": legacy_login, "session_data": refs.legacy_session_encode(legacy_login, SECRET_KEY),
        "decoded_by_django_5_2": DBStore().decode(refs.legacy_session_encode(legacy_login, SECRET_KEY))}
    e_old = refs.dumps(sess, SESSION_SALT, OLD_SECRET, FIXED_TS, True)
    sv["session_data_signed_with_fallback_secret"] = {"session_data": e_old,
                                                      "decoded_by_django_5_2": DBStore().decode(e_old)}
    na = {"name": "Zoë ✓ 😀"}
    e_na, e_empty = DBStore().encode(na), DBStore().encode({})
    raw_utf8 = refs.b64e(json.dumps(na, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    bad = refs.sign(raw_utf8 + ":" + refs.b62(FIXED_TS), SESSION_SALT, SECRET_KEY)
    sv["non_ascii_value"] = {
        "session_dict": na,
        "json_bytes": refs.compact_json(na).decode("ascii"),
        "session_data": e_na,
        "raw_utf8_json_signed_constructed": bad,
        "django_decodes_raw_utf8_as": DBStore().decode(bad),
        "note": "if an encoder emits raw UTF-8 JSON, Django reads it as latin-1 and gets mojibake",
    }
    sv["empty_session_data"] = {"session_dict": {}, "session_data": e_empty,
                                "note": "what cycle_key()/create() writes first, before the real data"}
    from django.core.cache import caches

    ck = caches["default"]
    sv["cache_keys"] = {
        "cache_backend": ck.make_key("django.contrib.sessions.cache0123456789abcdefghijklmnopqrstuv"),
        "cached_db_backend": ck.make_key("django.contrib.sessions.cached_db0123456789abcdefghijklmnopqrstuv"),
        "note": "default KEY_PREFIX '' and VERSION 1; values are pickled session dicts (not signed)",
    }
    return sv


def csrf_vectors():
    from django.middleware import csrf as C

    secret, mask = "abcdefghijklmnopqrstuvwxyzABCDEF", "0123456789ABCDEFGHIJKLMNOPQRSTUV"
    with mock.patch.object(C, "_get_new_csrf_string", return_value=mask):
        masked = C._mask_cipher_secret(secret)
    assert masked == refs.csrf_mask(secret, mask)
    assert C._unmask_cipher_token(masked) == secret == refs.csrf_unmask(masked)
    secret2, mask2 = "Zz9Zz9Zz9Zz9Zz9Zz9Zz9Zz9Zz9Zz9Zz", "z" * 32
    masked2 = refs.csrf_mask(secret2, mask2)
    assert C._unmask_cipher_token(masked2) == secret2
    return {
        "alphabet": refs.CSRF_CHARS,
        "vectors": [
            {"secret": secret, "mask": mask, "masked_token": masked},
            {"secret": secret2, "mask": mask2, "masked_token": masked2},
        ],
        "does_token_match": {
            "masked_vs_secret": C._does_token_match(masked, secret),
            "unmasked_vs_secret": C._does_token_match(secret, secret),
            "other_secret": C._does_token_match(masked2, secret),
        },
        "format_errors": {
            "len_63": attempt(lambda: C._check_token_format("a" * 63)),
            "bad_char": attempt(lambda: C._check_token_format("-" * 32)),
        },
    }
