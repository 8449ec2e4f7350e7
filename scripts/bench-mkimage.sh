#!/usr/bin/env bash
# bench-mkimage.sh builds the deterministic input images of scripts/bench.sh
# and caches them; a cached image is reused as long as its recipe (RECIPE
# below) is unchanged.
#
#   scripts/bench-mkimage.sh 1g   # prints the path of DIR/rootfs-1g.img
#   scripts/bench-mkimage.sh 4g   # prints the path of DIR/rootfs-4g.img
#
# rootfs-1g.img is a real 1 GiB ext4 filesystem: the first files of /usr in
# byte-sorted path order up to USR_BUDGET bytes (binaries, headers and
# libraries: a rootfs-like mix) plus RANDOM_MIB of incompressible data from
# AES-128-CTR over zeros under a fixed key. mkfs.ext4 runs with a fixed UUID,
# hash seed, owner and clock, and every inode time is then pinned with
# debugfs (mkfs -d copies ctime and atime, which a fresh copy cannot keep),
# so the image is a function of /usr alone. rootfs-4g.img is rootfs-1g.img
# followed by 3 GiB more AES-CTR data under another key.
#
# DIR is $BENCH_DIR (default .bench). Progress goes to stderr, the image
# path to stdout. Exit 1 on failure, 2 on usage errors.
set -Eeuo pipefail

usage() { echo "usage: $0 1g|4g" >&2; exit 2; }
[[ $# -eq 1 ]] || usage

DIR=${BENCH_DIR:-.bench}
EPOCH=1700000000
UUID=6f1d2c3a-0b4e-4d5f-8a9b-0c1d2e3f4a5b
HASH_SEED=1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5
USR_BUDGET=$((640 << 20))
RANDOM_MIB=160
KEY1=000102030405060708090a0b0c0d0e0f
KEY2=f0e0d0c0b0a090807060504030201000
IV=00000000000000000000000000000000
RECIPE="v1 epoch=$EPOCH uuid=$UUID seed=$HASH_SEED usr=$USR_BUDGET random=${RANDOM_MIB}MiB key1=$KEY1 key2=$KEY2"

log() { echo "bench-mkimage: $*" >&2; }
die() { echo "bench-mkimage: error: $*" >&2; exit 1; }
trap 'die "command failed at line $LINENO"' ERR

# random BYTES KEY: BYTES of reproducible, incompressible data on stdout.
# CTR mode pads nothing, so the output is exactly as long as the input.
random() {
	head -c "$1" /dev/zero | openssl enc -aes-128-ctr -nosalt -K "$2" -iv "$IV"
}

# cached IMG: true when IMG exists and was built by this recipe.
cached() {
	[[ -f $1 && -f $1.recipe ]] && [[ $(<"$1.recipe") == "$RECIPE" ]]
}

# finish TMP IMG [SHA256]: moves a built image into place and records its
# recipe and its SHA-256 (printed, so two machines can compare inputs).
finish() {
	local sum=${3:-}
	[[ -n $sum ]] || sum=$(sha256sum "$1" | cut -d' ' -f1)
	mv -f "$1" "$2"
	echo "$RECIPE" >"$2.recipe"
	echo "$sum" >"$2.sha256"
	log "built $2 (sha256 $sum)"
}

build_1g() {
	local img=$DIR/rootfs-1g.img stage=$DIR/stage
	cached "$img" && { echo "$img"; return; }
	for tool in mkfs.ext4 debugfs e2fsck openssl; do
		command -v "$tool" >/dev/null || die "$tool not found (apt-get install e2fsprogs openssl)"
	done
	log "staging /usr files up to $((USR_BUDGET >> 20)) MiB and ${RANDOM_MIB} MiB of random data"
	rm -rf "$stage"
	mkdir -p "$stage/data"
	# Plain names only, so that the debugfs script below needs no quoting;
	# the selection stops at the first file over the budget (awk reads on,
	# so that sort does not die of SIGPIPE under pipefail).
	find /usr -xdev -type f -readable -printf '%s\t%P\n' |
		LC_ALL=C sort -t$'\t' -k2,2 |
		awk -F'\t' -v budget="$USR_BUDGET" '
			$2 !~ /^[A-Za-z0-9._+\/-]+$/ { next }
			full { next }
			total + $1 > budget { full = 1; next }
			{ total += $1; print "usr/" $2 }' \
		>"$DIR/usr.list"
	tar -C / -cf - --no-recursion -T "$DIR/usr.list" | tar -C "$stage" -xf -
	for i in 0 1 2 3; do
		random $((RANDOM_MIB / 4 << 20)) "${KEY1:0:30}0$i" >"$stage/data/blob-$i.bin"
	done
	find "$stage" -exec touch -h -d "@$EPOCH" {} +

	log "making ext4 filesystem"
	local tmp=$img.tmp
	rm -f "$tmp"
	E2FSPROGS_FAKE_TIME=$EPOCH mkfs.ext4 -q -F -t ext4 -b 4096 -L rootfs -U "$UUID" \
		-E "hash_seed=$HASH_SEED,root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0,nodiscard" \
		-d "$stage" "$tmp" 1G >&2
	(cd "$stage" && find . -mindepth 1 -printf '%P\n') |
		awk -v t="@$EPOCH" '{ print "sif /" $0 " ctime " t; print "sif /" $0 " atime " t }
			END { print "sif / ctime " t; print "sif / atime " t }' >"$DIR/times.debugfs"
	E2FSPROGS_FAKE_TIME=$EPOCH debugfs -w -f "$DIR/times.debugfs" "$tmp" >/dev/null 2>"$DIR/debugfs.log" ||
		die "debugfs failed, see $DIR/debugfs.log"
	grep -v '^debugfs ' "$DIR/debugfs.log" | grep -q . && die "debugfs reported errors, see $DIR/debugfs.log"
	e2fsck -fn "$tmp" >"$DIR/e2fsck.log" 2>&1 || die "e2fsck found errors in the image, see $DIR/e2fsck.log"
	rm -rf "$stage"
	finish "$tmp" "$img"
	echo "$img"
}

build_4g() {
	local img=$DIR/rootfs-4g.img small
	cached "$img" && { echo "$img"; return; }
	small=$(build_1g)
	log "appending 3 GiB of random data to $small"
	local tmp=$img.tmp sum
	# Hashed on the way, rather than read back from a slow disk.
	sum=$({ cat "$small"; random $((3 << 30)) "$KEY2"; } | tee "$tmp" | sha256sum | cut -d' ' -f1)
	finish "$tmp" "$img" "$sum"
	echo "$img"
}

mkdir -p "$DIR"
case $1 in
1g) build_1g ;;
4g) build_4g ;;
*) usage ;;
esac
