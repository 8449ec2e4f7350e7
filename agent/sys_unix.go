//go:build unix

package agent

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// lockPath takes an exclusive flock(2) on path, waiting for another agent
// command to finish; closing the file releases it.
func lockPath(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// ownProcessGroup makes cmd the leader of a new process group and, when
// its context ends, kills the whole group, so that a health check's
// children cannot outlive its timeout.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
