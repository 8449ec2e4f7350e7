#!/usr/bin/env bash
# bench-media.sh measures `ferry media build` against dd ("make bench").
#
# It runs media's BenchmarkBuild (a stick image built from one bundle of
# incompressible data: payload parts streamed into the FAT32 image and
# checked against their digests, image synced) and BenchmarkDD (dd copying
# the same bundle bytes with conv=fsync: the limit of any image writer),
# then prints both throughputs, Build's as a share of dd's, and Build's peak
# heap (flat: it does not grow with the bundle).
#
# Knobs (environment):
#   BENCH_MEDIA_SIZES  bundle sizes, default "64MiB 1GiB"
#   BENCH_RUNS         iterations of each benchmark (default 3)
#
# Exit status: 0 done (a slow result is not a failure), 1 a benchmark failed.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
SIZES=${BENCH_MEDIA_SIZES:-64MiB 1GiB}
RUNS=${BENCH_RUNS:-3}
for size in $SIZES; do
	out=$(FERRY_BENCH_MEDIA_SIZE=$size go test ./media -run '^$' -bench '^Benchmark(Build|DD)$' -benchtime "${RUNS}x" -timeout 30m)
	build=$(awk '/^BenchmarkBuild/ { for (i = 1; i <= NF; i++) if ($(i+1) == "MB/s") print $i }' <<<"$out")
	heap=$(awk '/^BenchmarkBuild/ { for (i = 1; i <= NF; i++) if ($(i+1) == "peak-heap-MiB") print $i }' <<<"$out")
	dd=$(awk '/^BenchmarkDD/ { for (i = 1; i <= NF; i++) if ($(i+1) == "MB/s") print $i }' <<<"$out")
	[[ -n $build && -n $dd ]] || { echo "$out" >&2; echo "bench-media: no result for $size" >&2; exit 1; }
	printf 'media build %-7s %8.1f MB/s   dd %8.1f MB/s   build/dd %3.0f %%   peak heap %5.1f MiB\n' \
		"$size" "$build" "$dd" "$(awk -v a="$build" -v b="$dd" 'BEGIN { print 100 * a / b }')" "$heap"
done
