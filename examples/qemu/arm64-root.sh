#!/usr/bin/env bash
# arm64-root.sh DIR: unpack Debian's arm64 kernel (the package
# linux-image-arm64 depends on) and static busybox (busybox-static:arm64)
# into DIR, without installing them, for mkimage.sh on an amd64 build host:
#
#   MODROOT=DIR KERNEL=DIR/boot/vmlinuz-VERSION BUSYBOX=DIR/bin/busybox \
#   CONSOLE=ttyAMA0 PART1=boot ./mkimage.sh ...
#
# and for the arm64 QEMU tests (FERRY_QEMU_ARM64=DIR). Run as root: it adds
# the arm64 architecture to dpkg and updates the package lists if needed.
# It also writes the modules' dependency lists (depmod), which the Debian
# package leaves to its install script.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: arm64-root.sh DIR" >&2; exit 2; }
dir=$1
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	dpkg --add-architecture arm64
	apt-get update
fi
kernel=$(apt-cache depends --no-recommends --no-suggests linux-image-arm64:arm64 |
	awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { sub(/:arm64$/, "", $2); print $2; exit }')
[ -n "$kernel" ] || { echo "arm64-root.sh: no kernel package behind linux-image-arm64:arm64" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt's download sandbox user must be able to write here.
chmod 777 "$work"
(cd "$work" && apt-get download "$kernel:arm64" busybox-static:arm64)
mkdir -p "$dir"
for deb in "$work"/*.deb; do
	dpkg-deb -x "$deb" "$dir"
done
for v in "$dir"/lib/modules/*; do
	depmod -b "$dir" "$(basename "$v")"
done
