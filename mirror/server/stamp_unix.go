package server

import (
	"io/fs"
	"syscall"
)

func stampOf(st fs.FileInfo) fileStamp {
	s := fileStamp{mod: st.ModTime(), size: st.Size()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.ino = sys.Ino
	}
	return s
}
