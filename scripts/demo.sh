#!/usr/bin/env bash
# A guided tour of ferry for newcomers: make keys, pack a small root
# filesystem into a bundle, sign it twice, inspect and verify it, and watch a
# tampered copy get refused. Run it as `make demo` from the repository root.
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

# ---- extension point -------------------------------------------------------
# Add sections here, e.g. the device agent installing $BUNDLE into an A/B slot.

SECTIONS=(build keys image create sign inspect verify tamper)

rm -rf "$DEMO"
mkdir -p "$DEMO"
for s in "${SECTIONS[@]}"; do
	"section_$s"
done
printf '\nDone. Everything the demo made is in %s/.\n' "$DEMO"
