#!/usr/bin/env bash
# A guided tour of ferry for newcomers: make keys, pack a small root
# filesystem into a bundle, sign it twice, inspect and verify it, and watch a
# tampered copy get refused; then a simulated device installs, reboots,
# commits, rolls back a bad release, updates from a mirror on loopback and
# from a USB stick image whose report goes back to the mirror. Run it as
# `make demo` from the repository root.
#
# Every step prints a heading and the exact command it runs, so you can
# repeat any of them by hand. Everything is written under .demo/, which is
# wiped first, so the demo can be run again at any time.
#
# The tour is a list of sections (see SECTIONS at the bottom). To extend it,
# write a function named section_<name> and add <name> to the list; later
# sections can use the files the earlier ones made (see the paths below).
set -euo pipefail

cd "$(dirname "$0")/.."

DEMO=.demo
FERRY=bin/ferry
KEYS=$DEMO/keys
ROOTFS_DIR=$DEMO/rootfs
IMAGE=$DEMO/rootfs.img
BUNDLE=$DEMO/demo-os-1.0.0.ferry
TAMPERED=$DEMO/demo-os-1.0.0-tampered.ferry
DEVICE_TYPE=demo-board

# Under CI (CI=1, as .ci/run sets) the tools the demo falls back without
# must be there, so that CI runs the whole tour.
if [ -n "${CI:-}" ] && [ "${CI}" != 0 ] && [ "${CI}" != false ]; then
	for tool in mkfs.ext4 fw_printenv mcopy sgdisk; do
		if ! PATH=$PATH:/usr/sbin:/sbin command -v "$tool" >/dev/null; then
			echo "demo: $tool is not installed, and CI runs the whole tour (.ci/run installs it)" >&2
			exit 1
		fi
	done
fi

step=0
heading() {
	step=$((step + 1))
	printf '\n== %d. %s ==\n' "$step" "$*"
}
say() { printf '%s\n' "$*"; }
# show prints a command the way you would type it, then runs it.
show() {
	printf '$'
	printf ' %q' "$@"
	printf '\n'
	"$@"
}
# show_sh does the same for a shell pipeline given as one string.
show_sh() {
	printf '$ %s\n' "$1"
	bash -c "$1"
}

section_build() {
	heading "Build ferry"
	show go build -o "$FERRY" ./cmd/ferry
	show "$FERRY" version
}

section_keys() {
	heading "Generate two signing keys: release and qa"
	say "Both are ECDSA P-256 keys, the default and what cosign verifies."
	say "They are written WITHOUT a passphrase (FERRY_KEY_PASSPHRASE is empty) so the"
	say "demo runs unattended. Real keys get one: set FERRY_KEY_PASSPHRASE, or run on a"
	say "terminal and ferry asks for it."
	export FERRY_KEY_PASSPHRASE=
	mkdir -p "$KEYS"
	show "$FERRY" key generate --out "$KEYS/release"
	show "$FERRY" key generate --out "$KEYS/qa"
}

section_image() {
	heading "Make a small root filesystem image (16 MiB)"
	mkdir -p "$ROOTFS_DIR/etc" "$ROOTFS_DIR/usr/bin" "$ROOTFS_DIR/usr/share/demo"
	printf 'NAME="Demo OS"\nVERSION_ID=1.0.0\n' >"$ROOTFS_DIR/etc/os-release"
	printf 'demo-board\n' >"$ROOTFS_DIR/etc/hostname"
	printf '#!/bin/sh\necho "hello from demo-os 1.0.0"\n' >"$ROOTFS_DIR/usr/bin/hello"
	chmod 755 "$ROOTFS_DIR/usr/bin/hello"
	head -c 2M /dev/urandom >"$ROOTFS_DIR/usr/share/demo/data.bin"
	local mkfs
	mkfs=$(command -v mkfs.ext4 || ls /usr/sbin/mkfs.ext4 /sbin/mkfs.ext4 2>/dev/null | head -n 1 || true)
	if [ -n "$mkfs" ]; then
		say "A real ext4 filesystem holding $ROOTFS_DIR, as a build system would make it:"
		show truncate -s 16M "$IMAGE"
		show "$mkfs" -q -F -L demo-rootfs -d "$ROOTFS_DIR" "$IMAGE"
	else
		say "mkfs.ext4 is not installed (Debian: e2fsprogs), so the image is a plain"
		say "generated file; ferry treats any image file the same way."
		show_sh "{ tar -cf - -C $ROOTFS_DIR .; head -c 16M /dev/zero; } | head -c 16M >$IMAGE"
	fi
	show ls -l "$IMAGE"
}

section_create() {
	heading "Pack the image into a bundle, signed by the release key"
	say "The bundle is an OCI archive: any registry, skopeo or a USB stick can carry it."
	show "$FERRY" bundle create "$IMAGE" \
		--name demo-os --version 1.0.0 --device-type "$DEVICE_TYPE" \
		--key "$KEYS/release.key" --signer release@example.com \
		--out "$BUNDLE"
}

section_sign() {
	heading "Add a second signature: QA signs off"
	show "$FERRY" bundle sign "$BUNDLE" --key "$KEYS/qa.key" --signer qa@example.com
}

section_inspect() {
	heading "Inspect the bundle"
	say "inspect shows what the bundle holds and who claims to have signed it; it"
	say "checks nothing. That is verify's job."
	show "$FERRY" bundle inspect "$BUNDLE"
}

section_verify() {
	heading "Verify: both release and QA must have signed (threshold 2)"
	show "$FERRY" verify "$BUNDLE" \
		--key "$KEYS/release.pub" --key "$KEYS/qa.pub" --threshold 2 \
		--device-type "$DEVICE_TYPE"
}

section_tamper() {
	heading "Tamper with a copy: flip one byte in the payload"
	show cp "$BUNDLE" "$TAMPERED"
	# The last member of the archive is the payload (its last part). GNU
	# tar's -R prints the block each member's header starts at; its data
	# follows one block later. Elsewhere, take the middle of the file, which
	# lies well inside the payload.
	local block size offset
	if read -r block size < <(tar -tvRf "$TAMPERED" 2>/dev/null | awk '/^block [0-9]+: -/ { b = $2; s = $5 } END { sub(":", "", b); if (b != "") print b, s }'); then
		offset=$(((block + 1) * 512 + size / 2))
		say "The payload's data starts at byte $(((block + 1) * 512)) ($size bytes); flip the byte at $offset:"
	else
		offset=$(($(wc -c <"$TAMPERED") / 2))
		say "Flip the byte in the middle of the file, at $offset:"
	fi
	local old new
	old=$(dd if="$TAMPERED" bs=1 skip="$offset" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
	new=$((255 - old))
	show_sh "printf '\\$(printf %03o "$new")' | dd of=$TAMPERED bs=1 seek=$offset count=1 conv=notrunc status=none"

	heading "Verify the tampered copy: refused with exit code 3"
	local rc=0
	show "$FERRY" verify "$TAMPERED" \
		--key "$KEYS/release.pub" --key "$KEYS/qa.pub" --threshold 2 \
		--device-type "$DEVICE_TYPE" || rc=$?
	if [ "$rc" -ne 3 ]; then
		say "demo: expected exit code 3 (bundle refused), got $rc" >&2
		exit 1
	fi
	say "exit code $rc: the bundle was refused, as it must be. The signatures are"
	say "still valid (the manifest was not touched), but the payload part no longer"
	say "matches the digest they cover."
}

# ---- the device agent -------------------------------------------------------
# A simulated device installs $BUNDLE into an A/B slot, "reboots", passes its
# health check and commits; then a broken 1.1.0 fails its health check and
# rolls back; then 1.2.0 comes from a mirror on loopback.
#
# The device is a directory: two slot image files, a U-Boot environment
# (two files, redundant, as fw_printenv reads it; a plain file when
# libubootenv-tool is not installed), a reboot command that only leaves a
# note, and the kernel command line the simulated bootloader writes.

AGENT=bin/ferry-agent
DEVICE=$DEMO/device
MIRROR=$DEMO/mirror
STICK=$DEMO/stick.img
STICK_DIR=$DEMO/stick
FW_ENV=$DEVICE/fw_env.config
MIRROR_PID=

# make_rootfs VERSION IMG [broken]: a 16 MiB root filesystem image of
# demo-os VERSION, ext4 when mkfs.ext4 is installed, else a tar file. The
# health check wants /usr/bin/hello; a broken image lacks it.
make_rootfs() {
	local dir=$DEMO/rootfs-$1 mkfs
	rm -rf "$dir"
	mkdir -p "$dir/etc" "$dir/usr/bin"
	printf 'NAME="Demo OS"\nVERSION_ID=%s\n' "$1" >"$dir/etc/os-release"
	if [ "${3:-}" != broken ]; then
		printf '#!/bin/sh\necho "hello from demo-os %s"\n' "$1" >"$dir/usr/bin/hello"
		chmod 755 "$dir/usr/bin/hello"
	fi
	mkfs=$(command -v mkfs.ext4 || ls /usr/sbin/mkfs.ext4 /sbin/mkfs.ext4 2>/dev/null | head -n 1 || true)
	if [ -n "$mkfs" ]; then
		truncate -s 16M "$2"
		"$mkfs" -q -F -L demo-rootfs -d "$dir" "$2"
	else
		tar -cf "$2" -C "$dir" .
		truncate -s 16M "$2"
	fi
}

# fw_printenv is libubootenv's; without it the device keeps its boot
# environment in a plain name=value file (ferry's "file" backend).
uboot() { command -v fw_printenv >/dev/null; }

# env_get NAME prints a boot environment variable (empty if unset).
env_get() {
	if uboot; then
		fw_printenv -c "$FW_ENV" -n "$1" 2>/dev/null || true
	else
		sed -n "s/^$1=//p" "$DEVICE/bootenv"
	fi
}

# env_set NAME VALUE sets one, showing the command.
env_set() {
	if uboot; then
		show fw_setenv -c "$FW_ENV" "$1" "$2"
	else
		show_sh "grep -v '^$1=' $DEVICE/bootenv >$DEVICE/bootenv.new; echo '$1=$2' >>$DEVICE/bootenv.new; mv $DEVICE/bootenv.new $DEVICE/bootenv"
	fi
}

# show_env prints the boot protocol's variables.
show_env() {
	if uboot; then
		show fw_printenv -c "$FW_ENV" ferry_slot upgrade_available bootcount bootlimit
	else
		show_sh "grep -E '^(ferry_slot|upgrade_available|bootcount|bootlimit)=' $DEVICE/bootenv"
	fi
}

# agent runs ferry-agent on the device, showing the command.
agent() { show "$AGENT" -c "$DEVICE/agent.toml" "$@"; }

# power_on is the simulated bootloader. It does what U-Boot does with
# examples/uboot/ferry-env.txt (CONFIG_BOOTCOUNT_LIMIT, CONFIG_BOOTCOUNT_ENV):
# while upgrade_available=1 it counts the attempt in bootcount, then boots
# ferry_slot (bootcmd), or the other slot (altbootcmd) once bootcount
# exceeds bootlimit; it tells the kernel which slot with ferry.slot=.
power_on() {
	heading "Power on: the bootloader picks a slot"
	if [ -e "$DEVICE/reboot-requested" ]; then
		say "The agent asked for a reboot (reboot.sh left $DEVICE/reboot-requested); the device restarts."
		rm -f "$DEVICE/reboot-requested"
	fi
	local slot boot count limit
	slot=$(env_get ferry_slot)
	[ "$slot" = b ] || slot=a
	boot=$slot
	if [ "$(env_get upgrade_available)" = 1 ]; then
		count=$(($(env_get bootcount) + 1))
		limit=$(env_get bootlimit)
		say "bootloader: upgrade_available=1, so slot $slot is on trial: count this attempt first"
		env_set bootcount "$count"
		if [ "$count" -gt "$limit" ]; then
			boot=$([ "$slot" = a ] && echo b || echo a)
			say "bootloader: bootcount $count > bootlimit $limit: altbootcmd boots slot $boot"
		else
			say "bootloader: bootcount $count <= bootlimit $limit: bootcmd boots slot $slot"
		fi
	else
		say "bootloader: no trial: bootcmd boots slot $slot"
	fi
	show_sh "echo 'console=ttyS0 root=/dev/mmcblk0p$([ "$boot" = a ] && echo 2 || echo 3) ro ferry.slot=$boot' >$DEVICE/cmdline"
}

section_agent_build() {
	heading "Build the device agent"
	show go build -o "$AGENT" ./cmd/ferry-agent
}

section_device() {
	heading "A simulated device: two slots, a U-Boot environment, a reboot that leaves a note"
	local root reboot health
	root=$(pwd)
	# Absolute, as the agent runs them from wherever it runs; quoted for
	# the shell only if need be.
	reboot=$(printf %q "$root/$DEVICE/reboot.sh")
	health=$(printf %q "$root/$DEVICE/health-check.sh")
	mkdir -p "$DEVICE"
	say "Slot a holds the factory system, demo-os 0.9.0 (made like the image above); slot b"
	say "is empty."
	make_rootfs 0.9.0 "$DEVICE/slot-a.img"
	show truncate -s 16M "$DEVICE/slot-b.img"
	if uboot; then
		say "The boot environment: redundant, two 16 KiB copies, as U-Boot keeps it on eMMC."
		truncate -s 16K "$DEVICE/uboot-env-1.bin" "$DEVICE/uboot-env-2.bin"
		printf '# device  offset  size\n%s 0x0 0x4000\n%s 0x0 0x4000\n' \
			"$root/$DEVICE/uboot-env-1.bin" "$root/$DEVICE/uboot-env-2.bin" >"$FW_ENV"
		show cat "$FW_ENV"
		say "It starts empty (fw_setenv says so) and gets U-Boot's default environment,"
		say "examples/uboot/ferry-env.txt: bootcmd boots ferry_slot, altbootcmd the other slot."
		show fw_setenv -c "$FW_ENV" -f examples/uboot/ferry-env.txt bootcount 0
		local backend="uboot" path="fw_env.config"
	else
		say "fw_printenv is not installed (Debian: libubootenv-tool), so the boot environment"
		say "is a plain name=value file, started from examples/uboot/ferry-env.txt."
		show cp examples/uboot/ferry-env.txt "$DEVICE/bootenv"
		local backend="file" path="bootenv"
	fi
	show_env

	say "The reboot command only leaves a note; the demo then \"powers on\" the device."
	cat >"$DEVICE/reboot.sh" <<-'EOF'
		#!/bin/sh
		# The demo device's reboot: note it; the demo restarts the device.
		dir=$(dirname "$0")
		echo "reboot requested at $(date +%T)" >>"$dir/reboots.log"
		touch "$dir/reboot-requested"
	EOF
	say "The health check looks into the system that booted (ferry.slot= on the kernel"
	say "command line) for /usr/bin/hello."
	cat >"$DEVICE/health-check.sh" <<-'EOF'
		#!/bin/sh
		# The demo device's health check, run by ferry-agent boot-check: the
		# booted system must have /usr/bin/hello.
		dir=$(dirname "$0")
		slot=$(sed -n 's/.*ferry\.slot=\([ab]\).*/\1/p' "$dir/cmdline")
		img="$dir/slot-$slot.img"
		debugfs=$(command -v debugfs || echo /usr/sbin/debugfs)
		if "$debugfs" -R 'stat /usr/bin/hello' "$img" 2>/dev/null | grep -q '^Inode:' ||
			tar -tf "$img" ./usr/bin/hello >/dev/null 2>&1; then
			echo "health check: slot $slot ($FERRY_BUNDLE $FERRY_VERSION) has /usr/bin/hello: healthy"
			exit 0
		fi
		echo "health check: slot $slot ($FERRY_BUNDLE $FERRY_VERSION) has no /usr/bin/hello: broken"
		exit 1
	EOF
	chmod 755 "$DEVICE/reboot.sh" "$DEVICE/health-check.sh"

	cat >"$DEVICE/agent.toml" <<-EOF
		# The demo device. Relative paths are relative to this file.
		device_type = "$DEVICE_TYPE"
		state_dir = "state"
		reboot_command = '$reboot'

		[trust]
		# Both keys must have signed, as in the verify step above.
		keys = ["../keys/release.pub", "../keys/qa.pub"]
		threshold = 2

		[slots.rootfs]
		a = "slot-a.img"
		b = "slot-b.img"

		[boot]
		backend = "$backend"
		path = "$path"
		# What the bootloader passes the kernel; here the simulated one.
		cmdline = "cmdline"

		[health]
		commands = ['$health']
		timeout = "10s"
	EOF
	show cat "$DEVICE/agent.toml"
	power_on
	agent status
}

section_install() {
	heading "Install demo-os 1.0.0 into the slot that does not run"
	agent install "$BUNDLE"
	heading "Slot b is on trial: the bootloader will try it once"
	agent status
	show_env
	power_on
	heading "At boot: boot-check runs the health check on slot b and commits"
	agent boot-check
	show_env
	agent status
}

section_rollback() {
	heading "Release 1.1.0, which lost /usr/bin/hello"
	make_rootfs 1.1.0 "$DEMO/rootfs-1.1.0.img" broken
	show "$FERRY" bundle create "$DEMO/rootfs-1.1.0.img" \
		--name demo-os --version 1.1.0 --device-type "$DEVICE_TYPE" \
		--key "$KEYS/release.key" --key "$KEYS/qa.key" --signer release@example.com \
		--out "$DEMO/demo-os-1.1.0.ferry"
	agent install "$DEMO/demo-os-1.1.0.ferry"
	power_on
	heading "boot-check: the health check fails, the agent rolls back and reboots (exit code 1)"
	local rc=0
	agent boot-check || rc=$?
	if [ "$rc" -ne 1 ]; then
		say "demo: expected boot-check to fail with exit code 1, got $rc" >&2
		exit 1
	fi
	show_env
	show cat "$DEVICE/reboots.log"
	power_on
	heading "Back on slot b: 1.0.0 runs, 1.1.0 is recorded as rolled back"
	agent boot-check
	agent status
}

stop_mirror() {
	if [ -n "$MIRROR_PID" ]; then
		kill "$MIRROR_PID" 2>/dev/null || true
		wait "$MIRROR_PID" 2>/dev/null || true
		MIRROR_PID=
	fi
}

# start_mirror [FLAG...] serves $MIRROR in the background on a free
# loopback port and sets MIRROR_ADDR to HOST:PORT.
start_mirror() {
	printf '$ %s mirror serve %s --listen 127.0.0.1:0' "$FERRY" "$MIRROR"
	printf ' %q' "$@"
	printf ' &\n'
	trap stop_mirror EXIT
	: >"$DEMO/mirror.log"
	"$FERRY" mirror serve "$MIRROR" --listen 127.0.0.1:0 "$@" 2>"$DEMO/mirror.log" &
	MIRROR_PID=$!
	MIRROR_ADDR=""
	local i
	for i in $(seq 100); do
		MIRROR_ADDR=$(grep -o 'http://[0-9.]*:[0-9]*' "$DEMO/mirror.log" | head -n 1 | sed 's|http://||' || true)
		[ -n "$MIRROR_ADDR" ] && break
		kill -0 "$MIRROR_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$MIRROR_ADDR" ]; then
		say "demo: the mirror did not start:" >&2
		cat "$DEMO/mirror.log" >&2
		exit 1
	fi
	cat "$DEMO/mirror.log"
}

section_mirror() {
	heading "A mirror for the factory network: init, add 1.2.0, serve"
	show "$FERRY" key generate --out "$KEYS/mirror"
	show "$FERRY" mirror init "$MIRROR" --key "$KEYS/mirror.key"
	make_rootfs 1.2.0 "$DEMO/rootfs-1.2.0.img"
	show "$FERRY" bundle create "$DEMO/rootfs-1.2.0.img" \
		--name demo-os --version 1.2.0 --device-type "$DEVICE_TYPE" \
		--key "$KEYS/release.key" --key "$KEYS/qa.key" --signer release@example.com \
		--out "$DEMO/demo-os-1.2.0.ferry"
	show "$FERRY" mirror add "$MIRROR" "$DEMO/demo-os-1.2.0.ferry"
	say "Serve it in the background (port 0: the system picks a free port; stopped when"
	say "the demo ends):"
	start_mirror
	local addr=$MIRROR_ADDR

	heading "The device installs 1.2.0 from the mirror"
	agent install "oci://$addr/demo-os:1.2.0" --plain-http
	power_on
	agent boot-check
	agent status

	heading "The device has a key of its own; the mirror records it once it is enrolled"
	cp "$DEVICE/agent.toml" "$DEVICE/agent.toml.orig"
	printf '\n[mirror]\nurl = "http://%s"\ntuf_root = "%s"\n' "$addr" "$(realpath "$MIRROR/tuf/root.json")" >>"$DEVICE/agent.toml"
	agent identity
	show_sh "'$AGENT' -c '$DEVICE/agent.toml' identity --json >'$DEMO/factory-line.jsonl'"
	show "$FERRY" mirror devices enroll "$MIRROR" --file "$DEMO/factory-line.jsonl"
	agent checkin
	show "$FERRY" mirror devices list "$MIRROR"
	mv "$DEVICE/agent.toml.orig" "$DEVICE/agent.toml"
	stop_mirror
}

section_stick() {
	heading "A USB stick for a field technician: 1.3.0 on a FAT32 image"
	make_rootfs 1.3.0 "$DEMO/rootfs-1.3.0.img"
	show "$FERRY" bundle create "$DEMO/rootfs-1.3.0.img" \
		--name demo-os --version 1.3.0 --device-type "$DEVICE_TYPE" \
		--key "$KEYS/release.key" --key "$KEYS/qa.key" --signer release@example.com \
		--out "$DEMO/demo-os-1.3.0.ferry"
	show "$FERRY" media build --out "$STICK" "$DEMO/demo-os-1.3.0.ferry" --trust "$KEYS/release.pub"
	show "$FERRY" media inspect "$STICK" --key "$KEYS/release.pub"
	if ! command -v mcopy >/dev/null; then
		say "(mtools is not installed: skipping the device part of the stick tour)"
		return
	fi
	# The demo runs without root, so instead of mounting the stick it copies
	# the FAT partition's files out with mtools, as the device would see them
	# mounted, and copies the report back afterwards.
	# ferry media build starts the partition at 1 MiB; sgdisk confirms it.
	local offset=1048576
	if command -v sgdisk >/dev/null; then
		offset=$(( $(sgdisk -i 1 "$STICK" | sed -n 's/^First sector: \([0-9]*\).*/\1/p') * 512 ))
	fi
	heading "The device sees the stick (here: its files copied out with mtools)"
	rm -rf "$STICK_DIR" && mkdir -p "$STICK_DIR"
	show mcopy -s -n -i "$STICK@@$offset" ::/ferry "$STICK_DIR/"
	agent install "$STICK_DIR"
	power_on
	agent boot-check
	heading "The report the agent wrote onto the stick goes back into the image"
	show_sh "mcopy -o -n -i '$STICK@@$offset' '$STICK_DIR'/ferry/reports/*.json ::/ferry/reports/"
	show "$FERRY" media reports "$STICK"
	heading "Back at the factory: the stick's reports join the mirror's device records"
	show "$FERRY" mirror ingest "$MIRROR" "$STICK"
	show "$FERRY" mirror devices "$MIRROR"
}

# ---- the fleet --------------------------------------------------------------
# Three managed devices on the mirror; a phased deployment of 2.0.0 starts
# with one canary, whose health check fails: the deployment pauses by
# itself and nobody else gets 2.0.0.

section_fleet() {
	heading "A fleet: three devices enroll at the factory line"
	say "Each is managed ([mirror] managed = true): it installs only what the mirror"
	say "assigns it, in an assignment signed by the mirror's assignment key. Their health"
	say "check looks for a file that 2.0.0 will not bring (it fails)."
	local root i dev
	root=$(pwd)
	start_mirror --checkin-rate 100
	: >"$DEMO/line-2.jsonl"
	for i in 1 2 3; do
		dev=$DEMO/fleet/gw-0$i
		mkdir -p "$dev"
		printf 'factory\n' >"$dev/slot-a.img"
		: >"$dev/slot-b.img"
		printf 'ferry_slot=a\n' >"$dev/bootenv"
		cat >"$dev/agent.toml" <<-EOF
			device_type = "$DEVICE_TYPE"
			device_id = "gw-0$i"
			state_dir = "state"
			reboot_command = 'touch $root/$dev/reboot-requested'
			[trust]
			keys = ["../../keys/release.pub", "../../keys/qa.pub"]
			threshold = 2
			[slots.rootfs]
			a = "slot-a.img"
			b = "slot-b.img"
			[boot]
			backend = "file"
			path = "bootenv"
			cmdline = "none"
			[health]
			commands = ['test -f $root/$dev/app-ready']
			[mirror]
			url = "http://$MIRROR_ADDR"
			tuf_root = "$root/$MIRROR/tuf/root.json"
			managed = true
		EOF
		"$AGENT" -c "$dev/agent.toml" identity --json >>"$DEMO/line-2.jsonl"
	done
	show cat "$DEMO/fleet/gw-01/agent.toml"
	show "$FERRY" fleet enroll "$MIRROR" --file "$DEMO/line-2.jsonl"

	heading "A phased rollout of 2.0.0: one canary, then everyone; no failure allowed"
	show "$FERRY" bundle create "$DEMO/rootfs-1.3.0.img" \
		--name demo-os --version 2.0.0 --device-type "$DEVICE_TYPE" \
		--key "$KEYS/release.key" --key "$KEYS/qa.key" --signer release@example.com \
		--out "$DEMO/demo-os-2.0.0.ferry"
	show "$FERRY" mirror add "$MIRROR" "$DEMO/demo-os-2.0.0.ferry"
	show "$FERRY" fleet deploy "$MIRROR" demo-os:2.0.0 --filter "type = $DEVICE_TYPE and name ~ gw-*" \
		--phases 1,100% --soak 30m --operator alice

	heading "Every device polls the mirror once: only the canary is assigned 2.0.0"
	for i in 1 2 3; do
		show "$AGENT" -c "$DEMO/fleet/gw-0$i/agent.toml" run --once
	done
	heading "The canary reboots; its health check fails, it rolls back and reports it"
	local canary="" other="" rc=0
	for i in 1 2 3; do
		dev=$DEMO/fleet/gw-0$i
		if [ -e "$dev/reboot-requested" ]; then canary=$dev; else other=$dev; fi
	done
	show "$AGENT" -c "$canary/agent.toml" boot-check || rc=$?
	if [ "$rc" -ne 1 ]; then
		say "demo: expected the canary's boot-check to fail with exit code 1, got $rc" >&2
		exit 1
	fi
	heading "The deployment paused by itself, and says why"
	show "$FERRY" fleet status "$MIRROR"
	show "$FERRY" fleet status "$MIRROR" 1
	if ! "$FERRY" fleet status "$MIRROR" 1 --json | grep -q '"state": "paused"'; then
		say "demo: the deployment did not pause" >&2
		exit 1
	fi
	say "The other devices poll again: still nothing for them."
	show "$AGENT" -c "$other/agent.toml" run --once
	say "After a fix: 'ferry fleet resume $MIRROR 1' tries the canary again; or abort it."
	stop_mirror

	heading "The operators' web console and API"
	say "An operator account (its password only as an argon2id hash), and an API token"
	say "for programs (printed once; the mirror keeps its SHA-256):"
	printf 'demo-console-password\n' >"$DEMO/alice.password"
	show "$FERRY" fleet users add "$MIRROR" alice --role operator --password-file "$DEMO/alice.password"
	show_sh "'$FERRY' fleet tokens create '$MIRROR' --user alice --role read-only --label demo >'$DEMO/token'"
	start_mirror --console --checkin-rate 100
	say "The same status, now asked of the running mirror over its API:"
	show "$FERRY" fleet status "http://$MIRROR_ADDR" 1 --token-file "$DEMO/token"
	say
	say "The console: http://$MIRROR_ADDR/console/ (log in as alice, password in"
	say "$DEMO/alice.password). The demo stops this mirror as it ends; to look"
	say "around afterwards, serve it again:"
	say "  $FERRY mirror serve $MIRROR --console --listen 127.0.0.1:8080"
	say "and open http://127.0.0.1:8080/console/."
	stop_mirror
}

SECTIONS=(build keys image create sign inspect verify tamper
	agent_build device install rollback mirror stick fleet)

rm -rf "$DEMO"
mkdir -p "$DEMO"
for s in "${SECTIONS[@]}"; do
	"section_$s"
done
printf '\nDone. Everything the demo made is in %s/.\n' "$DEMO"
