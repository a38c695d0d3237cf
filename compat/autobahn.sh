#!/usr/bin/env bash
# compat/autobahn.sh — makes sure Autobahn|Testsuite's wstest is installed and up to date.
#
#   venv                          requirements                 python   used by
#   compat/.venv-autobahn         requirements-autobahn.txt    2.7      tests/autobahn.rs
#   compat/.venv-autobahn-tools   virtualenv (pinned below)    python3  making the 2.7 venv
#
# autobahntestsuite runs on Python 2.7 only: `python2.7` on PATH if it really is 2.7 (a pyenv
# shim may not be), else the newest ~/.pyenv/versions/2.7*/bin/python2.7 (PYTHON27 overrides).
# python3's venv cannot make a 2.7 environment, so a helper python3 venv holds a virtualenv
# old enough to (virtualenv < 20.22; PYTHON overrides python3).
# (Re)installs when a venv is missing or its requirements file (or its python) changed since the
# last install (a hash stamp is kept inside the venv). Quiet on success: one line on stdout,
# the path of wstest. On failure, the failing step's output goes to stderr and the exit status
# is non-zero.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-autobahn"
tools="$here/.venv-autobahn-tools"
req="$here/requirements-autobahn.txt"
VIRTUALENV="virtualenv==20.21.1"

python27() {
  if [ -n "${PYTHON27:-}" ]; then
    if "$PYTHON27" -c 'import sys; assert sys.version_info[:2] == (2, 7)' >/dev/null 2>&1; then
      echo "$PYTHON27"
      return
    fi
    echo "autobahn.sh: PYTHON27=$PYTHON27 is not a working Python 2.7." >&2
    exit 1
  fi
  local candidate
  for candidate in "$(command -v python2.7 || true)" \
    $(ls -d "$HOME"/.pyenv/versions/2.7*/bin/python2.7 2>/dev/null | sort -rV); do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (2, 7)' \
      >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
  done
  echo "autobahn.sh: Autobahn|Testsuite needs Python 2.7, and none was found (neither a working" \
    "python2.7 on PATH nor ~/.pyenv/versions/2.7*/bin/python2.7). Install it, e.g." \
    "\`pyenv install 2.7.18\`, or set PYTHON27=/path/to/python2.7." >&2
  exit 1
}

py27="$(python27)"
python3="${PYTHON:-python3}"
command -v "$python3" >/dev/null || {
  echo "autobahn.sh: $python3 not found (needed to install virtualenv; PYTHON overrides)" >&2
  exit 1
}
stamp="$venv/.requirements.sha256"
want="$( { sha256sum "$req" | cut -d' ' -f1; echo "$VIRTUALENV"; "$py27" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

if [ -x "$venv/bin/wstest" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv/bin/wstest"
  exit 0
fi

log="$(mktemp)"
fail() {
  echo "autobahn.sh: $1 failed ($venv):" >&2
  cat "$log" >&2
  rm -f "$log"
  exit 1
}
if [ ! -x "$tools/bin/virtualenv" ] || ! "$tools/bin/virtualenv" --version >/dev/null 2>&1; then
  rm -rf "$tools"
  "$python3" -m venv "$tools" >"$log" 2>&1 || fail "$python3 -m venv"
  "$tools/bin/python" -m pip install --disable-pip-version-check --no-input -q "$VIRTUALENV" \
    >"$log" 2>&1 || fail "pip install $VIRTUALENV"
fi
# A half-made venv (interrupted earlier), or one made by another python, is rebuilt.
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1 \
  || [ "$("$venv/bin/python" -c 'import sys; print(sys.version)')" != "$("$py27" -c 'import sys; print(sys.version)')" ]; then
  rm -rf "$venv"
  "$tools/bin/virtualenv" -q -p "$py27" "$venv" >"$log" 2>&1 || fail "virtualenv -p $py27"
fi
rm -f "$stamp"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" \
  >"$log" 2>&1 || fail "pip install -r $(basename "$req")"
"$venv/bin/python" -c 'import autobahntestsuite, autobahn, twisted' >"$log" 2>&1 \
  || fail "import check"
[ -x "$venv/bin/wstest" ] || { echo "wstest missing from $venv/bin" >"$log"; fail "install check"; }
rm -f "$log"
echo "$want" >"$stamp"
echo "$venv/bin/wstest"
