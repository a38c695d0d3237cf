#!/usr/bin/env python3
"""Makes the project's known-answer data (tests/data/) from real Django and CPython.

    compat/bootstrap.sh all                      # the venvs, once
    python3 compat/make_testdata.py [--out DIR]  # default: tests/data

Every value comes from the Django versions installed in compat/'s venvs (pinned in the
requirements files) and from CPython, run as subprocesses (compat/testdata/*.py):

  django-vectors.json     Django 5.2: hashers, salted_hmac, signing, sessions, CSRF, an HTTP
                          login flow, SQLite datetimes, channels' OriginValidator; Django 4.2's
                          legacy hashers (`probe_4_2`)
  django-hashers.json     every version in VERSIONS: hasher parameters read from its source, its
                          default PASSWORD_HASHERS, its hasher classes, a known-answer hash per
                          hasher, and each version's must_update verdicts over all of them
  django-schema/          Django 5.2's `migrate` of compat/ on SQLite and PostgreSQL (pg_dump)
  json-golden.json        CPython's json.dumps bytes and int() results for chat frames
  pickle-golden.json      CPython's pickle.dumps bytes (protocols 4 and 5) of session and
                          presence dicts, and hostile pickles the codec must refuse

The output is deterministic (compat/testdata/determinism.py): tests/testdata_fresh.rs runs this
script into a temporary directory and compares it with the committed files. Needs PostgreSQL on
127.0.0.1:5432 (user postgres, trust auth) and pg_dump. Standard library only.
"""
import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

COMPAT = Path(__file__).resolve().parent
TESTDATA = COMPAT / "testdata"
# The Django versions Whisper supports (DJANGO_VERSION), and each one's venv (compat/bootstrap.sh).
VERSIONS = {
    "4.2": ".venv42",
    "5.0": ".venv50",
    "5.1": ".venv51",
    "5.2": ".venv",
    "6.0": ".venv60",
    "6.1": ".venv61",
}
MAIN = "5.2"  # the version of django-vectors.json and the schema dumps
LEGACY = "4.2"  # the last version with the sha1/unsalted/crypt hashers


def python(version):
    exe = COMPAT / VERSIONS[version] / "bin" / "python"
    if not exe.exists():
        raise SystemExit(
            "make_testdata.py: %s is missing (Django %s). Create the venvs with "
            "`compat/bootstrap.sh all` (./manage test does)." % (exe, version))
    return str(exe)


def run(version, script, *args, stdin=None):
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8")
    for name in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "SECRET_KEY", "PASSWORD_HASHERS", "TZ"):
        env.pop(name, None)
    proc = subprocess.run([python(version), str(TESTDATA / script), *args], input=stdin,
                          capture_output=True, text=True, env=env, cwd=str(TESTDATA))
    if proc.returncode != 0:
        raise SystemExit("make_testdata.py: %s %s under Django %s failed:\n%s"
                         % (script, " ".join(args), version, proc.stderr[-4000:]))
    return proc.stdout


def probe(version, mode, stdin=None):
    return json.loads(run(version, "probe.py", mode, stdin=stdin))


def write_json(path, obj, **kw):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, **kw)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(COMPAT.parent / "tests" / "data"))
    out = Path(ap.parse_args().out)
    for version in VERSIONS:
        python(version)
    (out / "django-schema").mkdir(parents=True, exist_ok=True)

    # Two at a time: the machine has two cores and the probes are CPU-bound (hashing).
    with ThreadPoolExecutor(max_workers=2) as pool:
        main_job = pool.submit(probe, MAIN, "main")
        naive = pool.submit(probe, MAIN, "naive")
        legacy = pool.submit(probe, LEGACY, "legacy42")
        records = {v: pool.submit(probe, v, "hashers") for v in VERSIONS}
        schema = pool.submit(run, MAIN, "schema.py", str(out / "django-schema"))
        golden = pool.submit(run, MAIN, "json_golden.py")
        pickles = pool.submit(run, MAIN, "pickle_golden.py")
        records = {v: job.result() for v, job in records.items()}
        made = [(v, a) for v, r in records.items() for a in r["known_answers"]]
        hashes = json.dumps([a["encoded"] for _, a in made])
        verdicts = {v: pool.submit(probe, v, "verdicts", hashes) for v in VERSIONS}
        verdicts = {v: job.result() for v, job in verdicts.items()}
        vectors = main_job.result()
        vectors["sqlite_datetime_storage_use_tz_false"] = naive.result()
        vectors["probe_4_2"] = legacy.result()
        schema.result()
        golden_text = golden.result()
        pickle_text = pickles.result()

    cross = []
    for i, (version, answer) in enumerate(made):
        cross.append({
            "made_by": version,
            "hasher": answer["hasher"],
            "encoded": answer["encoded"],
            "verdicts": {v: verdicts[v][i] for v in VERSIONS},
        })
    write_json(out / "django-vectors.json", vectors, indent=2, ensure_ascii=False)
    write_json(out / "django-hashers.json", {
        "note": "Made by compat/make_testdata.py from each Django's installed source. "
                "`versions`: parameters, defaults, hasher classes and known answers "
                "(password and salt given); `cross_version`: each version's rules over every "
                "known answer (`identified` with all its hashers enabled, the hasher's own "
                "must_update, and verify_password's must_update with its default preferred).",
        "versions": records,
        "cross_version": cross,
    }, indent=2, ensure_ascii=False)
    for name, text in (("json-golden.json", golden_text), ("pickle-golden.json", pickle_text)):
        with open(out / name, "w", encoding="utf-8") as f:
            f.write(text)
            f.write("\n")
    print("wrote %s" % out)


if __name__ == "__main__":
    sys.exit(main())
