package operator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/fleet"
	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/checkin"
)

var pg testtool.SharedPostgres

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// backends are the stores the tests run on.
var backends = []string{"sqlite", "postgres"}

func eachBackend(t *testing.T, test func(t *testing.T, backend string)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { test(t, b) })
	}
}

// clock is a clock the test moves; it starts at the real time, so
// check-ins (dated by the device) are accepted.
type clock struct {
	mu sync.Mutex
	at time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.at = c.at.Add(d)
	c.mu.Unlock()
}

// testMirror is a real mirror served on a loopback listener, with its devices
// and operators on one of the backends.
type testMirror struct {
	t        *testing.T
	store    *mirror.Store
	db       *devices.DB
	acc      *Accounts
	op       *Handler
	clock    *clock
	url      string
	mirrorID string
	logMu    sync.Mutex
	log      bytes.Buffer
	counter  uint64
}

func newFleet(t *testing.T, backend string) *testMirror {
	t.Helper()
	st, err := mirror.Init(filepath.Join(t.TempDir(), "mirror"), testutil.MirrorKey(t))
	if err != nil {
		t.Fatal(err)
	}
	var db *devices.DB
	switch backend {
	case "sqlite":
		db, err = devices.OpenDir(st.Dir())
	case "postgres":
		db, err = devices.OpenPostgres(context.Background(), pg.NewDB(t))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &testMirror{t: t, store: st, db: db, clock: &clock{at: time.Now().UTC()}}
	f.acc = NewAccounts(db)
	f.acc.now = f.clock.Now
	logf := func(format string, a ...any) {
		f.logMu.Lock()
		fmt.Fprintf(&f.log, format+"\n", a...)
		f.logMu.Unlock()
	}
	f.op = New(Options{Fleet: &fleet.Local{DB: db, Store: st}, Accounts: f.acc, Logf: logf, Now: f.clock.Now, Bundles: func(context.Context) ([]string, error) {
		es, err := st.List()
		var refs []string
		for _, e := range es {
			refs = append(refs, e.Name+":"+e.Version)
		}
		return refs, err
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Serve(ctx, ln, server.Options{Store: st, Devices: db, Operator: f.op, Logf: logf})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	f.url = "http://" + ln.Addr().String()
	root, err := os.ReadFile(st.TUFRootPath())
	if err != nil {
		t.Fatal(err)
	}
	if f.mirrorID, err = checkin.MirrorID(root); err != nil {
		t.Fatal(err)
	}
	return f
}

// logText is what the handler logged so far.
func (f *testMirror) logText() string {
	f.logMu.Lock()
	defer f.logMu.Unlock()
	return f.log.String()
}

// user adds an account (password: NAME-password!) and returns a token
// of it with its role.
func (f *testMirror) user(name string, role devices.Role) string {
	f.t.Helper()
	ctx := context.Background()
	if err := f.acc.AddUser(ctx, name, role, name+"-password!"); err != nil {
		f.t.Fatal(err)
	}
	tok, err := f.acc.CreateToken(ctx, name, "test", role, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok.Secret
}

// device is a simulated device with its own key.
type device struct {
	key  ed25519.PrivateKey
	id   string
	name string
}

func newDevice(name string) *device {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	return &device{key: key, id: checkin.DeviceID(key.Public().(ed25519.PublicKey)), name: name}
}

// enroll enrolls devices as a factory list would.
func (f *testMirror) enroll(ds ...*device) {
	f.t.Helper()
	var es []devices.Enrollment
	for _, d := range ds {
		es = append(es, devices.Enrollment{PublicKey: d.key.Public().(ed25519.PublicKey), Name: d.name, DeviceType: "board-a"})
	}
	if _, err := f.db.Enroll(context.Background(), es, "file:test", f.clock.Now()); err != nil {
		f.t.Fatal(err)
	}
}

// checkin sends a signed check-in of d to the live server and returns
// its status; edit changes the report before it is signed.
func (f *testMirror) checkin(d *device, edit func(*checkin.Inventory)) int {
	f.t.Helper()
	f.counter++
	inv := &checkin.Inventory{Mirror: f.mirrorID, Device: d.id, PublicKey: d.key.Public().(ed25519.PublicKey), Counter: f.counter,
		Time: time.Now().UTC(), Name: d.name, DeviceType: "board-a", AgentVersion: "ferry-agent/test", Bundle: "sim-os", Version: "1.0.0",
		Components: []checkin.Component{{Name: "sim-os", Version: "1.0.0", Slot: "a"}}, Slot: checkin.SlotState{Booted: "a"},
		Result: "committed", FreeBytes: 1 << 30, UptimeSeconds: 3600}
	if edit != nil {
		edit(inv)
	}
	body, err := checkin.Sign(inv, d.key)
	if err != nil {
		f.t.Fatal(err)
	}
	resp, err := http.Post(f.url+checkin.Path, "application/json", bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// api makes an API request with token ("" for none) and a JSON body
// (or none), and returns the answer with its body read.
func (f *testMirror) api(method, path, token string, body io.Reader) (*http.Response, []byte) {
	f.t.Helper()
	return f.request(method, path, token, "application/json", body)
}

// request is api with a body of any type.
func (f *testMirror) request(method, path, token, contentType string, body io.Reader) (*http.Response, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.url+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp, b
}

// browser is an HTTP client with cookies that does not follow
// redirects: a console user without a browser.
type browser struct {
	f *testMirror
	c *http.Client
}

func (f *testMirror) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{f: f, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	b.f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.f.url+path, body)
	if err != nil {
		b.f.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return resp, string(page)
}

var hiddenRE = regexp.MustCompile(`name="(csrf|login)" value="([^"]+)"`)

// hidden returns the value of the hidden field name in page.
func hidden(page, name string) string {
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		if m[1] == name {
			return m[2]
		}
	}
	return ""
}

// login logs the browser in and returns the session's CSRF token.
func (b *browser) login(user, password string) (*http.Response, string) {
	b.f.t.Helper()
	_, page := b.do("GET", "/console/login", nil, nil)
	resp, _ := b.do("POST", "/console/login", url.Values{"login": {hidden(page, "login")}, "user": {user}, "password": {password}, "next": {"/console/"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		return resp, ""
	}
	_, page = b.do("GET", "/console/", nil, nil)
	return resp, hidden(page, "csrf")
}

// pemPublicKey is d's public key as a factory list's PEM block.
func pemPublicKey(t *testing.T, d *device) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(d.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// addBundle adds a signed bundle NAME:VERSION to the mirror.
func (f *testMirror) addBundle(name, version string) {
	f.t.Helper()
	p, _ := testutil.MakeBundle(f.t, f.t.TempDir(), name, version, 4<<10, 0, testutil.NewKey(f.t, "release"))
	if _, err := f.store.Add(p); err != nil {
		f.t.Fatal(err)
	}
}
