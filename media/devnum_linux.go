//go:build linux

package media

import (
	"os"

	"golang.org/x/sys/unix"
)

// blockDevNum returns the device number of the block device node at path.
func blockDevNum(path string) (major, minor uint32, ok bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, 0, false
	}
	return unix.Major(st.Rdev), unix.Minor(st.Rdev), true
}

// dropCache asks the kernel to forget f's cached pages, so that the
// read-back check reads the device rather than memory.
func dropCache(f *os.File) {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
