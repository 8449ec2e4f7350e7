#!/usr/bin/env bash
# bench-fleet.sh is the fleet's scale benchmark (to be called from "make
# bench"; docs/fleet.md, "Scale"): BENCH_FLEET_DEVICES simulated managed
# devices (default 10,000), each polling a real 'ferry mirror serve' every
# BENCH_FLEET_INTERVAL seconds (default 60: some 170 polls a second, the
# load of 100,000 devices polling every ten minutes) with a signed
# assignment request and a signed check-in, while BENCH_FLEET_DOWNLOAD of
# them (default 200, spread evenly over the devices' poll offsets, so the
# downloads start spread over the interval), assigned a bundle of
# BENCH_FLEET_MIB MiB by a deployment, download it in Range requests
# paced to BENCH_FLEET_RATE_KIB KiB/s each. Once on SQLite, once on
# PostgreSQL.
#
# For each database it makes a mirror, adds the bundle (cached in
# BENCH_DIR, the one bench-mirror.sh makes), enrolls the devices from the
# generator's list with 'ferry fleet enroll --file', deploys the bundle to
# the downloading devices ('ferry fleet deploy --filter'), serves the mirror
# with its default limits on a loopback port, and runs the load generator
# (cmd/ferry-loadgen, package internal/fleetload) for BENCH_FLEET_SECONDS.
# Each device connects from its own loopback address (127.1.x.y), so the
# per-client limits apply as they would to a real fleet. Then the generator
# checks the database: every check-in a device sent must be recorded.
#
# PostgreSQL is Debian's, started by this script the way the tests start it
# (internal/testtool: initdb in a temporary directory, a Unix socket only,
# as the user nobody when run as root), but durable: fsync and
# synchronous_commit stay on, as in production (the tests turn fsync off).
#
# It prints, per database: the load average (1 min) before and after,
# check-in and assignment latencies (p50/p99/max, measured from each poll's
# intended start: open-loop), errors, lost reports, the mirror's peak RSS
# (VmHWM) and CPU time, and the database's growth per check-in with its
# extrapolation to 10,000 device-days. Targets: check-in p99 under 50 ms,
# zero lost reports.
#
# Knobs (environment):
#   BENCH_DIR              cache and scratch directory (default .bench)
#   BENCH_FLEET_DEVICES    simulated devices (default 10000)
#   BENCH_FLEET_DOWNLOAD   of them downloading the bundle (default 200)
#   BENCH_FLEET_INTERVAL   seconds between a device's polls (default 60)
#   BENCH_FLEET_SECONDS    how long polls are started (default 330: every
#                          download, 256 s at 1 MiB/s, ends within it)
#   BENCH_FLEET_MIB        bundle payload in MiB (default 256)
#   BENCH_FLEET_RATE_KIB   download pace per device in KiB/s (default 1024)
#   BENCH_FLEET_BACKENDS   databases (default "sqlite postgres")
#   BENCH_FERRY            a ferry binary to measure instead of building ./cmd/ferry
#
# Exit status: 0 done (a missed latency target is reported, not failed), 1
# a tool failed or is missing, or a report was lost or an answer wrong, 2 usage.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-.bench}
DEVICES=${BENCH_FLEET_DEVICES:-10000}
DOWNLOAD=${BENCH_FLEET_DOWNLOAD:-200}
INTERVAL=${BENCH_FLEET_INTERVAL:-60}
SECS=${BENCH_FLEET_SECONDS:-330}
MIB=${BENCH_FLEET_MIB:-256}
RATE=${BENCH_FLEET_RATE_KIB:-1024}
BACKENDS=${BENCH_FLEET_BACKENDS:-sqlite postgres}

die() { echo "bench-fleet: error: $*" >&2; exit 1; }
# shellcheck source=scripts/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
usage() { echo "bench-fleet: usage: $*" >&2; exit 2; }
trap 'die "command failed at line $LINENO"' ERR

for v in DEVICES INTERVAL SECS MIB; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || usage "BENCH_FLEET_$v=${!v}: want a positive number"
done
[[ $DOWNLOAD =~ ^[0-9]+$ ]] || usage "BENCH_FLEET_DOWNLOAD=$DOWNLOAD: want a number"
[[ $RATE =~ ^[0-9]+$ ]] || usage "BENCH_FLEET_RATE_KIB=$RATE: want a number"
for b in $BACKENDS; do
	[[ $b == sqlite || $b == postgres ]] || usage "BENCH_FLEET_BACKENDS=$BACKENDS: sqlite and/or postgres"
done
command -v jq >/dev/null || die "jq not found (apt-get install jq)"
command -v curl >/dev/null || die "curl not found (apt-get install curl)"
command -v go >/dev/null || die "go not found"

pgbin() {
	command -v "$1" 2>/dev/null && return
	local m
	m=$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -1)
	[[ -n $m ]] || die "$1 not found (apt-get install postgresql)"
	echo "$m"
}

CACHE=$BENCH_DIR/mirror-cache
mkdir -p "$CACHE"
RUN=$(mktemp -d "$BENCH_DIR/fleet-run.XXXXXX")
RUN=$(cd "$RUN" && pwd)
PIDS=()
PGSTOP=()
cleanup() {
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	for s in "${PGSTOP[@]}"; do
		eval "$s" >/dev/null 2>&1 || true
	done
	rm -rf "$RUN"
}
trap cleanup EXIT

FERRY=${BENCH_FERRY:-}
if [[ -z $FERRY ]]; then
	FERRY=$RUN/ferry
	go build -o "$FERRY" ./cmd/ferry
fi
LOADGEN=$RUN/ferry-loadgen
go build -o "$LOADGEN" ./cmd/ferry-loadgen

# The bundle: MIB MiB of random data, cached (shared with the other bench scripts).
BUNDLE=$(bench_bundle "$FERRY" "$CACHE" "$MIB")
"$LOADGEN" list -devices "$DEVICES" -download "$DOWNLOAD" -o "$RUN/devices.jsonl"

# start_postgres: a server of its own in a temporary directory, on a Unix
# socket there; sets PGURL to its URL (not in a subshell: the stop command
# must reach cleanup). As internal/testtool.StartPostgres does,
# but durable (fsync on).
start_postgres() {
	local initdb pgctl dir as=()
	initdb=$(pgbin initdb)
	pgctl=$(pgbin pg_ctl)
	dir=$(mktemp -d "${TMPDIR:-/tmp}/ferry-pg-XXXXXX")
	if ((EUID == 0)); then
		chown nobody "$dir"
		as=(runuser -u nobody --)
	fi
	PGSTOP+=("(cd / && ${as[*]} $pgctl -D $dir/data -m immediate -w stop); rm -rf $dir")
	(cd "$dir" && "${as[@]}" "$initdb" -D "$dir/data" -U ferry --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1) ||
		die "initdb failed: $(tail -5 "$dir/initdb.log")"
	(cd "$dir" && "${as[@]}" "$pgctl" -D "$dir/data" -l "$dir/server.log" -w -t 120 \
		-o "-c listen_addresses='' -k $dir -p 5432" start >/dev/null) ||
		die "PostgreSQL did not start: $(tail -5 "$dir/server.log")"
	PGURL="postgres://ferry@/postgres?host=$dir&port=5432&sslmode=disable"
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }

failed=0
for b in $BACKENDS; do
	M=$RUN/$b/mirror
	mkdir -p "$RUN/$b"
	FERRY_KEY_PASSPHRASE= "$FERRY" key generate -o "$RUN/$b/mirror" >/dev/null
	"$FERRY" mirror init "$M" --key "$RUN/$b/mirror.key" >/dev/null
	"$FERRY" mirror add "$M" "$BUNDLE" >/dev/null
	DBARGS=()
	DB=$M/devices.db
	if [[ $b == postgres ]]; then
		start_postgres
		DB=$PGURL
		DBARGS=(--database "$DB")
	fi
	t0=$(date +%s.%N)
	"$FERRY" fleet enroll "$M" --file "$RUN/devices.jsonl" "${DBARGS[@]}" >/dev/null
	enroll_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	FERRY_OPERATOR=bench "$FERRY" fleet deploy "$M" bench:1.0.0 --filter 'label.bench = download' \
		--phases 100% --soak 0 "${DBARGS[@]}" >/dev/null
	PORT=$(free_port)
	"$FERRY" mirror serve "$M" --listen "127.0.0.1:$PORT" --refresh-interval 0 "${DBARGS[@]}" 2>"$RUN/$b/serve.log" &
	SERVE=$!
	PIDS+=("$SERVE")
	wait_for "http://127.0.0.1:$PORT/tuf/timestamp.json" "$RUN/$b/serve.log"
	load_before=$(loadavg)
	echo "bench-fleet: $b: $DEVICES devices ($DOWNLOAD downloading), a poll every ${INTERVAL}s, for ${SECS}s; load $load_before" >&2
	rc=0
	"$LOADGEN" run -url "http://127.0.0.1:$PORT" -root "$M/tuf/root.json" -state "$RUN/$b/tuf" -database "$DB" \
		-devices "$DEVICES" -download "$DOWNLOAD" -interval "${INTERVAL}s" -duration "${SECS}s" -rate "$RATE" \
		-json "$RUN/$b/result.json" >"$RUN/$b/result.txt" || rc=$?
	load_after=$(loadavg)
	hwm_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVE/status")
	cpu_s=$(awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$SERVE/stat")
	kill "$SERVE"
	wait "$SERVE" 2>/dev/null || true
	echo "== $b (load average $load_before before, $load_after after; enrolling $DEVICES devices took $enroll_s s)"
	cat "$RUN/$b/result.txt"
	printf 'mirror: peak RSS %s MiB (VmHWM), CPU %.0f s\n' "$((hwm_kb / 1024))" "$cpu_s"
	if grep -q 'refused\|503\|cannot' "$RUN/$b/serve.log"; then
		echo "mirror log:"
		grep 'refused\|503\|cannot' "$RUN/$b/serve.log" | head -10
	fi
	echo
	((rc == 0)) || { failed=1; echo "bench-fleet: $b: reports lost or answers wrong (exit $rc)" >&2; }
	[[ -f $RUN/$b/result.json ]] || continue
	echo "$b $load_before $load_after $hwm_kb $cpu_s" >>"$RUN/summary"
	jq -r --arg b "$b" '[$b,
		(.Kinds[] | select(.Kind == "checkin") | .P99 / 1e6),
		(.Kinds[] | select(.Kind == "assignment") | .P99 / 1e6),
		([.Kinds[] | select(.Kind != "send-lag") | .Errors] | add),
		.Check.Lost + .Check.NotTaken,
		(.SizeAfter - .SizeBefore) / (if .Check.Recorded > 0 then .Check.Recorded else 1 end)] | @tsv' \
		"$RUN/$b/result.json" >>"$RUN/summary.json.tsv"
done

if [[ -f $RUN/summary.json.tsv ]]; then
	printf '%s devices, a poll every %s s (%s polls/s), %s downloading %s MiB at %s KiB/s each, %s s, %s cores\n' \
		"$DEVICES" "$INTERVAL" "$((DEVICES / INTERVAL))" "$DOWNLOAD" "$MIB" "$RATE" "$SECS" "$(nproc)"
	printf '%-9s %11s %14s %14s %7s %5s %9s %7s %12s  %s\n' database load 'check-in p99' 'assign p99' errors lost 'RSS MiB' 'CPU s' 'B/check-in' 'target p99 < 50 ms, 0 lost'
	paste "$RUN/summary" "$RUN/summary.json.tsv" | while read -r b lb la hwm cpu _ p99 ap99 errs lost per; do
		ok=met
		awk -v p="$p99" 'BEGIN { exit !(p >= 50) }' && ok=MISSED
		((lost == 0 && errs == 0)) || ok=MISSED
		printf '%-9s %5s/%-5s %11.1f ms %11.1f ms %7s %5s %9s %7.0f %12.0f  %s\n' "$b" "$lb" "$la" "$p99" "$ap99" "$errs" "$lost" "$((hwm / 1024))" "$cpu" "$per" "$ok"
	done
fi
exit "$failed"
