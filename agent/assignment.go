package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/transport"
	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/transport/tufclient"
	"github.com/ferry-update/ferry/transport/wire"
)

// assignmentFile keeps the counter of the last assignment the device
// accepted: an older one is refused as replayed.
const assignmentFile = identityDir + "/assignment"

// AssignmentError is an assignment the device refused, or one it cannot
// act on (the bundle it names is not what the mirror's signed targets
// list): nothing was installed. Err is an *assign.Error when the
// assignment itself was refused (forged, expired, foreign, replayed).
type AssignmentError struct {
	Err error
}

func (e *AssignmentError) Error() string {
	return "the mirror's assignment is refused, nothing is installed: " + e.Err.Error()
}

func (e *AssignmentError) Unwrap() error { return e.Err }

// FetchAssignment asks the mirror what this device is assigned: it sends
// a signed check-in to assign.Path and verifies the answer with the
// assignment keys the mirror's verified targets (tg) publish, for this
// device and mirror, unexpired by the device's clock and no older than
// the last it accepted. It returns nil when the mirror assigns nothing
// (or has not enrolled the device yet). An accepted assignment's counter
// is kept (durably) before it is returned.
func (a *Agent) FetchAssignment(ctx context.Context, client *http.Client, tg *tufclient.Targets) (*assign.Assignment, error) {
	signed, err := a.signedCheckIn(nil)
	if err != nil {
		return nil, fmt.Errorf("assignment from %s: %w", a.cfg.Mirror.URL, err)
	}
	ans, err := checkin.SendTo(ctx, a.httpClient(client), a.cfg.Mirror.URL, assign.Path, signed)
	if err != nil {
		return nil, err
	}
	if ans.Pending {
		a.logf("mirror %s has not enrolled this device (id %s) yet: it assigns it nothing", a.cfg.Mirror.URL, a.id.ID)
		return nil, nil
	}
	if len(ans.Body) == 0 {
		return nil, nil
	}
	return a.acceptAssignment(ans.Body, tg)
}

// acceptAssignment opens an assignment envelope with the assignment keys
// the verified targets (tg) publish and checks it is for this device and
// mirror, unexpired by the device's clock and no older than the last it
// accepted; its counter is then kept (durably). A refusal is an
// *AssignmentError.
func (a *Agent) acceptAssignment(env []byte, tg *tufclient.Targets) (*assign.Assignment, error) {
	id, err := a.Identity()
	if err != nil {
		return nil, err
	}
	asg, err := assign.Open(env, tg.AssignmentKeys)
	if err != nil {
		return nil, &AssignmentError{err}
	}
	mirror, err := a.mirrorID()
	if err != nil {
		return nil, err
	}
	last, err := a.lastAssignment()
	if err != nil {
		return nil, err
	}
	if err := asg.Check(id.ID, []string{mirror}, a.now(), last); err != nil {
		return nil, &AssignmentError{err}
	}
	if asg.Counter > last {
		if err := atomicfile.WriteFile(a.path(assignmentFile), []byte(strconv.FormatUint(asg.Counter, 10)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("assignment counter: %w", err)
		}
	}
	return asg, nil
}

// stickAssignment is a managed device's assignment on a stick built for a
// deployment (ferry/assignments/<device id>.json), checked against the
// mirror metadata the stick carries (ferry/tuf/: the root chain from the
// device's trusted mirror root, and the targets that publish the
// assignment keys; tufclient.CheckOffline). A nil assignment with a
// reason: the stick holds none for this device. A refusal (of the
// metadata or of the assignment) is an *AssignmentError.
func (a *Agent) stickAssignment(s *stick.Stick) (*assign.Assignment, *tufclient.Targets, string, error) {
	if a.cfg.Mirror.TUFRoot == "" {
		return nil, nil, "", &AssignmentError{errors.New("a managed device needs its mirror's TUF root ([mirror] tuf_root) to check an assignment")}
	}
	id, err := a.Identity()
	if err != nil {
		return nil, nil, "", err
	}
	env, err := s.ReadFile(path.Join(wire.StickAssignmentsDir, id.ID+".json"), assign.MaxEnvelopeSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, "the stick carries no assignment for this device (id " + id.ID[:16] + "), and as a managed device it installs only what it is assigned", nil
	}
	if err != nil {
		return nil, nil, "", err
	}
	read := func(name string, max int64) ([]byte, error) { return s.ReadFile(path.Join(wire.TUFDir, name), max) }
	tg, err := tufclient.CheckOffline(read, a.cfg.Mirror.TUFRoot, a.path(tufStateDir), a.now())
	if err != nil {
		return nil, nil, "", &AssignmentError{fmt.Errorf("the mirror metadata on the stick: %w", err)}
	}
	asg, err := a.acceptAssignment(env, tg)
	if err != nil {
		return nil, nil, "", err
	}
	return asg, tg, "", nil
}

// installStickAssigned is a managed device's install from a stick: the
// bundle its assignment on the stick names (by manifest digest), listed
// by the stick's verified targets, installed as every install is
// (release signatures, trust root, device type, version policy). Nothing
// is installed when the stick holds no assignment for the device (rep
// says why) or the device runs the assigned version already.
func (a *Agent) installStickAssigned(ctx context.Context, s *stick.Stick, bundles []stick.Bundle, rep *stick.Report) (*Result, error) {
	asg, tg, reason, err := a.stickAssignment(s)
	if err != nil {
		return nil, err
	}
	if asg == nil {
		rep.Reason, rep.Offered = reason, offered(bundles)
		a.logf("%s: %s", s.Root, reason)
		return nil, nil
	}
	rep.Bundle, rep.BundleVersion, rep.Manifest = asg.Bundle, asg.Version, asg.Digest
	if v := a.installedVersionOf(asg.Bundle); v == asg.Version {
		rep.Reason = fmt.Sprintf("assigned %s %s (deployment %d): installed already", asg.Bundle, asg.Version, asg.Deployment)
		a.logf("%s: %s", s.Root, rep.Reason)
		return nil, nil
	}
	var b stick.Bundle
	found := false
	for _, c := range bundles {
		if c.Err == nil && c.Manifest.String() == asg.Digest && c.Name == asg.Bundle && c.Version == asg.Version {
			b, found = c, true
			break
		}
	}
	if !found {
		rep.Reason, rep.Offered = fmt.Sprintf("the stick does not carry the assigned %s %s (%s)", asg.Bundle, asg.Version, asg.Digest), offered(bundles)
		a.logf("%s: %s", s.Root, rep.Reason)
		return nil, nil
	}
	a.logf("the stick assigns %s %s (deployment %d): installing it", asg.Bundle, asg.Version, asg.Deployment)
	origin := "stick " + s.Root + ": " + b.Name + " " + b.Version
	blobs, err := transport.LayoutBlobs(ctx, s.Layout, b, origin)
	if err != nil {
		return nil, err
	}
	defer blobs.Close()
	return a.installBlobs(ctx, blobs, origin, InstallOptions{Listed: tg, DeferReboot: true, Assignment: asg})
}

// lastAssignment is the counter of the last assignment accepted (0:
// none).
func (a *Agent) lastAssignment() (uint64, error) {
	b, err := os.ReadFile(a.path(assignmentFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("assignment counter: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		// A damaged file must not open the door to old assignments for
		// good, nor lock the device out: the next assignment sets it.
		a.logf("warning: %s: %v; taking the next assignment as new", a.path(assignmentFile), err)
		return 0, nil
	}
	return n, nil
}

// updateAssigned is the poll of a managed device ([mirror] managed): it
// installs what the mirror assigns it, and nothing else. The assigned
// bundle must be the one the verified targets list under its name and
// version, with the assignment's manifest digest; the install then
// checks its release signatures against the trust root as always.
func (a *Agent) updateAssigned(pollCtx, ctx context.Context, client *http.Client, tg *tufclient.Targets) (*Result, error) {
	asg, err := a.FetchAssignment(pollCtx, client, tg)
	if err != nil {
		return nil, err
	}
	if asg == nil {
		a.logf("mirror %s assigns this device nothing: as a managed device it installs nothing", a.cfg.Mirror.URL)
		return nil, nil
	}
	if v := a.installedVersionOf(asg.Bundle); v == asg.Version {
		a.logf("assigned %s %s (deployment %d): installed already", asg.Bundle, asg.Version, asg.Deployment)
		return nil, nil
	}
	t, ok := tg.Target(asg.Bundle, asg.Version)
	if !ok {
		return nil, &AssignmentError{fmt.Errorf("it names %s %s, which the mirror's signed targets do not list", asg.Bundle, asg.Version)}
	}
	if t.ManifestDigest != asg.Digest {
		return nil, &AssignmentError{fmt.Errorf("it names %s %s with manifest %s, but the signed targets list %s", asg.Bundle, asg.Version, asg.Digest, t.ManifestDigest)}
	}
	ref := t.Reference(tg.Host)
	a.logf("mirror assigns %s %s (deployment %d): installing %s", asg.Bundle, asg.Version, asg.Deployment, ref)
	topts := transport.Options{Client: a.httpClient(client), PlainHTTP: strings.HasPrefix(a.cfg.Mirror.URL, "http://"), UserAgent: "ferry-agent"}
	return a.installFrom(ctx, ref, topts, InstallOptions{Listed: tg, DeferReboot: true, Assignment: asg})
}
