#!/usr/bin/env bash
# bench-delta.sh measures ferry's delta updates (bundle/FORMAT.md §15)
# against the delta tools they are judged by ("make bench").
#
# Image pairs (scripts/bench-mkdelta.sh): the bench's 1 GiB ext4 image v1
# and
#   inplace  v2 = v1 with 5.4 % of its blocks changed in place
#   shift    v2 = v1 with 30 MiB of files removed and as much added
# For each pair, side by side in one run:
#   ferry    bytes a device fetches in a real delta install from `ferry
#            mirror serve`, as the agent counts them: the delta stream
#            (bundle/FORMAT.md §15.9) and any chunk it fetched by range
#            besides (timed from the mirror's cache; the first device,
#            which waits while the mirror makes the stream, is shown too);
#            the mirror's time and peak RSS making the stream;
#            beside it the frame path (a mirror that lacks v1, so the
#            device fetches the chunks it lacks and the chunk index by
#            range; `ferry bundle diff` predicts that);
#            the parts a mirror holding v1 adds for v2, and the bytes
#            `ferry mirror sync` moves for them from `ferry mirror serve`
#            (chunk level, bundle/FORMAT.md §15.8) against whole packs
#   xdelta3 -e -B 1073741824 -s v1 v2          size of the delta
#   zstd -3 --long=31 --patch-from=v1 v2       size of the patch
#   casync make of v2 into v1's store          bytes of new chunk files
# with each tool's peak RSS (GNU time's %M) and wall time, and for ferry
# also: the peak RSS of `bundle create --delta` (host) and of the delta
# install (device, ferry-agent built with CGO_ENABLED=0), and the time of
# the delta install against a full install of v2 from a local file.
# Targets: pair inplace fetches at most 60 MB, both pairs within 1.1x of
# xdelta3;
# peak RSS under 100 MiB on host and device; the delta install no slower
# than the full one. Nothing fails on a missed target: the exit status is
# 0 unless a tool could not run.
#
# Knobs: BENCH_DIR (default .bench), BENCH_PAIRS ("inplace shift"),
# BENCH_CHUNK (ferry's --chunk-size, default 16KiB), BENCH_OTHERS (1; 0
# measures ferry alone, without xdelta3, zstd and casync).
# Exit status: 0 done, 1 a tool failed or is missing, 2 usage.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
export BENCH_DIR=${BENCH_DIR:-.bench}
PAIRS=${BENCH_PAIRS:-inplace shift}
CHUNK=${BENCH_CHUNK:-16KiB}
OTHERS=${BENCH_OTHERS:-1}
WORK=$BENCH_DIR/delta
export SOURCE_DATE_EPOCH=1700000000 FERRY_KEY_PASSPHRASE=

die() { echo "bench-delta: error: $*" >&2; exit 1; }
usage() { echo "bench-delta: usage: $*" >&2; exit 2; }
log() { echo "bench-delta: $*" >&2; }
trap 'die "command failed at line $LINENO"' ERR

for p in $PAIRS; do
	[[ $p == inplace || $p == shift ]] || usage "BENCH_PAIRS=$PAIRS: want inplace and/or shift"
done
for tool in go xdelta3 zstd casync curl /usr/bin/time; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install xdelta3 zstd casync curl time)"
done

rm -rf "$WORK/mirror" "$WORK/mirror-frames" "$WORK/device"
mkdir -p "$WORK"
log "building ferry and ferry-agent (CGO_ENABLED=0, as on devices)"
go build -o "$WORK/ferry" ./cmd/ferry
CGO_ENABLED=0 go build -trimpath -o "$WORK/ferry-agent" ./cmd/ferry-agent
FERRY=$WORK/ferry AGENT=$WORK/ferry-agent
[[ -f $WORK/key.key ]] || "$FERRY" key generate --out "$WORK/key" >/dev/null 2>&1

# timed NAME CMD...: runs CMD, sets SECS and RSS_KIB.
timed() {
	local name=$1 out=$WORK/time.out
	shift
	sync
	if ! /usr/bin/time -f '%e %M' -o "$out" "$@" >"$WORK/cmd.log" 2>&1; then
		cat "$WORK/cmd.log" >&2
		die "$name failed"
	fi
	read -r SECS RSS_KIB <"$out"
}

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
row() { printf '  %-44s %9s MB  %7.1f s  %5d MiB RSS\n' "$1" "$(mb "$2")" "$3" $(($4 / 1024)); }

pack() { # IMG VERSION OUT
	timed "ferry bundle create --delta" "$FERRY" bundle create "$1" --delta --chunk-size "$CHUNK" --name bench \
		--version "$2" --device-type bench-board --key "$WORK/key.key" --out "$3" --force
}

# device: a simulated device with file slots that runs v1 (installed from
# its chunked bundle into slot b and committed).
device() {
	local d=$WORK/device
	rm -rf "$d"
	mkdir -p "$d"
	: >"$d/slot-a.img"
	: >"$d/slot-b.img"
	echo "ferry_slot=a" >"$d/bootenv"
	cat >"$d/agent.toml" <<-EOF
		device_type = "bench-board"
		state_dir = "state"
		reboot_command = "true"
		[trust]
		keys = ["$(realpath "$WORK/key.pub")"]
		[slots.rootfs]
		a = "slot-a.img"
		b = "slot-b.img"
		[boot]
		backend = "file"
		path = "bootenv"
		cmdline = "none"
	EOF
	"$AGENT" -c "$d/agent.toml" install "$WORK/v1.ferry" >/dev/null 2>&1 || die "install of v1 failed"
	"$AGENT" -c "$d/agent.toml" boot-check >/dev/null 2>&1 || die "boot-check of v1 failed"
	echo "$d"
}

v1=$(scripts/bench-mkimage.sh 1g)
# v1's bundles are kept while ferry, the image and the chunk size are.
stamp="$(sha256sum <"$FERRY" | cut -c1-16) $(<"$v1.sha256") $CHUNK"
if [[ ! -f $WORK/v1.stamp || $(<"$WORK/v1.stamp") != "$stamp" ]]; then
	log "packing v1 with --delta --chunk-size $CHUNK, and without"
	rm -f "$WORK/v1.stamp"
	pack "$v1" 1.0.0 "$WORK/v1.ferry"
	echo "$SECS $RSS_KIB" >"$WORK/v1.create"
	"$FERRY" bundle create "$v1" --name bench --version 1.0.0 --device-type bench-board \
		--key "$WORK/key.key" --out "$WORK/v1-plain.ferry" --force >/dev/null
	echo "$stamp" >"$WORK/v1.stamp"
fi
read -r create_secs create_rss <"$WORK/v1.create"
v1_size=$(stat -c %s "$WORK/v1.ferry") plain_size=$(stat -c %s "$WORK/v1-plain.ferry")

# mirror holds v1 and v2 (the device gets the delta stream), mirror-frames
# v2 only (no base for the stream: the device fetches frames by range).
"$FERRY" mirror init "$WORK/mirror" --key "$WORK/key.key" >/dev/null
"$FERRY" mirror init "$WORK/mirror-frames" --key "$WORK/key.key" >/dev/null
port=$((20000 + RANDOM % 20000)) fport=$((40000 + RANDOM % 20000))
"$FERRY" mirror serve "$WORK/mirror" --listen "127.0.0.1:$port" >"$WORK/serve.log" 2>&1 &
serve_pid=$!
"$FERRY" mirror serve "$WORK/mirror-frames" --listen "127.0.0.1:$fport" >"$WORK/serve-frames.log" 2>&1 &
fserve_pid=$!
trap 'kill $serve_pid $fserve_pid 2>/dev/null; die "command failed at line $LINENO"' ERR
trap 'kill $serve_pid $fserve_pid 2>/dev/null' EXIT
for p in $port $fport; do
	for _ in $(seq 50); do
		curl -fsS "http://127.0.0.1:$p/v2/" >/dev/null 2>&1 && break
		sleep 0.2
	done
done

printf '\ndelta updates of the bench'"'"'s 1 GiB ext4 image (ferry: --chunk-size %s)\n' "$CHUNK"
printf '  chunked bundle of v1: %s MB, %.1f %% more than without --delta (%s MB); create %.1f s, %d MiB RSS\n' \
	"$(mb "$v1_size")" "$(awk -v a="$v1_size" -v b="$plain_size" 'BEGIN { print 100 * (a - b) / b }')" "$(mb "$plain_size")" \
	"$create_secs" $((create_rss / 1024))

for pair in $PAIRS; do
	v2=$(scripts/bench-mkdelta.sh "$pair")
	log "$pair: packing v2"
	ver=2.0.$([[ $pair == inplace ]] && echo 1 || echo 2)
	pack "$v2" "$ver" "$WORK/v2.ferry"
	"$FERRY" mirror add "$WORK/mirror" "$WORK/v1.ferry" "$WORK/v2.ferry" >/dev/null
	"$FERRY" mirror add "$WORK/mirror-frames" "$WORK/v2.ferry" >/dev/null
	diff_json=$("$FERRY" bundle diff --json "$WORK/v1.ferry" "$WORK/v2.ferry")
	predicted=$(sed -n 's/^ *"fetch": \([0-9]*\),$/\1/p' <<<"$diff_json")
	mirror_new=$(sed -n 's/^ *"newPartBytes": \([0-9]*\)$/\1/p' <<<"$diff_json")

	printf '\npair %s (v1 -> v2):\n' "$pair"
	log "$pair: delta install from ferry mirror serve (delta stream)"
	d=$(device)
	# The first device makes the mirror make the stream (sent as it is
	# made); the next ones, timed, get it from the mirror's cache.
	timed "ferry-agent delta install (stream being made)" "$AGENT" -c "$d/agent.toml" install --plain-http "oci://127.0.0.1:$port/bench:$ver"
	cold_secs=$SECS
	"$AGENT" -c "$d/agent.toml" rollback >/dev/null 2>&1 || die "rollback failed"
	timed "ferry-agent delta install" "$AGENT" -c "$d/agent.toml" install --plain-http "oci://127.0.0.1:$port/bench:$ver"
	delta_secs=$SECS delta_rss=$RSS_KIB
	grep -q "delta from slot b" "$WORK/cmd.log" || die "the install was no delta install: $(cat "$WORK/cmd.log")"
	grep -q "delta stream from the mirror" "$WORK/cmd.log" || die "the install used no delta stream: $(cat "$WORK/cmd.log")"
	streamed=$(sed -n 's/.* decoded from the delta stream of \([0-9]*\) bytes.*/\1/p' "$WORK/cmd.log")
	chunks=$(sed -n 's/.* fetched (\([0-9]*\) bytes).*/\1/p' "$WORK/cmd.log")
	cmp -s "$d/slot-a.img" "$v2" || die "the delta install did not write v2"
	fetched=$((streamed + chunks))
	row "ferry (delta stream + chunks a device fetches)" "$fetched" "$delta_secs" "$delta_rss"
	made=$(sed -n 's/.*delta stream of bench .* made in \([0-9.]*\)\(m\?s\)$/\1 \2/p' "$WORK/serve.log" | tail -1)
	gen_rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$serve_pid/status")
	printf '  %-44s %9s     %7s    %5d MiB RSS (ferry mirror serve, peak so far)\n' "mirror makes the delta stream" "" "$made" $((gen_rss / 1024))
	printf '  %-44s %9s     %7.1f s  (the first device, while the mirror makes the stream)\n' "ferry-agent delta install, stream being made" "" "$cold_secs"

	log "$pair: delta install by frames (a mirror without v1)"
	"$AGENT" -c "$d/agent.toml" rollback >/dev/null 2>&1 || die "rollback failed"
	timed "ferry-agent delta install (frames)" "$AGENT" -c "$d/agent.toml" install --plain-http "oci://127.0.0.1:$fport/bench:$ver"
	grep -q "no delta stream" "$WORK/cmd.log" || die "the frame install used a delta stream: $(cat "$WORK/cmd.log")"
	cmp -s "$d/slot-a.img" "$v2" || die "the frame delta install did not write v2"
	fchunks=$(sed -n 's/.* fetched (\([0-9]*\) bytes).*/\1/p' "$WORK/cmd.log")
	index=$(sed -n 's/^ *"indexBytes": \([0-9]*\),$/\1/p' <<<"$diff_json")
	frames=$((fchunks + index))
	row "ferry frame path (chunks + index by range)" "$frames" "$SECS" "$RSS_KIB"
	printf '  %-44s %9s MB predicted by ferry bundle diff; a mirror holding v1 adds %s MB of parts\n' "" "$(mb "$predicted")" "$(mb "$mirror_new")"

	log "$pair: mirror sync of v2 from ferry mirror serve into a mirror holding v1"
	rm -rf "$WORK/down"
	"$FERRY" mirror init "$WORK/down" --key "$WORK/key.key" >/dev/null
	"$FERRY" mirror sync "$WORK/down" --from "$WORK/v1.ferry" >/dev/null
	timed "ferry mirror sync" "$FERRY" mirror sync "$WORK/down" --from "oci://127.0.0.1:$port/bench:$ver" --plain-http --json
	synced=$(sed -n 's/^ *"bytesFetched": \([0-9]*\),$/\1/p' "$WORK/cmd.log")
	[[ -n $synced ]] || die "mirror sync printed no bytesFetched: $(cat "$WORK/cmd.log")"
	row "ferry mirror sync v1 -> v2 (chunks; before: packs)" "$synced" "$SECS" "$RSS_KIB"
	printf '  %-44s %9s MB moved by a pack-level sync (the new packs)\n' "" "$(mb "$mirror_new")"
	rm -rf "$WORK/down"

	"$AGENT" -c "$d/agent.toml" rollback >/dev/null 2>&1 || die "rollback failed"
	timed "ferry-agent full install" "$AGENT" -c "$d/agent.toml" install "$WORK/v2.ferry"
	full_secs=$SECS full_rss=$RSS_KIB
	printf '  %-44s %9s     %7.1f s  %5d MiB RSS\n' "ferry-agent full install of v2 from a file" "" "$full_secs" $((full_rss / 1024))

	if [[ $OTHERS == 1 ]]; then
	log "$pair: xdelta3"
	timed xdelta3 xdelta3 -e -f -B 1073741824 -s "$v1" "$v2" "$WORK/v2.xdelta"
	xd=$(stat -c %s "$WORK/v2.xdelta")
	row "xdelta3 -e -B 1073741824 -s v1 v2" "$xd" "$SECS" "$RSS_KIB"
	rm -f "$WORK/v2.xdelta"

	log "$pair: zstd --patch-from"
	timed "zstd --patch-from" zstd -3 -f --long=31 --patch-from="$v1" "$v2" -o "$WORK/v2.zst-patch"
	row "zstd -3 --long=31 --patch-from=v1 v2" "$(stat -c %s "$WORK/v2.zst-patch")" "$SECS" "$RSS_KIB"
	rm -f "$WORK/v2.zst-patch"

	log "$pair: casync"
	rm -rf "$WORK/castore"
	casync make --store="$WORK/castore" "$WORK/v1.caibx" "$v1" >/dev/null
	before=$(find "$WORK/castore" -type f -name '*.cacnk' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
	timed "casync make" casync make --store="$WORK/castore" "$WORK/v2.caibx" "$v2"
	after=$(find "$WORK/castore" -type f -name '*.cacnk' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
	row "casync make v2 into v1's store (new chunks)" "$((after - before))" "$SECS" "$RSS_KIB"
	rm -rf "$WORK/castore" "$WORK"/*.caibx
	fi

	if [[ $OTHERS == 0 ]]; then
		printf '  targets: fetched %s MB (frame path %s MB)\n' "$(mb "$fetched")" "$(mb "$frames")"
	elif [[ $pair == inplace ]]; then
		awk -v f="$fetched" -v x="$xd" -v fr="$frames" 'BEGIN { printf "  targets: fetched %.1f MB (<= 60 MB: %s), %.2fx xdelta3 (<= 1.1: %s; frame path %.1f MB, %.2fx)\n", f / 1e6, (f <= 60e6 ? "met" : "MISSED"), f / x, (f / x <= 1.1 ? "met" : "MISSED"), fr / 1e6, fr / x }'
	else
		awk -v f="$fetched" -v x="$xd" -v fr="$frames" 'BEGIN { printf "  targets: fetched %.1f MB, %.2fx xdelta3 (<= 1.1: %s; frame path %.2fx)\n", f / 1e6, f / x, (f / x <= 1.1 ? "met" : "MISSED"), fr / x }'
	fi
	awk -v h="$create_rss" -v m="$gen_rss" -v d="$delta_rss" -v ds="$delta_secs" -v fs="$full_secs" 'BEGIN {
		printf "  targets: peak RSS host %d MiB (create), %d MiB (mirror serve), device %d MiB (< 100: %s); delta install %.1f s vs full %.1f s (%s)\n",
			h / 1024, m / 1024, d / 1024, (h < 102400 && m < 102400 && d < 102400 ? "met" : "MISSED"), ds, fs, (ds <= fs ? "met" : "MISSED") }'
done
