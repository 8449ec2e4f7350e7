package fleet

import (
	"context"
	"crypto/ed25519"
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
	valid, err := validity(valid, DefaultStickValidity)
	if err != nil {
		return nil, err
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
	issued := at.UTC().Truncate(time.Second)
	sc := &StickContent{Deployment: d.Deployment, Expires: issued.Add(valid), Assignments: map[string][]byte{}}
	sg, err := l.newSigner(issued, sc.Expires)
	if err != nil {
		return nil, err
	}
	if sc.Devices, err = sg.sign(ctx, l, d, at, sc.Assignments); err != nil {
		return nil, err
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

// signer signs assignments with the mirror's assignment key, for its
// newest mirror id, issued and expiring at fixed times.
type signer struct {
	key             ed25519.PrivateKey
	mirror          string
	issued, expires time.Time
}

func (l *Local) newSigner(issued, expires time.Time) (*signer, error) {
	key, err := l.Store.AssignmentKey()
	if err != nil {
		return nil, err
	}
	ids, err := l.Store.MirrorIDs()
	if err != nil {
		return nil, err
	}
	return &signer{key: key, mirror: ids[0], issued: issued, expires: expires}, nil
}

// sign puts into out the signed assignment of each device deployment d
// assigns its bundle now (as a network poll at at would), and returns
// those devices in rollout order.
func (sg *signer) sign(ctx context.Context, l *Local, d *devices.DeploymentDetail, at time.Time, out map[string][]byte) ([]StickDevice, error) {
	var devs []StickDevice
	for _, t := range d.Targets {
		if t.State != devices.Assigned {
			continue
		}
		a, err := l.AssignmentFor(ctx, t.Device, at)
		if err != nil {
			return nil, err
		}
		if a == nil || a.Deployment != d.ID {
			continue
		}
		env, err := assign.Sign(&assign.Assignment{Mirror: sg.mirror, Device: t.Device, Deployment: d.ID,
			Bundle: a.Bundle, Version: a.Version, Digest: a.Digest, Counter: a.Counter,
			Issued: sg.issued, Expires: sg.expires}, sg.key)
		if err != nil {
			return nil, fmt.Errorf("assignment of %s: %w", t.Device, err)
		}
		out[t.Device] = env
		devs = append(devs, StickDevice{ID: t.Device, Name: t.Name, Phase: t.Phase + 1})
	}
	return devs, nil
}

// DefaultRelayValidity is how long the assignments a site mirror takes
// over HTTP stay valid (RelayAssignments): a relay syncs at least daily,
// as the upstream's TUF timestamp it relays expires within a day.
const DefaultRelayValidity = 48 * time.Hour

// RelayAssignments signs, at at, the assignment of every device the
// mirror's running deployments assign now — what a site mirror relaying
// this one takes over HTTP ('ferry mirror sync SITE --from URL',
// docs/fleet.md §13), as StickFor does for one deployment's stick — each
// valid for valid (DefaultRelayValidity when 0; at most
// assign.MaxValidity). None assigned is an empty map.
func (l *Local) RelayAssignments(ctx context.Context, at time.Time, valid time.Duration) (map[string][]byte, error) {
	valid, err := validity(valid, DefaultRelayValidity)
	if err != nil {
		return nil, err
	}
	if err := l.Evaluate(ctx, at); err != nil {
		return nil, err
	}
	deps, err := l.Deployments(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	issued := at.UTC().Truncate(time.Second)
	var sg *signer
	for _, dep := range deps {
		if dep.State != devices.Running {
			continue
		}
		if sg == nil {
			if sg, err = l.newSigner(issued, issued.Add(valid)); err != nil {
				return nil, err
			}
		}
		d, err := l.DeploymentDetail(ctx, dep.ID)
		if err != nil {
			return nil, err
		}
		if _, err := sg.sign(ctx, l, d, at, out); err != nil {
			return nil, fmt.Errorf("deployment %d: %w", dep.ID, err)
		}
	}
	return out, nil
}

// validity is an assignment validity asked for: def when 0, else more
// than 0 and at most assign.MaxValidity.
func validity(valid, def time.Duration) (time.Duration, error) {
	if valid == 0 {
		return def, nil
	}
	if valid < 0 || valid > assign.MaxValidity {
		return 0, fmt.Errorf("assignment validity %v: want more than 0 and at most %v", valid, assign.MaxValidity)
	}
	return valid, nil
}
