#!/usr/bin/env bash
# compat/bootstrap.sh [VERSION ...|all] — makes sure the Django virtualenvs exist and are up to date.
#
#   version  venv             requirements                  python   used by
#   4.2      compat/.venv42   requirements-django42.txt     python3  interop suite, tests/data
#   5.0      compat/.venv50   requirements-django50.txt     python3  tests/data (hashers only)
#   5.1      compat/.venv51   requirements-django51.txt     python3  tests/data (hashers only)
#   5.2      compat/.venv     requirements.txt              python3  ./manage admin, interop, tests/data
#   6.0      compat/.venv60   requirements-django60.txt     3.12     tests/data (hashers only)
#   6.1      compat/.venv61   requirements-django61.txt     3.12     interop suite, tests/data
#
# No argument means 5.2; `all` means every row. Django 6.x needs Python >= 3.12: `python3.12` on
# PATH, else the newest ~/.pyenv/versions/3.12.*/bin/python (PYTHON312 overrides). The others use
# python3 (PYTHON overrides).
# (Re)installs when a venv is missing or its requirements file (or its python) changed since the
# last install (a hash stamp is kept inside the venv). Quiet on success: one line per version on
# stdout, the venv's python. On failure, pip's output goes to stderr and the exit status is
# non-zero.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ALL_VERSIONS="4.2 5.0 5.1 5.2 6.0 6.1"

python312() {
  if [ -n "${PYTHON312:-}" ]; then echo "$PYTHON312"; return; fi
  # A pyenv shim named python3.12 may be on PATH without working: try each candidate.
  local candidate
  for candidate in "$(command -v python3.12 || true)" \
    $(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python 2>/dev/null | sort -rV); do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' \
      >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
  done
  echo "bootstrap.sh: Django $1 needs Python 3.12, and none was found (neither a working" \
    "python3.12 on PATH nor ~/.pyenv/versions/3.12*/bin/python). Install it, e.g." \
    "\`pyenv install 3.12\`, or set PYTHON312=/path/to/python3.12." >&2
  exit 1
}

bootstrap() {
  local version="$1" venv req python check
  # Interop venvs run the compat project (channels, daphne, uvicorn, psycopg, Redis clients);
  # data-only venvs just need Django's hashers.
  local full='import django, channels, daphne, channels_redis, argon2, bcrypt, psycopg, uvicorn, django_redis, redis'
  local data='import django, argon2, bcrypt'
  case "$version" in
    4.2) venv="$here/.venv42"; req="$here/requirements-django42.txt"; check="$full" ;;
    5.0) venv="$here/.venv50"; req="$here/requirements-django50.txt"; check="$data" ;;
    5.1) venv="$here/.venv51"; req="$here/requirements-django51.txt"; check="$data" ;;
    5.2) venv="$here/.venv"; req="$here/requirements.txt"; check="$full" ;;
    6.0) venv="$here/.venv60"; req="$here/requirements-django60.txt"; check="$data" ;;
    6.1) venv="$here/.venv61"; req="$here/requirements-django61.txt"; check="$full" ;;
    *) echo "bootstrap.sh: unknown Django version '$version' (use one of: $ALL_VERSIONS, all)" >&2
       exit 2 ;;
  esac
  case "$version" in
    6.*) python="$(python312 "$version")" ;;
    *) python="${PYTHON:-python3}" ;;
  esac
  command -v "$python" >/dev/null || { echo "bootstrap.sh: $python not found" >&2; exit 1; }
  local stamp="$venv/.requirements.sha256" want
  want="$( { sha256sum "$req" | cut -d' ' -f1; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "$venv/bin/python"
    return
  fi

  local log
  log="$(mktemp)"
  fail() {
    echo "bootstrap.sh: $1 failed for Django $version ($venv):" >&2
    cat "$log" >&2
    rm -f "$log"
    exit 1
  }
  # A half-made venv (interrupted earlier), or one made by another python, is rebuilt.
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1 \
    || [ "$("$venv/bin/python" -c 'import sys; print(sys.version)')" != "$("$python" -c 'import sys; print(sys.version)')" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv" >"$log" 2>&1 || fail "$python -m venv"
  fi
  rm -f "$stamp"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" \
    >"$log" 2>&1 || fail "pip install -r $(basename "$req")"
  "$venv/bin/python" -c "$check" >"$log" 2>&1 || fail "import check"
  rm -f "$log"
  echo "$want" >"$stamp"
  echo "$venv/bin/python"
}

versions=("$@")
[ ${#versions[@]} -eq 0 ] && versions=(5.2)
[ "${versions[*]}" = "all" ] && read -r -a versions <<<"$ALL_VERSIONS"
for v in "${versions[@]}"; do
  bootstrap "$v"
done
