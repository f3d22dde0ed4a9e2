#!/bin/sh
# Offline install of this bundle, made by `mlops wheels`. Needs only python3 and pip.
#
#   sh install.sh                  verify the files, check the interpreter, install, pip check
#   sh install.sh --venv DIR       make a new venv DIR with python3 (or $PYTHON) and install into it
#   sh install.sh --verify         only re-hash every file against manifest.json; installs nothing
#   sh install.sh --target NAME    install the requirements of that target (see manifest.json)
#   sh install.sh --rollback       undo the last install into python3 (or $PYTHON)
#   sh install.sh --break-system-packages   install into an externally managed python3 anyway
#   PYTHON=/opt/py310/bin/python3 sh install.sh    install into another interpreter or a venv
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
MODE=install
TARGET=
VENV=
BREAK=

while [ $# -gt 0 ]; do
  case "$1" in
    --verify) MODE=verify ;;
    --rollback) MODE=rollback ;;
    --break-system-packages) BREAK=--break-system-packages ;;
    --target|--venv)
      [ $# -ge 2 ] || { echo "error: $1 needs a value" >&2; exit 2; }
      if [ "$1" = --target ]; then TARGET=$2; else VENV=$2; fi
      shift ;;
    --target=*) TARGET=${1#--target=} ;;
    --venv=*) VENV=${1#--venv=} ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option: $1" >&2; echo "hint: sh install.sh --help" >&2; exit 2 ;;
  esac
  shift
done

if ! command -v "$PY" >/dev/null 2>&1; then
  echo "error: $PY not found" >&2
  echo "hint: set PYTHON=/path/to/python3" >&2
  exit 1
fi

"$PY" "$HERE/_bundle.py" verify "$HERE" || exit 1
[ "$MODE" = verify ] && exit 0

# pip must see only this bundle: no configuration files, no PIP_* variables, no index.
for var in $(env | sed -n 's/^\(PIP_[A-Za-z0-9_]*\)=.*/\1/p'); do
  unset "$var"
done
PIP_CONFIG_FILE=/dev/null
PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_CONFIG_FILE PIP_DISABLE_PIP_VERSION_CHECK

# What was installed before is recorded here, per interpreter, for --rollback.
STATE_ROOT=${MLOPS_BUNDLE_STATE:-${XDG_STATE_HOME:-${HOME:-/tmp}/.local/state}/mlops-bundle}
state_dir() {
  "$1" -c 'import hashlib, os, sys; print(hashlib.sha256(os.path.realpath(sys.prefix).encode()).hexdigest()[:16])'
}

if [ "$MODE" = rollback ]; then
  STATE="$STATE_ROOT/$(state_dir "$PY")"
  "$PY" "$HERE/_bundle.py" rollback "$STATE" || exit 1
  exit 0
fi

MADE_VENV=
if [ -n "$VENV" ]; then
  if [ -e "$VENV" ]; then
    echo "error: $VENV already exists; --venv makes a new one" >&2
    echo "hint: give a new path, or PYTHON=$VENV/bin/python sh install.sh to install into that venv" >&2
    exit 2
  fi
  BASE_PY=$PY
  if "$BASE_PY" -m venv "$VENV" >/dev/null 2>&1; then
    :
  else
    # Debian/Ubuntu without python3-venv: ensurepip is missing. A venv without pip still
    # works: the interpreter's own pip (or the bundled one) installs into it.
    rm -rf "$VENV"
    "$BASE_PY" -m venv --without-pip "$VENV" || { rm -rf "$VENV"; echo "error: cannot make a venv with $BASE_PY" >&2; exit 1; }
  fi
  MADE_VENV=$VENV
  PY=$VENV/bin/python
  echo "made the venv $VENV with $BASE_PY" >&2
elif "$PY" "$HERE/_bundle.py" managed && [ -z "$BREAK" ]; then
  echo "error: $PY is externally managed (PEP 668): its distribution's packages own it, and pip refuses to install into it" >&2
  echo "hint: sh install.sh --venv /opt/venv (a new venv made with $PY), or PYTHON=/path/to/venv/bin/python sh install.sh;" \
       "--break-system-packages installs into it anyway" >&2
  exit 1
fi

fail_venv() {
  if [ -n "$MADE_VENV" ]; then
    rm -rf "$MADE_VENV"
    echo "error: the install failed; the half-made venv $MADE_VENV was removed" >&2
    exit 1
  fi
}

PLAN=$("$PY" "$HERE/_bundle.py" preflight "$HERE" "$TARGET") || { fail_venv; exit 1; }
REQ=$(printf '%s\n' "$PLAN" | sed -n 1p)
PIPWHL=$(printf '%s\n' "$PLAN" | sed -n 2p)
IN_VENV=$("$PY" -c 'import sys; print(int(sys.prefix != getattr(sys, "base_prefix", sys.prefix)))')
REQ_PATH=$HERE/$REQ
if [ -n "$PIPWHL" ]; then
  # This interpreter has no pip, or one too old: run the pip shipped in the bundle (--with-pip).
  echo "using the bundled $PIPWHL to install" >&2
  set -- "$PY" "$HERE/$PIPWHL/pip"
elif "$PY" -c 'import pip' >/dev/null 2>&1; then
  set -- "$PY" -m pip
elif [ -n "$MADE_VENV" ] && "$BASE_PY" -m pip --version >/dev/null 2>&1; then
  # a venv without pip: the base interpreter's pip installs into it (pip >= 22.3: --python)
  set -- "$BASE_PY" -m pip --python "$PY"
else
  set -- "$PY" -m pip
fi
if [ "$IN_VENV" = 0 ] && grep -q '^pip==' "$REQ_PATH"; then
  # The bundled pip (--with-pip) is for running the install: it does not replace the
  # system interpreter's own pip. Into a venv it is installed like the rest.
  mkdir -p "$STATE_ROOT"
  REQ_PATH=$(mktemp "$STATE_ROOT/requirements.XXXXXX")
  sed '/^pip==/{N;d;}' "$HERE/$REQ" >"$REQ_PATH"
  echo "note: the bundled pip is not installed into $PY (its own pip is left as it is)" >&2
fi

if [ -z "$MADE_VENV" ]; then
  STATE="$STATE_ROOT/$(state_dir "$PY")"
  "$PY" "$HERE/_bundle.py" snapshot "$STATE" "$REQ_PATH" || { echo "error: cannot record the installed packages in $STATE" >&2; exit 1; }
fi

echo "installing $REQ into $PY" >&2
if ! "$@" --isolated install --no-index --find-links "$HERE/wheels" $BREAK \
    --only-binary=:all: --require-hashes -r "$REQ_PATH"; then
  fail_venv
  echo "error: the install failed partway; so far it $("$PY" "$HERE/_bundle.py" changes "$STATE")" >&2
  echo "hint: sh install.sh --rollback restores what was installed before (recorded in $STATE)" >&2
  exit 1
fi
"$@" --isolated check || { fail_venv; exit 1; }
echo "done: the bundle is installed into $PY" >&2
