package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/tufrepo"
)

// guard is how long a test waits for something that must happen, so a
// regression fails instead of hanging; it is never what a test measures.
const guard = 2 * time.Minute

func checkinBody(id string, pad int) string {
	return fmt.Sprintf(`{"deviceId":%q,"deviceType":"board-a","version":"1.0.0","result":"failed","time":%q,"error":%q}`,
		id, time.Now().UTC().Format(time.RFC3339), strings.Repeat("e", pad))
}

// TestCheckinLimits: a client over its rate gets 429 with Retry-After,
// new devices beyond the cap get 507 while known ones still check in, and
// a flood of refusals is logged once, not once per request.
func TestCheckinLimits(t *testing.T) {
	s := newStore(t)
	d, err := devices.OpenDir(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	var (
		mu   sync.Mutex
		logs []string
	)
	logf := func(format string, a ...any) {
		mu.Lock()
		logs = append(logs, fmt.Sprintf(format, a...))
		mu.Unlock()
	}
	lim := server.Limits{CheckinRate: 0.001, CheckinBurst: 5, MaxDevices: 2}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Serve(ctx, ln, server.Options{Store: s, Limits: lim, Devices: d, AcceptLegacy: true, Logf: logf})
	}()
	t.Cleanup(func() { cancel(); <-done })
	u := "http://" + ln.Addr().String()

	var statuses []int
	for _, id := range []string{"gw-1", "gw-2", "gw-3", "gw-1", "gw-2"} {
		status, _ := post(t, u, "application/json", checkinBody(id, 0))
		statuses = append(statuses, status)
	}
	if want := []int{204, 204, 507, 204, 204}; fmt.Sprint(statuses) != fmt.Sprint(want) {
		t.Errorf("check-ins of gw-1, gw-2, gw-3 (over the cap of 2 devices), gw-1, gw-2: %v, want %v", statuses, want)
	}
	for range 50 {
		resp, err := http.Post(u+checkin.Path, "application/json", strings.NewReader(checkinBody("gw-1", 0)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("check-in over the rate: %s, want 429", resp.Status)
		}
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Fatalf("Retry-After %q, want seconds", resp.Header.Get("Retry-After"))
		}
	}
	ds, err := d.List()
	if err != nil || len(ds) != 2 || ds[0].Checkins != 2 {
		t.Errorf("stored: %v %+v, want gw-1 and gw-2, twice each", err, ds)
	}
	mu.Lock()
	defer mu.Unlock()
	var rate, devices int
	for _, l := range logs {
		rate += strings.Count(l, "(429)")
		devices += strings.Count(l, "(507)")
	}
	if rate != 1 || devices != 1 {
		t.Errorf("log lines: %q, want one about the rate and one about the device cap", logs)
	}
}

// TestSlowBodyIsCutOff: a client that sends its check-in body a byte at a
// time and then stops is answered and disconnected after BodyTimeout.
func TestSlowBodyIsCutOff(t *testing.T) {
	s := newStore(t)
	d, err := devices.OpenDir(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Serve(ctx, ln, server.Options{Store: s, Limits: server.Limits{BodyTimeout: 200 * time.Millisecond}, Devices: d, AcceptLegacy: true})
	}()
	t.Cleanup(func() { cancel(); <-done })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: m\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", checkin.Path)
	c.SetReadDeadline(time.Now().Add(guard))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the server held a stalled body open: %v (read %q)", err, b)
	}
	if !strings.HasPrefix(string(b), "HTTP/1.1 400") {
		t.Errorf("answer to a stalled body: %q", b)
	}
}

// The child process of the tests below: it serves the mirror in
// FERRY_TEST_SERVE_DIR under the resource limit FERRY_TEST_RLIMIT
// ("nofile=N" or "fsize=N"), with the Limits in FERRY_TEST_LIMITS (JSON),
// and prints its address on stdout.
func TestServeChild(t *testing.T) {
	dir := os.Getenv("FERRY_TEST_SERVE_DIR")
	if dir == "" {
		t.Skip("the child of TestServeManySlowClients and TestServeFullDisk")
	}
	s, err := mirror.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := devices.OpenDir(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	var lim server.Limits
	if err := json.Unmarshal([]byte(os.Getenv("FERRY_TEST_LIMITS")), &lim); err != nil {
		t.Fatal(err)
	}
	which, n, _ := strings.Cut(os.Getenv("FERRY_TEST_RLIMIT"), "=")
	v, _ := strconv.ParseUint(n, 10, 64)
	res := map[string]int{"nofile": syscall.RLIMIT_NOFILE, "fsize": syscall.RLIMIT_FSIZE}[which]
	if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: v, Max: v}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ADDR %s\n", ln.Addr())
	err = server.Serve(context.Background(), ln, server.Options{Store: s, Limits: lim, Devices: d, AcceptLegacy: true, RefreshInterval: 50 * time.Millisecond,
		Refreshed: func(_ *tufrepo.Status, err error) {
			if err != nil {
				fmt.Fprintln(os.Stderr, "refresh:", err)
			}
		},
		Logf: func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }})
	t.Fatal(err)
}

// startChild runs TestServeChild on the mirror dir and returns its base URL.
func startChild(t *testing.T, dir, rlimit string, lim server.Limits) string {
	t.Helper()
	lj, _ := json.Marshal(lim)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeChild$", "-test.v")
	cmd.Env = append(os.Environ(), "FERRY_TEST_SERVE_DIR="+dir, "FERRY_TEST_RLIMIT="+rlimit, "FERRY_TEST_LIMITS="+string(lj))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", stderr.String())
		}
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			go io.Copy(io.Discard, out)
			return "http://" + a
		}
	}
	t.Fatalf("the server did not start: %s", stderr.String())
	return ""
}

// TestServeManySlowClients: 300 clients that send a check-in body a byte
// now and then, against a server allowed 64 file descriptors: the server
// keeps serving, and a normal blob download from another client succeeds
// and is whole.
func TestServeManySlowClients(t *testing.T) {
	s := newStore(t)
	path, _ := testutil.MakeBundle(t, t.TempDir(), "gateway", "1.0.0", 3<<20, 0, testutil.NewKey(t, "alice"))
	if _, err := s.Add(path); err != nil {
		t.Fatal(err)
	}
	a, err := bundle.OpenArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	layer := a.Manifest().Layers[0]
	a.Close()
	lim := server.DefaultLimits()
	lim.MaxConns, lim.MaxConnsPerClient = 40, 8
	u := startChild(t, s.Dir(), "nofile=64", lim)
	host := strings.TrimPrefix(u, "http://")

	// The slow clients come from 127.0.0.2, the download from 127.0.0.1.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	for range 300 {
		c, err := dialer.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: m\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", checkin.Path)
	}
	for _, c := range conns {
		c.Write([]byte(" ")) // a byte now and then; errors: the server closed it
	}

	client := &http.Client{Timeout: guard}
	resp, err := client.Get(u + "/v2/gateway/blobs/" + layer.Digest.String())
	if err != nil {
		t.Fatalf("download while 300 clients hang on: %v", err)
	}
	defer resp.Body.Close()
	got, err := digest.FromReader(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || got != layer.Digest {
		t.Fatalf("download while 300 clients hang on: %s, %v, digest %s want %s", resp.Status, err, got, layer.Digest)
	}
	// And check-ins from a well-behaved client still go in.
	if status, body := post(t, u, "application/json", checkinBody("gw-1", 0)); status != http.StatusNoContent {
		t.Errorf("check-in: %d %s", status, body)
	}
}

// TestServeFullDisk: when the check-in database cannot grow (here a file
// size limit on the server process), check-ins get 503 with Retry-After
// and the server keeps re-signing the TUF timestamp.
func TestServeFullDisk(t *testing.T) {
	s := newStore(t)
	d, err := devices.OpenDir(s.Dir()) // created before the limit applies
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	lim := server.Limits{}
	u := startChild(t, s.Dir(), fmt.Sprintf("fsize=%d", 256<<10), lim)

	full := false
	for i := 0; i < 5000 && !full; i++ {
		resp, err := http.Post(u+checkin.Path, "application/json", strings.NewReader(checkinBody(fmt.Sprintf("dev-%05d", i), 4000)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusNoContent:
		case http.StatusServiceUnavailable:
			if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "cannot store check-ins") {
				t.Errorf("503 without Retry-After or reason: %v %s", resp.Header, b)
			}
			full = true
		default:
			t.Fatalf("check-in %d: %s %s", i, resp.Status, b)
		}
	}
	if !full {
		t.Fatal("the device database never filled up")
	}
	version := func() int {
		resp, err := http.Get(u + "/tuf/timestamp.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ts struct {
			Signed struct{ Version int } `json:"signed"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&ts); err != nil {
			t.Fatal(err)
		}
		return ts.Signed.Version
	}
	v := version()
	deadline := time.Now().Add(guard)
	for version() <= v+2 {
		if time.Now().After(deadline) {
			t.Fatalf("the TUF timestamp stayed at version %d while the device database was full", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "devices.db")); err != nil {
		t.Fatal(err)
	}
}

// TestConnCapClosesIdleFirst: at --max-conns, a new client gets the slot
// of a connection idle between requests (agents keep theirs open between
// polls), never of one serving a request.
func TestConnCapClosesIdleFirst(t *testing.T) {
	lim := server.Limits{MaxConns: 2, IdleTimeout: time.Hour}
	arrived := make(chan string, 10)
	release := make(chan struct{})
	srv := lim.HTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lim.Listener(srv, raw))
	t.Cleanup(func() { srv.Close() })
	url := "http://" + raw.Addr().String()
	get := func(path string) error {
		c := &http.Client{Transport: &http.Transport{}, Timeout: guard} // a connection of its own, kept open
		resp, err := c.Get(url + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && string(b) != "ok" {
			err = fmt.Errorf("%s answered %q", path, b)
		}
		return err
	}

	// Two clients use both slots and stay connected, idle.
	for i := range 2 {
		if err := get("/idle"); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		<-arrived
	}
	// A third is served at once (before: it waited for the idle timeout,
	// here an hour).
	if err := get("/third"); err != nil {
		t.Fatalf("third client, with two idle connections open: %v", err)
	}
	<-arrived

	// Two requests in progress hold both slots: a new client waits for one
	// of them, and neither is cut off for it.
	errs := make(chan error, 3)
	for range 2 {
		go func() { errs <- get("/slow") }()
	}
	<-arrived
	<-arrived
	go func() { errs <- get("/waiting") }()
	time.Sleep(200 * time.Millisecond) // a wrong implementation would let it in now
	select {
	case p := <-arrived:
		t.Fatalf("%s was served while two requests held both slots", p)
	case err := <-errs:
		t.Fatalf("a request ended while the slots were held: %v", err)
	default:
	}
	close(release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if p := <-arrived; p != "/waiting" {
		t.Fatalf("then %s arrived, want /waiting", p)
	}
}
