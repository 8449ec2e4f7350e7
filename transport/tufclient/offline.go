package tufclient

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/ferry-update/ferry/transport/wire"
)

// ReadFunc reads one metadata file by name (root.json, N.root.json,
// targets.json) from wherever a copy of a mirror's metadata lives (a
// stick), at most max bytes; an error wrapping fs.ErrNotExist when the
// file is not there.
type ReadFunc func(name string, max int64) ([]byte, error)

// CheckOffline verifies a copy of a mirror's metadata carried without a
// network link (a stick built for a deployment, docs/fleet.md §12): the
// root chain from the trusted root (trustedRootPath, or the newer root
// this device moved to in stateDir) through the N.root.json files read
// offers, each signed by a threshold of the previous root's and its own
// keys; the final root unexpired; then targets.json signed by a
// threshold of the targets keys that root names, unexpired, and not
// older than the targets this device trusted last (stateDir), so an old
// copy cannot bring back a retired assignment key.
//
// The timestamp and snapshot roles are not consulted: they prove
// freshness, which a stick cannot (the timestamp expires within a day);
// what bounds a stick's age are the expiries of the targets and of each
// assignment. Nothing is written to stateDir: a later network Check
// works from what it trusted before. Every refusal is an *Error.
func CheckOffline(read ReadFunc, trustedRootPath, stateDir string, now time.Time) (*Targets, error) {
	st := state{dir: stateDir}
	trusted, err := st.trustedRoot(trustedRootPath, now)
	if err != nil {
		return nil, err
	}
	for range MaxRootRotations {
		next := trusted.Root.Signed.Version + 1
		b, err := read(wire.RootFile(next), MaxRootSize)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, &Error{Kind: Unavailable, Role: "root", Msg: wire.RootFile(next), Err: err}
		}
		if _, err := trusted.UpdateRoot(b); err != nil {
			e := classify("root", err)
			e.Msg = wire.RootFile(next)
			if e.Kind == Rollback {
				e.Kind, e.Msg = Mismatch, fmt.Sprintf("%s is not root version %d", wire.RootFile(next), next)
			}
			return nil, e
		}
	}
	root := trusted.Root
	if root.Signed.IsExpired(trusted.RefTime) {
		return nil, &Error{Kind: Expired, Role: "root", Expires: root.Signed.Expires, Msg: "the mirror's root must be renewed with its root key ('ferry mirror refresh --root-key')"}
	}
	b, err := read(wire.TUFFile(metadata.TARGETS), MaxTargetsSize)
	if err != nil {
		return nil, &Error{Kind: Unavailable, Role: "targets", Err: err}
	}
	tg, err := metadata.Targets().FromBytes(b)
	if err != nil {
		return nil, &Error{Kind: Malformed, Role: "targets", Err: err}
	}
	if err := root.VerifyDelegate(metadata.TARGETS, tg); err != nil {
		return nil, &Error{Kind: BadSignature, Role: "targets", Err: err}
	}
	if tg.Signed.IsExpired(trusted.RefTime) {
		return nil, &Error{Kind: Expired, Role: "targets", Expires: tg.Signed.Expires}
	}
	if local := st.read(stateTargets, MaxTargetsSize); local != nil {
		// Written by Check after it verified it.
		if have, err := metadata.Targets().FromBytes(local); err == nil && tg.Signed.Version < have.Signed.Version {
			return nil, &Error{Kind: Rollback, Role: "targets", Have: have.Signed.Version, Got: tg.Signed.Version}
		}
	}
	t, err := newTargets(tg)
	if err != nil {
		return nil, &Error{Kind: Malformed, Role: "targets", Err: err}
	}
	t.RootVersion = root.Signed.Version
	return t, nil
}
