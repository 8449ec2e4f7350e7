// Package bootenv reads and writes the variables a bootloader keeps between
// boots, and layers the A/B boot protocol the ferry agent uses on top.
//
// A [Store] is a flat set of string variables that is loaded and saved as a
// whole. Three backends implement it:
//
//   - [UBootEnv]: a U-Boot environment on a block device, a partition or a
//     file, byte-compatible with libubootenv's fw_printenv/fw_setenv and
//     configured by the same fw_env.config file ([OpenUBootConfig]). Single
//     and redundant (two copy) layouts are supported; a redundant
//     environment survives a power cut during Save, because Save only ever
//     overwrites the copy that is not in use.
//   - [GrubEnv]: a GRUB environment block (grubenv) as written by
//     grub-editenv and read by GRUB's load_env.
//   - [FileEnv]: plain name=value lines, for tests and custom bootloaders.
//
// The backends agree with their bootloader's own tools on what a stored
// environment means, including the awkward corners (sizes in fw_env.config
// are hexadecimal even without a 0x prefix; GRUB escapes backslash and
// newline with a backslash). When nothing valid is stored, Load fails with
// [ErrNoValidEnv] rather than guessing: a caller that wants a default
// environment checks for it explicitly:
//
//	vars, err := env.Load()
//	if errors.Is(err, bootenv.ErrNoValidEnv) {
//		vars = defaults // and Save them, to repair the store
//	}
//
// [Boot] implements the boot protocol on any Store with the variables U-Boot's
// bootcount feature uses: a slot variable (default "ferry_slot", "a" or "b"),
// upgrade_available, bootcount and bootlimit. [Boot.MarkTentative] asks the
// bootloader to try a slot; if the new system does not call [Boot.Commit]
// before bootcount exceeds bootlimit, the bootloader boots the other slot
// and [Boot.State] reports FallbackDetected. testdata/grub.cfg is the GRUB
// side of this protocol.
package bootenv
