#!/usr/bin/env bash
# bench-agent.sh measures ferry-agent's install against the limit the issue
# sets for it, on the cached deterministic images of scripts/bench-mkimage.sh:
#
#   throughput  a 1 GiB rootfs bundle installed from a local file into a file
#               slot (read, verify, decompress, hash, write, fsync), beside
#                 zstd -dc PAYLOAD | tee SLOT | openssl dgst -sha256; sync SLOT
#               on the same payload (its zstd parts, concatenated, as the
#               bundle holds them). Both end with the slot on disk. Target:
#               the agent reaches 80 % of the pipeline's MB/s.
#   memory      peak RSS (GNU time's %M) of ferry-agent install for the 1 GiB
#               and the 4 GiB bundle. Target: under 100 MiB, flat.
#   encryption  the same bundles with their payload encrypted to the device
#               (bundle create --encrypt-to, bundle/FORMAT.md §6.3), installed
#               in the same rounds. Target: at least 80 % of the clear
#               install's MB/s, peak RSS as flat. Then the age header for
#               10,000 recipients (go test -bench BenchmarkAgeHeader10k
#               ./bundle): its size, and the time to make it and to unwrap
#               the file key as the first and as the last recipient.
#
# ferry-agent is built as it ships to devices: CGO_ENABLED=0 (pure-Go zstd).
# Caches are never dropped; every input is read once before each timed
# command, and `sync` runs before each, so no command pays for another's
# writes. The commands run in BENCH_RUNS interleaved rounds; each reports
# its fastest round and the highest peak RSS. Nothing fails on a missed
# target: the exit status is 0 unless a tool could not run.
#
# Standalone (scripts/bench.sh, `make bench`, may call it):
#   scripts/bench-agent.sh
# Knobs (environment):
#   BENCH_DIR    cache and scratch directory (default .bench, gitignored);
#                this script keeps its files in BENCH_DIR/agent
#   BENCH_SIZES  "1g 4g" (default), "1g" or "4g"; 4g only measures memory
#                and is skipped when the disk lacks room for it
#   BENCH_RUNS   rounds of the 1 GiB comparison (default 3)
#   FERRY        a ferry binary to pack the bundles with (default: built)
#
# Exit status: 0 done, 1 a tool failed or is missing, 2 usage.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
export BENCH_DIR=${BENCH_DIR:-.bench}
RUNS=${BENCH_RUNS:-3}
SIZES=${BENCH_SIZES:-1g 4g}
WORK=$BENCH_DIR/agent
MIB=$((1 << 20))
export SOURCE_DATE_EPOCH=1700000000 FERRY_KEY_PASSPHRASE=

die() { echo "bench-agent: error: $*" >&2; exit 1; }
usage() { echo "bench-agent: usage: $*" >&2; exit 2; }
log() { echo "bench-agent: $*" >&2; }
trap 'die "command failed at line $LINENO"' ERR

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || usage "BENCH_RUNS=$RUNS: want a positive number"
for s in $SIZES; do
	[[ $s == 1g || $s == 4g ]] || usage "BENCH_SIZES=$SIZES: want 1g and/or 4g"
done
for tool in go zstd tee openssl /usr/bin/time; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install zstd openssl time)"
done

mkdir -p "$WORK"
if [[ -z ${FERRY:-} ]]; then
	log "building ferry"
	go build -o "$WORK/ferry" ./cmd/ferry
	FERRY=$WORK/ferry
fi
log "building ferry-agent (CGO_ENABLED=0, as on devices)"
CGO_ENABLED=0 go build -trimpath -o "$WORK/ferry-agent" ./cmd/ferry-agent
AGENT=$WORK/ferry-agent
[[ -f $WORK/key.key ]] || "$FERRY" key generate --out "$WORK/key" >/dev/null 2>&1
# The simulated device's age identity, made once by ferry-agent itself and
# provisioned to every fresh device; device.jsonl is its identity line.
if [[ ! -f $WORK/device.age || ! -s $WORK/device.jsonl ]]; then
	rm -rf "$WORK/idstate"
	mkdir -p "$WORK/idstate"
	printf 'device_type = "bench-board"\nstate_dir = "%s"\n[trust]\nkeys = ["%s"]\n[slots.rootfs]\na = "a"\nb = "b"\n[boot]\nbackend = "file"\npath = "bootenv"\n' \
		"$(realpath "$WORK/idstate")" "$(realpath "$WORK/key.pub")" >"$WORK/idstate/agent.toml"
	"$AGENT" -c "$WORK/idstate/agent.toml" identity --json >"$WORK/device.jsonl" 2>/dev/null
	mv "$WORK/idstate/identity/device.age" "$WORK/device.age"
	rm -rf "$WORK/idstate"
fi

# bundle SIZE [age]: builds (or reuses) WORK/bench-SIZE.ferry from the
# cached image (WORK/bench-SIZE-age.ferry, encrypted to the device, with
# age), and for the clear 1g one WORK/payload-1g.zst, its payload's zstd
# parts concatenated (the pipeline's input).
bundle() {
	local img b=$WORK/bench-$1${2:+-$2}.ferry stamp enc=()
	img=$(scripts/bench-mkimage.sh "$1")
	stamp="$(cat "$img.sha256") $(sha256sum <"$WORK/key.pub" | cut -c1-16)"
	if [[ ${2:-} == age ]]; then
		enc=(--encrypt-to-file "$WORK/device.jsonl")
		stamp="$stamp $(sha256sum <"$WORK/device.jsonl" | cut -c1-16)"
	fi
	if [[ ! -f $b || ! -f $b.stamp || $(<"$b.stamp") != "$stamp" ]]; then
		log "packing $img into $b"
		rm -f "$b.stamp" "$b"
		"$FERRY" bundle create "$img" --name bench --version 1.0.0 --device-type bench-board \
			--key "$WORK/key.key" "${enc[@]}" --out "$b" >/dev/null
		echo "$stamp" >"$b.stamp"
	fi
	if [[ $1 == 1g && -z ${2:-} && (! -f $WORK/payload-1g.zst || $WORK/payload-1g.zst -ot $b.stamp) ]]; then
		local parts=()
		mapfile -t parts < <("$FERRY" bundle inspect --json "$b" |
			sed -n '/"layers"/,/^  \]/s/.*"digest": "sha256:\([0-9a-f]*\)".*/blobs\/sha256\/\1/p')
		((${#parts[@]} > 0)) || die "no payload parts in $b"
		# Members are extracted in archive order, which is part order.
		tar -xOf "$b" "${parts[@]}" >"$WORK/payload-1g.zst.tmp"
		mv "$WORK/payload-1g.zst.tmp" "$WORK/payload-1g.zst"
	fi
	echo "$b"
}

# device SIZE: a fresh simulated device (file slots, file boot env, no
# reboot, no health check) whose slot b receives the install.
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
		[identity]
		age_key = "$(realpath "$WORK/device.age")"
	EOF
	echo "$d"
}

# timed NAME CMD...: runs CMD under GNU time after a sync; sets SECS and
# RSS_KIB.
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

warm() { cat "$@" >/dev/null; }

declare -A best_secs peak_kib
record() {
	local k=$1
	if [[ -z ${best_secs[$k]:-} ]] || awk -v a="$SECS" -v b="${best_secs[$k]}" 'BEGIN { exit !(a < b) }'; then
		best_secs[$k]=$SECS
	fi
	if ((RSS_KIB > ${peak_kib[$k]:-0})); then
		peak_kib[$k]=$RSS_KIB
	fi
}

install_once() { # KEY BUNDLE
	local d
	d=$(device)
	warm "$2"
	timed "ferry-agent install" "$AGENT" -c "$d/agent.toml" install "$2"
	record "agent-$1"
}

limit_once() { # SIZE
	local slot=$WORK/limit-slot.img
	rm -f "$slot"
	warm "$WORK/payload-$1.zst"
	timed "zstd | tee | openssl" bash -c 'set -o pipefail; zstd -dc "$1" | tee "$2" | openssl dgst -sha256 >/dev/null && sync "$2"' _ "$WORK/payload-$1.zst" "$slot"
	record "limit-$1"
	rm -f "$slot"
}

mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }

for size in $SIZES; do
	if [[ $size == 4g ]]; then
		avail=$(df -Pk "$BENCH_DIR" | awk 'NR == 2 { print $4 }')
		have=0
		[[ -f $WORK/bench-4g.ferry ]] && have=1
		if ((avail < (have ? 6 : 10) * 1024 * 1024)); then
			log "skipping 4g: $((avail / 1024 / 1024)) GiB free in $BENCH_DIR"
			continue
		fi
	fi
	b=$(bundle "$size")
	e=$(bundle "$size" age)
	bytes=$(stat -c %s "$(scripts/bench-mkimage.sh "$size")")
	if [[ $size == 1g ]]; then
		log "1g: $RUNS interleaved rounds of the pipeline, the agent, and the agent on the encrypted bundle"
		for ((i = 1; i <= RUNS; i++)); do
			limit_once 1g
			install_once 1g "$b"
			install_once 1g-age "$e"
		done
		l=${best_secs[limit-1g]} a=${best_secs[agent-1g]} ae=${best_secs[agent-1g-age]}
		printf '\ninstall of a %d MiB payload into a file slot (fastest of %d):\n' $((bytes / MIB)) "$RUNS"
		printf '  %-52s %7.2f s  %5s MB/s  %4d MiB RSS\n' "zstd -dc | tee SLOT | openssl dgst -sha256; sync" "$l" "$(mbps "$bytes" "$l")" $((peak_kib[limit-1g] / 1024))
		printf '  %-52s %7.2f s  %5s MB/s  %4d MiB RSS\n' "ferry-agent install (CGO_ENABLED=0)" "$a" "$(mbps "$bytes" "$a")" $((peak_kib[agent-1g] / 1024))
		printf '  %-52s %7.2f s  %5s MB/s  %4d MiB RSS\n' "ferry-agent install, encrypted (age)" "$ae" "$(mbps "$bytes" "$ae")" $((peak_kib[agent-1g-age] / 1024))
		awk -v l="$l" -v a="$a" 'BEGIN { r = l / a; printf "  ratio %.2f of the pipeline (target >= 0.80): %s\n", r, (r >= 0.8 ? "met" : "MISSED") }'
		awk -v a="$a" -v e="$ae" 'BEGIN { r = a / e; printf "  encrypted: ratio %.2f of the clear install (target >= 0.80): %s\n", r, (r >= 0.8 ? "met" : "MISSED") }'
	else
		log "4g: one install each, clear and encrypted, for peak RSS"
		install_once 4g "$b"
		install_once 4g-age "$e"
		printf '\ninstall of a %d MiB payload: %.1f s, %s MB/s; encrypted %.1f s, %s MB/s\n' $((bytes / MIB)) \
			"${best_secs[agent-4g]}" "$(mbps "$bytes" "${best_secs[agent-4g]}")" "${best_secs[agent-4g-age]}" "$(mbps "$bytes" "${best_secs[agent-4g-age]}")"
	fi
done

printf '\npeak RSS of ferry-agent install (target < 100 MiB):'
for size in $SIZES; do
	for k in "$size" "$size-age"; do
		[[ -n ${peak_kib[agent-$k]:-} ]] || continue
		kib=${peak_kib[agent-$k]}
		printf '  %s bundle %d MiB%s' "$k" $((kib / 1024)) "$( ((kib < 100 * 1024)) && echo "" || echo " (MISSED)")"
	done
done
printf '\n'

log "age header for 10,000 recipients"
printf '\nage header for 10,000 X25519 recipients (BenchmarkAgeHeader10k):\n'
go test -run '^$' -bench 'BenchmarkAgeHeader10k' -benchtime 3x ./bundle |
	awk '/^BenchmarkAgeHeader10k\// { sub(/-[0-9]+$/, "", $1); sub(/.*\//, "", $1); line = sprintf("  %-14s %8.3f s", $1, $3 / 1e9); if ($6 == "header-bytes") line = line sprintf("  %d bytes", $5); print line }'
rm -rf "$WORK/device"
