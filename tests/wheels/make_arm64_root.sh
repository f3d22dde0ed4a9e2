#!/bin/sh
# Make an arm64 Debian 12 root with python3 + pip for test_arm64_qemu.py (no binfmt needed:
# the test runs the aarch64 interpreter through qemu-aarch64-static directly).
#   sh tests/wheels/make_arm64_root.sh /tmp/arm64root
#   MLOPS_TEST_ARM64_ROOT=/tmp/arm64root python -m pytest tests/wheels/test_arm64_qemu.py
# Needs: apt-get install qemu-user-static debootstrap (about 60 MB download, 235 MB on disk).
set -eu
ROOT=${1:?usage: make_arm64_root.sh DIR}
debootstrap --foreign --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip \
  bookworm "$ROOT" http://deb.debian.org/debian
# --foreign unpacks only the base set; unpack the rest too (nothing is configured or run).
for deb in "$ROOT"/var/cache/apt/archives/*.deb; do
  dpkg-deb -x "$deb" "$ROOT"
done
QEMU_LD_PREFIX="$ROOT" qemu-aarch64-static "$ROOT/usr/bin/python3" -c 'import platform; print("ok", platform.machine())'
