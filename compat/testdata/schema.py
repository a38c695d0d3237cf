"""Django's `migrate` of the compat project (compat/: contenttypes, auth, admin, sessions and
chat) on a fresh SQLite file and on a throw-away PostgreSQL database, dumped as
`django-schema/`: sqlite.sql, postgres.sql, migrations.txt and post-migrate-rows.txt.

Run with a venv's python: `python schema.py OUT_DIR`. PostgreSQL: 127.0.0.1:5432, user
postgres, trust auth (PGHOST/PGPORT/PGUSER override); pg_dump must be on PATH.

Normalisation (the only one; everything else is Django's and pg_dump's own output): pg_dump's
comments, blank lines, `SET`/`set_config` session lines and its `\\restrict`/`\\unrestrict`
lines (which carry a random key on every run) are dropped.
"""
import os
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

COMPAT = Path(__file__).resolve().parent.parent
APPS = "contenttypes, auth, admin, sessions and chat"


def migrate(database_url, workdir):
    env = dict(os.environ, DATABASE_URL=database_url, SECRET_KEY="schema-dump", BASE_DIR=str(workdir),
               DJANGO_SETTINGS_MODULE="multichat.settings")
    for name in ("SECRET_KEY_FALLBACKS", "SESSION_ENGINE", "REDIS_URL", "CHANNEL_LAYERS", "PASSWORD_HASHERS"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, str(COMPAT / "manage.py"), "migrate", "--noinput"],
                          cwd=COMPAT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit("migrate failed on %s:\n%s%s" % (database_url, proc.stdout, proc.stderr))


def rows(cur):
    cur.execute("SELECT app, name FROM django_migrations ORDER BY id")
    migrations = ["%s|%s" % r for r in cur.fetchall()]
    cur.execute("SELECT id, app_label, model FROM django_content_type ORDER BY id")
    cts = ["%s|%s|%s" % r for r in cur.fetchall()]
    cur.execute("SELECT id, content_type_id, codename, name FROM auth_permission ORDER BY id")
    perms = ["%s|%s|%s|%s" % r for r in cur.fetchall()]
    return migrations, cts, perms


def sqlite_dump(workdir, version):
    db = Path(workdir) / "db.sqlite3"
    migrate("sqlite:///" + str(db), workdir)
    con = sqlite3.connect(db)
    try:
        cur = con.cursor()
        cur.execute("SELECT sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND sql IS NOT NULL "
                    "ORDER BY rowid")
        statements = [r[0] + ";" for r in cur.fetchall()]
        found = rows(cur)
    finally:
        con.close()
    header = [
        "-- Django %s 'migrate' on SQLite for the apps %s" % (version, APPS),
        "-- (chat = the Room model: title varchar(255), staff_only bool default False). Objects in creation order.",
    ]
    return "\n".join(header + statements) + "\n", found


def postgres_dump(workdir, version):
    import psycopg

    host = os.environ.get("PGHOST", "127.0.0.1")
    port = os.environ.get("PGPORT", "5432")
    user = os.environ.get("PGUSER", "postgres")
    name = "whisper_testdata_%s" % uuid.uuid4().hex[:12]
    admin = psycopg.connect(host=host, port=port, user=user, dbname="postgres", autocommit=True)
    admin.execute('CREATE DATABASE "%s"' % name)
    try:
        migrate("postgres://%s@%s:%s/%s" % (user, host, port, name), workdir)
        with psycopg.connect(host=host, port=port, user=user, dbname=name) as con:
            found = rows(con.cursor())
        dump = subprocess.run(
            ["pg_dump", "--schema-only", "--no-owner", "--no-privileges",
             "-h", host, "-p", port, "-U", user, name],
            capture_output=True, text=True, check=True).stdout
    finally:
        admin.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
        admin.close()
    kept = [line for line in dump.splitlines()
            if line.strip() and not line.startswith(("--", "SET ", "SELECT pg_catalog.set_config", "\\restrict", "\\unrestrict"))]
    header = "-- Django %s 'migrate' on PostgreSQL for the apps %s (pg_dump --schema-only --no-owner --no-privileges)" % (version, APPS)
    return "\n".join([header] + kept) + "\n", found


def main(out_dir):
    import django

    version = django.get_version()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        sqlite_sql, (migrations, cts, perms) = sqlite_dump(workdir, version)
        postgres_sql, pg_rows = postgres_dump(workdir, version)
    assert pg_rows == (migrations, cts, perms), "SQLite and PostgreSQL rows differ"
    (out / "sqlite.sql").write_text(sqlite_sql)
    (out / "postgres.sql").write_text(postgres_sql)
    (out / "migrations.txt").write_text("\n".join(
        ["# django_migrations rows Django %s writes, in order (app|name); 'applied' is the UTC time of migrate" % version]
        + migrations) + "\n")
    (out / "post-migrate-rows.txt").write_text("\n".join(
        ["# Rows Django's post_migrate handlers create (ids in insertion order; the same on SQLite and PostgreSQL)",
         "## django_content_type (id|app_label|model)"] + cts
        + ["## auth_permission (id|content_type_id|codename|name)"] + perms) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
