#!/usr/bin/env bash
# bench-mkdelta.sh builds the "new version" images of scripts/bench-delta.sh
# from the bench's 1 GiB ext4 image (scripts/bench-mkimage.sh) and caches
# them beside it:
#
#   scripts/bench-mkdelta.sh inplace   # prints DIR/rootfs-1g-v2-inplace.img
#   scripts/bench-mkdelta.sh shift     # prints DIR/rootfs-1g-v2-shift.img
#
# inplace: v1 with about 5.4 % of its 4 KiB blocks changed in place. Files
#   are taken in the order of the SHA-256 of their path (a fixed, scattered
#   choice) until CHANGE_MIB of their non-zero blocks are chosen; each of
#   those blocks is replaced by bytes derived from its block number
#   (SHAKE-256), so sizes, inodes and the layout stay as they were.
# shift: v1 with files removed and others added through debugfs, so the
#   ext4 allocator places new data and metadata where v1 had other bytes:
#   the files of the first SHIFT_MIB in the same path-hash order are
#   removed, and as many bytes of new files (SHAKE-256 data) are written
#   under /new.
#
# DIR is $BENCH_DIR (default .bench). Exit 1 on failure, 2 on usage errors.
set -Eeuo pipefail

usage() { echo "usage: $0 inplace|shift" >&2; exit 2; }
[[ $# -eq 1 ]] || usage
DIR=${BENCH_DIR:-.bench}
CHANGE_MIB=${CHANGE_MIB:-55}
SHIFT_MIB=${SHIFT_MIB:-30}
RECIPE="delta-v1 change=${CHANGE_MIB}MiB shift=${SHIFT_MIB}MiB"
log() { echo "bench-mkdelta: $*" >&2; }
die() { echo "bench-mkdelta: error: $*" >&2; exit 1; }
trap 'die "command failed at line $LINENO"' ERR
for tool in debugfs e2fsck python3; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install e2fsprogs python3)"
done

v1=$(bash "$(dirname "$0")/bench-mkimage.sh" 1g)
out=$DIR/rootfs-1g-v2-$1.img
[[ $1 == inplace || $1 == shift ]] || usage
if [[ -f $out && -f $out.recipe && $(<"$out.recipe") == "$RECIPE $(<"$v1.sha256")" ]]; then
	echo "$out"
	exit 0
fi

# files in path-hash order with their sizes: "SIZE PATH"
order=$DIR/delta-order.txt
(cd "$DIR" && python3 - usr.list >"$(basename "$order")") <<'PY'
import hashlib, sys
paths = [l.rstrip("\n") for l in open(sys.argv[1]) if l.strip()]
for p in sorted(paths, key=lambda p: hashlib.sha256(p.encode()).digest()):
    print(p)
PY

tmp=$out.tmp
cp --sparse=never "$v1" "$tmp"
case $1 in
inplace)
	log "changing about $CHANGE_MIB MiB of file blocks in place"
	head -n 4000 "$order" | awk '{ print "blocks /" $0 }' >"$DIR/delta-blocks.debugfs"
	debugfs -f "$DIR/delta-blocks.debugfs" "$v1" 2>/dev/null >"$DIR/delta-blocks.txt"
	python3 - "$tmp" "$DIR/delta-blocks.txt" "$CHANGE_MIB" <<'PY'
import hashlib, os, sys
img, listing, budget = sys.argv[1], sys.argv[2], int(sys.argv[3]) << 20
files, cur = [], None
for line in open(listing):
    if line.startswith("debugfs: blocks "):
        cur = []
        files.append(cur)
    elif cur is not None:
        cur.extend(int(b) for b in line.split())
changed = 0
fd = os.open(img, os.O_RDWR)
zero = bytes(4096)
for blocks in files:
    if changed >= budget:
        break
    for b in blocks:
        if os.pread(fd, 4096, b * 4096) == zero:
            continue
        os.pwrite(fd, hashlib.shake_256(b"v2:%d" % b).digest(4096), b * 4096)
        changed += 4096
os.close(fd)
print("changed %d blocks (%.1f MB, %.2f %% of the image)" % (changed // 4096, changed / 1e6, 100 * changed / os.path.getsize(img)), file=sys.stderr)
PY
	;;
shift)
	log "removing about $SHIFT_MIB MiB of files and adding as much new data"
	budget=$((SHIFT_MIB << 20))
	new=$DIR/delta-new
	rm -rf "$new"
	mkdir -p "$new"
	python3 - "$DIR" "$order" "$budget" "$new" >"$DIR/delta-shift.debugfs" <<'PY'
import hashlib, os, sys
d, order, budget, new = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
removed = 0
for p in open(order):
    p = p.strip()
    try:
        n = os.path.getsize("/" + p)
    except OSError:
        continue
    if removed >= budget:
        break
    print("rm /" + p)
    removed += n
print("mkdir /new")
i, added = 0, 0
while added < removed:
    n = min(1 << 20, removed - added) if i % 3 else min(4 << 20, removed - added)
    f = os.path.join(new, "f%04d.bin" % i)
    with open(f, "wb") as w:
        w.write(hashlib.shake_256(b"new:%d" % i).digest(n))
    print("write %s /new/f%04d.bin" % (f, i))
    added += n
    i += 1
PY
	E2FSPROGS_FAKE_TIME=1700000000 debugfs -w -f "$DIR/delta-shift.debugfs" "$tmp" >/dev/null 2>"$DIR/delta-shift.log"
	rm -rf "$new"
	e2fsck -fy "$tmp" >"$DIR/delta-e2fsck.log" 2>&1 || [[ $? -le 1 ]] || die "e2fsck failed, see $DIR/delta-e2fsck.log"
	;;
esac
mv -f "$tmp" "$out"
echo "$RECIPE $(<"$v1.sha256")" >"$out.recipe"
log "built $out"
echo "$out"
