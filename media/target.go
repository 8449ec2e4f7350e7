package media

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ferry-update/ferry/internal/mountinfo"
)

// InUseError says that a block device (or a partition of it, or a device
// built on it) is mounted or used as swap: writing it would destroy a
// filesystem in use. System is set when it holds the running system (/).
type InUseError struct {
	Device string
	Uses   []string // "/dev/sdb1 on /media/stick", "/dev/sda3 (swap)"
	System bool
}

func (e *InUseError) Error() string {
	if e.System {
		return fmt.Sprintf("%s is the disk the system runs from (%s); refusing to overwrite it", e.Device, strings.Join(e.Uses, ", "))
	}
	return fmt.Sprintf("%s is in use: %s (unmount it first, or pass --force)", e.Device, strings.Join(e.Uses, ", "))
}

// sysInfo is where the kernel tells what is mounted and which block
// devices belong together; tests point it at fakes.
type sysInfo struct {
	mountinfo string
	swaps     string
	sysfs     string
	// devNum returns the device number of a block device node.
	devNum func(path string) (major, minor uint32, ok bool)
}

var hostSys = sysInfo{mountinfo: mountinfo.Path, swaps: "/proc/swaps", sysfs: "/sys", devNum: blockDevNum}

// CheckTarget says whether device may be overwritten with an image: a
// regular file always may; a block device only if neither it, nor a
// partition of it, nor a device built on them (LVM, dm-crypt, RAID) is
// mounted or used as swap. Anything else is an error.
func CheckTarget(device string) error { return hostSys.checkTarget(device) }

func (si sysInfo) checkTarget(device string) error {
	st, err := os.Stat(device)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s does not exist", device)
	}
	if err != nil {
		return err
	}
	if st.Mode().IsRegular() {
		return nil
	}
	if st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return fmt.Errorf("%s is neither a block device nor a regular file", device)
	}
	return si.checkBlock(device)
}

// checkBlock is checkTarget for a block device.
func (si sysInfo) checkBlock(device string) error {
	maj, min, ok := si.devNum(device)
	if !ok {
		return fmt.Errorf("%s: cannot tell its device number", device)
	}
	ours, err := si.family(maj, min)
	if err != nil {
		return fmt.Errorf("%s: %w", device, err)
	}
	mounts, err := mountinfo.Read(si.mountinfo)
	if err != nil {
		return fmt.Errorf("cannot tell whether %s is mounted: %w", device, err)
	}
	use := &InUseError{Device: device}
	for _, m := range mounts {
		hit := ours[devKey(m.Major, m.Minor)]
		if !hit && filepath.IsAbs(m.Source) {
			if ma, mi, ok := si.devNum(m.Source); ok {
				hit = ours[devKey(ma, mi)]
			}
		}
		if hit {
			use.Uses = append(use.Uses, m.Source+" on "+m.MountPoint)
			if m.MountPoint == "/" {
				use.System = true
			}
		}
	}
	if f, err := os.Open(si.swaps); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) == 0 || !filepath.IsAbs(fields[0]) {
				continue
			}
			if ma, mi, ok := si.devNum(mountinfo.Unescape(fields[0])); ok && ours[devKey(ma, mi)] {
				use.Uses = append(use.Uses, fields[0]+" (swap)")
			}
		}
		f.Close()
	}
	if len(use.Uses) > 0 {
		sort.Strings(use.Uses)
		return use
	}
	return nil
}

func devKey(major, minor uint32) string { return fmt.Sprintf("%d:%d", major, minor) }

// family returns the device numbers of the whole disk that holds maj:min,
// its partitions, and every device stacked on any of them (holders).
func (si sysInfo) family(maj, min uint32) (map[string]bool, error) {
	classDir := filepath.Join(si.sysfs, "class", "block")
	dir, err := filepath.EvalSymlinks(filepath.Join(si.sysfs, "dev", "block", devKey(maj, min)))
	if err != nil {
		return nil, fmt.Errorf("not a block device the kernel knows (%w)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		dir = filepath.Dir(dir) // the whole disk
	}
	out := map[string]bool{}
	var add func(dir string, depth int)
	add = func(dir string, depth int) {
		if depth > 16 {
			return
		}
		if b, err := os.ReadFile(filepath.Join(dir, "dev")); err == nil {
			k := strings.TrimSpace(string(b))
			if out[k] {
				return
			}
			out[k] = true
		}
		holders, _ := os.ReadDir(filepath.Join(dir, "holders"))
		for _, h := range holders {
			if d, err := filepath.EvalSymlinks(filepath.Join(classDir, h.Name())); err == nil {
				add(d, depth+1)
			}
		}
	}
	add(dir, 0)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(p, "partition")); err == nil {
			add(p, 0)
		}
	}
	return out, nil
}
