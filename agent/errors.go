package agent

import (
	"errors"
	"fmt"
	"strings"
)

// RefusedError says that a bundle was refused: its signatures, device
// type, version, shape or content did not pass. Nothing was activated.
// Callers tell it from an I/O failure with errors.As; the cause (a
// *verify.ThresholdError, *verify.DeviceTypeError, *bundle.Error,
// ErrDowngrade, ...) is wrapped.
type RefusedError struct {
	Bundle string // "name version", if the head could be read
	Err    error
}

func (e *RefusedError) Error() string {
	if e.Bundle == "" {
		return "bundle refused: " + e.Err.Error()
	}
	return "bundle " + e.Bundle + " refused: " + e.Err.Error()
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Reasons a bundle is refused, wrapped in a *RefusedError.
var (
	ErrDowngrade     = errors.New("version is below the installed one and the policy does not allow downgrades")
	ErrSameVersion   = errors.New("version is already installed and the policy does not allow installing it again")
	ErrUnknownTarget = errors.New("payload target is not configured on this device")
)

// Reasons a command cannot run in the agent's current state.
var (
	// ErrPending: an install is waiting for its reboot, health check,
	// commit or rollback; finish it first.
	ErrPending = errors.New("another install is pending")
	// ErrNothingPending: commit and rollback act on a pending install.
	ErrNothingPending = errors.New("no install is pending")
	// ErrNotBooted: the new slot has not been booted yet.
	ErrNotBooted = errors.New("the new slot has not been booted yet")
	// ErrSlotDevice: a slot device is missing, of the wrong kind, or is
	// the one the device runs from.
	ErrSlotDevice = errors.New("unusable slot device")
	// ErrUnknownBootState: the boot environment shows a trial that no
	// journal explains.
	ErrUnknownBootState = errors.New("boot environment is in a state the agent did not make")
)

// HealthCheckError says that the new system failed its health checks (and
// was rolled back).
type HealthCheckError struct {
	Command string
	Err     error
}

func (e *HealthCheckError) Error() string {
	return fmt.Sprintf("health check %q failed: %v", e.Command, e.Err)
}

func (e *HealthCheckError) Unwrap() error { return e.Err }

// oneLine flattens an error for a one-line journal record.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}
