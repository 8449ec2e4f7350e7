//go:build !linux

package media

import "os"

func blockDevNum(string) (major, minor uint32, ok bool) { return 0, 0, false }

func dropCache(*os.File) {}
