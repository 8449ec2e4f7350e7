//go:build unix

package agent

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup makes cmd the leader of a new process group and, when
// its context ends, kills the whole group, so that a health check's
// children cannot outlive its timeout.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

// freeBytes is the space unprivileged users may still write on the file
// system of dir (0 when it cannot tell).
func freeBytes(dir string) uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return uint64(st.Bavail) * uint64(st.Bsize)
}
