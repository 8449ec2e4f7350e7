// Package qemu holds ferry's end-to-end tests on virtual machines: real
// firmware (OVMF), a real bootloader (GRUB, with the shipped
// examples/grub/grub.cfg byte for byte), the Debian kernel and a busybox
// system running the real ferry-agent, installed from a stick disk made by
// ferry media build and from ferry mirror serve on the host, through
// trials, health-check failures, kernel panics and power cuts (the QEMU
// process killed). The same runs on arm64: qemu-system-aarch64 -M virt,
// Debian's U-Boot and the shipped examples/uboot/boot.cmd, which does the
// slot choice and boot counting (uboot_test.go). efi_test.go does the
// x86_64 journey with the agent's efi backend, where OVMF's boot manager
// picks the slot (BootNext, BootOrder) and keeps the entries in the
// machine's own variable store.
//
// The disk images come from mkimage.sh in this directory, the reference
// for building a ferry device image (README.md). The tests need
// qemu-system-x86, ovmf, grub-efi-amd64-bin, linux-image-amd64,
// busybox-static, cpio, e2fsprogs, mtools, dosfstools and gdisk, and for
// arm64 qemu-system-arm, u-boot-qemu, u-boot-tools, libubootenv-tool and
// the arm64 kernel and busybox that arm64-root.sh unpacks into
// $FERRY_QEMU_ARM64; without them they skip (and fail under CI=1). No KVM
// is needed.
//
// Serial console logs are written to $FERRY_QEMU_ARTIFACTS (default: the
// test's temporary directory) and named on failure.
package qemu
