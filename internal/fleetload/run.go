package fleetload

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/tufclient"
)

// Config is one run of the load generator.
type Config struct {
	// URL is the mirror's base URL (http://HOST:PORT).
	URL string
	// TrustedRoot is the mirror's TUF root.json the devices trust (they
	// bind their check-ins to its mirror id and verify the mirror's
	// targets with it); StateDir a scratch directory for the TUF client.
	TrustedRoot, StateDir string
	Devices               []*Device
	// Interval is each device's poll interval (0: a minute); Duration
	// how long polls are started for. Device i's polls start at
	// i*Interval/len(Devices) from the start and every Interval after.
	Interval, Duration time.Duration
	// Bundle and Version are what the Download devices must be assigned.
	Bundle, Version string
	// DownloadRate paces each download, in bytes per second (0: as fast
	// as it goes); RangeSize is the size of each Range request (0: 32 MiB).
	DownloadRate float64
	RangeSize    int64
	// Timeout bounds each check-in request (0: 30 s).
	Timeout time.Duration
	// Logf, if set, is told about the run's progress.
	Logf func(format string, a ...any)
}

// The kinds of request a run measures.
const (
	KindAssignment = "assignment" // signed check-in to assign.Path
	KindCheckin    = "checkin"    // signed check-in to checkin.Path
	KindLag        = "send-lag"   // how late the generator started polls
)

// Stats are the latencies of one kind of request.
type Stats struct {
	Kind                    string
	N, Errors               int
	P50, P90, P99, Max, Sum time.Duration
	// FirstErrors are the first few errors, as text.
	FirstErrors []string `json:",omitempty"`
}

// Downloads says how the bundle downloads went.
type Downloads struct {
	Started, Done, Failed, Unfinished int
	Bytes                             int64
	// Slowest is the longest completed download.
	Slowest     time.Duration
	FirstErrors []string `json:",omitempty"`
}

// Sent is what one device sent: signed check-ins to either endpoint,
// those the mirror answered as recorded (2xx, not pending), and the
// counter of the last of those.
type Sent struct {
	Sent, Acked int
	LastAcked   uint64
}

// Result is what a run measured.
type Result struct {
	Start   time.Time
	Elapsed time.Duration
	Polls   int
	Kinds   []Stats
	Downloads
	// Devices is what each device sent, by id.
	Devices map[string]*Sent
}

// Stat returns the stats of a kind (zero Stats if none).
func (r *Result) Stat(kind string) Stats {
	for _, s := range r.Kinds {
		if s.Kind == kind {
			return s
		}
	}
	return Stats{Kind: kind}
}

// Invalid counts the requests that failed or were answered wrong, of
// the measured kinds (not the generator's lag).
func (r *Result) Invalid() int {
	n := 0
	for _, s := range r.Kinds {
		if s.Kind != KindLag {
			n += s.Errors
		}
	}
	return n
}

// maxErrors is how many errors of a kind a Result keeps as text.
const maxErrors = 5

type recorder struct {
	mu   sync.Mutex
	lat  map[string][]time.Duration
	errs map[string]int
	text map[string][]string
	dl   Downloads
}

func (r *recorder) add(kind string, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat[kind] = append(r.lat[kind], d)
	if err != nil {
		r.errs[kind]++
		if len(r.text[kind]) < maxErrors {
			r.text[kind] = append(r.text[kind], err.Error())
		}
	}
}

func (r *recorder) stats() []Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Stats
	for _, k := range []string{KindAssignment, KindCheckin, KindLag} {
		out = append(out, summarize(k, r.lat[k], r.errs[k], r.text[k]))
	}
	return out
}

// summarize computes the percentiles of ds (nearest rank).
func summarize(kind string, ds []time.Duration, errs int, text []string) Stats {
	s := Stats{Kind: kind, N: len(ds), Errors: errs, FirstErrors: text}
	if len(ds) == 0 {
		return s
	}
	ds = append([]time.Duration(nil), ds...)
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	rank := func(q float64) time.Duration { return ds[max(0, int(math.Ceil(q*float64(len(ds))))-1)] }
	s.P50, s.P90, s.P99, s.Max = rank(0.50), rank(0.90), rank(0.99), ds[len(ds)-1]
	for _, d := range ds {
		s.Sum += d
	}
	return s
}

// sim is a device during a run.
type sim struct {
	dev    *Device
	poll   *http.Client // check-ins: one connection per poll
	pollTr *http.Transport
	fetch  *http.Client // downloads

	mu         sync.Mutex
	counter    uint64
	sent       Sent
	lastAssign uint64
	// what it runs, and the install it reports
	bundle, version, result string
	install                 *checkin.Install
	downloading, installed  bool
}

func newSim(d *Device, timeout time.Duration) *sim {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if d.Addr != nil {
		dialer.LocalAddr = &net.TCPAddr{IP: d.Addr}
	}
	tr := &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 1, IdleConnTimeout: 90 * time.Second,
		ResponseHeaderTimeout: timeout, DisableCompression: true}
	ftr := &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 1, IdleConnTimeout: 90 * time.Second,
		ResponseHeaderTimeout: timeout, DisableCompression: true}
	return &sim{dev: d, poll: &http.Client{Transport: tr, Timeout: timeout}, pollTr: tr, fetch: &http.Client{Transport: ftr},
		bundle: "bench-os", version: "1.0.0", result: "idle"}
}

// run is the state a run shares.
type run struct {
	cfg      Config
	mirrorID string
	targets  *tufclient.Targets
	digest   string // the manifest digest the targets list for Bundle:Version
	rec      *recorder
	dlWG     sync.WaitGroup
}

// Run drives the mirror at cfg.URL with cfg.Devices for cfg.Duration and
// returns what it measured. It fails only when it cannot start (no
// mirror, no verified targets); the mirror's errors are in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.RangeSize <= 0 {
		cfg.RangeSize = 32 << 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if len(cfg.Devices) == 0 {
		return nil, errors.New("load: no devices")
	}
	root, err := os.ReadFile(cfg.TrustedRoot)
	if err != nil {
		return nil, fmt.Errorf("load: trusted root: %w", err)
	}
	r := &run{cfg: cfg, rec: &recorder{lat: map[string][]time.Duration{}, errs: map[string]int{}, text: map[string][]string{}}}
	if r.mirrorID, err = checkin.MirrorID(root); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	tc := &tufclient.Client{HTTP: &http.Client{Timeout: cfg.Timeout}, UserAgent: "ferry-loadgen"}
	if r.targets, err = tc.Check(ctx, cfg.URL, cfg.TrustedRoot, cfg.StateDir, time.Now()); err != nil {
		return nil, fmt.Errorf("load: the mirror's TUF metadata: %w", err)
	}
	downloads := 0
	for _, d := range cfg.Devices {
		if d.Download {
			downloads++
		}
	}
	if downloads > 0 {
		var ok bool
		if r.digest, ok = r.targets.Lookup(cfg.Bundle, cfg.Version); !ok {
			return nil, fmt.Errorf("load: the mirror does not list %s %s", cfg.Bundle, cfg.Version)
		}
		if len(r.targets.AssignmentKeys) == 0 {
			return nil, errors.New("load: the mirror publishes no assignment key (deploy first)")
		}
	}

	sims := make([]*sim, len(cfg.Devices))
	for i, d := range cfg.Devices {
		sims[i] = newSim(d, cfg.Timeout)
	}
	start := time.Now().Add(200 * time.Millisecond)
	end := start.Add(cfg.Duration)
	dlCtx, stopDownloads := context.WithCancel(ctx)
	defer stopDownloads()
	cfg.Logf("load: %d devices (%d download), a poll each every %s, for %s", len(sims), downloads, cfg.Interval, cfg.Duration)
	var wg sync.WaitGroup
	var pollMu sync.Mutex
	polls := 0
	for i, s := range sims {
		offset := time.Duration(int64(cfg.Interval) * int64(i) / int64(len(sims)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for at := start.Add(offset); at.Before(end); at = at.Add(cfg.Interval) {
				t := time.NewTimer(time.Until(at))
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				r.rec.add(KindLag, max(0, time.Since(at)), nil)
				r.pollOnce(ctx, dlCtx, s, at)
				pollMu.Lock()
				polls++
				pollMu.Unlock()
			}
		}()
	}
	wg.Wait()
	stopDownloads()
	r.dlWG.Wait()
	res := &Result{Start: start, Elapsed: time.Since(start), Polls: polls, Kinds: r.rec.stats(), Devices: map[string]*Sent{}}
	r.rec.mu.Lock()
	res.Downloads = r.rec.dl
	r.rec.mu.Unlock()
	for _, s := range sims {
		s.mu.Lock()
		sent := s.sent
		s.mu.Unlock()
		res.Devices[s.dev.ID] = &sent
	}
	return res, ctx.Err()
}

// pollOnce is one poll of a device, meant to start at at: its
// assignment, then its check-in, on one connection.
func (r *run) pollOnce(ctx, dlCtx context.Context, s *sim, at time.Time) {
	defer s.pollTr.CloseIdleConnections()
	body, counter, err := s.signed(r.mirrorID)
	if err != nil {
		r.rec.add(KindAssignment, time.Since(at), err)
		return
	}
	ans, err := checkin.SendTo(ctx, s.poll, r.cfg.URL, assign.Path, body)
	took := time.Since(at) // from the intended start: the time the device waited
	if err == nil {
		err = r.takeAssignment(dlCtx, s, ans, counter)
	}
	r.rec.add(KindAssignment, took, err)
	if ctx.Err() != nil {
		return
	}

	sent := time.Now()
	if body, counter, err = s.signed(r.mirrorID); err != nil {
		r.rec.add(KindCheckin, 0, err)
		return
	}
	ans, err = checkin.Send(ctx, s.poll, r.cfg.URL, body)
	took = time.Since(sent)
	if err == nil {
		if err = s.acked(ans, counter); err == nil && len(ans.Body) > 0 {
			err = fmt.Errorf("check-in of %s: answered 200 with a body, want 204", s.dev.Name)
		}
	}
	r.rec.add(KindCheckin, took, err)
}

// signed is the device's next signed check-in and its counter (the
// agent's rule: above the last, at least the clock in Unix ms).
func (s *sim) signed(mirrorID string) ([]byte, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.counter = max(s.counter+1, uint64(now.UnixMilli()))
	s.sent.Sent++
	pub := s.dev.Key.Public().(ed25519.PublicKey)
	inv := &checkin.Inventory{Mirror: mirrorID, Device: s.dev.ID, PublicKey: pub, Counter: s.counter, Time: now.UTC(),
		Name: s.dev.Name, DeviceType: DeviceType, AgentVersion: "ferry-loadgen",
		Bundle: s.bundle, Version: s.version,
		Components: []checkin.Component{{Name: s.bundle, Version: s.version, Slot: "a"}, {Name: "bootloader", Version: "2024.01"}},
		Slot:       checkin.SlotState{Booted: "a"}, Result: s.result, Install: s.install,
		FreeBytes: 3 << 30, UptimeSeconds: uint64(now.Unix() % 864000)}
	b, err := checkin.Sign(inv, s.dev.Key)
	return b, s.counter, err
}

// acked counts a check-in the mirror answered as recorded; a device
// listed as pending was not (the benchmark's devices are all enrolled).
func (s *sim) acked(ans *checkin.Answer, counter uint64) error {
	if ans.Pending {
		return fmt.Errorf("device %s is pending on the mirror: %s (enroll the devices first)", s.dev.Name, ans.Message)
	}
	s.mu.Lock()
	s.sent.Acked++
	s.sent.LastAcked = max(s.sent.LastAcked, counter)
	s.mu.Unlock()
	return nil
}

// takeAssignment checks the answer to a device's assignment request: an
// assignment of the benchmark's bundle, signed with a key the mirror's
// verified targets publish, for this device and mirror, for a device
// marked Download (which then downloads it, once); nothing for the others.
func (r *run) takeAssignment(dlCtx context.Context, s *sim, ans *checkin.Answer, counter uint64) error {
	if err := s.acked(ans, counter); err != nil {
		return err
	}
	if !s.dev.Download {
		if len(ans.Body) > 0 {
			return fmt.Errorf("device %s is in no deployment, yet was assigned: %.200s", s.dev.Name, ans.Body)
		}
		return nil
	}
	if len(ans.Body) == 0 {
		s.mu.Lock()
		installed := s.installed
		s.mu.Unlock()
		if installed {
			return nil // its deployment may have completed
		}
		return fmt.Errorf("device %s was assigned nothing, want %s %s", s.dev.Name, r.cfg.Bundle, r.cfg.Version)
	}
	a, err := assign.Open(ans.Body, r.targets.AssignmentKeys)
	if err != nil {
		return fmt.Errorf("device %s: %w", s.dev.Name, err)
	}
	s.mu.Lock()
	last := s.lastAssign
	s.mu.Unlock()
	if err := a.Check(s.dev.ID, []string{r.mirrorID}, time.Now(), last); err != nil {
		return fmt.Errorf("device %s: %w", s.dev.Name, err)
	}
	if a.Bundle != r.cfg.Bundle || a.Version != r.cfg.Version || a.Digest != r.digest {
		return fmt.Errorf("device %s was assigned %s %s (%s), want %s %s (%s)", s.dev.Name, a.Bundle, a.Version, a.Digest, r.cfg.Bundle, r.cfg.Version, r.digest)
	}
	s.mu.Lock()
	s.lastAssign = a.Counter
	begin := !s.downloading && !s.installed
	s.downloading = s.downloading || begin
	s.mu.Unlock()
	if begin {
		r.rec.mu.Lock()
		r.rec.dl.Started++
		r.rec.mu.Unlock()
		r.dlWG.Add(1)
		go r.download(dlCtx, s, a)
	}
	return nil
}

// download fetches the assigned bundle's largest blob (its payload) in
// Range requests, checks its digest and then reports the install
// committed at the device's next poll.
func (r *run) download(ctx context.Context, s *sim, a *assign.Assignment) {
	defer r.dlWG.Done()
	began := time.Now()
	n, err := r.fetchPayload(ctx, s, a)
	took := time.Since(began)
	r.rec.mu.Lock()
	r.rec.dl.Bytes += n
	switch {
	case err == nil:
		r.rec.dl.Done++
		r.rec.dl.Slowest = max(r.rec.dl.Slowest, took)
	case ctx.Err() != nil:
		r.rec.dl.Unfinished++
	default:
		r.rec.dl.Failed++
		if len(r.rec.dl.FirstErrors) < maxErrors {
			r.rec.dl.FirstErrors = append(r.rec.dl.FirstErrors, err.Error())
		}
	}
	r.rec.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.downloading = false
	if err == nil {
		s.installed = true
		s.bundle, s.version, s.result = a.Bundle, a.Version, "committed"
		s.install = &checkin.Install{Bundle: a.Bundle, Version: a.Version, Deployment: a.Deployment, Assignment: a.Counter}
	}
}

// manifest is what fetchPayload reads of an OCI image manifest.
type manifest struct {
	Layers []struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	} `json:"layers"`
}

func (r *run) fetchPayload(ctx context.Context, s *sim, a *assign.Assignment) (int64, error) {
	base := strings.TrimSuffix(r.cfg.URL, "/") + "/v2/" + a.Bundle
	raw, err := r.get(ctx, s, base+"/manifests/"+a.Digest, "", http.StatusOK, 4<<20, io.Discard)
	if err != nil {
		return 0, err
	}
	if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != a.Digest {
		return 0, fmt.Errorf("manifest of %s %s: its digest is not %s", a.Bundle, a.Version, a.Digest)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Layers) == 0 {
		return 0, fmt.Errorf("manifest of %s %s: no layers (%v)", a.Bundle, a.Version, err)
	}
	blob := m.Layers[0]
	for _, l := range m.Layers {
		if l.Size > blob.Size {
			blob = l
		}
	}
	h := sha256.New()
	p := &pacer{w: h, rate: r.cfg.DownloadRate, start: time.Now(), ctx: ctx}
	for off := int64(0); off < blob.Size; off += r.cfg.RangeSize {
		end := min(off+r.cfg.RangeSize, blob.Size) - 1
		if _, err := r.get(ctx, s, base+"/blobs/"+blob.Digest, fmt.Sprintf("bytes=%d-%d", off, end), http.StatusPartialContent, 0, p); err != nil {
			return p.n, err
		}
		if p.n != end+1 {
			return p.n, fmt.Errorf("blob %s: %d bytes after the range ending at %d", blob.Digest, p.n, end)
		}
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != blob.Digest {
		return p.n, fmt.Errorf("blob %s: downloaded content hashes to %s", blob.Digest, got)
	}
	return p.n, nil
}

// get GETs u (with a Range header if rng is set), wants status, and
// returns the body (at most keep bytes) or, with keep 0, copies it to w.
func (r *run) get(ctx context.Context, s *sim, u, rng string, status int, keep int64, w io.Writer) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := s.fetch.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != status {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s (%s): %s, want %d: %s", u, rng, resp.Status, status, msg)
	}
	if keep > 0 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, keep))
		return b, err
	}
	// Big reads: fewer wake-ups of the pacer, less of the generator's
	// CPU taken from the mirror it measures on the same machine.
	_, err = io.CopyBuffer(w, resp.Body, make([]byte, 256<<10))
	return nil, err
}

// pacer writes to w at most rate bytes a second on average since start.
type pacer struct {
	w     io.Writer
	rate  float64
	start time.Time
	ctx   context.Context
	n     int64
}

func (p *pacer) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if err != nil || p.rate <= 0 {
		return n, err
	}
	due := p.start.Add(time.Duration(float64(p.n) / p.rate * float64(time.Second)))
	if wait := time.Until(due); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-p.ctx.Done():
			return n, p.ctx.Err()
		case <-t.C:
		}
	}
	return n, nil
}
