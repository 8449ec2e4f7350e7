// Package qemu holds ferry's end-to-end tests on virtual machines: real
// firmware (OVMF), a real bootloader (GRUB, with the shipped
// examples/grub/grub.cfg byte for byte), the Debian kernel and a busybox
// system running the real ferry-agent, installed from a stick disk made by
// ferry media build and from ferry mirror serve on the host, through
// trials, health-check failures, kernel panics and power cuts (the QEMU
// process killed).
//
// The disk images come from mkimage.sh in this directory, the reference
// for building a ferry device image (README.md). The tests need
// qemu-system-x86, ovmf, grub-efi-amd64-bin, linux-image-amd64,
// busybox-static, cpio, e2fsprogs, mtools, dosfstools and gdisk; without
// them they skip (and fail under CI=1). No KVM is needed.
//
// Serial console logs are written to $FERRY_QEMU_ARTIFACTS (default: the
// test's temporary directory) and named on failure.
package qemu
