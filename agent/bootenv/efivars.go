package bootenv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultEFIVarsDir is where Linux mounts efivarfs.
const DefaultEFIVarsDir = "/sys/firmware/efi/efivars"

// Vendor GUIDs of the EFI variables the efi backend uses: the UEFI
// specification's global variables (Boot####, BootOrder, BootNext,
// BootCurrent), and ferry's own (FerryTrial).
const (
	efiGlobalGUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
	ferryGUID     = "9be6a41b-9368-4a4b-840c-de12ec869e63"
)

// efiAttrs are the attributes of every variable the backend writes:
// non-volatile, boot service and runtime access, as efibootmgr writes them.
const efiAttrs = 0x1 | 0x2 | 0x4

// maxEFIVarSize bounds what is read of one variable; real ones are a few
// hundred bytes.
const maxEFIVarSize = 64 << 10

// efiVars reads and writes EFI variables through efivarfs: one file per
// variable, named NAME-GUID, holding the 4-byte little-endian attributes
// followed by the data. Any other directory with such files stands in for
// efivarfs in tests.
type efiVars struct {
	dir string
	// cut, when set (tests only), is asked before every write and
	// delete; true stops it there, as a power cut would.
	cut func() bool
}

// errCut is what a write stopped by efiVars.cut returns.
var errCut = errors.New("power cut (test)")

func (v efiVars) path(name, guid string) string { return filepath.Join(v.dir, name+"-"+guid) }

// get returns a variable's data; ok is false when the variable does not
// exist.
func (v efiVars) get(name, guid string) (data []byte, ok bool, err error) {
	f, err := os.Open(v.path(name, guid))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read EFI variable %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEFIVarSize+1))
	if err != nil {
		return nil, false, fmt.Errorf("read EFI variable %s: %w", name, err)
	}
	if len(b) > maxEFIVarSize {
		return nil, false, fmt.Errorf("read EFI variable %s: larger than %d bytes", name, maxEFIVarSize)
	}
	if len(b) < 4 {
		return nil, false, fmt.Errorf("read EFI variable %s: %d bytes, want the 4-byte attributes and data", name, len(b))
	}
	return b[4:], true, nil
}

// set creates or replaces a variable with one write(2) of attributes and
// data: efivarfs makes that one SetVariable() call, which replaces the
// variable as a whole (the firmware's variable store writes it fault
// tolerantly: a power cut leaves the old or the new value). The file is
// never truncated or removed first, which would be a second call and
// leave a window with no variable at all (libefivar deletes and
// recreates).
func (v efiVars) set(name, guid string, data []byte) error {
	if v.cut != nil && v.cut() {
		return errCut
	}
	p := v.path(name, guid)
	if err := clearImmutable(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write EFI variable %s: %w", name, err)
	}
	buf := make([]byte, 4+len(data))
	binary.LittleEndian.PutUint32(buf, efiAttrs)
	copy(buf[4:], data)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("write EFI variable %s: %w", name, err)
	}
	_, err = f.Write(buf)
	if err == nil && !isEFIVarFS(f) {
		// A plain directory standing in for efivarfs: cut what an
		// older, longer value left, and make it durable.
		if err = f.Truncate(int64(len(buf))); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write EFI variable %s: %w", name, err)
	}
	return nil
}

// remove deletes a variable; a missing one is not an error.
func (v efiVars) remove(name, guid string) error {
	if v.cut != nil && v.cut() {
		return errCut
	}
	p := v.path(name, guid)
	err := clearImmutable(p)
	if err == nil {
		err = os.Remove(p)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete EFI variable %s: %w", name, err)
	}
	return nil
}

// names lists the variables of a vendor GUID.
func (v efiVars) names(guid string) ([]string, error) {
	ents, err := os.ReadDir(v.dir)
	if err != nil {
		return nil, fmt.Errorf("list EFI variables: %w", err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if len(n) > len(guid)+1 && n[len(n)-len(guid)-1] == '-' && equalFoldASCII(n[len(n)-len(guid):], guid) {
			out = append(out, n[:len(n)-len(guid)-1])
		}
	}
	return out, nil
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
