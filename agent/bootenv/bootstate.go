package bootenv

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
)

// The variables of the boot protocol. upgrade_available, bootcount and
// bootlimit are the names U-Boot's bootcount feature (CONFIG_BOOTCOUNT_ENV)
// uses, so a stock U-Boot counts boot attempts and runs altbootcmd by
// itself; testdata/grub.cfg does the same in GRUB.
const (
	DefaultSlotVar      = "ferry_slot"
	UpgradeAvailableVar = "upgrade_available"
	BootCountVar        = "bootcount"
	BootLimitVar        = "bootlimit"

	SlotA = "a"
	SlotB = "b"

	// DefaultBootLimit is the number of attempts MarkTentative allows the
	// new slot when the environment sets no limit: one.
	DefaultBootLimit = 1
)

var (
	// ErrInvalidSlot means a slot name other than SlotA or SlotB.
	ErrInvalidSlot = errors.New("invalid slot")
	// ErrFallbackDetected means the bootloader gave up on the tentative
	// slot and booted the other one. Committing now would make the slot
	// that failed permanent, so Commit refuses; call Rollback instead.
	ErrFallbackDetected = errors.New("bootloader fell back from the tentative slot")
)

// Boot runs the A/B boot protocol on a Store. The bootloader's part: while
// upgrade_available=1, count each boot attempt in bootcount before booting,
// and once bootcount exceeds bootlimit boot the other slot without changing
// the slot variable (in U-Boot, from altbootcmd; in GRUB, testdata/grub.cfg).
type Boot struct {
	Store Store
	// SlotVar names the variable holding the slot to boot; empty means
	// DefaultSlotVar.
	SlotVar string
}

// BootState is the boot protocol's view of the environment.
type BootState struct {
	// Slot is the slot the bootloader is set to boot: SlotA, SlotB, or ""
	// when unset.
	Slot string
	// UpgradeAvailable is set while Slot is on trial.
	UpgradeAvailable bool
	// BootCount is the number of attempts to boot the trial slot so far;
	// BootLimit the number allowed (0: no limit).
	BootCount, BootLimit int
	// FallbackDetected means the attempts are used up: the bootloader now
	// boots the other slot, though Slot still names the one that failed.
	FallbackDetected bool
	// Current is the slot running now when the firmware says so (the efi
	// backend, from BootCurrent); "" when it cannot tell.
	Current string
}

// BootedSlot is the slot that runs: Current when known, else the slot the
// bootloader boots in this state: Slot, or the other slot once the
// bootloader has fallen back.
func (s BootState) BootedSlot() string {
	if s.Current != "" {
		return s.Current
	}
	if s.FallbackDetected {
		return OtherSlot(s.Slot)
	}
	return s.Slot
}

// OtherSlot returns SlotB for SlotA and SlotA for anything else, as the
// bootloader scripts do.
func OtherSlot(slot string) string {
	if slot == SlotA {
		return SlotB
	}
	return SlotA
}

// State reads the boot state.
func (b Boot) State() (BootState, error) {
	vars, err := b.Store.Load()
	if err != nil {
		return BootState{}, fmt.Errorf("read boot state: %w", err)
	}
	s, err := b.parse(vars)
	if err != nil {
		return BootState{}, fmt.Errorf("read boot state: %w", err)
	}
	return s, nil
}

// MarkTentative sets slot to be tried on the next boot: upgrade_available=1
// and bootcount=0, and bootlimit=DefaultBootLimit unless a limit is set.
func (b Boot) MarkTentative(slot string) error {
	return b.update("mark slot "+slot+" tentative", func(vars map[string]string) error {
		if err := checkSlot(slot); err != nil {
			return err
		}
		limit, err := counter(vars, BootLimitVar)
		if err != nil {
			return err
		}
		vars[b.slotVar()] = slot
		vars[UpgradeAvailableVar] = "1"
		vars[BootCountVar] = "0"
		if limit == 0 {
			vars[BootLimitVar] = strconv.Itoa(DefaultBootLimit)
		}
		return nil
	})
}

// Commit makes the slot on trial permanent: upgrade_available=0 and
// bootcount=0. It fails with ErrFallbackDetected if the bootloader has
// already given up on that slot.
func (b Boot) Commit() error {
	return b.update("commit boot slot", func(vars map[string]string) error {
		s, err := b.parse(vars)
		if err != nil {
			return err
		}
		if s.FallbackDetected {
			return fmt.Errorf("%w: slot %s used %d of %d boot attempts", ErrFallbackDetected, s.Slot, s.BootCount, s.BootLimit)
		}
		vars[UpgradeAvailableVar] = "0"
		vars[BootCountVar] = "0"
		return nil
	})
}

// Rollback makes goodSlot the slot to boot and ends any trial:
// upgrade_available=0 and bootcount=0.
func (b Boot) Rollback(goodSlot string) error {
	return b.update("roll back to slot "+goodSlot, func(vars map[string]string) error {
		if err := checkSlot(goodSlot); err != nil {
			return err
		}
		vars[b.slotVar()] = goodSlot
		vars[UpgradeAvailableVar] = "0"
		vars[BootCountVar] = "0"
		return nil
	})
}

// update changes the loaded variables and saves them only if something
// changed, to spare flash writes. MarkTentative and Rollback overwrite the
// protocol's variables, so a garbled value does not stop them repairing it. It never saves over an environment it
// could not load: writing only the protocol's variables would drop the
// bootloader's own (bootcmd, …) and leave a device that cannot boot.
func (b Boot) update(what string, change func(map[string]string) error) error {
	vars, err := b.Store.Load()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	old := maps.Clone(vars)
	if err := change(vars); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if maps.Equal(old, vars) {
		return nil
	}
	if err := b.Store.Save(vars); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (b Boot) slotVar() string {
	if b.SlotVar == "" {
		return DefaultSlotVar
	}
	return b.SlotVar
}

func (b Boot) parse(vars map[string]string) (BootState, error) {
	s := BootState{Slot: vars[b.slotVar()]}
	if s.Slot != "" {
		if err := checkSlot(s.Slot); err != nil {
			return s, fmt.Errorf("%s: %w", b.slotVar(), err)
		}
	}
	switch v := vars[UpgradeAvailableVar]; v {
	case "", "0":
	case "1":
		s.UpgradeAvailable = true
	default:
		return s, fmt.Errorf("%s=%q, want 0 or 1", UpgradeAvailableVar, v)
	}
	var err error
	if s.BootCount, err = counter(vars, BootCountVar); err != nil {
		return s, err
	}
	if s.BootLimit, err = counter(vars, BootLimitVar); err != nil {
		return s, err
	}
	s.FallbackDetected = s.UpgradeAvailable && s.BootLimit > 0 && s.BootCount > s.BootLimit
	return s, nil
}

// counter reads a decimal counter, as U-Boot writes bootcount; unset is 0.
func counter(vars map[string]string, name string) (int, error) {
	v := vars[name]
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q, want a decimal count", name, v)
	}
	return n, nil
}

func checkSlot(slot string) error {
	if slot != SlotA && slot != SlotB {
		return fmt.Errorf("%w %q, want %q or %q", ErrInvalidSlot, slot, SlotA, SlotB)
	}
	return nil
}
