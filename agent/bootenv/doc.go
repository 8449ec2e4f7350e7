// Package bootenv reads and writes the variables a bootloader keeps between
// boots, and layers the A/B boot protocol the ferry agent uses on top.
//
// A [Store] is a flat set of string variables that is loaded and saved as a
// whole. Three backends implement it (a fourth boot backend, [EFIBoot],
// keeps the boot state in UEFI variables; see "The efi backend"):
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
//
// # The efi backend
//
// [EFIBoot] runs the same protocol on the UEFI boot manager itself, with
// no bootloader script, as RAUC's efi backend does: slots a and b are two
// Boot#### load options, found by their descriptions ("ferry a", "ferry
// b"), each starting that slot's loader (examples/qemu uses a small GRUB
// per slot that boots the slot's kernel). The firmware's variables are the
// boot state:
//
//   - BootOrder: its first active slot entry is the committed slot.
//   - BootNext: the trial. The boot manager boots it once and deletes it
//     before starting it, so a trial that panics, hangs into a watchdog or
//     loses power falls back to BootOrder's slot at the next reset with
//     nothing written. One attempt: BootLimit is 1.
//   - BootCurrent: the slot that runs ([BootState.Current]).
//   - FerryTrial (ferry's own vendor GUID 9be6a41b-9368-4a4b-840c-de12ec869e63,
//     data "a" or "b"): the slot MarkTentative sent on trial, the only
//     trace of a trial once the firmware has consumed BootNext, so that a
//     fallback (FallbackDetected) is told apart from a slot never tried.
//
// They are read and written through efivarfs directly, not by running
// efibootmgr: the agent stays one static binary (CGO_ENABLED=0) with no
// runtime dependency on efibootmgr and libefivar, it parses nothing meant
// for people, and it controls each write: every change is one write(2) of
// the 4-byte attributes (non-volatile, boot service, runtime) and the data
// into the variable's file, which efivarfs makes one SetVariable() call.
// The firmware replaces a variable as a whole and fault-tolerantly (EDK2's
// variable store writes through its fault-tolerant write protocol), so a
// power cut leaves each variable old or new. A file is never truncated or
// deleted before it is rewritten (libefivar deletes and recreates, which
// leaves a moment with no BootOrder at all). efivarfs marks variables it
// does not know as immutable; the flag is cleared (FS_IOC_SETFLAGS) before
// a write or delete, as efibootmgr does. efibootmgr stays useful to look:
// `efibootmgr -v` lists the entries, BootOrder and BootNext.
//
// Each step writes in this order; P is the committed slot, X the other.
// "Cut after" is a power cut after that write; the next boot and how
// State reads it:
//
//	MarkTentative(X)  1. FerryTrial=X   cut: P boots; reads as a fallback of X
//	                                    (the agent rolls the install back)
//	                  2. BootNext=X     the trial: X boots once
//	Commit (X runs)   1. BootOrder=X,…  the commit point; cut before it: P
//	                                    boots (fallback of X), after: X, committed
//	                  2. delete BootNext (when set), 3. delete FerryTrial
//	                                    cut: X boots, committed (a FerryTrial
//	                                    naming the committed slot is ignored)
//	Rollback(P)       1. BootOrder=P,…  only when P is not first already
//	                  2. BootNext=P if X runs, else delete it
//	                  3. delete FerryTrial
//	                                    any cut: P boots; FerryTrial left reads
//	                                    as a fallback, which the agent, rolling
//	                                    back already, finishes
//
// So at every point the firmware boots either the committed slot, or the
// slot on trial once, with the committed slot behind it.
// TestEFIPowerCuts checks each cut against a model of the boot manager;
// examples/qemu's TestEFIPowerCuts kills QEMU running OVMF at points of
// installs and commits.
//
// [EFIBoot.Provision] creates missing entries (an HD() device path to the
// slot's loader on the EFI system partition, read from its GPT, as
// efibootmgr --create makes) and, when BootOrder lists neither slot, puts
// the running slot first and the other second; the agent runs it at
// start when [boot.efi] names the loaders.
package bootenv
