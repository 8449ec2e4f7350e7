package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/transport/wire"
)

// DefaultStickValidity is how long the assignments on a stick built for
// a deployment stay valid: the stick's journey to the site and back.
const DefaultStickValidity = 14 * 24 * time.Hour

// StickContent is what a stick built for a deployment carries besides
// its bundle (docs/fleet.md §12, bundle/FORMAT.md): the signed
// assignment of each device the deployment assigns the bundle now (the
// devices of the phases started so far that have not yet reported it
// installed or failed it), and the mirror's TUF root chain and targets,
// which publish the assignment keys the devices check them with.
type StickContent struct {
	Deployment devices.Deployment `json:"deployment"`
	// Devices are the devices with an assignment on the stick, in
	// rollout order.
	Devices []StickDevice `json:"devices"`
	// Expires is when the assignments expire.
	Expires time.Time `json:"expires"`
	// Assignments are the assignment envelopes by device id; TUF the
	// metadata files by name (N.root.json, targets.json).
	Assignments map[string][]byte `json:"-"`
	TUF         map[string][]byte `json:"-"`
}

// StickDevice is one device a stick carries an assignment for.
type StickDevice struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Phase int    `json:"phase"` // 1-based
}

// NothingAssignedError says a deployment assigns no device now, so a
// stick for it would carry nothing to install.
type NothingAssignedError struct {
	ID    int64
	Phase int // 1-based
}

func (e *NothingAssignedError) Error() string {
	return fmt.Sprintf("deployment %d assigns no device now: every device of phase %d has reported, and the next phase has not started", e.ID, e.Phase)
}

// StickFor signs, at at, the assignments a stick for deployment id
// carries: one for each device the deployment assigns its bundle now —
// the same devices a network poll would hand it to, so the phases hold
// across the air gap (the next phase's devices get a stick once the
// reports of this one are ingested and the phase ends). Each is valid
// for valid (DefaultStickValidity when 0; at most assign.MaxValidity).
// A deployment that is not running is a *devices.StateError; one that
// assigns nothing now a *NothingAssignedError.
func (l *Local) StickFor(ctx context.Context, id int64, at time.Time, valid time.Duration) (*StickContent, error) {
	if valid == 0 {
		valid = DefaultStickValidity
	}
	if valid < 0 || valid > assign.MaxValidity {
		return nil, fmt.Errorf("assignment validity %v: want more than 0 and at most %v", valid, assign.MaxValidity)
	}
	if err := l.Evaluate(ctx, at); err != nil {
		return nil, err
	}
	d, err := l.DeploymentDetail(ctx, id)
	if err != nil {
		return nil, err
	}
	if d.State != devices.Running {
		return nil, &devices.StateError{ID: id, State: d.State, Action: "carried on a stick"}
	}
	key, err := l.Store.AssignmentKey()
	if err != nil {
		return nil, err
	}
	ids, err := l.Store.MirrorIDs()
	if err != nil {
		return nil, err
	}
	issued := at.UTC().Truncate(time.Second)
	sc := &StickContent{Deployment: d.Deployment, Expires: issued.Add(valid), Assignments: map[string][]byte{}}
	for _, t := range d.Targets {
		if t.State != devices.Assigned {
			continue
		}
		a, err := l.AssignmentFor(ctx, t.Device, at)
		if err != nil {
			return nil, err
		}
		if a == nil || a.Deployment != id {
			continue
		}
		env, err := assign.Sign(&assign.Assignment{Mirror: ids[0], Device: t.Device, Deployment: id,
			Bundle: a.Bundle, Version: a.Version, Digest: a.Digest, Counter: a.Counter,
			Issued: issued, Expires: sc.Expires}, key)
		if err != nil {
			return nil, fmt.Errorf("assignment of %s: %w", t.Device, err)
		}
		sc.Assignments[t.Device] = env
		sc.Devices = append(sc.Devices, StickDevice{ID: t.Device, Name: t.Name, Phase: t.Phase + 1})
	}
	if len(sc.Devices) == 0 {
		return nil, &NothingAssignedError{ID: id, Phase: d.Phase + 1}
	}
	if sc.TUF, err = l.stickTUF(); err != nil {
		return nil, err
	}
	return sc, nil
}

// stickTUF is the mirror's metadata a device needs to trust its
// assignment keys offline: every root version, and the current targets.
func (l *Local) stickTUF() (map[string][]byte, error) {
	dir := filepath.Dir(l.Store.TUFRootPath())
	roots, err := filepath.Glob(filepath.Join(dir, "*"+wire.RootSuffix))
	if err != nil {
		return nil, err
	}
	sort.Strings(roots)
	out := map[string][]byte{}
	for _, p := range append(roots, filepath.Join(dir, wire.TUFFile("targets"))) {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("mirror metadata: %w", err)
		}
		out[filepath.Base(p)] = b
	}
	return out, nil
}
