package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/transport"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/transport/tufclient"
	"github.com/ferry-update/ferry/transport/wire"
	"github.com/ferry-update/ferry/verify"
)

// tufStateDir holds the mirror metadata the device trusted last, for
// tufclient's rollback protection, relative to the state directory.
const tufStateDir = "tuf"

// installedVersion is the installed version, "" when nothing is recorded.
func (a *Agent) installedVersion() string {
	in, err := a.installed()
	if err != nil || in == nil {
		return ""
	}
	return in.Version
}

// CheckMirror runs the TUF client workflow against the configured mirror
// ([mirror] url and tuf_root): it refuses expired (frozen) and replayed
// metadata with a *tufclient.Error and returns the bundles the mirror
// lists.
func (a *Agent) CheckMirror(ctx context.Context, client *http.Client) (*tufclient.Targets, error) {
	if a.cfg.Mirror.URL == "" {
		return nil, errors.New("no mirror configured ([mirror] url)")
	}
	c := &tufclient.Client{HTTP: a.httpClient(client), UserAgent: "ferry-agent"}
	return c.Check(ctx, a.cfg.Mirror.URL, a.cfg.Mirror.TUFRoot, a.path(tufStateDir), a.now())
}

// UpdateFromMirror checks the mirror's metadata and installs the newest
// bundle it lists for this device type above the installed version,
// pulled by the digest the metadata gives and refused unless the
// metadata lists it (InstallOptions.Listed). It returns a nil Result when
// the device is up to date. The reboot an A/B install needs is left to the
// caller (InstallOptions.DeferReboot).
func (a *Agent) UpdateFromMirror(ctx context.Context, client *http.Client) (*Result, error) {
	return a.updateFromMirror(ctx, ctx, client)
}

// updateFromMirror is UpdateFromMirror with one context for the poll
// (the metadata check, which a stick put in may cut short) and another
// for the install that follows, which nothing but ctx stops.
func (a *Agent) updateFromMirror(pollCtx, ctx context.Context, client *http.Client) (*Result, error) {
	tg, err := a.CheckMirror(pollCtx, client)
	if err != nil {
		return nil, err
	}
	if a.cfg.Mirror.Managed {
		return a.updateAssigned(pollCtx, ctx, client, tg)
	}
	t, ok := tg.NewestFor(a.cfg.DeviceType, a.cfg.Mirror.Bundle, a.installedVersionOf)
	if !ok {
		a.logf("mirror %s: %s (checked %d bundles)", a.cfg.Mirror.URL, a.upToDate(), len(tg.All()))
		return nil, nil
	}
	ref := t.Reference(tg.Host)
	a.logf("mirror lists %s %s for %s: installing %s", t.Name, t.Version, a.cfg.DeviceType, ref)
	topts := transport.Options{Client: a.httpClient(client), PlainHTTP: strings.HasPrefix(a.cfg.Mirror.URL, "http://"), UserAgent: "ferry-agent"}
	return a.installFrom(ctx, ref, topts, InstallOptions{Listed: tg, DeferReboot: true})
}

// upToDate says why nothing is installed: "nothing newer than NAME
// VERSION", or that nothing fits the device type.
func (a *Agent) upToDate() string {
	in, err := a.installed()
	if err != nil || in == nil {
		return "no bundle for device type " + a.cfg.DeviceType
	}
	return fmt.Sprintf("nothing newer than %s %s", in.Bundle, in.Version)
}

// CheckIn tells the mirror what the device runs and how the last install
// ended, in a check-in signed with the device's key (Identity) and bound
// to the mirror's id and the next counter (transport/checkin,
// docs/fleet.md). A mirror that has not enrolled the device answers that
// it is pending, which is logged, not an error; a refusal is a
// *checkin.MirrorError with the mirror's reason.
func (a *Agent) CheckIn(ctx context.Context, client *http.Client, installErr error) (*checkin.Answer, error) {
	if a.cfg.Mirror.URL == "" {
		return nil, errors.New("no mirror configured ([mirror] url)")
	}
	signed, err := a.signedCheckIn(installErr)
	if err != nil {
		return nil, fmt.Errorf("check in with %s: %w", a.cfg.Mirror.URL, err)
	}
	ans, err := checkin.Send(ctx, a.httpClient(client), a.cfg.Mirror.URL, signed)
	if err != nil {
		return nil, err
	}
	if ans.Pending {
		a.logf("mirror %s has not enrolled this device (id %s) yet: it is pending an operator's approval ('ferry mirror devices approve DIR %s')",
			a.cfg.Mirror.URL, a.id.ID, a.id.ID[:16])
	}
	return ans, nil
}

// signedCheckIn is the device's signed check-in for the configured mirror.
func (a *Agent) signedCheckIn(installErr error) ([]byte, error) {
	id, err := a.Identity()
	if err != nil {
		return nil, err
	}
	mirror, err := a.mirrorID()
	if err != nil {
		return nil, err
	}
	inv, err := a.Inventory(installErr)
	if err != nil {
		return nil, err
	}
	inv.Mirror, inv.Device, inv.PublicKey = mirror, id.ID, id.key.Public().(ed25519.PublicKey)
	if inv.Counter, err = a.nextCounter(); err != nil {
		return nil, err
	}
	return checkin.Sign(inv, id.key)
}

// Inventory is what the device reports of itself (all of a check-in but
// the mirror, key and counter): what it runs, its slots, how the last
// install ended (installErr, the last command's error), free space in
// the state directory and uptime.
func (a *Agent) Inventory(installErr error) (*checkin.Inventory, error) {
	inv := &checkin.Inventory{Name: a.cfg.DeviceID, DeviceType: a.cfg.DeviceType, AgentVersion: AgentVersion(), Result: "idle", Time: a.now().UTC(), Version: "0.0.0",
		Components: []checkin.Component{}}
	if !validName(inv.Name) {
		inv.Name = ""
	}
	st, err := a.status(false)
	if st == nil {
		return nil, err
	}
	if err != nil {
		a.logf("warning: check-in: %v", err)
	}
	if in := st.Installed; in != nil {
		inv.Bundle, inv.Version = in.Bundle, in.Version
	}
	for _, c := range st.Components {
		inv.Components = append(inv.Components, checkin.Component{Name: c.Name, Version: c.Version, Slot: c.Slot})
	}
	if len(inv.Components) > checkin.MaxComponents {
		inv.Components = inv.Components[:checkin.MaxComponents]
	}
	inv.Slot.Booted = st.BootedSlot
	inv.Slot.Trial = st.Pending
	if st.Boot != nil {
		inv.Slot.Fallback = st.Boot.FallbackDetected
	}
	if a.j != nil {
		inv.Result = string(a.j.State)
		if a.j.Refused {
			inv.Result = "refused"
		}
		in := &checkin.Install{Bundle: a.j.Bundle, Version: a.j.Version, Deployment: a.j.Deployment, Assignment: a.j.Assignment}
		if in.Validate() == nil {
			inv.Install = in
		}
	}
	if installErr != nil {
		inv.Error = checkin.TrimError(oneLine(installErr))
	}
	inv.FreeBytes = freeBytes(a.cfg.StateDir)
	inv.UptimeSeconds = uptimeSeconds()
	return inv, nil
}

// validName says whether the configured device_id may go into a
// check-in as the device's name.
func validName(s string) bool {
	r := checkin.Report{DeviceID: s, DeviceType: "t", Version: "1", Result: "idle", Time: time.Now()}
	return s != "" && r.Validate() == nil
}

// AgentVersion is the version of the running agent's build: its module
// version, or "(devel)".
func AgentVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// uptimeSeconds is how long the system has run (0 where /proc/uptime
// cannot tell).
func uptimeSeconds() uint64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(b), " ")
	secs, err := strconv.ParseFloat(f, 64)
	if err != nil || secs < 0 {
		return 0
	}
	return uint64(secs)
}

// stickRoots returns the trust roots a stick offers: N.root.json files in
// ferry/roots/ (TRUST.md §10) and in ferry/trust/ (ferry media build
// --trust).
func stickRoots(s *stick.Stick) ([][]byte, error) {
	var docs [][]byte
	names, err := s.TrustFiles()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok := RootFileVersion(n); ok {
			b, err := s.TrustFile(n)
			if err != nil {
				return nil, err
			}
			docs = append(docs, b)
		}
	}
	ents, err := s.ReadDir(wire.RootsDir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if _, ok := RootFileVersion(e.Name()); ok && e.Type().IsRegular() {
			b, err := s.ReadFile(path.Join(wire.RootsDir, e.Name()), verify.MaxRootSize)
			if err != nil {
				return nil, err
			}
			docs = append(docs, b)
		}
	}
	return docs, nil
}

// InstallStick installs from a stick: it applies the trust roots the
// stick carries, picks the best bundle for the device type (stick.Best),
// installs it if its version is above the installed one, and writes a
// report onto the stick, synced, before it returns. The reboot an A/B
// install needs is left to the caller (Reboot), after the report. The
// Result is nil when nothing was installed; the error is the install's
// (the report says it too) or the report's.
func (a *Agent) InstallStick(ctx context.Context, s *stick.Stick) (*Result, *stick.Report, error) {
	a.settleStickReport(s) // an outcome decided while no stick was in
	rep := stick.Report{DeviceID: a.cfg.DeviceID, DeviceType: a.cfg.DeviceType, Started: a.now().UTC(), VersionBefore: a.installedVersion()}
	res, err := a.installStick(ctx, s, &rep)
	rep.Finished = a.now().UTC()
	switch {
	case err != nil:
		rep.Result, rep.Error = stick.ResultFailure, oneLine(err)
		rep.VersionAfter = a.installedVersion()
	case res == nil:
		rep.Result, rep.VersionAfter = stick.ResultSkipped, rep.VersionBefore
	case res.State == StateRolledBack:
		rep.Result, rep.VersionAfter, rep.Error = stick.ResultRolledBack, a.installedVersion(), res.Message
	case res.State.Pending():
		// On trial: boot-check (or commit, or rollback) decides, and
		// settleStickReport then rewrites this report. Until then the
		// device runs what it ran.
		rep.Result, rep.VersionAfter = stick.ResultPending, a.installedVersion()
	default:
		rep.Result, rep.VersionAfter = stick.ResultSuccess, res.Version
	}
	if rep.DeviceID == "" {
		rep.DeviceID = "unknown"
	}
	if rep.Result != stick.ResultPending {
		rep.Checkin = a.stickCheckin()
	}
	path, werr := s.WriteReport(rep)
	if rep.Result == stick.ResultPending {
		file := ""
		if werr == nil {
			file = filepath.Base(path)
		}
		a.keepPendingReport(s.Root, file, rep)
	}
	if werr != nil {
		return res, &rep, errors.Join(err, werr)
	}
	a.logf("report written to %s", path)
	return res, &rep, err
}

func (a *Agent) installStick(ctx context.Context, s *stick.Stick, rep *stick.Report) (*Result, error) {
	if a.root != nil {
		docs, err := stickRoots(s)
		if err != nil {
			a.logf("warning: trust roots on the stick: %v", err)
		}
		if len(docs) > 0 {
			a.ApplyRoots(docs) // on failure the old root judges, and says why
		}
	}
	bundles, err := s.Bundles()
	if err != nil {
		return nil, err
	}
	if a.cfg.Mirror.Managed {
		return a.installStickAssigned(ctx, s, bundles, rep)
	}
	b, ok := stick.Best(bundles, a.cfg.DeviceType)
	if !ok {
		rep.Reason = "no bundle on the stick fits device type " + a.cfg.DeviceType
		rep.Offered = offered(bundles)
		a.logf("%s: %s (it holds %s)", s.Root, rep.Reason, orNothing(rep.Offered))
		return nil, nil
	}
	rep.Bundle, rep.BundleVersion, rep.Manifest = b.Name, b.Version, b.Manifest.String()
	pol := a.cfg.Policy.For(b.Name)
	if in := a.installedVersionOf(b.Name); in != "" && bundle.CompareVersions(b.Version, in) <= 0 && !pol.AllowDowngrade && !pol.AllowSameVersion {
		rep.Reason = fmt.Sprintf("%s %s on the stick is not above the installed %s %s", b.Name, b.Version, b.Name, in)
		rep.Offered = offered(bundles)
		a.logf("%s: %s: nothing to do", s.Root, rep.Reason)
		return nil, nil
	}
	origin := "stick " + s.Root + ": " + b.Name + " " + b.Version
	blobs, err := transport.LayoutBlobs(ctx, s.Layout, b, origin)
	if err != nil {
		return nil, err
	}
	defer blobs.Close()
	d := a.planDelta(ctx, blobs)
	if b.DeltaOnly && d != nil {
		// A stick built as a delta holds only the chunk packs its bases
		// need: install only if every part this device reads is there.
		if missing, parts := d.missingParts(b.Config); missing > 0 {
			runs := a.installedVersionOf(b.Name)
			if runs == "" {
				runs = "a version it did not install from a chunked bundle"
			}
			rep.Reason = fmt.Sprintf("stick holds a delta of %s %s for bases %s; this device runs %s (%d of the %d chunk packs it needs are not on the stick)",
				b.Name, b.Version, strings.Join(b.DeltaBases, ", "), runs, missing, parts)
			rep.Offered = offered(bundles)
			a.logf("%s: %s: nothing installed", s.Root, rep.Reason)
			return nil, nil
		}
	}
	return a.installPlanned(ctx, blobs, d, origin, InstallOptions{DeferReboot: true})
}

// offered says what a stick holds, for a report: "NAME VERSION (DEVICE
// TYPES)" per bundle, or why a bundle cannot be read.
func offered(bundles []stick.Bundle) []string {
	var out []string
	for _, b := range bundles {
		if len(out) == stick.MaxOffered {
			break
		}
		o := fmt.Sprintf("%s %s (%s)", b.Name, b.Version, strings.Join(b.DeviceTypes, ", "))
		if b.Err != nil {
			o = fmt.Sprintf("%s %s (unreadable)", b.Name, b.Version)
		}
		if len(o) > 256 {
			o = o[:256]
		}
		out = append(out, strings.ToValidUTF8(o, "?"))
	}
	return out
}

func orNothing(list []string) string {
	if len(list) == 0 {
		return "no bundles"
	}
	return strings.Join(list, "; ")
}

// IsStickDir reports whether dir holds a ferry stick layout (dir/ferry/).
func IsStickDir(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, stick.Dir, "oci-layout"))
	return err == nil && st.Mode().IsRegular()
}

// Runner is ferry-agent run: it installs from a stick when one is
// plugged in, else polls the mirror at the configured interval with
// jitter, backing off when the mirror cannot be reached. It looks for a
// stick every [stick] poll_interval all the while, also during a mirror
// poll: a stick put in cuts a poll in progress short (not an install
// that has begun, which runs to its end, every network stage bounded by
// [network]) and is installed from at once. The agent is opened for each
// attempt only, so other ferry-agent commands can run in between.
type Runner struct {
	Config *Config
	// Client sends the mirror requests; nil means a client bounded by
	// the [network] timeouts.
	Client *http.Client
	// Sleep waits d or until ctx ends; nil means a timer. Tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0, 1) for the jitter; nil: math/rand.
	Rand func() float64
	// FindStick finds a plugged-in stick; nil: stick.Find with [stick].
	FindStick func() (*stick.Stick, error)

	failures int             // consecutive failed mirror polls
	seen     map[string]bool // stick bundles handled while the stick stays in
}

// Outcome is what one Runner step did.
type Outcome struct {
	// Source is "stick", "mirror" or "" (nothing to look at).
	Source string
	// Result is the install's, nil when nothing was installed.
	Result *Result
	// Report is the report written to the stick.
	Report *stick.Report
	// Rebooting: the reboot command ran; the loop stops.
	Rebooting bool
	// Preempted: a stick was put in during the mirror poll, which was cut
	// short; Stick is that stick, to install from next.
	Preempted bool
	Stick     *stick.Stick
}

// errStickInserted is the cause a mirror poll is cancelled with when a
// stick is put in.
var errStickInserted = errors.New("a stick was put in")

// Run loops until ctx ends or an install reboots the device.
func (r *Runner) Run(ctx context.Context) error {
	var next *stick.Stick
	for {
		var out Outcome
		var err error
		if next != nil {
			out, err = r.fromStick(ctx, next)
		} else {
			out, err = r.Once(ctx)
		}
		if err != nil {
			r.logf("%v", err)
		}
		if out.Rebooting {
			return nil
		}
		if next = out.Stick; next != nil {
			continue // preempted by a stick: install from it now
		}
		if next, err = r.wait(ctx, r.Wait()); err != nil {
			return nil
		}
	}
}

func (r *Runner) logf(format string, args ...any) {
	if r.Config.Log != nil {
		fmt.Fprintf(r.Config.Log, format+"\n", args...)
	}
}

func (r *Runner) sleep(ctx context.Context, d time.Duration) error {
	if r.Sleep != nil {
		return r.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// wait waits d, looking for a stick every poll interval meanwhile; it
// returns early with a stick that has something new.
func (r *Runner) wait(ctx context.Context, d time.Duration) (*stick.Stick, error) {
	if !r.watchesSticks() {
		return nil, r.sleep(ctx, d)
	}
	for d > 0 {
		step := min(d, r.pollInterval())
		if err := r.sleep(ctx, step); err != nil {
			return nil, err
		}
		d -= step
		if s := r.newStick(false); s != nil {
			return s, nil
		}
	}
	return nil, nil
}

func (r *Runner) pollInterval() time.Duration {
	if d := r.Config.Stick.PollInterval.Duration; d > 0 {
		return d
	}
	return DefaultStickPollInterval
}

// Wait is how long to wait before the next step: the interval, doubled
// for each consecutive failed poll of the mirror up to MaxBackoffFactor
// intervals, plus or minus the jitter.
func (r *Runner) Wait() time.Duration {
	m := r.Config.Mirror
	d := m.Interval.Duration
	if d <= 0 {
		d = DefaultMirrorInterval
	}
	limit := MaxBackoffFactor * d
	for i := 1; i < r.failures && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	if j := m.Jitter.Duration; j > 0 {
		f := rand.Float64
		if r.Rand != nil {
			f = r.Rand
		}
		d += time.Duration((2*f() - 1) * float64(j))
	}
	return max(d, time.Second)
}

// Failures is the number of consecutive failed mirror polls.
func (r *Runner) Failures() int { return r.failures }

func (r *Runner) watchesSticks() bool {
	c := r.Config
	return len(c.Stick.MountPoints) > 0 || c.Stick.Label != "" || r.FindStick != nil
}

// newStick returns a plugged-in stick that offers something not handled
// yet, and marks it handled; nil when there is none. It says why there
// is none when tell is set.
func (r *Runner) newStick(tell bool) *stick.Stick {
	find := r.FindStick
	if find == nil {
		c := r.Config
		find = func() (*stick.Stick, error) { return stick.Find(c.Stick.MountPoints, c.Stick.Label) }
	}
	s, err := find()
	switch {
	case err == nil:
		key := r.stickKey(s)
		if r.seen[key] {
			if tell {
				r.logf("stick at %s: already handled; take it out and put it in again to retry", s.Root)
			}
			return nil
		}
		if r.seen == nil {
			r.seen = map[string]bool{}
		}
		r.seen[key] = true
		return s
	case errors.Is(err, stick.ErrNotFound):
		r.seen = nil // the stick is gone: a stick put in again is looked at again
		if tell {
			r.logf("no stick: %v", err)
		}
	default:
		if tell {
			r.logf("stick: %v", err)
		}
	}
	return nil
}

// Once makes one step: a stick that is plugged in and has something new
// for the device, else one poll of the mirror, during which it keeps
// looking for a stick: one put in cuts the poll short and is returned in
// Outcome.Stick.
func (r *Runner) Once(ctx context.Context) (Outcome, error) {
	watch := r.watchesSticks()
	if watch {
		if s := r.newStick(true); s != nil {
			return r.fromStick(ctx, s)
		}
	}
	if r.Config.Mirror.URL == "" {
		return Outcome{}, nil
	}
	if !watch {
		return r.fromMirror(ctx, ctx)
	}
	pollCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	found := make(chan *stick.Stick, 1)
	done := make(chan struct{})
	go func() {
		defer close(found)
		for {
			if r.sleep(pollCtx, r.pollInterval()) != nil {
				return
			}
			select {
			case <-done:
				return
			default:
			}
			if s := r.newStick(false); s != nil {
				found <- s
				cancel(errStickInserted)
				return
			}
		}
	}()
	out, err := r.fromMirror(pollCtx, ctx)
	close(done)
	cancel(nil)
	s := <-found // the watcher has ended: r.seen is ours again
	if s != nil {
		out.Stick = s
		if errors.Is(context.Cause(pollCtx), errStickInserted) && out.Result == nil {
			out.Preempted = true
			r.logf("stick found at %s: mirror poll stopped", s.Root)
			return out, nil
		}
	}
	return out, err
}

// stickKey names what a stick offers: its mount point and best bundle.
func (r *Runner) stickKey(s *stick.Stick) string {
	key := s.Root
	if bs, err := s.Bundles(); err == nil {
		if b, ok := stick.Best(bs, r.Config.DeviceType); ok {
			key += "@" + b.Manifest.String()
		}
	}
	return key
}

func (r *Runner) fromStick(ctx context.Context, s *stick.Stick) (Outcome, error) {
	out := Outcome{Source: "stick"}
	a, err := Open(r.Config)
	if err != nil {
		return out, err
	}
	defer a.Close()
	r.logf("stick found at %s", s.Root)
	res, rep, err := a.InstallStick(ctx, s)
	out.Result, out.Report = res, rep
	if res != nil && res.Rebooting {
		out.Rebooting = true
		r.logf("done: %s; report on the stick", res.Message)
		if rerr := a.Reboot(ctx); rerr != nil {
			return out, errors.Join(err, rerr)
		}
		return out, err
	}
	if err == nil {
		r.logf("done: stick %s: %s", s.Root, rep.Result)
	}
	return out, err
}

// fromMirror polls the mirror: pollCtx bounds the poll (trust roots and
// metadata), ctx the install that follows and the check-in.
func (r *Runner) fromMirror(pollCtx, ctx context.Context) (Outcome, error) {
	out := Outcome{Source: "mirror"}
	a, err := Open(r.Config)
	if err != nil {
		return out, err
	}
	defer a.Close()
	if r.Client == nil {
		r.Client = a.httpClient(nil) // one client, its connections reused, across polls
	}
	// Roots first (TRUST.md §10): a bundle signed after a rotation is
	// judged by the root that introduces its keys.
	// A root that fails the chain rule is logged by ApplyRoots and told
	// with a refusal; only a failed fetch is logged here.
	var rootErr *verify.RootError
	if _, rerr := a.ApplyMirrorRoots(pollCtx, r.Client); rerr != nil && !errors.As(rerr, &rootErr) && pollCtx.Err() == nil {
		r.logf("warning: trust roots from the mirror: %v", rerr)
	}
	res, err := a.updateFromMirror(pollCtx, ctx, r.Client)
	out.Result = res
	if res == nil && errors.Is(context.Cause(pollCtx), errStickInserted) {
		return out, nil // cut short: neither a failure nor worth a check-in
	}
	var te *tufclient.Error
	var re *RefusedError
	var ae *AssignmentError
	switch {
	case err == nil, errors.As(err, &re), errors.As(err, &ae):
		r.failures = 0 // the mirror answered; a refusal is reported
	case errors.As(err, &te) && te.Kind != tufclient.Unavailable:
		r.failures = 0 // the mirror answered; what it said is refused
	default:
		r.failures++
	}
	if r.failures == 0 {
		if _, cerr := a.CheckIn(ctx, r.Client, err); cerr != nil {
			r.logf("warning: %v", cerr)
		}
	}
	if res != nil && res.Rebooting {
		out.Rebooting = true
		r.logf("%s", res.Message)
		if rerr := a.Reboot(ctx); rerr != nil {
			return out, errors.Join(err, rerr)
		}
	}
	return out, err
}

// CheckInNow checks in with the configured mirror at once, after a
// command that changed what the device runs (install, boot-check, commit,
// rollback), so the mirror's device list is right without waiting for the
// next poll. result is the command's error. It does nothing without a
// mirror; a failed check-in is logged, never returned: the command's own
// outcome stands and the next poll checks in again.
func (a *Agent) CheckInNow(ctx context.Context, result error) {
	if a.cfg.Mirror.URL == "" {
		return
	}
	ans, err := a.CheckIn(ctx, nil, result)
	if err != nil {
		a.logf("warning: %v (the next poll checks in again)", err)
		return
	}
	if !ans.Pending {
		a.logf("checked in with %s", a.cfg.Mirror.URL)
	}
}
