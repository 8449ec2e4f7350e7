//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package module

import (
	"os"
	"os/exec"
)

func supported() error { return ErrUnsupported }

func setProcAttr(*exec.Cmd) {}

func mkfifo(string) error { return ErrUnsupported }

func openFIFOWriter(string) (*os.File, error) { return nil, ErrUnsupported }

func isBrokenPipe(error) bool { return false }
