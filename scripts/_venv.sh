# shellcheck shell=bash
# Shared bootstrap for scripts/test and scripts/serve-demo (sourced, not run):
#   - cd to the repository root, whatever the caller's cwd;
#   - create .venv with python3 (3.11+) if it is missing;
#   - `pip install -e '.[dev]'` when pyproject.toml changed since the last successful install
#     (its sha256 is kept in .venv/.tiergate-pyproject.sha256).
# Set PYTHON to pick another interpreter, TIERGATE_FORCE_INSTALL=1 to reinstall regardless.
# Every step prints one line on stderr; pip's own output goes to .venv/pip-install.log and is summarized
# (a line per 25 packages resolved, then what is installed), so a first install is never silent.

TIERGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$TIERGATE_ROOT" || { echo "cannot cd to $TIERGATE_ROOT" >&2; exit 1; }

# Reads pip's output on stdin, keeps all of it in the log file $1, and prints one line per step on stderr.
_tg_pip_summary() {
  awk -v logfile="$1" '
    function say(text) { print "[tiergate]   " text > "/dev/stderr"; fflush("/dev/stderr") }
    /^__tiergate_pip_failed__/ { failed = $2; next }
    { print > logfile }
    /^ *Installing build dependencies/ && !prepared { prepared = 1; say("preparing the build (build dependencies)") }
    /^(Collecting|Requirement already satisfied)/ {
      seen++
      if (seen % 25 == 0) say("resolving dependencies: " seen " packages so far")
    }
    /^Downloading / { downloads++ }
    /^Building (editable|wheel)/ && !built { built = 1; say("building tiergate (editable)") }
    /^Installing collected packages:/ {
      n = split(substr($0, 32), names, ", ")
      say("resolved " seen + 0 " packages (" downloads + 0 " downloaded); installing " n " of them")
    }
    /^Successfully installed/ { say("installed " NF - 2 " packages") }
    END { close(logfile); if (failed) exit failed }
  '
}

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
  echo "[tiergate] creating .venv with $("$_tg_python" -V 2>&1)" >&2
  "$_tg_python" -m venv .venv || { echo "error: python3 -m venv .venv failed" >&2; exit 1; }
fi

_tg_hash="$(.venv/bin/python -c 'import hashlib,sys; print(hashlib.sha256(open("pyproject.toml","rb").read()).hexdigest())')" \
  || { echo "error: cannot hash pyproject.toml" >&2; exit 1; }
if [ "${TIERGATE_FORCE_INSTALL:-0}" = 1 ] || [ ! -f "$_tg_stamp" ] || [ "$(cat "$_tg_stamp")" != "$_tg_hash" ]; then
  echo "[tiergate] installing tiergate and its dev dependencies into .venv (pip install -e '.[dev]'; the first time takes a minute or two) ..." >&2
  rm -f "$_tg_stamp"
  _tg_started=$SECONDS
  # pip's exit status travels through the pipe as a marker line, so the summary can report a failure.
  { .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -e '.[dev]' 2>&1 \
      || echo "__tiergate_pip_failed__ $?"; } | _tg_pip_summary .venv/pip-install.log \
    || { echo "error: pip install -e '.[dev]' failed; the last lines of .venv/pip-install.log:" >&2
         tail -n 15 .venv/pip-install.log >&2; exit 1; }
  echo "[tiergate] installed in $((SECONDS - _tg_started)) s (pip's log: .venv/pip-install.log)" >&2
  printf '%s\n' "$_tg_hash" > "$_tg_stamp"
  unset _tg_started
fi
unset _tg_python _tg_stamp _tg_hash
