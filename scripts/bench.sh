#!/usr/bin/env bash
# bench.sh measures ferry against the tools it is judged by ("make bench").
#
# On one cached, deterministic 1 GiB ext4 image (scripts/bench-mkimage.sh) it
# runs, side by side in the same invocation:
#
#   openssl dgst -sha256 IMAGE       the hashing speed limit
#   zstd -3 -T0 -c IMAGE > FILE      the reference for time and size
#   rauc bundle (verity, squashfs with zstd level 3)
#   ferry bundle create IMAGE        signed with a throwaway key
#   openssl dgst -sha256 BUNDLE      what ferry verify is compared with
#   ferry verify BUNDLE
#
# and prints for each the wall time, the throughput over its input (for
# verify and the second sha256, over the bundle bytes), the output size
# against zstd -3's, the peak RSS (GNU time's %M, which covers the children
# a tool waits for, such as rauc's mksquashfs), the wall time as a multiple
# of zstd's, and the CPU time (user + system), which other work on the
# machine disturbs less than the wall time. Then it prints whether ferry
# meets its targets:
#
#   create is faster than rauc at zstd level 3
#   the bundle is at most 2 % larger than zstd -3's output
#   verify reaches 80 % of openssl's SHA-256 throughput over the bundle
#   create and verify stay under 100 MiB peak RSS, also on a 4 GiB image
#
# Caches are never dropped (the machine may be shared); instead the input is
# read once before each timed command, so every tool starts with it in the
# page cache, and `sync` runs before each so that earlier writes do not land
# on its clock. The tools run in BENCH_RUNS interleaved rounds and each
# reports its fastest round, the one least disturbed by other work; peak RSS
# is the highest of all rounds. Nothing here fails on a missed target: the
# exit status is 0 unless a tool could not run.
#
# Knobs (environment):
#   BENCH_DIR    cache and scratch directory (default .bench, gitignored)
#   BENCH_SIZES  "1g 4g" (default), "1g" or "4g". 1g is the full comparison;
#                4g measures create and verify peak RSS on a 4 GiB image
#                (the 1 GiB image plus 3 GiB of random data). By default
#                4g is skipped when the disk lacks room for it.
#   BENCH_RUNS   rounds of the 1 GiB comparison (default 3)
#   BENCH_FERRY  a ferry binary to measure instead of building ./cmd/ferry
#                (to compare a proposed change against the tree)
#
# Exit status: 0 done, 1 a tool failed or is missing, 2 usage.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
export BENCH_DIR=${BENCH_DIR:-.bench}
RUNS=${BENCH_RUNS:-3}
SIZES=${BENCH_SIZES:-}
EPOCH=1700000000 # SOURCE_DATE_EPOCH of the ferry bundles
GIB=$((1 << 30))

die() { echo "bench: error: $*" >&2; exit 1; }
usage() { echo "bench: usage: $*" >&2; exit 2; }
trap 'die "command failed at line $LINENO"' ERR

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || usage "BENCH_RUNS=$RUNS: want a positive number"
explicit_4g=false
if [[ -z $SIZES ]]; then
	SIZES="1g 4g"
else
	SIZES=$(tr 'A-Z' 'a-z' <<<"$SIZES" | sed 's/ib\b//g; s/,/ /g')
	[[ " $SIZES " == *" 4g "* ]] && explicit_4g=true
fi
for s in $SIZES; do
	[[ $s == 1g || $s == 4g ]] || usage "BENCH_SIZES=$SIZES: want 1g, 4g or both"
done
for tool in go zstd openssl rauc mksquashfs mkfs.ext4 debugfs /usr/bin/time; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install zstd openssl rauc squashfs-tools e2fsprogs time)"
done

mkdir -p "$BENCH_DIR"
OUT=$BENCH_DIR/out
LOG=$BENCH_DIR/log
rm -rf "$OUT"
mkdir -p "$OUT" "$LOG" "$BENCH_DIR/keys"
trap 'rm -rf "$OUT"' EXIT

# avail_bytes: free space where the bench writes.
avail_bytes() { echo $(($(df -Pk "$BENCH_DIR" | awk 'NR == 2 { print $4 }') * 1024)); }

# need BYTES WHAT: true when BYTES are free (with 1 GiB to spare).
need() {
	local avail
	avail=$(avail_bytes)
	((avail >= $1 + GIB)) && return 0
	echo "bench: $2 needs $(($1 / GIB + 1)) GiB free in $BENCH_DIR, $((avail / GIB)) GiB available" >&2
	return 1
}

echo "== setup"
FERRY=${BENCH_FERRY:-}
if [[ -z $FERRY ]]; then
	FERRY=$BENCH_DIR/ferry
	go build -o "$FERRY" ./cmd/ferry
fi
echo "ferry:   $("$FERRY" version)"
echo "zstd:    $(zstd -V)"
echo "rauc:    $(rauc --version 2>&1 | tail -1), $(mksquashfs -version 2>&1 | head -1)"
echo "openssl: $(openssl version)"
echo "host:    $(nproc) CPUs, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"

KEY=$BENCH_DIR/keys/ferry
if [[ ! -f $KEY.key ]]; then
	rm -f "$KEY.pub"
	FERRY_KEY_PASSPHRASE= "$FERRY" key generate -o "$KEY" >/dev/null
fi
CERT=$BENCH_DIR/keys/rauc
if [[ ! -f $CERT.key.pem || ! -f $CERT.cert.pem ]]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$CERT.key.pem" -out "$CERT.cert.pem" -days 36500 -subj /CN=ferry-bench 2>/dev/null
fi

# Results of the timed runs, by tool name.
declare -A WALL CPU RSS INPUT OUTPUT

# timed NAME WARM STDOUT CMD...: runs CMD with WARM read into the page cache
# beforehand and its standard output in STDOUT; keeps NAME's fastest wall
# time, least CPU time and highest peak RSS (KiB).
timed() {
	local name=$1 warm=$2 stdout=$3
	shift 3
	cat "$warm" >/dev/null
	sync
	local t0=$EPOCHREALTIME rc=0
	/usr/bin/time -f '%M %U %S' -o "$LOG/$name.time" "$@" >"$stdout" 2>"$LOG/$name.err" || rc=$?
	local t1=$EPOCHREALTIME
	if ((rc != 0)); then
		cat "$LOG/$name.err" >&2
		die "$name failed (exit $rc): $*"
	fi
	local wall rss user sys cpu
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	read -r rss user sys < <(tail -n1 "$LOG/$name.time")
	cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
	if [[ -z ${WALL[$name]:-} ]] || awk -v a="$wall" -v b="${WALL[$name]}" 'BEGIN { exit !(a < b) }'; then
		WALL[$name]=$wall
	fi
	if [[ -z ${CPU[$name]:-} ]] || awk -v a="$cpu" -v b="${CPU[$name]}" 'BEGIN { exit !(a < b) }'; then
		CPU[$name]=$cpu
	fi
	if ((rss > ${RSS[$name]:-0})); then
		RSS[$name]=$rss
	fi
}

ferry_create() { # IMAGE BUNDLE
	rm -f "$2"
	sync
	timed create "$1" /dev/null env SOURCE_DATE_EPOCH=$EPOCH FERRY_KEY_PASSPHRASE= \
		"$FERRY" bundle create "$1" --device-type bench-board --version 1.0.0 --name rootfs \
		--key "$KEY.key" --out "$2"
}

ferry_verify() { # BUNDLE
	timed verify "$1" /dev/null "$FERRY" verify "$1" --key "$KEY.pub" --device-type bench-board
}

size() { stat -c %s "$1"; }
mbs() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
verdict() { # OK TEXT
	if [[ $1 == 1 ]]; then echo "  met     $2"; else echo "  MISSED  $2"; fi
}

bench_1g() {
	need $((3 * GIB)) "the 1 GiB comparison" || die "not enough disk space"
	local img
	img=$(scripts/bench-mkimage.sh 1g)
	echo "== 1 GiB image: $img ($(size "$img") bytes, sha256 $(cut -c1-16 "$img.sha256")...)"
	local content=$OUT/rauc-content
	mkdir -p "$content"
	ln -f "$img" "$content/rootfs.img" 2>/dev/null || cp "$img" "$content/rootfs.img"
	cat >"$content/manifest.raucm" <<-EOF
		[update]
		compatible=ferry-bench
		version=1.0.0

		[bundle]
		format=verity

		[image.rootfs]
		filename=rootfs.img
	EOF
	local round
	for ((round = 1; round <= RUNS; round++)); do
		echo "round $round of $RUNS ..."
		timed sha256 "$img" /dev/null openssl dgst -sha256 "$img"
		timed zstd "$img" "$OUT/rootfs.img.zst" zstd -3 -T0 -c "$img"
		rm -f "$OUT/rootfs.raucb"
		timed rauc "$img" /dev/null rauc bundle --cert="$CERT.cert.pem" --key="$CERT.key.pem" \
			--mksquashfs-args='-comp zstd -Xcompression-level 3' "$content" "$OUT/rootfs.raucb"
		ferry_create "$img" "$OUT/rootfs.ferry"
		timed sha256-bundle "$OUT/rootfs.ferry" /dev/null openssl dgst -sha256 "$OUT/rootfs.ferry"
		ferry_verify "$OUT/rootfs.ferry"
	done
	local n=$(size "$img")
	INPUT=([sha256]=$n [zstd]=$n [rauc]=$n [create]=$n)
	OUTPUT=([zstd]=$(size "$OUT/rootfs.img.zst") [rauc]=$(size "$OUT/rootfs.raucb") [create]=$(size "$OUT/rootfs.ferry"))
	INPUT[sha256-bundle]=${OUTPUT[create]}
	INPUT[verify]=${OUTPUT[create]}

	echo
	echo "== 1 GiB summary (best of $RUNS rounds; MB = 10^6 bytes; load now $(cut -d' ' -f1-3 /proc/loadavg))"
	printf '%-30s %8s %8s %11s %8s %9s %8s %7s\n' tool "wall s" "MB/s" "output MB" "vs zstd" "RSS MiB" "x zstd" "CPU s"
	local t label zwall=${WALL[zstd]} zout=${OUTPUT[zstd]}
	for t in sha256 zstd rauc create sha256-bundle verify; do
		case $t in
		sha256) label="openssl dgst -sha256 (image)" ;;
		zstd) label="zstd -3 -T0" ;;
		rauc) label="rauc bundle (verity, zstd 3)" ;;
		create) label="ferry bundle create" ;;
		sha256-bundle) label="openssl dgst -sha256 (bundle)" ;;
		verify) label="ferry verify (bundle)" ;;
		esac
		local out=- vs=-
		if [[ -n ${OUTPUT[$t]:-} ]]; then
			out=$(awk -v b="${OUTPUT[$t]}" 'BEGIN { printf "%.1f", b / 1e6 }')
			vs=$(awk -v a="${OUTPUT[$t]}" -v z="$zout" 'BEGIN { printf "%+.2f%%", (a / z - 1) * 100 }')
		fi
		printf '%-30s %8.2f %8s %11s %8s %9s %8s %7.2f\n' "$label" "${WALL[$t]}" "$(mbs "${INPUT[$t]}" "${WALL[$t]}")" \
			"$out" "$vs" "$(mib "${RSS[$t]}")" "$(awk -v a="${WALL[$t]}" -v z="$zwall" 'BEGIN { printf "%.2f", a / z }')" "${CPU[$t]}"
	done

	echo
	echo "== 1 GiB targets"
	local ok
	ok=$(awk -v a="${WALL[create]}" -v b="${WALL[rauc]}" 'BEGIN { print (a < b) ? 1 : 0 }')
	verdict "$ok" "create faster than rauc with zstd 3: $(awk -v a="${WALL[create]}" -v b="${WALL[rauc]}" -v z="$zwall" \
		'BEGIN { printf "%.2f× vs %.2f× the zstd time (%.2f s vs %.2f s)", a / z, b / z, a, b }')"
	ok=$(awk -v a="${OUTPUT[create]}" -v z="$zout" 'BEGIN { print (a <= z * 1.02) ? 1 : 0 }')
	verdict "$ok" "bundle within 2 % of zstd -3's size: $(awk -v a="${OUTPUT[create]}" -v z="$zout" \
		'BEGIN { printf "%+.2f%% (%d vs %d bytes)", (a / z - 1) * 100, a, z }')"
	ok=$(awk -v v="${WALL[verify]}" -v s="${WALL[sha256-bundle]}" 'BEGIN { print (s / v >= 0.8) ? 1 : 0 }')
	verdict "$ok" "verify ≥ 80 % of openssl sha256 over the bundle: $(awk -v v="${WALL[verify]}" -v s="${WALL[sha256-bundle]}" \
		-v n="${INPUT[verify]}" 'BEGIN { printf "%.0f%% (%.0f vs %.0f MB/s)", s / v * 100, n / v / 1e6, n / s / 1e6 }')"
	ok=$(((RSS[create] < 100 * 1024 && RSS[verify] < 100 * 1024) ? 1 : 0))
	verdict "$ok" "peak RSS < 100 MiB: create $(mib "${RSS[create]}") MiB, verify $(mib "${RSS[verify]}") MiB"
	rm -rf "$OUT"/*
}

bench_4g() {
	local want=$((4 * GIB)) # the bundle of a 4 GiB image that is mostly random
	[[ -f $BENCH_DIR/rootfs-4g.img ]] || want=$((want + 4 * GIB))
	if ! need "$want" "the 4 GiB memory check"; then
		$explicit_4g && die "not enough disk space for BENCH_SIZES=4g"
		echo "bench: skipping the 4 GiB memory check"
		return
	fi
	local img
	img=$(scripts/bench-mkimage.sh 4g)
	echo
	echo "== 4 GiB image: $img ($(size "$img") bytes): create and verify, peak RSS"
	unset 'WALL[create]' 'WALL[verify]' 'CPU[create]' 'CPU[verify]' 'RSS[create]' 'RSS[verify]'
	ferry_create "$img" "$OUT/rootfs-4g.ferry"
	ferry_verify "$OUT/rootfs-4g.ferry"
	local b
	b=$(size "$OUT/rootfs-4g.ferry")
	printf '%-30s %8s %8s %11s %9s %7s\n' tool "wall s" "MB/s" "output MB" "RSS MiB" "CPU s"
	printf '%-30s %8.2f %8s %11.1f %9s %7.2f\n' "ferry bundle create" "${WALL[create]}" "$(mbs "$(size "$img")" "${WALL[create]}")" \
		"$(awk -v b="$b" 'BEGIN { print b / 1e6 }')" "$(mib "${RSS[create]}")" "${CPU[create]}"
	printf '%-30s %8.2f %8s %11s %9s %7.2f\n' "ferry verify (bundle)" "${WALL[verify]}" "$(mbs "$b" "${WALL[verify]}")" - \
		"$(mib "${RSS[verify]}")" "${CPU[verify]}"
	local ok=$(((RSS[create] < 100 * 1024 && RSS[verify] < 100 * 1024) ? 1 : 0))
	verdict "$ok" "peak RSS < 100 MiB on 4 GiB: create $(mib "${RSS[create]}") MiB, verify $(mib "${RSS[verify]}") MiB"
	rm -rf "$OUT"/*
}

for s in $SIZES; do
	case $s in
	1g) bench_1g ;;
	4g) bench_4g ;;
	esac
done
