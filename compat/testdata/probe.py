"""Runs inside one Django venv and prints one JSON document on stdout:

    python probe.py main | naive | hashers | legacy42      (compat/make_testdata.py runs these)
    python probe.py verdicts < hashes.json

`main` and `naive` need Django 5.2 (with channels), `legacy42` Django 4.2; `hashers` and
`verdicts` run under every version. The clock and Django's random strings are fixed first
(determinism.py).
"""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import determinism  # noqa: E402

determinism.install()

import djsite  # noqa: E402


def run(mode):
    db = os.path.join(tempfile.mkdtemp(), "db.sqlite3")
    if mode == "main":
        import flows
        import vectors

        djsite.configure(db, urls="djsite")
        out = vectors.main_vectors()
        out["http_flow"] = flows.http_flow(db)
        out["sqlite_datetime_storage_use_tz_true"] = flows.sqlite_aware_probe(db)
        out["channels_origin_validator"] = flows.channels_checks()
        return out
    if mode == "naive":
        import flows

        # A settings module makes Django export TIME_ZONE into the process (settings.configure
        # does not), so do it here.
        os.environ["TZ"] = "Europe/Paris"
        time.tzset()
        djsite.configure(db, use_tz=False)
        return flows.sqlite_naive_probe(db)
    import hashers

    if mode == "hashers":
        djsite.configure(db, hashers="default")
        return hashers.version_record()
    if mode == "verdicts":
        djsite.configure(db, hashers="default")
        return hashers.verdicts(json.load(sys.stdin))
    if mode == "legacy42":
        djsite.configure(db, hashers="default")
        return hashers.probe_4_2()
    raise SystemExit("probe.py: unknown mode %r" % mode)


if __name__ == "__main__":
    json.dump(run(sys.argv[1]), sys.stdout, ensure_ascii=False, default=str)
