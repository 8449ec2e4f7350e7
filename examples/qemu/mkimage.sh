#!/usr/bin/env bash
# mkimage.sh: build ferry's reference A/B disk image, step by step, with no
# root privileges and no loop mounts. Every step is a subcommand, so a build
# system can run them one by one (examples/qemu/README.md walks through them):
#
#   mkimage.sh tree DIR             a bootable busybox root in DIR (adds to DIR)
#   mkimage.sh rootfs DIR OUT LABEL an ext4 slot image of DIR (64 MiB)
#   mkimage.sh esp OUT GRUB_CFG     the EFI system partition: GRUB, grub.cfg,
#                                   and the environment block on slot a
#   mkimage.sh esp-efi OUT          the EFI system partition for the agent's
#                                   efi backend: one loader per slot
#   mkimage.sh data DIR OUT         the agent's data partition (ext4) of DIR
#   mkimage.sh uboot OUT BOOT_CMD   the U-Boot boot partition: boot.scr made
#                                   from BOOT_CMD, and ferry.env on slot a
#   mkimage.sh disk OUT ESP A B DATA  the GPT disk: ESP (or the U-Boot boot
#                                   partition), rootfs_a, rootfs_b, data
#
# The output is reproducible: the same inputs give the same bytes (fixed
# UUIDs, hash seeds, volume serials and time stamps from SOURCE_DATE_EPOCH).
#
# Environment: MODROOT (default /: the root holding the kernel's modules in
# lib/modules, e.g. an unpacked foreign-architecture linux-image package),
# KERNEL_VERSION (default: the newest in $MODROOT/lib/modules), KERNEL
# (default /boot/vmlinuz-$KERNEL_VERSION), BUSYBOX (default /bin/busybox, a
# static build; one of another architecture takes its applet list from the
# host's busybox of the same Debian version), CONSOLE (the serial console
# device, default ttyS0; ttyAMA0 on arm64 -M virt), PART1 (esp, the
# default, or boot: the GPT name of partition 1, the U-Boot boot partition),
# SOURCE_DATE_EPOCH (default 1700000000), KERNEL_ARGS (the board's kernel
# arguments, kept in GRUB's block as ferry_kernel_args; default
# "console=ttyS0 quiet": the serial console, with only errors, panics and
# the reboot line from the kernel).
#
# Tools (Debian packages): busybox-static, linux-image-amd64, cpio, e2fsprogs
# (mkfs.ext4 -d), mtools and dosfstools (the FAT ESP), gdisk (sgdisk),
# grub-efi-amd64-bin and grub2-common (grub-mkimage, grub-editenv), kmod;
# for U-Boot, u-boot-tools (mkimage, mkenvimage).
set -euo pipefail

: "${SOURCE_DATE_EPOCH:=1700000000}"
export SOURCE_DATE_EPOCH
# mke2fs takes its "now" from here: superblock and root inode times.
export E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH"
: "${BUSYBOX:=/bin/busybox}"
: "${KERNEL_ARGS=console=ttyS0 quiet}"
: "${MODROOT:=/}"
: "${CONSOLE:=ttyS0}"
: "${PART1:=esp}"
if [ -z "${KERNEL_VERSION:-}" ]; then
	KERNEL_VERSION=$(ls "$MODROOT/lib/modules" | sort -V | tail -n 1)
fi
: "${KERNEL:=/boot/vmlinuz-$KERNEL_VERSION}"

# Sizes in MiB. The slots must hold the largest root filesystem a bundle
# will ever carry.
SLOT_MIB=64
ESP_MIB=16
DATA_MIB=16

die() { echo "mkimage.sh: $*" >&2; exit 1; }

# Kernel modules the initramfs loads (with what they depend on, in the
# order modprobe gives): the virtio disk and network, ext4 for the slots and
# data, vfat for the ESP (and sticks), efivarfs for the EFI backend.
MODULES=(virtio_pci virtio_blk virtio_net ext4 vfat nls_cp437 nls_iso8859-1 nls_utf8 nls_ascii efivarfs crc32c_generic)

# stamp DIR: every time stamp in DIR becomes SOURCE_DATE_EPOCH, so the
# images built from it do not depend on when the files were made.
stamp() { find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +; }

# The initramfs: busybox, the modules, and an init that mounts the slot
# named by root=PARTLABEL=... (GPT partition name) read-only and switches
# to it. The partition name, not the filesystem label, names a slot: a
# bundle's image is written to either slot and carries one label.
initrd() {
	local out=$1 work
	work=$(mktemp -d)
	mkdir -p "$work"/{bin,dev,proc,sys,newroot,lib/modules}
	cp "$BUSYBOX" "$work/bin/busybox"
	ln -s busybox "$work/bin/sh"
	local n=10 f
	for f in $(for m in "${MODULES[@]}"; do
		modprobe -d "$MODROOT" -S "$KERNEL_VERSION" --show-depends "$m" || die "module $m not found for $KERNEL_VERSION"
	done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }'); do
		cp "$f" "$work/lib/modules/$n-$(basename "$f")"
		n=$((n + 1))
	done
	cat >"$work/init" <<'INIT'
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
exec </dev/@CONSOLE@ >/dev/@CONSOLE@ 2>&1
# crc32c-intel fails on CPUs without SSE4.2; crc32c_generic stands in.
for m in /lib/modules/*.ko; do insmod "$m" 2>/dev/null; done
want=
for arg in $(cat /proc/cmdline); do
	case $arg in root=PARTLABEL=*) want=${arg#root=PARTLABEL=} ;; esac
done
[ -n "$want" ] || { echo "initramfs: no root=PARTLABEL= on the command line"; exit 1; }
dev=
for try in $(seq 1 100); do
	for u in /sys/class/block/*/uevent; do
		if grep -qx "PARTNAME=$want" "$u"; then
			dev=/dev/$(sed -n 's/^DEVNAME=//p' "$u")
		fi
	done
	[ -n "$dev" ] && [ -b "$dev" ] && break
	sleep 0.1
done
[ -n "$dev" ] || { echo "initramfs: no partition named $want"; exit 1; }
mount -t ext4 -o ro "$dev" /newroot || exit 1
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
INIT
	sed -i "s/@CONSOLE@/$CONSOLE/g" "$work/init"
	chmod 755 "$work/init"
	stamp "$work"
	(cd "$work" && find . -mindepth 1 | LC_ALL=C sort |
		cpio --quiet -o -H newc --reproducible -R 0:0) | gzip -n -9 >"$out"
	rm -rf "$work"
}

# tree DIR: a busybox system that boots as a ferry slot. It runs
# ferry-agent boot-check at every boot; the caller adds /usr/bin/ferry-agent,
# /etc/ferry/agent.toml, the trust root and /etc/ferry/health.
tree() {
	local dir=$1
	mkdir -p "$dir"/{bin,sbin,etc/ferry,dev,proc,sys,tmp,run,boot/efi,boot/firmware,var/lib/ferry,media/ferry,usr/bin,root}
	rm -f "$dir/bin/busybox" "$dir/boot/vmlinuz" "$dir/boot/initrd.img" "$dir/var/lock"
	ln -s /run/lock "$dir/var/lock"
	cp "$BUSYBOX" "$dir/bin/busybox"
	cp "$KERNEL" "$dir/boot/vmlinuz"
	initrd "$dir/boot/initrd.img"
	rm -f "$dir/sbin/init"
	cat >"$dir/sbin/init" <<'INIT'
#!/bin/sh
# The slot's init: mount what the agent needs, run boot-check, then a shell
# on the serial console. FERRY-* lines are markers the QEMU tests wait for.
export PATH=/usr/bin:/bin:/sbin
exec </dev/@CONSOLE@ >/dev/@CONSOLE@ 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
# /var/lock is /run/lock: fw_printenv and ferry-agent lock the U-Boot
# environment there.
mkdir -p /run/lock
for u in /sys/class/block/*/uevent; do
	name=$(sed -n 's/^PARTNAME=//p' "$u")
	dev=/dev/$(sed -n 's/^DEVNAME=//p' "$u")
	case $name in
	esp) mount -t vfat -o rw,flush "$dev" /boot/efi ;;
	boot) mount -t vfat -o rw,flush "$dev" /boot/firmware ;;
	data) mount -t ext4 -o rw "$dev" /var/lib/ferry ;;
	esac
done
[ -d /sys/firmware/efi/efivars ] && mount -t efivarfs efivarfs /sys/firmware/efi/efivars
ip link set lo up
if ip link set eth0 up 2>/dev/null; then
	ip addr add 10.0.2.15/24 dev eth0
	ip route add default via 10.0.2.2
fi
slot=
for arg in $(cat /proc/cmdline); do
	case $arg in ferry.slot=*) slot=${arg#ferry.slot=} ;; esac
done
echo "FERRY-BOOTED slot=$slot version=$(cat /etc/ferry/version)"
ferry-agent boot-check
echo "FERRY-BOOTCHECK rc=$?"
echo "FERRY-READY slot=$slot version=$(cat /etc/ferry/version)"
stty -echo 2>/dev/null
while :; do sh; done
INIT
	sed -i "s/@CONSOLE@/$CONSOLE/g" "$dir/sbin/init"
	chmod 755 "$dir/sbin/init"
	# The applets as links to /bin/busybox (the root is mounted read-only:
	# no --install at boot). They are made last, and never over a file: a
	# link is absolute, and writing through one would write the build
	# host's /bin/busybox.
	local applet applets
	applets=$("$BUSYBOX" --list-full 2>/dev/null) || applets=$(busybox --list-full)
	for applet in $applets; do
		mkdir -p "$dir/$(dirname "$applet")"
		[ -e "$dir/$applet" ] || [ -L "$dir/$applet" ] || ln -s /bin/busybox "$dir/$applet"
	done
}

# rootfs DIR OUT LABEL
rootfs() {
	local dir=$1 out=$2 label=$3
	stamp "$dir"
	rm -f "$out"
	mkfs.ext4 -q -F -L "$label" -U 0b2d5b1e-0000-4000-8000-00000000f001 \
		-E hash_seed=0b2d5b1e-0000-4000-8000-00000000f002,root_owner=0:0 \
		-I 256 -b 4096 -d "$dir" "$out" "${SLOT_MIB}M" >/dev/null
}

# data DIR OUT
data() {
	local dir=$1 out=$2
	stamp "$dir"
	rm -f "$out"
	mkfs.ext4 -q -F -L data -U 0b2d5b1e-0000-4000-8000-00000000da7a \
		-E hash_seed=0b2d5b1e-0000-4000-8000-00000000f003,root_owner=0:0 \
		-d "$dir" "$out" "${DATA_MIB}M" >/dev/null
}

# esp OUT GRUB_CFG: GRUB as the removable-media loader EFI/BOOT/BOOTX64.EFI,
# with its prefix on the ESP (not a memdisk), so grub.cfg's
# ${prefix}/grubenv is a file GRUB's save_env can write in place. The block
# is made here, at build time (the agent never creates it), on slot a,
# committed, with the board's kernel arguments.
esp() {
	local out=$1 cfg=$2 work
	work=$(mktemp -d)
	grub-mkimage -O x86_64-efi -p /EFI/BOOT -o "$work/BOOTX64.EFI" \
		part_gpt fat ext2 normal configfile linux search search_label \
		loadenv test echo regexp efi_gop all_video
	cp "$cfg" "$work/grub.cfg"
	grub-editenv "$work/grubenv" create
	grub-editenv "$work/grubenv" set ferry_slot=a upgrade_available=0 bootcount=0 bootlimit=1 \
		"ferry_kernel_args=$KERNEL_ARGS"
	stamp "$work"
	rm -f "$out"
	mkfs.fat -C -n ESP -i 0b2d5e5f --invariant "$out" $((ESP_MIB * 1024)) >/dev/null
	mmd -i "$out" ::/EFI ::/EFI/BOOT
	mcopy -m -i "$out" "$work/BOOTX64.EFI" "$work/grub.cfg" "$work/grubenv" ::/EFI/BOOT/
	rm -rf "$work"
}

# uboot OUT BOOT_CMD: U-Boot's boot partition (FAT), which its stock boot
# command (distro_bootcmd) searches for boot.scr: BOOT_CMD (the shipped
# examples/uboot/boot.cmd) as a script image, and the script's state file
# ferry.env, a U-Boot environment image (CRC32 + variables) that the script
# imports and exports and fw_printenv and ferry-agent read and write. It
# starts on slot a, committed.
ENV_SIZE=0x1000
uboot() {
	local out=$1 cmd=$2 work
	work=$(mktemp -d)
	mkimage -A arm64 -O linux -T script -C none -n "ferry A/B" -d "$cmd" "$work/boot.scr" >/dev/null
	printf '%s\n' ferry_slot=a upgrade_available=0 bootcount=0 bootlimit=1 >"$work/env.txt"
	mkenvimage -s "$ENV_SIZE" -o "$work/ferry.env" "$work/env.txt"
	# mkimage stamps the script image with SOURCE_DATE_EPOCH (reproducible).
	stamp "$work"
	rm -f "$out"
	mkfs.fat -C -n BOOT -i 0b2d5b00 --invariant "$out" $((ESP_MIB * 1024)) >/dev/null
	mcopy -m -i "$out" "$work/boot.scr" "$work/ferry.env" ::/
	rm -rf "$work"
}

# esp-efi OUT: the EFI system partition for ferry-agent's efi backend
# ([boot] backend = "efi"), where the UEFI boot manager itself chooses the
# slot: slots a and b are two boot entries (Boot####), BootNext is the
# trial, BootOrder the commit. Each entry starts its own loader,
# EFI/ferry/a.efi or b.efi: a GRUB with a built-in configuration that boots
# its slot's kernel and initramfs from the slot (so an update brings its
# kernel) and nothing else: no grub.cfg, no environment block, no boot
# counting. When the kernel cannot be loaded, exit hands back to the
# firmware, which tries the next entry in BootOrder. The removable-media
# path EFI/BOOT/BOOTX64.EFI, which the firmware boots while it has no
# entries of ours, is slot a's loader: it boots the device the first time,
# and ferry-agent then creates the two entries ([boot.efi] loader_a,
# loader_b).
esp_efi() {
	local out=$1 work slot part
	work=$(mktemp -d)
	for slot in a b; do
		if [ "$slot" = a ]; then part=2; else part=3; fi
		cat >"$work/$slot.cfg" <<CFG
regexp --set=1:ferry_disk '^\(?([^,)]+)' "\${root}"
set root="\${ferry_disk},gpt$part"
linux /boot/vmlinuz root=PARTLABEL=rootfs_$slot ro panic=10 ferry.slot=$slot
initrd /boot/initrd.img
boot
exit
CFG
		grub-mkimage -O x86_64-efi -p /EFI/ferry -c "$work/$slot.cfg" -o "$work/$slot.efi" \
			part_gpt ext2 linux regexp boot minicmd
	done
	cp "$work/a.efi" "$work/BOOTX64.EFI"
	stamp "$work"
	rm -f "$out"
	mkfs.fat -C -n ESP -i 0b2d5e5f --invariant "$out" $((ESP_MIB * 1024)) >/dev/null
	mmd -i "$out" ::/EFI ::/EFI/BOOT ::/EFI/ferry
	mcopy -m -i "$out" "$work/BOOTX64.EFI" ::/EFI/BOOT/
	mcopy -m -i "$out" "$work/a.efi" "$work/b.efi" ::/EFI/ferry/
	rm -rf "$work"
}

# disk OUT ESP A B DATA: partitions at fixed offsets with fixed GUIDs.
# Partition 1 is the ESP, or with PART1=boot U-Boot's boot partition
# (basic data, flagged legacy-BIOS-bootable: the partition distro_bootcmd
# scans first).
disk() {
	local out=$1 espimg=$2 a=$3 b=$4 dat=$5
	local total=$((1 + ESP_MIB + 2 * SLOT_MIB + DATA_MIB + 1))
	local part1=(-t 1:ef00 -c 1:esp)
	case $PART1 in
	esp) ;;
	boot) part1=(-t 1:0700 -c 1:boot -A 1:set:2) ;;
	*) die "PART1=$PART1: want esp or boot" ;;
	esac
	rm -f "$out"
	truncate -s "${total}M" "$out"
	sgdisk -o -U 0b2d5b1e-0000-4000-8000-0000000d15c0 \
		-n 1:1M:+${ESP_MIB}M "${part1[@]}" -u 1:0b2d5b1e-0000-4000-8000-000000000001 \
		-n 2:0:+${SLOT_MIB}M -t 2:8304 -c 2:rootfs_a -u 2:0b2d5b1e-0000-4000-8000-000000000002 \
		-n 3:0:+${SLOT_MIB}M -t 3:8304 -c 3:rootfs_b -u 3:0b2d5b1e-0000-4000-8000-000000000003 \
		-n 4:0:+${DATA_MIB}M -t 4:8300 -c 4:data -u 4:0b2d5b1e-0000-4000-8000-000000000004 \
		"$out" >/dev/null
	local off=1
	put() { dd if="$1" of="$out" bs=1M seek="$2" conv=notrunc,sparse status=none; }
	put "$espimg" $off; off=$((off + ESP_MIB))
	put "$a" $off; off=$((off + SLOT_MIB))
	put "$b" $off; off=$((off + SLOT_MIB))
	put "$dat" $off
}

cmd=${1:-}
shift || true
case $cmd in
tree) [ $# -eq 1 ] || die "usage: tree DIR"; tree "$@" ;;
rootfs) [ $# -eq 3 ] || die "usage: rootfs DIR OUT LABEL"; rootfs "$@" ;;
data) [ $# -eq 2 ] || die "usage: data DIR OUT"; data "$@" ;;
esp) [ $# -eq 2 ] || die "usage: esp OUT GRUB_CFG"; esp "$@" ;;
uboot) [ $# -eq 2 ] || die "usage: uboot OUT BOOT_CMD"; uboot "$@" ;;
esp-efi) [ $# -eq 1 ] || die "usage: esp-efi OUT"; esp_efi "$@" ;;
disk) [ $# -eq 5 ] || die "usage: disk OUT ESP A B DATA"; disk "$@" ;;
*) die "usage: mkimage.sh tree|rootfs|esp|esp-efi|uboot|data|disk ... (see the top of this file)" ;;
esac
