#!/usr/bin/env bash
# bench-mirror.sh measures 'ferry mirror serve' against nginx serving the
# same blob as a static file (to be called from "make bench").
#
# It builds a bundle with one payload of BENCH_MIRROR_MIB MiB of random
# data (cached in BENCH_DIR), adds it to a mirror, and serves the payload
# blob two ways on loopback ports:
#
#   ferry mirror serve DIR                GET /v2/bench/blobs/sha256:<hex>
#   nginx (sendfile on, access_log off)   GET /blobs/sha256/<hex>, the same file
#
# nginx is Debian's, started by this script with a config of its own in a
# temporary directory (daemon off, pid file and logs there) and stopped at
# the end, as is the mirror. For each client count it runs wrk for
# BENCH_MIRROR_SECONDS against each server, in BENCH_MIRROR_RUNS
# interleaved rounds, keeps each side's best round, and prints the
# throughput side by side with the ratio ferry/nginx (target: at least
# 0.9), then the mirror's peak RSS (VmHWM from /proc/PID/status; the
# payload is far larger, so a flat figure means the blob is not buffered).
# Everything runs on one machine: wrk, the server and the kernel's
# loopback share the cores, the same way for both servers.
#
# Knobs (environment):
#   BENCH_DIR              cache and scratch directory (default .bench)
#   BENCH_MIRROR_MIB       payload size in MiB (default 256)
#   BENCH_MIRROR_CLIENTS   concurrent connections, space-separated (default "8 32")
#   BENCH_MIRROR_SECONDS   seconds per wrk run (default 10)
#   BENCH_MIRROR_RUNS      interleaved rounds (default 2)
#   BENCH_FERRY            a ferry binary to measure instead of building ./cmd/ferry
#
# Exit status: 0 done (a missed target is reported, not failed), 1 a tool
# failed or is missing, 2 usage.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-.bench}
MIB=${BENCH_MIRROR_MIB:-256}
CLIENTS=${BENCH_MIRROR_CLIENTS:-8 32}
SECONDS_PER_RUN=${BENCH_MIRROR_SECONDS:-10}
RUNS=${BENCH_MIRROR_RUNS:-2}

die() { echo "bench-mirror: error: $*" >&2; exit 1; }
# shellcheck source=scripts/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
usage() { echo "bench-mirror: usage: $*" >&2; exit 2; }
trap 'die "command failed at line $LINENO"' ERR

[[ $MIB =~ ^[1-9][0-9]*$ ]] || usage "BENCH_MIRROR_MIB=$MIB: want a positive number"
[[ $SECONDS_PER_RUN =~ ^[1-9][0-9]*$ ]] || usage "BENCH_MIRROR_SECONDS=$SECONDS_PER_RUN: want a positive number"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || usage "BENCH_MIRROR_RUNS=$RUNS: want a positive number"
for c in $CLIENTS; do
	[[ $c =~ ^[1-9][0-9]*$ ]] || usage "BENCH_MIRROR_CLIENTS=$CLIENTS: want positive numbers"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || die "nginx not found (apt-get install nginx)"
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v curl >/dev/null || die "curl not found (apt-get install curl)"
command -v go >/dev/null || [[ -n ${BENCH_FERRY:-} ]] || die "go not found"

CACHE=$BENCH_DIR/mirror-cache
mkdir -p "$CACHE"
RUN=$(mktemp -d "$BENCH_DIR/mirror-run.XXXXXX")
RUN=$(cd "$RUN" && pwd)
chmod 755 "$RUN" # nginx's workers run as an unprivileged user
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$RUN"
}
trap cleanup EXIT

FERRY=${BENCH_FERRY:-}
if [[ -z $FERRY ]]; then
	FERRY=$RUN/ferry
	go build -o "$FERRY" ./cmd/ferry
fi

# The bundle: MIB MiB of random data, cached (shared with the other bench scripts).
BUNDLE=$(bench_bundle "$FERRY" "$CACHE" "$MIB")
FERRY_KEY_PASSPHRASE= "$FERRY" key generate -o "$RUN/mirror" >/dev/null
"$FERRY" mirror init "$RUN/m" --key "$RUN/mirror.key" >/dev/null
"$FERRY" mirror add "$RUN/m" "$BUNDLE" >/dev/null
BLOB=$(ls -S "$RUN/m/blobs/sha256" | head -1)
BLOB_SIZE=$(stat -c %s "$RUN/m/blobs/sha256/$BLOB")

# nginx, on its own config in RUN.
NGINX_PORT=$(free_port)
mkdir -p "$RUN/nginx"
cat >"$RUN/nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $RUN/nginx/nginx.pid;
error_log $RUN/nginx/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 100000;
	default_type application/octet-stream;
	client_body_temp_path $RUN/nginx/body;
	proxy_temp_path $RUN/nginx/proxy;
	fastcgi_temp_path $RUN/nginx/fastcgi;
	uwsgi_temp_path $RUN/nginx/uwsgi;
	scgi_temp_path $RUN/nginx/scgi;
	server {
		listen 127.0.0.1:$NGINX_PORT;
		root $RUN/m;
	}
}
EOF
"$NGINX" -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -e "$RUN/nginx/error.log" &
PIDS+=($!)
NGINX_URL=http://127.0.0.1:$NGINX_PORT/blobs/sha256/$BLOB

FERRY_PORT=$(free_port)
"$FERRY" mirror serve "$RUN/m" --listen "127.0.0.1:$FERRY_PORT" --refresh-interval 0 --no-checkins 2>"$RUN/serve.log" &
FERRY_PID=$!
PIDS+=("$FERRY_PID")
FERRY_URL=http://127.0.0.1:$FERRY_PORT/v2/bench/blobs/sha256:$BLOB

wait_for "$NGINX_URL" "$RUN/nginx/error.log"
wait_for "$FERRY_URL" "$RUN/serve.log"
# Both must send the same bytes; reading them also puts the blob in the
# page cache before anything is timed.
for u in "$NGINX_URL" "$FERRY_URL"; do
	got=$(curl -sf "$u" | sha256sum | cut -d' ' -f1)
	[[ $got == "$BLOB" ]] || die "$u sent content hashing to $got, want $BLOB"
done

# mibps CLIENTS URL: wrk's Transfer/sec in MiB/s (wrk counts in powers of
# 1024).
mibps() {
	local out rate
	out=$(wrk -t2 -c"$1" -d"${SECONDS_PER_RUN}s" --timeout 120s "$2")
	rate=$(awk '/^Transfer\/sec:/ {print $2}' <<<"$out")
	[[ -n $rate ]] || die "wrk printed no Transfer/sec for $2: $out"
	awk -v r="$rate" 'BEGIN {
		n = r + 0; u = r; sub(/^[0-9.]+/, "", u)
		f = (u == "GB") ? 1024 : (u == "MB") ? 1 : (u == "KB") ? 1/1024 : 1/1048576
		printf "%.0f", n * f
	}'
}

declare -A BEST_NGINX BEST_FERRY
for c in $CLIENTS; do
	BEST_NGINX[$c]=0
	BEST_FERRY[$c]=0
done
for round in $(seq "$RUNS"); do
	for c in $CLIENTS; do
		echo "bench-mirror: round $round, $c clients: nginx" >&2
		n=$(mibps "$c" "$NGINX_URL")
		((n > BEST_NGINX[$c])) && BEST_NGINX[$c]=$n
		echo "bench-mirror: round $round, $c clients: ferry mirror serve" >&2
		f=$(mibps "$c" "$FERRY_URL")
		((f > BEST_FERRY[$c])) && BEST_FERRY[$c]=$f
	done
done

HWM_KB=$(awk '/^VmHWM:/ {print $2}' "/proc/$FERRY_PID/status")
NGINX_HWM_KB=0
for p in $(pgrep -P "${PIDS[0]}" || true) "${PIDS[0]}"; do
	kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
	NGINX_HWM_KB=$((NGINX_HWM_KB + ${kb:-0}))
done

echo
printf 'blob %s MiB, wrk -t2 -d%ss, best of %s rounds, %s cores\n' "$((BLOB_SIZE >> 20))" "$SECONDS_PER_RUN" "$RUNS" "$(nproc)"
printf '%-8s %14s %14s %8s  %s\n' clients 'nginx MiB/s' 'ferry MiB/s' ratio 'target >= 0.90'
missed=0
for c in $CLIENTS; do
	ratio=$(awk -v f="${BEST_FERRY[$c]}" -v n="${BEST_NGINX[$c]}" 'BEGIN { printf "%.2f", (n > 0) ? f / n : 0 }')
	ok=met
	awk -v r="$ratio" 'BEGIN { exit !(r < 0.9) }' && { ok=MISSED; missed=1; }
	printf '%-8s %14s %14s %8s  %s\n' "$c" "${BEST_NGINX[$c]}" "${BEST_FERRY[$c]}" "$ratio" "$ok"
done
printf 'peak RSS: ferry mirror serve %s MiB (VmHWM), nginx master+workers %s MiB\n' \
	"$((HWM_KB / 1024))" "$((NGINX_HWM_KB / 1024))"
if ((missed)); then
	echo "bench-mirror: ferry mirror serve is below 0.9x nginx at some client count" >&2
fi
