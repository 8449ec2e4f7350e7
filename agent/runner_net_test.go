package agent

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-update/ferry/transport/stick"
)

// silentMirror listens on loopback, accepts connections and never
// answers; each accepted connection is sent on the channel.
func silentMirror(t *testing.T) (url string, accepted <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 64)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + l.Addr().String(), ch
}

// syncBuffer is a log written by the runner's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// finish runs fn and fails the test if it has not returned after a long
// while (a hang, not a slow machine).
func finish(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s hangs", what)
	}
}

// A mirror that accepts connections and never answers must not hang the
// poll: every request has a response timeout, the trust-root fetch
// included.
func TestRunnerSilentMirrorTimesOut(t *testing.T) {
	e := newTrustEnv(t)
	url, _ := silentMirror(t)
	_, mc := mirrorFor(t)
	e.cfg.Mirror = MirrorConfig{URL: url, TUFRoot: mc.TUFRoot, Interval: Duration{time.Minute}}
	e.cfg.Network.ResponseTimeout = Duration{100 * time.Millisecond}
	log := &syncBuffer{}
	e.cfg.Log = log
	r := &Runner{Config: e.cfg}
	var err error
	finish(t, "a poll of a silent mirror", func() { _, err = r.Once(context.Background()) })
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("poll: %v, want a timeout", err)
	}
	if r.Failures() != 1 {
		t.Errorf("%d failures, want 1", r.Failures())
	}
	if !strings.Contains(log.String(), "trust roots from the mirror") || !strings.Contains(log.String(), "timeout") {
		t.Errorf("the trust-root fetch did not time out:\n%s", log)
	}
}

// A stick put in while the mirror poll hangs on a silent mirror (default
// timeouts, far longer than the test) is noticed, cuts the poll short,
// and is installed from.
func TestRunnerStickPreemptsHungMirror(t *testing.T) {
	e := newTrustEnv(t)
	e.cfg.DeviceID = "gw-0009"
	st, mc := mirrorFor(t, e.bundle(bundleSpec{version: "1.0.0", rootfs: "system from the stick"}))
	dir := makeStick(t, st)
	url, accepted := silentMirror(t)
	e.cfg.Mirror = MirrorConfig{URL: url, TUFRoot: mc.TUFRoot, Interval: Duration{time.Minute}}

	var inserted atomic.Bool
	r := &Runner{
		Config: e.cfg,
		FindStick: func() (*stick.Stick, error) {
			if !inserted.Load() {
				return nil, stick.ErrNotFound
			}
			return stick.OpenDir(dir)
		},
		// The stick goes in once the mirror has accepted the poll's
		// connection, which then hangs.
		Sleep: func(ctx context.Context, d time.Duration) error {
			select {
			case <-accepted:
				inserted.Store(true)
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	}
	log := &syncBuffer{}
	e.cfg.Log = log
	var err error
	finish(t, "ferry-agent run with a stick put in during a hung mirror poll", func() { err = r.Run(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "stick found at "+dir+": mirror poll stopped") {
		t.Errorf("log:\n%s", log)
	}
	if r.Failures() != 0 {
		t.Errorf("a poll cut short counted as %d failures", r.Failures())
	}
	if got := e.read("slot-b.img"); got != "system from the stick" {
		t.Errorf("slot b holds %q", got)
	}
	if got := e.read("reboots"); got != "reboot\n" {
		t.Errorf("reboots %q", got)
	}
}

// When nothing is new, run says what it checked: the mirror, the
// installed version, how many bundles it listed, and that no stick is in.
func TestRunnerSaysWhatItChecked(t *testing.T) {
	e := newTrustEnv(t)
	e.cfg.DeviceID = "gw-0010"
	b := e.bundle(bundleSpec{version: "1.4.0", rootfs: "v1.4"})
	if err := e.install(b); err != nil {
		t.Fatal(err)
	}
	if err := e.bootCheck(); err != nil {
		t.Fatal(err)
	}
	_, mc := mirrorFor(t, b, e.bundle(bundleSpec{version: "1.3.0", rootfs: "old"}), e.bundle(bundleSpec{version: "9.0.0", rootfs: "x", deviceTypes: []string{"other-board"}}))
	e.cfg.Mirror = mc
	e.cfg.Stick.MountPoints = []string{t.TempDir()}
	log := &syncBuffer{}
	e.cfg.Log = log
	out, err := (&Runner{Config: e.cfg}).Once(context.Background())
	if err != nil || out.Result != nil {
		t.Fatalf("outcome %+v, %v", out, err)
	}
	for _, want := range []string{
		"no stick: no ferry stick found at " + e.cfg.Stick.MountPoints[0],
		"mirror " + mc.URL + ": nothing newer than sim-os 1.4.0 (checked 3 bundles)",
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}
