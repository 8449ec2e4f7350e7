//go:build linux

package stick

import (
	"os"
	"syscall"
)

// deviceNumber returns the major and minor number of the device node at
// path.
func deviceNumber(path string) (major, minor uint32, ok bool) {
	st, err := os.Stat(path)
	if err != nil || st.Mode()&os.ModeDevice == 0 {
		return 0, 0, false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	rdev := uint64(sys.Rdev)
	// Linux's encoding (glibc gnu_dev_major/minor).
	return uint32((rdev>>8)&0xfff | (rdev>>32)&^0xfff), uint32(rdev&0xff | (rdev>>12)&^0xff), true
}
