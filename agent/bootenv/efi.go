package bootenv

import (
	"fmt"
	"slices"
)

// Default labels (Boot#### descriptions) of the slots' boot entries.
const (
	DefaultEFILabelA = "ferry a"
	DefaultEFILabelB = "ferry b"
)

// trialVar is ferry's own variable (vendor ferryGUID) naming the slot
// MarkTentative sent on trial: the only memory of a trial once the
// firmware has consumed BootNext, so that a fallback can be told apart
// from a slot that was never tried.
const trialVar = "FerryTrial"

// EFIBoot runs the A/B boot protocol on UEFI boot entries, as RAUC's efi
// backend does: slots a and b are two Boot#### load options found by
// their descriptions (LabelA, LabelB). BootOrder's first slot entry is the
// committed slot; MarkTentative sets BootNext, which the firmware boots
// once and deletes before booting it, so a trial that never reaches
// Commit falls back to the committed slot at the next reset by itself;
// Commit moves the slot to the front of BootOrder; BootCurrent says which
// slot runs. The variables are read and written through efivarfs (Dir).
//
// Which state each write leaves and why a power cut at any point boots a
// good slot is in the package documentation ("The efi backend").
type EFIBoot struct {
	// Dir is where efivarfs is mounted; empty means DefaultEFIVarsDir.
	Dir string
	// LabelA and LabelB are the descriptions of the slots' entries;
	// empty means DefaultEFILabelA and DefaultEFILabelB.
	LabelA, LabelB string

	cut func() bool // efiVars.cut, for tests
}

func (e EFIBoot) vars() efiVars {
	if e.Dir == "" {
		return efiVars{dir: DefaultEFIVarsDir, cut: e.cut}
	}
	return efiVars{dir: e.Dir, cut: e.cut}
}

func (e EFIBoot) label(slot string) string {
	switch {
	case slot == SlotA && e.LabelA != "":
		return e.LabelA
	case slot == SlotA:
		return DefaultEFILabelA
	case e.LabelB != "":
		return e.LabelB
	}
	return DefaultEFILabelB
}

// efiState is what the backend reads of the firmware's variables.
type efiState struct {
	entry  map[string]uint16 // slot → its Boot#### number
	active map[string]bool   // slot → LOAD_OPTION_ACTIVE is set
	used   map[uint16]bool   // every Boot#### number in use
	order  []uint16          // BootOrder
	next   *uint16           // BootNext
	cur    *uint16           // BootCurrent
	trial  string            // FerryTrial: "a", "b" or ""
}

// read loads the slots' entries, BootOrder, BootNext, BootCurrent and
// FerryTrial. A slot without an entry is no error here.
func (e EFIBoot) read() (*efiState, error) {
	v := e.vars()
	s := &efiState{entry: map[string]uint16{}, active: map[string]bool{}, used: map[uint16]bool{}}
	names, err := v.names(efiGlobalGUID)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	for _, name := range names {
		n, ok := parseBootVarName(name)
		if !ok {
			continue
		}
		s.used[n] = true
		b, ok, err := v.get(name, efiGlobalGUID)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // deleted since the listing
		}
		o, err := parseLoadOption(b)
		if err != nil {
			// Not ours to judge: the firmware skips it too.
			continue
		}
		for _, slot := range []string{SlotA, SlotB} {
			if o.Description != e.label(slot) {
				continue
			}
			if old, dup := s.entry[slot]; dup {
				return nil, fmt.Errorf("%w: both %s and %s are labelled %q; delete one (efibootmgr -b NUM -B)", ErrNoValidEnv, bootVarName(old), name, e.label(slot))
			}
			s.entry[slot] = n
			s.active[slot] = o.Attributes&loadOptionActive != 0
		}
	}
	if b, ok, err := v.get("BootOrder", efiGlobalGUID); err != nil {
		return nil, err
	} else if ok {
		if s.order, err = parseBootOrder(b); err != nil {
			return nil, err
		}
	}
	for _, x := range []struct {
		name string
		to   **uint16
	}{{"BootNext", &s.next}, {"BootCurrent", &s.cur}} {
		b, ok, err := v.get(x.name, efiGlobalGUID)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		n, err := parseBootNumber(x.name, b)
		if err != nil {
			return nil, err
		}
		*x.to = &n
	}
	b, ok, err := v.get(trialVar, ferryGUID)
	if err != nil {
		return nil, err
	}
	if ok && (string(b) == SlotA || string(b) == SlotB) {
		s.trial = string(b)
	}
	return s, nil
}

// slotOf returns the slot whose entry is n, or "".
func (s *efiState) slotOf(n *uint16) string {
	if n == nil {
		return ""
	}
	for slot, e := range s.entry {
		if e == *n {
			return slot
		}
	}
	return ""
}

// primary is the committed slot: the first active slot entry in
// BootOrder, the one the firmware boots when BootNext is unset.
func (s *efiState) primary() string {
	for _, n := range s.order {
		if slot := s.slotOf(&n); slot != "" && s.active[slot] {
			return slot
		}
	}
	return ""
}

// state maps the variables onto the boot protocol (P the primary slot):
//
//	BootNext = X ≠ P                  X on trial, not booted yet
//	BootNext = P                      P; a rollback awaits its reboot
//	BootCurrent = X ≠ P, no BootNext  X on trial and running (BootNext consumed)
//	FerryTrial = X ≠ P, otherwise     X fell back: the firmware consumed
//	                                  BootNext, X did not commit, P booted
//	otherwise                         P, committed
func (s *efiState) state(e EFIBoot) (BootState, error) {
	p := s.primary()
	if p == "" {
		return BootState{}, fmt.Errorf("%w: BootOrder lists no active boot entry labelled %q or %q", ErrNoValidEnv, e.label(SlotA), e.label(SlotB))
	}
	next, cur := s.slotOf(s.next), s.slotOf(s.cur)
	st := BootState{Slot: p, Current: cur}
	switch {
	case next != "" && next != p:
		st = BootState{Slot: next, Current: cur, UpgradeAvailable: true, BootLimit: 1}
	case next != "":
	case cur != "" && cur != p:
		st = BootState{Slot: cur, Current: cur, UpgradeAvailable: true, BootCount: 1, BootLimit: 1}
	case s.trial != "" && s.trial != p:
		st = BootState{Slot: s.trial, Current: cur, UpgradeAvailable: true, BootCount: 1, BootLimit: 1, FallbackDetected: true}
	}
	return st, nil
}

// State reads the boot state from the firmware's variables.
func (e EFIBoot) State() (BootState, error) {
	s, err := e.read()
	if err != nil {
		return BootState{}, fmt.Errorf("read boot state: %w", err)
	}
	st, err := s.state(e)
	if err != nil {
		return BootState{}, fmt.Errorf("read boot state: %w", err)
	}
	return st, nil
}

// entryOf returns the boot number of slot's entry.
func (s *efiState) entryOf(e EFIBoot, slot string) (uint16, error) {
	if err := checkSlot(slot); err != nil {
		return 0, err
	}
	n, ok := s.entry[slot]
	if !ok {
		return 0, fmt.Errorf("%w: no boot entry labelled %q for slot %s", ErrNoValidEnv, e.label(slot), slot)
	}
	return n, nil
}

// MarkTentative sends slot on trial: FerryTrial=slot, then BootNext=its
// entry. It must not be the committed slot.
func (e EFIBoot) MarkTentative(slot string) error {
	if err := e.markTentative(slot); err != nil {
		return fmt.Errorf("mark slot %s tentative: %w", slot, err)
	}
	return nil
}

func (e EFIBoot) markTentative(slot string) error {
	s, err := e.read()
	if err != nil {
		return err
	}
	n, err := s.entryOf(e, slot)
	if err != nil {
		return err
	}
	p := s.primary()
	if p == "" {
		_, err := s.state(e)
		return err
	}
	if p == slot {
		return fmt.Errorf("%w: slot %s is the committed slot (first in BootOrder); a trial tries the other one", ErrInvalidSlot, slot)
	}
	v := e.vars()
	if s.trial != slot {
		if err := v.set(trialVar, ferryGUID, []byte(slot)); err != nil {
			return err
		}
	}
	if s.next == nil || *s.next != n {
		return v.set("BootNext", efiGlobalGUID, encodeBootOrder([]uint16{n}))
	}
	return nil
}

// Commit makes the slot on trial permanent: its entry moves to the front
// of BootOrder (the commit point), then BootNext and FerryTrial are
// deleted. It fails with ErrFallbackDetected if the firmware already fell
// back from that slot.
func (e EFIBoot) Commit() error {
	if err := e.commit(); err != nil {
		return fmt.Errorf("commit boot slot: %w", err)
	}
	return nil
}

func (e EFIBoot) commit() error {
	s, err := e.read()
	if err != nil {
		return err
	}
	st, err := s.state(e)
	if err != nil {
		return err
	}
	if st.FallbackDetected {
		return fmt.Errorf("%w: the firmware booted slot %s instead of slot %s on trial", ErrFallbackDetected, OtherSlot(st.Slot), st.Slot)
	}
	return e.settle(s, st.Slot, false)
}

// Rollback makes goodSlot the slot to boot and ends any trial: its entry
// goes to the front of BootOrder if it is not there; BootNext is deleted
// when goodSlot runs, or set to goodSlot when the other slot runs (so the
// state reads as a rollback awaiting its reboot, not as a trial); then
// FerryTrial is deleted.
func (e EFIBoot) Rollback(goodSlot string) error {
	if err := e.rollback(goodSlot); err != nil {
		return fmt.Errorf("roll back to slot %s: %w", goodSlot, err)
	}
	return nil
}

func (e EFIBoot) rollback(good string) error {
	s, err := e.read()
	if err != nil {
		return err
	}
	return e.settle(s, good, s.slotOf(s.cur) != good)
}

// settle makes slot the primary and ends the trial, writing only what
// changes, in the order the package documentation's table gives.
func (e EFIBoot) settle(s *efiState, slot string, nextToo bool) error {
	n, err := s.entryOf(e, slot)
	if err != nil {
		return err
	}
	if !s.active[slot] {
		return fmt.Errorf("%w: the boot entry %s of slot %s is not active", ErrNoValidEnv, bootVarName(n), slot)
	}
	v := e.vars()
	if s.primary() != slot {
		order := append([]uint16{n}, slices.DeleteFunc(slices.Clone(s.order), func(x uint16) bool { return x == n })...)
		if err := v.set("BootOrder", efiGlobalGUID, encodeBootOrder(order)); err != nil {
			return err
		}
	}
	switch {
	case nextToo && (s.next == nil || *s.next != n):
		if err := v.set("BootNext", efiGlobalGUID, encodeBootOrder([]uint16{n})); err != nil {
			return err
		}
	case !nextToo && s.next != nil:
		if err := v.remove("BootNext", efiGlobalGUID); err != nil {
			return err
		}
	}
	if s.trial != "" {
		return v.remove(trialVar, ferryGUID)
	}
	return nil
}

// EFIEntries says where the slots' loaders are, so that Provision can
// create their boot entries, as efibootmgr --create --disk --part --loader
// would.
type EFIEntries struct {
	// Disk is the disk holding the EFI system partition (/dev/vda) and
	// Partition its number on it (1).
	Disk      string
	Partition int
	// LoaderA and LoaderB are the slots' EFI loaders on that partition
	// (\EFI\ferry\a.efi; '/' works too).
	LoaderA, LoaderB string
}

// Provision creates the boot entry of each slot that has none, at the
// lowest free Boot#### number, active, with the slot's label and a
// device path to its loader; and when BootOrder lists neither slot's
// entry, it puts booted's entry first and the other's second, before the
// rest. What is there already is left alone, so Provision can run at every
// start. It returns what it did, for the log. Each step is one variable
// write, and a power cut between two leaves something the next Provision
// completes.
func (e EFIBoot) Provision(p EFIEntries, booted string) ([]string, error) {
	did, err := e.provision(p, booted)
	if err != nil {
		return did, fmt.Errorf("create EFI boot entries: %w", err)
	}
	return did, nil
}

func (e EFIBoot) provision(p EFIEntries, booted string) ([]string, error) {
	if err := checkSlot(booted); err != nil {
		return nil, err
	}
	s, err := e.read()
	if err != nil {
		return nil, err
	}
	v := e.vars()
	var did []string
	loaders := map[string]string{SlotA: p.LoaderA, SlotB: p.LoaderB}
	var missing []string
	for _, slot := range []string{SlotA, SlotB} {
		if _, ok := s.entry[slot]; ok {
			continue
		}
		if loaders[slot] == "" || p.Disk == "" {
			return nil, fmt.Errorf("%w: no boot entry labelled %q for slot %s, and no loader to create one", ErrNoValidEnv, e.label(slot), slot)
		}
		missing = append(missing, slot)
	}
	if len(missing) > 0 {
		part, err := readGPTPartition(p.Disk, p.Partition)
		if err != nil {
			return nil, err
		}
		for _, slot := range missing {
			n := uint16(0)
			for s.used[n] {
				if n == 0xffff {
					return did, fmt.Errorf("no free Boot#### number")
				}
				n++
			}
			o := loadOption{Attributes: loadOptionActive, Description: e.label(slot), FilePath: loaderDevicePath(part, loaders[slot])}
			if err := v.set(bootVarName(n), efiGlobalGUID, o.encode()); err != nil {
				return did, err
			}
			s.used[n], s.entry[slot], s.active[slot] = true, n, true
			did = append(did, fmt.Sprintf("created boot entry %s %q for slot %s: %s on partition %d (%s) of %s",
				bootVarName(n), o.Description, slot, loaders[slot], part.Number, part.GUIDString(), p.Disk))
		}
	}
	if s.primary() != "" {
		return did, nil
	}
	first, second := s.entry[booted], s.entry[OtherSlot(booted)]
	order := []uint16{first, second}
	for _, n := range s.order {
		if n != first && n != second {
			order = append(order, n)
		}
	}
	if err := v.set("BootOrder", efiGlobalGUID, encodeBootOrder(order)); err != nil {
		return did, err
	}
	return append(did, fmt.Sprintf("BootOrder: slot %s (%s) first, then slot %s (%s)", booted, bootVarName(first), OtherSlot(booted), bootVarName(second))), nil
}
