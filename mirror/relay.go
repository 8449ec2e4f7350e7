package mirror

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/transport/tufclient"
	"github.com/ferry-update/ferry/transport/wire"
)

// The relay (docs/fleet.md §13): a site mirror relays the fleet of an
// upstream mirror whose devices it serves across an air gap. It keeps,
// in DIR/relay/ferry/ (shaped like a stick's ferry/ directory), the
// upstream's signed material it learned by sync — the upstream's TUF
// root chain and targets (tuf/) and the signed assignments of a
// deployment (assignments/) — and the stick reports of the upstream's
// devices it ingested (reports/), which go back upstream. It holds no
// upstream key and signs nothing: the devices check every assignment
// against the upstream's metadata, and the upstream judges every
// check-in itself.
const relayDir = "relay"

// RelayDir is the relay's directory: a stick's shape (RelayDir/ferry/),
// so 'ferry mirror ingest UPSTREAM RelayDir' reads its reports.
func (s *Store) RelayDir() string { return filepath.Join(s.dir, relayDir) }

func (s *Store) relayPath(elem ...string) string {
	return filepath.Join(append([]string{s.RelayDir(), wire.StickDir}, elem...)...)
}

// RelayResult says what a sync learned of an upstream's fleet.
type RelayResult struct {
	// Upstream is the upstream mirror's id (checkin.MirrorID).
	Upstream string `json:"upstream"`
	// Metadata are the TUF files taken; Assignments the devices whose
	// assignment the relay now holds.
	Metadata    []string  `json:"metadata"`
	Assignments []string  `json:"assignments"`
	Skipped     []Skipped `json:"skipped,omitempty"`
}

var (
	relayRootRE = regexp.MustCompile(`^[1-9][0-9]{0,9}\.root\.json$`)
	assignRE    = regexp.MustCompile(`^[0-9a-f]{64}\.json$`)
)

// syncRelay takes the upstream fleet material of layout l, a stick built
// for a deployment (one with assignments/; nil for any other): its TUF root
// chain and targets, checked as a device checks them
// (tufclient.CheckOffline) from the upstream root the relay already
// trusts — on first contact, the lowest root l carries, as a device
// trusts the root it is provisioned with — and the assignments that
// verify with the keys those targets publish and have not expired. It
// returns nil when l carries no assignments or TUF metadata, or is this
// mirror's own.
func (s *Store) syncRelay(l *stick.Layout, now time.Time) (*RelayResult, error) {
	if ents, err := l.ReadDir(wire.StickAssignmentsDir); err != nil || len(ents) == 0 {
		return nil, err // not built for a deployment: nothing to relay
	}
	return s.relayFrom(l, now, false)
}

// relayFrom is syncRelay of a layout l that carries the upstream's TUF
// root chain and targets and its assignments (tuf/, assignments/). With
// exact, l holds every assignment the upstream hands out now (a sync over
// HTTP): the relay's others go.
func (s *Store) relayFrom(l *stick.Layout, now time.Time, exact bool) (*RelayResult, error) {
	ents, err := l.ReadDir(wire.TUFDir)
	if err != nil {
		return nil, err
	}
	var roots []string
	for _, e := range ents {
		if relayRootRE.MatchString(e.Name()) && e.Type().IsRegular() {
			roots = append(roots, e.Name())
		}
	}
	if len(roots) == 0 {
		return nil, nil
	}
	sort.Slice(roots, func(i, j int) bool { return rootVersionOf(roots[i]) < rootVersionOf(roots[j]) })
	read := func(name string, max int64) ([]byte, error) { return l.ReadFile(path.Join(wire.TUFDir, name), max) }
	lowest, err := read(roots[0], tufclient.MaxRootSize)
	if err != nil {
		return nil, err
	}
	upstream, err := checkin.MirrorID(lowest)
	if err != nil {
		return nil, fmt.Errorf("upstream metadata %s: %w", roots[0], err)
	}
	own, err := s.MirrorIDs()
	if err != nil {
		return nil, err
	}
	if slices.Contains(own, upstream) {
		return nil, nil
	}
	tufDir := s.relayPath(wire.TUFDir)
	if err := os.MkdirAll(tufDir, 0o755); err != nil {
		return nil, err
	}
	trusted, err := s.relayTrustedRoot(lowest)
	if err != nil {
		return nil, err
	}
	tg, err := tufclient.CheckOffline(read, trusted, tufDir, now)
	if err != nil {
		return nil, fmt.Errorf("upstream metadata: %w", err)
	}
	res := &RelayResult{Upstream: upstream, Metadata: []string{}, Assignments: []string{}}
	for _, name := range append(roots, wire.TUFFile("targets")) {
		b, err := read(name, tufclient.MaxTargetsSize)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(filepath.Join(tufDir, name), b, 0o644); err != nil {
			return nil, err
		}
		res.Metadata = append(res.Metadata, name)
	}
	// The assignments: those of l that verify replace the relay's; the
	// relay's expired ones go.
	asgDir := s.relayPath(wire.StickAssignmentsDir)
	if err := os.MkdirAll(asgDir, 0o755); err != nil {
		return nil, err
	}
	ents, err = l.ReadDir(wire.StickAssignmentsDir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !assignRE.MatchString(e.Name()) {
			continue
		}
		where := path.Join(wire.StickAssignmentsDir, e.Name())
		env, err := l.ReadFile(where, assign.MaxEnvelopeSize)
		var asg *assign.Assignment
		if err == nil {
			asg, err = assign.Open(env, tg.AssignmentKeys)
		}
		if err == nil {
			err = asg.Check(e.Name()[:64], []string{upstream}, now, 0)
		}
		if err != nil {
			res.Skipped = append(res.Skipped, Skipped{Source: where, Reason: err.Error()})
			continue
		}
		if err := atomicfile.WriteFile(filepath.Join(asgDir, e.Name()), env, 0o644); err != nil {
			return nil, err
		}
		res.Assignments = append(res.Assignments, asg.Device)
	}
	if exact {
		if err := s.dropRelayed(res.Assignments); err != nil {
			return nil, err
		}
	}
	if err := s.dropExpiredRelay(tg, upstream, now); err != nil {
		return nil, err
	}
	return res, nil
}

// relayTrustedRoot is the path of the upstream root the relay trusts: the
// lowest it holds, else (first contact) first, written there.
func (s *Store) relayTrustedRoot(first []byte) (string, error) {
	names, err := filepath.Glob(s.relayPath(wire.TUFDir, "*"+wire.RootSuffix))
	if err != nil {
		return "", err
	}
	if len(names) > 0 {
		sort.Slice(names, func(i, j int) bool { return rootVersionOf(names[i]) < rootVersionOf(names[j]) })
		return names[0], nil
	}
	p := s.relayPath(wire.TUFDir, "trusted.root.json")
	if first == nil {
		return "", fmt.Errorf("the relay trusts no upstream root")
	}
	return p, atomicfile.WriteFile(p, first, 0o644)
}

// dropExpiredRelay removes the relay's assignments that no longer verify
// or have expired.
func (s *Store) dropExpiredRelay(tg *tufclient.Targets, upstream string, now time.Time) error {
	names, err := filepath.Glob(s.relayPath(wire.StickAssignmentsDir, "*.json"))
	if err != nil {
		return err
	}
	for _, n := range names {
		env, err := os.ReadFile(n)
		if err != nil {
			return err
		}
		asg, err := assign.Open(env, tg.AssignmentKeys)
		if err == nil {
			err = asg.Check(filepath.Base(n)[:min(64, len(filepath.Base(n)))], []string{upstream}, now, 0)
		}
		if err != nil {
			if err := os.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// dropRelayed removes the relay's assignments of devices other than keep.
func (s *Store) dropRelayed(keep []string) error {
	names, err := filepath.Glob(s.relayPath(wire.StickAssignmentsDir, "*.json"))
	if err != nil {
		return err
	}
	for _, n := range names {
		if id := strings.TrimSuffix(filepath.Base(n), ".json"); !slices.Contains(keep, id) {
			if err := os.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// RelayUpstreams are the ids of the upstream mirrors the relay has
// learned (by sync): stick reports of their devices are relayed to them
// rather than refused as foreign.
func (s *Store) RelayUpstreams() ([]string, error) {
	names, err := filepath.Glob(s.relayPath(wire.TUFDir, "*"+wire.RootSuffix))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		id, err := checkin.MirrorID(b)
		if err != nil {
			return nil, fmt.Errorf("relay %s: %w", n, err)
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// RelayReport keeps a stick report of an upstream's device (its bytes as
// read, file its name on the stick) in the relay's reports/, for the
// upstream to ingest. A report kept before under the same name is
// replaced (an agent rewrites a pending report with its outcome).
func (s *Store) RelayReport(file string, report []byte) error {
	name := filepath.Base(file)
	if name == "." || name == "/" || filepath.Ext(name) != ".json" {
		return fmt.Errorf("relay report %q: want a .json file name", file)
	}
	dir := s.relayPath(wire.StickReportsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, name), report, 0o644)
}

// RelayContent is what a stick built from the relay carries
// (RelayStick).
type RelayContent struct {
	// Deployment is the upstream deployment the assignments are of (the
	// highest, if several); Digests the manifests they name.
	Deployment int64
	Digests    []string
	// Assignments by device id, and the upstream's TUF files by name, as
	// they came.
	Assignments map[string][]byte
	TUF         map[string][]byte
}

// RelayStick checks the relay's upstream metadata and assignments again
// at now (as a device will) and returns those that hold; nil when none
// does.
func (s *Store) RelayStick(now time.Time) (*RelayContent, error) {
	names, err := filepath.Glob(s.relayPath(wire.TUFDir, "*"+wire.RootSuffix))
	if err != nil || len(names) == 0 {
		return nil, err
	}
	tufDir := s.relayPath(wire.TUFDir)
	trusted, err := s.relayTrustedRoot(nil)
	if err != nil {
		return nil, err
	}
	read := func(name string, max int64) ([]byte, error) {
		return readLimited(filepath.Join(tufDir, name), max)
	}
	tg, err := tufclient.CheckOffline(read, trusted, tufDir, now)
	if err != nil {
		return nil, fmt.Errorf("relayed upstream metadata: %w", err)
	}
	ups, err := s.RelayUpstreams()
	if err != nil {
		return nil, err
	}
	rc := &RelayContent{Assignments: map[string][]byte{}, TUF: map[string][]byte{}}
	ents, err := os.ReadDir(s.relayPath(wire.StickAssignmentsDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range ents {
		if !assignRE.MatchString(e.Name()) {
			continue
		}
		env, err := readLimited(s.relayPath(wire.StickAssignmentsDir, e.Name()), assign.MaxEnvelopeSize)
		if err != nil {
			return nil, err
		}
		asg, err := assign.Open(env, tg.AssignmentKeys)
		if err == nil {
			err = asg.Check(e.Name()[:64], ups, now, 0)
		}
		if err != nil {
			continue
		}
		rc.Assignments[asg.Device] = env
		rc.Deployment = max(rc.Deployment, asg.Deployment)
		if !slices.Contains(rc.Digests, asg.Digest) {
			rc.Digests = append(rc.Digests, asg.Digest)
		}
	}
	if len(rc.Assignments) == 0 {
		return nil, nil
	}
	for _, n := range names {
		if b := filepath.Base(n); relayRootRE.MatchString(b) {
			if rc.TUF[b], err = os.ReadFile(n); err != nil {
				return nil, err
			}
		}
	}
	if rc.TUF[wire.TUFFile("targets")], err = os.ReadFile(filepath.Join(tufDir, wire.TUFFile("targets"))); err != nil {
		return nil, err
	}
	return rc, nil
}

// readLimited reads a file of at most max bytes.
func readLimited(p string, max int64) ([]byte, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", p, st.Size(), max)
	}
	return os.ReadFile(p)
}
