# shellcheck shell=bash
# Shared bootstrap for scripts/test and scripts/serve-demo (sourced, not run):
#   - cd to the repository root, whatever the caller's cwd;
#   - create .venv with python3 (3.11+) if it is missing;
#   - `pip install -e '.[dev]'` when pyproject.toml changed since the last successful install
#     (its sha256 is kept in .venv/.tiergate-pyproject.sha256).
# Set PYTHON to pick another interpreter, TIERGATE_FORCE_INSTALL=1 to reinstall regardless.

TIERGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$TIERGATE_ROOT" || { echo "cannot cd to $TIERGATE_ROOT" >&2; exit 1; }

_tg_python="${PYTHON:-python3}"
_tg_stamp=".venv/.tiergate-pyproject.sha256"

if [ ! -x .venv/bin/python ]; then
  if ! command -v "$_tg_python" >/dev/null 2>&1; then
    echo "error: $_tg_python not found; Tiergate needs Python 3.11+" >&2
    exit 1
  fi
  if ! "$_tg_python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: $_tg_python is $("$_tg_python" -V 2>&1); Tiergate needs Python 3.11+" >&2
    exit 1
  fi
  echo "creating .venv with $("$_tg_python" -V 2>&1)" >&2
  "$_tg_python" -m venv .venv || { echo "error: python3 -m venv .venv failed" >&2; exit 1; }
fi

_tg_hash="$(.venv/bin/python -c 'import hashlib,sys; print(hashlib.sha256(open("pyproject.toml","rb").read()).hexdigest())')" \
  || { echo "error: cannot hash pyproject.toml" >&2; exit 1; }
if [ "${TIERGATE_FORCE_INSTALL:-0}" = 1 ] || [ ! -f "$_tg_stamp" ] || [ "$(cat "$_tg_stamp")" != "$_tg_hash" ]; then
  echo "installing tiergate and its dev dependencies into .venv (pip install -e '.[dev]') ..." >&2
  rm -f "$_tg_stamp"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' \
    || { echo "error: pip install -e '.[dev]' failed" >&2; exit 1; }
  printf '%s\n' "$_tg_hash" > "$_tg_stamp"
fi
unset _tg_python _tg_stamp _tg_hash
