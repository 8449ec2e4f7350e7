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
