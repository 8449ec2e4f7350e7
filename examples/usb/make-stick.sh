#!/usr/bin/env bash
# make-stick.sh DEVICE BUNDLE... : build a ferry stick for the bundles on
# DEVICE (e.g. /dev/sdb), check it, and show what is on it. TRUST (default
# root.json) is the trust root put on the stick and checked against.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 DEVICE BUNDLE..." >&2; exit 2; }
device=$1
shift
trust=${TRUST:-root.json}
for b in "$@"; do
	ferry verify "$b" --trust "$trust" >/dev/null
done
ferry media build --device "$device" --trust "$trust" "$@"
ferry media inspect "$device" --trust "$trust"
