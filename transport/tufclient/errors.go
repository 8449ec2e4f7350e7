package tufclient

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Kind says why Check refused the mirror's metadata, for callers to switch
// on.
type Kind string

// Kinds of Error.
const (
	// Expired: the metadata's expiry has passed. The mirror stopped
	// re-signing it, or someone replays metadata that was once valid (a
	// freeze attack). Retrying later may help; installing must not.
	Expired Kind = "expired"
	// Rollback: the metadata is older than what this device already
	// trusted (a replay of an older timestamp, snapshot or targets).
	Rollback Kind = "rollback"
	// BadSignature: not signed by the threshold of keys the trusted root
	// names for the role (tampered, or signed by a stolen key of another
	// role).
	BadSignature Kind = "bad-signature"
	// Mismatch: the file is not the one its parent metadata lists (length,
	// hash or version differ): tampered in transit or mixed from two
	// states of the mirror.
	Mismatch Kind = "mismatch"
	// Malformed: not TUF metadata of the expected role, or a target entry
	// that is not a ferry bundle.
	Malformed Kind = "malformed"
	// Unavailable: the mirror could not be reached or did not serve a
	// file. The device should back off and try again.
	Unavailable Kind = "unavailable"
)

// Error is what Check returns when it refuses the mirror's metadata (or
// cannot fetch it). Role is "root", "timestamp", "snapshot" or "targets".
type Error struct {
	Kind Kind
	Role string
	// Have and Got are versions, for Rollback: the one trusted and the
	// one offered.
	Have, Got int64
	// Expires is when the refused metadata expired, for Expired.
	Expires time.Time
	Msg     string
	Err     error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mirror metadata %s.json: ", e.Role)
	switch e.Kind {
	case Expired:
		fmt.Fprintf(&b, "expired at %s (freeze: the mirror is not re-signing it, or old metadata is replayed)", e.Expires.UTC().Format(time.RFC3339))
	case Rollback:
		b.WriteString("rollback refused")
		if e.Have > 0 {
			fmt.Fprintf(&b, ": version %d is older than the trusted version %d", e.Got, e.Have)
		}
	case BadSignature:
		b.WriteString("signatures do not verify against the trusted root")
	case Mismatch:
		b.WriteString("does not match what the mirror's signed metadata lists")
	case Malformed:
		b.WriteString("malformed")
	case Unavailable:
		b.WriteString("unavailable")
	}
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	if e.Err != nil && !(e.Kind == Expired || (e.Kind == Rollback && e.Have > 0)) {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// IsKind reports whether err is an *Error of kind k.
func IsKind(err error, k Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}

// NotListedError says that a bundle is not one the mirror's signed targets
// list under its name and version: a mix-and-match (a validly signed
// bundle served in place of another) or a bundle the mirror never
// published. The agent must not install it.
type NotListedError struct {
	Name, Version string
	Digest        string // what was offered
	Listed        string // what the targets list for Name/Version; "" when nothing
}

func (e *NotListedError) Error() string {
	if e.Listed == "" {
		return fmt.Sprintf("bundle %s %s (%s) is not listed in the mirror's signed targets: refusing it", e.Name, e.Version, e.Digest)
	}
	return fmt.Sprintf("bundle %s %s is %s, but the mirror's signed targets list %s: refusing a mix-and-match", e.Name, e.Version, e.Digest, e.Listed)
}

// classify turns an error of go-tuf's trustedmetadata into an *Error.
// Versions that go-tuf reports only in its messages are filled in by the
// caller, which parsed the offered metadata.
func classify(role string, err error) *Error {
	e := &Error{Role: role, Err: err}
	switch {
	case errors.Is(err, &metadata.ErrExpiredMetadata{}):
		e.Kind = Expired
	case errors.Is(err, &metadata.ErrUnsignedMetadata{}), errors.Is(err, &metadata.ErrValue{}):
		e.Kind = BadSignature
	case errors.Is(err, &metadata.ErrLengthOrHashMismatch{}):
		e.Kind = Mismatch
	case errors.Is(err, &metadata.ErrBadVersionNumber{}):
		e.Kind = Rollback
	default:
		e.Kind = Malformed
	}
	return e
}
