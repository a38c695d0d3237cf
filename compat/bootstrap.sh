#!/usr/bin/env bash
# compat/bootstrap.sh [5.2|4.2] — makes sure the Django virtualenv exists and is up to date.
#   5.2 (default): compat/.venv   from compat/requirements.txt
#   4.2:           compat/.venv42 from compat/requirements-django42.txt
# (Re)installs when the venv is missing or the requirements file (or python3) changed since the
# last install (a hash stamp is kept inside the venv). Quiet on success; the last line on stdout
# is the venv's python. On failure, pip's output goes to stderr and the exit status is non-zero.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="${1:-5.2}"
case "$version" in
  5.2) venv="$here/.venv"; req="$here/requirements.txt" ;;
  4.2) venv="$here/.venv42"; req="$here/requirements-django42.txt" ;;
  *) echo "bootstrap.sh: unknown Django version '$version' (use 5.2 or 4.2)" >&2; exit 2 ;;
esac
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "bootstrap.sh: $python not found" >&2; exit 1; }
stamp="$venv/.requirements.sha256"
want="$( { sha256sum "$req" | cut -d' ' -f1; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv/bin/python"
  exit 0
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
fail() {
  echo "bootstrap.sh: $1 failed for Django $version ($venv):" >&2
  cat "$log" >&2
  exit 1
}
# A half-made venv (interrupted earlier) is rebuilt from scratch.
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$venv"
  "$python" -m venv "$venv" >"$log" 2>&1 || fail "python3 -m venv"
fi
rm -f "$stamp"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" \
  >"$log" 2>&1 || fail "pip install -r $(basename "$req")"
"$venv/bin/python" -c 'import django, channels, daphne, channels_redis, argon2, bcrypt, psycopg, uvicorn, redis, django_redis' \
  >"$log" 2>&1 || fail "import check"
echo "$want" >"$stamp"
echo "$venv/bin/python"
