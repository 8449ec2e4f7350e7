# bench-lib.sh holds what several bench scripts share; they source it
# after defining die.

# bench_bundle FERRY CACHE MIB: the path of a bundle of MIB MiB of random
# data (zstd stores it as is), signed with CACHE/release.key; made once
# and cached in CACHE.
bench_bundle() {
	local ferry=$1 cache=$2 mib=$3
	local bundle=$cache/bench-$mib.ferry
	if [[ ! -f $bundle ]]; then
		echo "${0##*/}: making a $mib MiB bundle in $cache" >&2
		head -c $((mib << 20)) /dev/urandom >"$cache/payload.img"
		[[ -f $cache/release.key ]] || FERRY_KEY_PASSPHRASE= "$ferry" key generate -o "$cache/release" >/dev/null
		"$ferry" bundle create "$cache/payload.img" --name bench -d bench -V 1.0.0 \
			-o "$bundle.tmp" --force --key "$cache/release.key" >/dev/null
		mv "$bundle.tmp" "$bundle"
		rm -f "$cache/payload.img"
	fi
	echo "$bundle"
}

# free_port prints a loopback TCP port nothing listens on.
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# wait_for URL LOG: waits up to 20 s for URL to answer (its first byte),
# else shows the end of LOG and dies.
wait_for() {
	for _ in $(seq 200); do
		curl -sf -o /dev/null -r 0-0 "$1" && return
		sleep 0.1
	done
	tail -5 "$2" >&2 || true
	die "nothing answers at $1 (log: $2)"
}
