#!/bin/sh
# Offline install of this bundle, made by `mlops wheels`. Needs only python3 and pip.
#
#   sh install.sh                  verify the files, check the interpreter, install, pip check
#   sh install.sh --verify         only re-hash every file against manifest.json; installs nothing
#   sh install.sh --target NAME    install the requirements of that target (see manifest.json)
#   PYTHON=/opt/py310/bin/python3 sh install.sh    install into another interpreter or a venv
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
MODE=install
TARGET=

while [ $# -gt 0 ]; do
  case "$1" in
    --verify) MODE=verify ;;
    --target)
      [ $# -ge 2 ] || { echo "error: --target needs a name" >&2; exit 2; }
      TARGET=$2; shift ;;
    --target=*) TARGET=${1#--target=} ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

PLAN=$("$PY" "$HERE/_bundle.py" preflight "$HERE" "$TARGET") || exit 1
REQ=$(printf '%s\n' "$PLAN" | sed -n 1p)
PIPWHL=$(printf '%s\n' "$PLAN" | sed -n 2p)
if [ -n "$PIPWHL" ]; then
  # This interpreter has no pip, or one too old: run the pip shipped in the bundle (--with-pip).
  echo "using the bundled $PIPWHL" >&2
  set -- "$PY" "$HERE/$PIPWHL/pip"
else
  set -- "$PY" -m pip
fi

# pip must see only this bundle: no configuration files, no PIP_* variables, no index.
for var in $(env | sed -n 's/^\(PIP_[A-Za-z0-9_]*\)=.*/\1/p'); do
  unset "$var"
done
PIP_CONFIG_FILE=/dev/null
PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_CONFIG_FILE PIP_DISABLE_PIP_VERSION_CHECK

echo "installing $REQ into $PY" >&2
"$@" --isolated install --no-index --find-links "$HERE/wheels" \
  --only-binary=:all: --require-hashes -r "$HERE/$REQ"
"$@" --isolated check
echo "done: the bundle is installed into $PY" >&2
