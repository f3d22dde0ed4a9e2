#!/bin/sh
# Make an arm64 Debian 12 root with python3 + pip for test_arm64_qemu.py (no binfmt needed:
# the test runs the aarch64 interpreter through qemu-aarch64-static directly).
#   sh tests/wheels/make_arm64_root.sh /tmp/arm64root
#   MLOPS_TEST_ARM64_ROOT=/tmp/arm64root python -m pytest tests/wheels/test_arm64_qemu.py
# Needs: apt-get install qemu-user-static debootstrap (about 60 MB download, 235 MB on disk).
set -eu
ROOT=${1:?usage: make_arm64_root.sh DIR [MIRROR]}
# The Debian mirror this machine's apt already uses (sources.list or deb822 .sources).
MIRROR=${2:-$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | grep -v '^[[:space:]]*#' | grep -o 'https\{0,1\}://[^ ]*debian[^ ]*' | grep -v security | head -n 1)}
[ -n "$MIRROR" ] || { echo "error: no Debian mirror configured for apt; pass one as the second argument" >&2; exit 2; }
debootstrap --foreign --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip \
  bookworm "$ROOT" "$MIRROR"
# --foreign unpacks only the base set; unpack the rest too (nothing is configured or run).
for deb in "$ROOT"/var/cache/apt/archives/*.deb; do
  dpkg-deb -x "$deb" "$ROOT"
done
QEMU_LD_PREFIX="$ROOT" qemu-aarch64-static "$ROOT/usr/bin/python3" -c 'import platform; print("ok", platform.machine())'
