package bootenv

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// fsImmutableFL is FS_IMMUTABLE_FL of linux/fs.h.
const fsImmutableFL = 0x00000010

// clearImmutable clears the immutable flag efivarfs puts on variables it
// does not know to be safe to change (and which stops even root from
// writing or deleting them), as efibootmgr does. A file system without
// such flags is left alone.
func clearImmutable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fd := int(f.Fd())
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
		return nil
	}
	if err != nil {
		return err
	}
	if flags&fsImmutableFL == 0 {
		return nil
	}
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags&^fsImmutableFL))
}

// isEFIVarFS tells whether f is on efivarfs.
func isEFIVarFS(f *os.File) bool {
	var st unix.Statfs_t
	return unix.Fstatfs(int(f.Fd()), &st) == nil && uint32(st.Type) == unix.EFIVARFS_MAGIC
}

// blockSize is the logical block size of a disk, the unit of GPT's LBAs;
// 512 for a disk image in a file.
func blockSize(f *os.File) int {
	n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil || n < 512 {
		return 512
	}
	return n
}
