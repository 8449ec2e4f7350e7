package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/stick"
)

// cmdSignCheckin: signcheckin KEY ROOT COUNTER OUT [FIELD=VALUE...] writes
// to OUT the signed check-in a device whose key is KEY (PEM PKCS#8
// Ed25519, as openssl genpkey writes it) makes for the mirror whose TUF
// root is ROOT, as ferry-agent signs it. FIELD is name, deviceType,
// bundle, version, result, error, or install=NAME:VERSION:DEPLOYMENT
// (the install the result is about, acting on that deployment's current
// assignment); the word tamper instead changes the version after
// signing, keeping the signature (a forgery).
func cmdSignCheckin(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 4 {
		ts.Fatalf("usage: signcheckin KEY ROOT COUNTER OUT [FIELD=VALUE...]")
	}
	counter, err := strconv.ParseUint(args[2], 10, 64)
	ts.Check(err)
	b, err := signCheckin([]byte(ts.ReadFile(args[0])), []byte(ts.ReadFile(args[1])), counter, args[4:]...)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[3]), b, 0o644))
}

// cmdStickReport: stickreport CHECKIN STICK writes into STICK's
// ferry/reports/ the report ferry-agent leaves on a stick after an install
// of gateway 1.4.2, carrying the signed check-in CHECKIN (signcheckin's).
func cmdStickReport(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: stickreport CHECKIN STICK")
	}
	r := stick.Report{DeviceID: "gw", Bundle: "gateway", BundleVersion: "1.4.2", VersionAfter: "1.4.2", Result: stick.ResultSuccess,
		Finished: time.Now().UTC(), Checkin: json.RawMessage(ts.ReadFile(args[0]))}
	b, err := json.Marshal(r)
	ts.Check(err)
	dir := ts.MkAbs(filepath.Join(args[1], stick.Dir, stick.ReportsDir))
	ts.Check(os.MkdirAll(dir, 0o755))
	ts.Check(os.WriteFile(filepath.Join(dir, filepath.Base(args[0])), b, 0o644))
}

// signCheckin is signcheckin's work: keyPEM's check-in for the mirror
// whose TUF root is root.
func signCheckin(keyPEM, root []byte, counter uint64, fields ...string) ([]byte, error) {
	blk, _ := pem.Decode(keyPEM)
	if blk == nil {
		return nil, errors.New("no PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T key", k)
	}
	mirror, err := checkin.MirrorID(root)
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	inv := &checkin.Inventory{Mirror: mirror, Device: checkin.DeviceID(pub), PublicKey: pub, Counter: counter, Time: time.Now().UTC(),
		Name: "gw-0001", DeviceType: "board-a", AgentVersion: "v1.0.0", Bundle: "gateway", Version: "1.4.2",
		Components: []checkin.Component{{Name: "gateway", Version: "1.4.2", Slot: "a"}, {Name: "app-conf", Version: "1.2.0"}},
		Slot:       checkin.SlotState{Booted: "a"}, Result: "committed", FreeBytes: 3 << 30, UptimeSeconds: 7260}
	tamper := false
	for _, a := range fields {
		f, v, _ := strings.Cut(a, "=")
		switch f {
		case "tamper":
			tamper = true
		case "name":
			inv.Name = v
		case "deviceType":
			inv.DeviceType = v
		case "bundle":
			inv.Bundle = v
		case "version":
			inv.Version = v
		case "result":
			inv.Result = v
		case "error":
			inv.Error = v
		case "install":
			parts := strings.Split(v, ":")
			if len(parts) != 3 {
				return nil, fmt.Errorf("signcheckin: install=%q: want NAME:VERSION:DEPLOYMENT", v)
			}
			dep, err := strconv.ParseInt(parts[2], 10, 64)
			if err != nil {
				return nil, err
			}
			inv.Install = &checkin.Install{Bundle: parts[0], Version: parts[1], Deployment: dep, Assignment: checkin.MaxCounter}
		default:
			return nil, fmt.Errorf("signcheckin: no field %q", f)
		}
	}
	b, err := checkin.Sign(inv, key)
	if err != nil || !tamper {
		return b, err
	}
	var env checkin.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, err
	}
	inv.Version = "9.9.9"
	if env.Payload, err = json.Marshal(inv); err != nil {
		return nil, err
	}
	return json.Marshal(env)
}

// TestMirrorsSharePostgres: two instances of one mirror (copies of its
// directory, so one identity) serve one fleet from one PostgreSQL
// database: a device enrolled on one is enrolled on both, a report taken
// by one is refused as replayed by the other, and both list the same.
func TestMirrorsSharePostgres(t *testing.T) {
	url := testtool.Postgres(t)
	t.Setenv("FERRY_KEY_PASSPHRASE", "")
	work := t.TempDir()
	p := func(name string) string { return filepath.Join(work, name) }
	ferry := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(args, nil, &out, &errb); code != 0 {
			t.Fatalf("ferry %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
		}
		return out.String()
	}
	ferry("key", "generate", "-o", p("mirror"))
	ferry("mirror", "init", p("m1"), "--key", p("mirror.key"))
	if err := os.CopyFS(p("m2"), os.DirFS(p("m1"))); err != nil {
		t.Fatal(err)
	}
	devKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(t, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)))})
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)).Public().(ed25519.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	if err := os.WriteFile(p("dev.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	ferry("mirror", "devices", "enroll", p("m1"), "--database", url, "--file", p("dev.pub"))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	clients := map[string]*http.Client{}
	for _, m := range []string{"m1", "m2"} {
		sock := p(m + ".sock")
		s := &streams{out: io.Discard, err: io.Discard}
		dir := p(m)
		wg.Go(func() {
			runMirrorServe(ctx, s, mirrorServeOptions{listen: "unix:" + sock, database: url, limits: server.DefaultLimits()}, dir)
		})
		clients[m] = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
	}
	defer func() { cancel(); wg.Wait() }()
	root, err := os.ReadFile(p("m1/tuf/root.json"))
	if err != nil {
		t.Fatal(err)
	}
	post := func(m string, body []byte) int {
		t.Helper()
		for range 600 { // until the server listens
			resp, err := clients[m].Post("http://mirror"+checkin.Path, "application/json", bytes.NewReader(body))
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("mirror %s does not answer", m)
		return 0
	}
	c1, err := signCheckin(devKey, root, 10)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := signCheckin(devKey, root, 11, "version=1.5.0")
	for _, step := range []struct {
		mirror string
		body   []byte
		want   int
	}{{"m1", c1, 204}, {"m2", c1, 409}, {"m2", c2, 204}, {"m1", c2, 409}} {
		if got := post(step.mirror, step.body); got != step.want {
			t.Errorf("to %s: %d, want %d", step.mirror, got, step.want)
		}
	}
	id := checkin.DeviceID(pub)
	for _, m := range []string{"m1", "m2"} {
		out := ferry("mirror", "devices", "show", p(m), id[:12], "--database", url, "--json")
		if !strings.Contains(out, `"checkins": 2`) || !strings.Contains(out, `"counter": 11`) || !strings.Contains(out, `"version": "1.5.0"`) {
			t.Errorf("%s shows:\n%s", m, out)
		}
	}
	// Without --database each mirror has its own (empty) devices.db.
	if out := ferry("mirror", "devices", "list", p("m1"), "--json"); !strings.Contains(out, `"devices": []`) {
		t.Errorf("m1's own database: %s", out)
	}
}

func mustPKCS8(t *testing.T, k ed25519.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
