//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package module

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

func supported() error { return nil }

// setProcAttr puts the module in a process group of its own, so that a
// timeout or a cancelled context kills everything it started.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}

func mkfifo(path string) error {
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return &os.PathError{Op: "mkfifo", Path: path, Err: err}
	}
	return nil
}

// openFIFOWriter opens the write end of a named pipe without blocking: it
// fails with errNoReader while no process has the read end open. The file
// is non-blocking, so the runtime poller serves it and write deadlines work.
func openFIFOWriter(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), path), nil
		case err == syscall.EINTR:
			continue
		case err == syscall.ENXIO:
			return nil, errNoReader
		default:
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
	}
}

func isBrokenPipe(err error) bool { return errors.Is(err, syscall.EPIPE) }
