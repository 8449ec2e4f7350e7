package operator

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/fleet"
)

// typedError is one of the fleet's typed errors as it crosses the API:
// an error answer names it ("kind") and carries its fields ("detail"), so
// that the client gives back the very error the fleet of a mirror
// directory gives, for the commands' messages, hints and exit codes.
type typedError struct {
	kind string
	// detail is err's error of this kind, if it is one.
	detail func(err error) (any, bool)
	// rebuild makes the error back from its detail.
	rebuild func(detail []byte) (error, bool)
}

func typed[T any, P interface {
	*T
	error
}](kind string) typedError {
	return typedError{
		kind: kind,
		detail: func(err error) (any, bool) {
			var e P
			return e, errors.As(err, &e)
		},
		rebuild: func(b []byte) (error, bool) {
			e := P(new(T))
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			return e, dec.Decode(e) == nil
		},
	}
}

// typedErrors are the errors that cross the API with their fields (the
// Error schema's kinds in openapi.yaml).
var typedErrors = []typedError{
	typed[devices.NotFoundError]("device-not-found"),
	typed[devices.AmbiguousError]("device-ambiguous"),
	typed[devices.StatusError]("device-status"),
	typed[devices.LabelError]("label"),
	typed[devices.GroupNotFoundError]("group-not-found"),
	typed[devices.FilterError]("filter"),
	typed[devices.SpecError]("spec"),
	typed[fleet.BundleNotFoundError]("bundle-not-found"),
	typed[devices.DeploymentNotFoundError]("deployment-not-found"),
	typed[devices.StateError]("deployment-state"),
	typed[devices.ApprovalError]("approval"),
}

// errorKind is the kind and detail of err, if it is a typed error.
func errorKind(err error) (string, any) {
	for _, t := range typedErrors {
		if d, ok := t.detail(err); ok {
			return t.kind, d
		}
	}
	return "", nil
}

// rebuildError is the typed error of an error answer's kind and detail,
// or nil if the kind is unknown (a newer mirror) or the detail not its.
func rebuildError(kind string, detail []byte) error {
	for _, t := range typedErrors {
		if t.kind == kind {
			if err, ok := t.rebuild(detail); ok {
				return err
			}
		}
	}
	return nil
}
