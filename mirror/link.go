package mirror

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/transport/tufclient"
	"github.com/ferry-update/ferry/transport/wire"
)

// A linked site mirror (docs/fleet.md §13): 'ferry mirror sync SITE
// --from URL' relays a running upstream mirror ('ferry mirror serve
// --console') over HTTP, as a sync from a stick built for a deployment
// does across an air gap. Up first, the relayed reports (their signed
// check-ins, posted verbatim to the upstream's check-in endpoint, where
// they are judged as any device's); then down the upstream's TUF
// metadata (checked by the TUF client workflow a device runs, from the
// upstream root the relay trusts, into a temporary copy), the bundles its
// targets list (by the OCI distribution API, chunk-level), and the
// signed assignments of the devices its running deployments assign now
// (its operator API, with a token); the relay takes metadata and
// assignments as from a stick (relayFrom), and then the timestamp and
// snapshot, so that the site can serve them to its devices ('ferry
// mirror serve --relay').

// Upstream is the operator API of a running upstream mirror (an
// *operator.Client), for a sync over HTTP.
type Upstream interface {
	// RelayAssignments returns the signed assignment envelopes, by
	// device id, of every device the upstream's running deployments
	// assign now.
	RelayAssignments(ctx context.Context) (map[string][]byte, error)
}

// SentReports says what a sync over HTTP did with the relay's reports
// (RelayDir/ferry/reports/): each file is listed once.
type SentReports struct {
	// Recorded: the upstream recorded the check-in; Known: it had it
	// already (its counter was not above the device's last), so it
	// counted once; Pending: the upstream has not enrolled the device
	// and recorded nothing. These files are removed from the relay.
	Recorded []string `json:"recorded"`
	Known    []string `json:"known"`
	Pending  []string `json:"pending"`
	// Refused: the upstream judged the check-in and refused it (the
	// reason), so sending it again cannot help; removed too.
	Refused []Skipped `json:"refused"`
	// Kept: not acknowledged (the upstream unreachable, busy, or the
	// report carries no signed check-in); kept, sent again next sync.
	Kept []Skipped `json:"kept"`
}

// LinkError is a sync from an upstream mirror's URL that could not reach
// or read the upstream: nothing of what it could not read was relayed.
type LinkError struct {
	URL  string
	Step string // "reports", "metadata", "assignments"
	Err  error
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("upstream %s: %s: %v", e.URL, e.Step, e.Err)
}

func (e *LinkError) Unwrap() error { return e.Err }

// isLink says whether from is a running mirror's URL.
func isLink(from string) bool {
	return strings.HasPrefix(from, "http://") || strings.HasPrefix(from, "https://")
}

// syncLink is Sync from the running mirror at base.
func (s *Store) syncLink(ctx context.Context, base string, o SyncOptions, res *SyncResult) error {
	if o.Upstream == nil {
		return errors.New("a sync from a running mirror's URL needs its API token (--token-file or FERRY_TOKEN)")
	}
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("mirror URL %q: want http(s)://HOST[:PORT]", base)
	}
	base = u.Scheme + "://" + u.Host
	hc := cmp.Or(o.HTTP, &http.Client{Timeout: time.Minute})
	now := time.Now()
	// Up first: the upstream counts the reports before it says whom its
	// deployments assign now (which needs the token: a refused one stops
	// the sync before anything comes down).
	if res.Reports, err = s.sendReports(ctx, hc, base); err != nil {
		return &LinkError{URL: base, Step: "reports", Err: err}
	}
	asg, err := o.Upstream.RelayAssignments(ctx)
	if err != nil {
		return &LinkError{URL: base, Step: "assignments", Err: err}
	}
	if err := os.MkdirAll(filepath.Join(s.dir, tmpDir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, tmpDir), "link-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fetched, err := s.fetchUpstreamTUF(ctx, hc, base, tmp, now)
	if err != nil {
		return &LinkError{URL: base, Step: "metadata", Err: err}
	}
	// The bundles the verified targets list, each repository by the OCI
	// distribution API (every tag of it, chunk-level).
	reg := o.Registry
	reg.PlainHTTP = reg.PlainHTTP || u.Scheme == "http"
	var first error
	var names []string
	for _, t := range fetched.targets.All() {
		if !slices.Contains(names, t.Name) {
			names = append(names, t.Name)
		}
	}
	for _, name := range names {
		r, err := s.sync(ctx, "oci://"+u.Host+"/"+name, SyncOptions{Registry: reg})
		if r != nil {
			res.Bundles = append(res.Bundles, r.Bundles...)
			res.Skipped = append(res.Skipped, r.Skipped...)
			res.Failed = append(res.Failed, r.Failed...)
		}
		var se *SyncError
		switch {
		case errors.As(err, &se):
			first = cmp.Or(first, se.First)
		case err != nil:
			if cerr := res.fail(ctx, name, err); cerr != nil {
				return cerr
			}
			first = cmp.Or(first, err)
		}
	}
	adir := filepath.Join(tmp, "layout", wire.StickAssignmentsDir)
	if err := os.MkdirAll(adir, 0o755); err != nil {
		return err
	}
	for id, env := range asg {
		if !assignRE.MatchString(id + ".json") {
			res.Failed = append(res.Failed, Skipped{Source: "assignment " + id, Reason: "not a device id"})
			continue
		}
		if err := os.WriteFile(filepath.Join(adir, id+".json"), env, 0o644); err != nil {
			return err
		}
	}
	l, err := stick.NewLayout(os.DirFS(filepath.Join(tmp, "layout")), base)
	if err != nil {
		return err
	}
	if res.Relay, err = s.relayFrom(l, now, true); err != nil {
		return fmt.Errorf("upstream fleet: %w", err)
	}
	if res.Relay != nil {
		published, err := s.publishRelayTUF(fetched)
		if err != nil {
			return err
		}
		res.Relay.Metadata = append(res.Relay.Metadata, published...)
	}
	return res.err(first)
}

// upstreamTUF is what fetchUpstreamTUF verified.
type upstreamTUF struct {
	targets *tufclient.Targets
	// state is the directory of the verified metadata (root.json,
	// timestamp.json, snapshot.json, targets.json); files the other
	// files fetched (versioned snapshot and targets), by name.
	state string
	files map[string][]byte
}

// fetchUpstreamTUF runs the TUF client workflow against the upstream at
// base, as a device that trusts the relay's upstream root and has seen
// what the relay holds (so nothing may roll back): on first contact the
// relay pins the upstream's 1.root.json. The metadata it fetched goes
// into tmp/state (verified) and tmp/layout/tuf/ (the root chain and
// targets, shaped as a stick's, for relayFrom); nothing into the relay.
func (s *Store) fetchUpstreamTUF(ctx context.Context, hc *http.Client, base, tmp string, now time.Time) (*upstreamTUF, error) {
	rec := &recorder{rt: cmp.Or[http.RoundTripper](hc.Transport, http.DefaultTransport), files: map[string][]byte{}}
	client := &tufclient.Client{HTTP: &http.Client{Transport: rec, Timeout: hc.Timeout}}
	var first []byte
	if roots, err := filepath.Glob(s.relayPath(wire.TUFDir, "*"+wire.RootSuffix)); err != nil {
		return nil, err
	} else if len(roots) == 0 {
		if first, err = getFile(ctx, hc, base+wire.TUFPath+wire.RootFile(1), tufclient.MaxRootSize); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(s.relayPath(wire.TUFDir), 0o755); err != nil {
			return nil, err
		}
	}
	trusted, err := s.relayTrustedRoot(first)
	if err != nil {
		return nil, err
	}
	up := &upstreamTUF{state: filepath.Join(tmp, "state"), files: rec.files}
	lay := filepath.Join(tmp, "layout", wire.TUFDir)
	for _, d := range []string{up.state, lay} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "layout", "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return nil, err
	}
	// What the relay trusted last, so the upstream cannot roll it back.
	for _, name := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json"} {
		if err := copyIfExists(s.relayPath(wire.TUFDir, name), filepath.Join(up.state, name)); err != nil {
			return nil, err
		}
	}
	if up.targets, err = client.Check(ctx, base, trusted, up.state, now); err != nil {
		return nil, err
	}
	// The layout relayFrom takes: the root chain the relay holds and
	// the new roots, and the verified targets.
	roots, err := filepath.Glob(s.relayPath(wire.TUFDir, "*"+wire.RootSuffix))
	if err != nil {
		return nil, err
	}
	for _, r := range roots {
		if relayRootRE.MatchString(filepath.Base(r)) {
			if err := copyIfExists(r, filepath.Join(lay, filepath.Base(r))); err != nil {
				return nil, err
			}
		}
	}
	if first != nil {
		rec.files[wire.RootFile(1)] = first
	}
	for name, b := range rec.files {
		if relayRootRE.MatchString(name) {
			if err := os.WriteFile(filepath.Join(lay, name), b, 0o644); err != nil {
				return nil, err
			}
		}
	}
	if err := copyIfExists(filepath.Join(up.state, "targets.json"), filepath.Join(lay, "targets.json")); err != nil {
		return nil, err
	}
	return up, nil
}

// publishRelayTUF puts the rest of the verified upstream metadata into
// the relay, in the order TUF publishes: the versioned snapshot and
// targets, then snapshot.json and root.json, the timestamp last.
func (s *Store) publishRelayTUF(up *upstreamTUF) ([]string, error) {
	var names []string
	for name, b := range up.files {
		if versionedRE.MatchString(name) {
			if err := atomicfile.WriteFile(s.relayPath(wire.TUFDir, name), b, 0o644); err != nil {
				return nil, err
			}
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range []string{"snapshot.json", "root.json", "timestamp.json"} {
		b, err := os.ReadFile(filepath.Join(up.state, name))
		if name == "root.json" && errors.Is(err, fs.ErrNotExist) {
			// The state holds a root only once it moved past the
			// trusted one: the newest is the highest the relay holds.
			b, err = s.highestRelayRoot()
		}
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(s.relayPath(wire.TUFDir, name), b, 0o644); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	return names, nil
}

// versionedRE matches the versioned snapshot and targets files.
var versionedRE = regexp.MustCompile(`^[1-9][0-9]{0,18}\.(?:snapshot|targets)\.json$`)

// highestRelayRoot is the newest upstream root the relay holds.
func (s *Store) highestRelayRoot() ([]byte, error) {
	roots, err := filepath.Glob(s.relayPath(wire.TUFDir, "*"+wire.RootSuffix))
	if err != nil {
		return nil, err
	}
	var best string
	for _, r := range roots {
		if relayRootRE.MatchString(filepath.Base(r)) && (best == "" || rootVersionOf(r) > rootVersionOf(best)) {
			best = r
		}
	}
	if best == "" {
		return nil, errors.New("the relay holds no upstream root")
	}
	return os.ReadFile(best)
}

// RelayTUFPath is where the relay keeps the upstream's TUF metadata file
// name, which 'ferry mirror serve --relay' serves under /tuf/.
func (s *Store) RelayTUFPath(name string) string { return s.relayPath(wire.TUFDir, name) }

// recorder keeps the body of every TUF file fetched through it, by name.
type recorder struct {
	rt    http.RoundTripper
	mu    sync.Mutex
	files map[string][]byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	name, ok := strings.CutPrefix(req.URL.Path, wire.TUFPath)
	if err != nil || resp.StatusCode != http.StatusOK || !ok {
		return resp, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, tufclient.MaxTargetsSize+1))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.files[name] = b
	r.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// getFile GETs u, at most max bytes.
func getFile(ctx context.Context, hc *http.Client, u string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s (is it a ferry mirror with TUF metadata?)", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("GET %s: more than %d bytes", u, max)
	}
	return b, nil
}

// copyIfExists copies file from to to, if it exists.
func copyIfExists(from, to string) error {
	b, err := os.ReadFile(from)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// maxRetries bounds how often sendReports waits and sends one report
// again when the upstream says it is busy (429 with Retry-After).
const maxRetries = 5

// sendReports posts the signed check-in of every report in the relay to
// the upstream's check-in endpoint, as it is, and removes the reports the
// upstream acknowledged (recorded, known, pending, refused); the others
// stay for the next sync.
func (s *Store) sendReports(ctx context.Context, hc *http.Client, base string) (*SentReports, error) {
	out := &SentReports{Recorded: []string{}, Known: []string{}, Pending: []string{}, Refused: []Skipped{}, Kept: []Skipped{}}
	files, err := filepath.Glob(s.relayPath(wire.StickReportsDir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		name := filepath.Base(f)
		b, err := readLimited(f, stick.MaxReportSize)
		var r *stick.Report
		if err == nil {
			r, err = stick.ParseReport(b)
		}
		if err == nil && len(r.Checkin) == 0 {
			err = errors.New("the report carries no signed check-in: carry it by stick")
		}
		if err != nil {
			out.Kept = append(out.Kept, Skipped{Source: name, Reason: err.Error()})
			continue
		}
		ans, err := sendCheckin(ctx, hc, base, r.Checkin)
		var me *checkin.MirrorError
		switch {
		case err == nil && ans.Pending:
			out.Pending = append(out.Pending, name)
		case err == nil:
			out.Recorded = append(out.Recorded, name)
		case errors.As(err, &me) && me.Reason == checkin.Replayed:
			out.Known = append(out.Known, name)
		case errors.As(err, &me) && me.Reason != "":
			out.Refused = append(out.Refused, Skipped{Source: name, Reason: err.Error()})
		default:
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			out.Kept = append(out.Kept, Skipped{Source: name, Reason: err.Error()})
			continue
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return out, err
		}
	}
	return out, nil
}

// sendCheckin posts a signed check-in, waiting and sending it again when
// the upstream says it is busy (429 with Retry-After, its per-client
// rate limit), at most maxRetries times.
func sendCheckin(ctx context.Context, hc *http.Client, base string, env []byte) (*checkin.Answer, error) {
	for try := 0; ; try++ {
		ans, err := checkin.Send(ctx, hc, base, env)
		var me *checkin.MirrorError
		if !errors.As(err, &me) || me.RetryAfter <= 0 || try >= maxRetries {
			return ans, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(me.RetryAfter, time.Minute)):
		}
	}
}

// RelayFullError refuses to keep the check-ins of one more device: the
// relay holds those of its maximum number of devices until the next sync
// takes them up.
type RelayFullError struct{ Max int }

func (e *RelayFullError) Error() string {
	return fmt.Sprintf("the relay keeps the check-ins of at most %d devices until the next sync up", e.Max)
}

// relayMu serialises the relay's check-in files.
var relayMu sync.Mutex

// RelayCheckin keeps the signed check-in env of inv, a device of an
// upstream mirror the relay relays (RelayUpstreams) that checked in with
// this site mirror ('ferry mirror serve --relay'), for the next sync up:
// as a report in the relay's reports/, one per device, the newest (by
// counter) kept. The newest carries the device's last install and its
// result, which is what counts upstream; the polls between two syncs
// are not relayed one by one.
//
// Anyone may sign a check-in with a key of their own, so the relay keeps
// those of at most maxDevices devices (0: no cap): a check-in of one more
// is an *RelayFullError.
func (s *Store) RelayCheckin(inv *checkin.Inventory, env []byte, maxDevices int) error {
	relayMu.Lock()
	defer relayMu.Unlock()
	dir := s.relayPath(wire.StickReportsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(dir, "net-"+inv.Device+".json")
	if b, err := readLimited(p, stick.MaxReportSize); err == nil {
		if r, err := stick.ParseReport(b); err == nil {
			if old, err := checkin.OpenSigned(r.Checkin); err == nil && old.Counter >= inv.Counter {
				return nil
			}
		}
	} else if errors.Is(err, fs.ErrNotExist) && maxDevices > 0 {
		kept, err := filepath.Glob(filepath.Join(dir, "net-*.json"))
		if err != nil {
			return err
		}
		if len(kept) >= maxDevices {
			return &RelayFullError{Max: maxDevices}
		}
	}
	rep := stick.Report{DeviceID: inv.Device, DeviceType: inv.DeviceType, Bundle: inv.Bundle, VersionAfter: inv.Version,
		Result: "checkin", Finished: inv.Time.UTC(), Error: inv.Error, Checkin: env}
	if rep.Validate() != nil {
		rep.Error = "" // longer than a report holds: the check-in carries it
	}
	b, err := json.Marshal(rep)
	if err == nil {
		err = rep.Validate()
	}
	if err != nil {
		return fmt.Errorf("relay check-in of %s: %w", inv.Device, err)
	}
	return atomicfile.WriteFile(p, b, 0o644)
}

// RelayAssignment is the relayed assignment envelope of device id, as the
// upstream signed it; nil when the relay holds none.
func (s *Store) RelayAssignment(id string) ([]byte, error) {
	if !assignRE.MatchString(id + ".json") {
		return nil, nil
	}
	b, err := readLimited(s.relayPath(wire.StickAssignmentsDir, id+".json"), assign.MaxEnvelopeSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}
