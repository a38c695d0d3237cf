"""Golden pickles for Whisper's pickle codec (src/django/pickle/), made by real CPython.

Run by compat/make_testdata.py (under the Django 5.2 venv's CPython), which writes what this
prints to tests/data/pickle-golden.json.

Writes {"python": version, "cases": [...], "hostile": [...]}:
  * cases: {"name", "value", "4": pickle, "5": pickle}: the value in a tagged JSON form
    (below) and `pickle.dumps(value, protocol)` for protocols 4 and 5, each {"hex": ...}, or for
    pickles over 4 KiB {"sha256": ..., "length": ...} (to keep the file small; the codec must
    produce exactly those bytes). The values are built the way Python code builds
    them (literal keys, so CPython's interning and memo decide the bytes exactly as in Django).
  * hostile: {"name", "pickle", "reason"}: streams Whisper must refuse without executing
    anything; "reason" is a word the refusal must contain. (Large hostile streams, such as
    deep nesting and memo bombs, are built by the Rust tests.)

Tagged values: {"none": null}, {"bool": b}, {"int": "decimal"}, {"float": "repr"}, {"str": s},
{"strx": [char, count]} (one character repeated), {"bytes": "hex"},
{"bytesx": [byte, count]}, and generated large values: {"range": n} = list(range(n)),
{"int_dict": n} = {i: i for i in range(n)}, {"fmt_dict": [n, kp, kw, vp, vw]} =
{kp + "%0{kw}d" % i: vp + "%0{vw}d" % i for i in range(n)},
{"fmt_pairs": [n, p, w]} = [(p + "%0{w}d" % i, i) for i in range(n)]., {"list": [...]}, {"tuple": [...]}, {"dict": [[key, value], ...]}.
The output does not depend on the Python version (checked for 3.11 to 3.13); only `python`
records which one made it.
"""
import hashlib
import json
import pickle
import struct
import sys


def tag(v):
    if v is None:
        return {"none": None}
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        return {"int": str(v)}
    if isinstance(v, float):
        return {"float": repr(v)}
    if isinstance(v, str):
        if len(v) >= 16 and len(set(v)) == 1:
            return {"strx": [v[0], len(v)]}
        return {"str": v}
    if isinstance(v, bytes):
        if len(v) >= 16 and len(set(v)) == 1:
            return {"bytesx": [v[0], len(v)]}
        return {"bytes": v.hex()}
    if isinstance(v, list):
        return {"list": [tag(x) for x in v]}
    if isinstance(v, tuple):
        return {"tuple": [tag(x) for x in v]}
    if isinstance(v, dict):
        return {"dict": [[tag(k), tag(x)] for k, x in v.items()]}
    raise TypeError(type(v))


def login_session(pk, hash_hex, **extra):
    """What django.contrib.auth.login() leaves in request.session (keys in that order)."""
    session = dict(extra)
    session["_auth_user_id"] = str(pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = hash_hex
    return session


def room_users(n):
    """The Whisper fork's presence dict: user id -> a dict with literal keys."""
    users = {}
    for i in range(1, n + 1):
        users[i] = {
            "username": "user%d" % i,
            "name": "",
            "left": i % 3 == 0,
            "last_update": 1732900000.123456 + i,
        }
    return users


class Gen:
    """A large value and a short tag that rebuilds it (see the module docstring)."""

    def __init__(self, value, tagged):
        self.value, self.tagged = value, tagged


HASH = "d85be362abb17e5fdb0007e6239ee24e35b60fa2610f84ef986d97d76a910bdb"


def cases():
    yield "empty dict", {}
    yield "django login session", login_session(1, HASH)
    yield "django session with expiry and csrf", login_session(
        42, HASH, _session_expiry=3600, _csrftoken="x" * 64
    )
    yield "django session with iso expiry", login_session(
        7, HASH, _session_expiry="2026-12-09T12:34:48.077932+00:00"
    )
    yield "presence of one", {1: {"username": "alice", "name": "", "left": False,
                                  "last_update": 1732900000.123456}}
    yield "presence of three", room_users(3)
    yield "presence of 120 (LONG_BINGET)", room_users(120)
    yield "unicode", {"greeting": "Grüße, Zoë ✓", "emoji": "😀", "cjk": "漢字", "": "empty key"}
    yield "one char and empty strings", {"a": "", "b": "", "c": "x", "d": "x", "e": "é"}
    yield "ints", {"zero": 0, "one": 1, "byte": 255, "b2": 256, "u16": 65535, "b4": 65536,
                   "neg": -1, "neg_byte": -128, "i32max": 2**31 - 1, "i32min": -2**31,
                   "i32over": 2**31, "i32under": -2**31 - 1, "i64max": 2**63 - 1,
                   "i64min": -2**63, "u64": 2**64 - 1, "big": 10**40, "negbig": -(10**40),
                   "edge": -(2**63) - 1, "pow": 2**255, "negpow": -(2**255)}
    yield "floats", {"zero": 0.0, "neg_zero": -0.0, "pi": 3.141592653589793, "tiny": 5e-324,
                     "big": 1e308, "inf": float("inf"), "ninf": float("-inf"),
                     "ts": 1732900000.123456}
    yield "bools and none", {"t": True, "f": False, "n": None}
    yield "bytes", {"short": b"\x00\x01\xff", "empty": b"", "long": bytes(range(256)) * 2}
    yield "lists and tuples", {"list": [1, "two", 3.0], "one": ["x"], "empty_list": [],
                               "empty_tuple": (), "t1": (1,), "t2": (1, 2), "t3": (1, 2, 3),
                               "t4": (1, 2, 3, 4), "nested": [[1, [2, [3]]], {"k": (4,)}]}
    yield "int keys", {1: "a", -5: "b", 10**20: "c", 0: {"inner": {2: None}}}
    for n in (999, 1000, 1001, 2001):
        yield "list of %d" % n, Gen(list(range(n)), {"range": n})
    for n in (999, 1000, 1001, 2000):
        yield "dict of %d" % n, Gen({i: i for i in range(n)}, {"int_dict": n})
    yield "string of 70000", {"big": "y" * 70000, "after": "z"}
    yield "string of 65535 and 65536", ["a" * 65535, "b" * 65536]
    yield "bytes of 70000", {"blob": b"\x07" * 70000}
    yield "frames of small items", Gen(
        {"k%05d" % i: "v%039d" % i for i in range(3000)}, {"fmt_dict": [3000, "k", 5, "v", 39]})
    yield "frame boundary inside a batch", Gen(
        [("w%029d" % i, i) for i in range(2500)], {"fmt_pairs": [2500, "w", 29]})
    yield "large string at the start", ["q" * 100000, 1, 2]
    yield "top level string", "hello"
    yield "top level int", 5
    yield "top level list", [None, True]


def hostile():
    def frame(body):
        return b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body

    yield "global os.system reduce", frame(
        b"\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x04echo\x94\x85\x94R\x94."), "global"
    yield "protocol 0 global", b"cos\nsystem\n(S'echo'\ntR.", "GLOBAL"
    yield "pickled object", pickle.dumps(Exception("x"), 4), "global"
    yield "set", pickle.dumps({"s": {1, 2}}, 4), "set"
    yield "frozenset", pickle.dumps(frozenset([1]), 4), "set"
    yield "bytearray", pickle.dumps(bytearray(b"x"), 5), "bytearray"
    yield "persistent id", b"\x80\x04\x8c\x01x\x94Q.", "persistent"
    yield "huge declared string", b"\x80\x04\x8d" + struct.pack("<Q", 2**62) + b"abc.", "length"
    yield "huge declared bytes", b"\x80\x04B" + struct.pack("<I", 2**31) + b"abc.", "length"
    yield "huge frame", b"\x80\x04\x95" + struct.pack("<Q", 2**60) + b"N.", "frame"
    yield "truncated", pickle.dumps({"a": "b" * 10}, 4)[:-5], "truncated"
    yield "empty", b"", "empty"
    yield "no stop", b"\x80\x04N", "truncated"
    yield "trailing bytes", pickle.dumps(1, 4) + b"junk", "after"
    yield "stack underflow", b"\x80\x04s.", "stack"
    yield "two values left", b"\x80\x04NN.", "stack"
    yield "memo miss", b"\x80\x04h\x05.", "memo"
    yield "shared list", b"\x80\x04]\x94(h\x00h\x00e.", "shared"
    yield "recursive list", b"\x80\x04]\x94h\x00a.", "shared"
    yield "memo slot reused", b"\x80\x04]\x94\x8c\x01x\x94q\x00.", "memo"
    yield "big int key list", b"\x80\x04}\x94]\x94N\x86\x94Ns.", "key"
    yield "float key", b"\x80\x04}\x94G?\xf0\x00\x00\x00\x00\x00\x00Ns.", "key"
    yield "odd setitems", b"\x80\x04}\x94(\x8c\x01aNK\x01u.", "odd"
    yield "invalid utf-8", b"\x80\x04\x8c\x02\xff\xfe.", "utf-8"
    yield "lone surrogate", pickle.dumps("\ud800", 4), "utf-8"
    yield "protocol 6", b"\x80\x06N.", "protocol"
    yield "int beyond 64 bits", pickle.dumps(2**64, 4), "64"
    yield "dup", b"\x80\x04]\x94\x32a.", "DUP"
    yield "build", b"\x80\x04}\x94}b.", "BUILD"
    yield "inst", b"(i__main__\nC\n.", "INST"
    yield "ext1", b"\x80\x04\x82\x01.", "extension"
    yield "framed reduce", frame(b"\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94\x8c\x011\x94\x85\x94R\x94."), "global"


def main():
    doc = {
        "python": "%d.%d.%d" % sys.version_info[:3],
        "cases": [],
        "hostile": [],
    }
    for name, value in cases():
        if isinstance(value, Gen):
            case = {"name": name, "value": value.tagged}
            value = value.value
        else:
            case = {"name": name, "value": tag(value)}
        for protocol in (4, 5):
            data = pickle.dumps(value, protocol)
            if len(data) > 4096:
                case[str(protocol)] = {
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "length": len(data),
                }
            else:
                case[str(protocol)] = {"hex": data.hex()}
        doc["cases"].append(case)
    for name, data, reason in hostile():
        doc["hostile"].append({"name": name, "pickle": data.hex(), "reason": reason})
    # One case per line: small diffs when a case changes.
    lines = ['{"python": %s,' % json.dumps(doc["python"]), ' "cases": [']
    lines.append(",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in doc["cases"]))
    lines.append(' ],\n "hostile": [')
    lines.append(",\n".join("  " + json.dumps(h) for h in doc["hostile"]))
    lines.append(" ]}")
    sys.stdout.write("\n".join(lines))


if __name__ == "__main__":
    main()
