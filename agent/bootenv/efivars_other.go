//go:build !linux

package bootenv

import "os"

// Only Linux has efivarfs; elsewhere a directory stands in for it.

func clearImmutable(path string) error {
	_, err := os.Stat(path)
	return err
}

func isEFIVarFS(*os.File) bool { return false }

func blockSize(*os.File) int { return 512 }
