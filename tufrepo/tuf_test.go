package tufrepo_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/ferry-update/ferry/transport/tufclient"
	"github.com/ferry-update/ferry/tufrepo"
	"github.com/ferry-update/ferry/verify"
)

// tufEnv is a TUF repository served over HTTP through a man in the
// middle that can replace any file under /tuf/, and a device provisioned
// with the repository's first root. The targets stand for the bundles a
// store would hand in.
type tufEnv struct {
	t       *testing.T
	r       *tufrepo.Repo
	dir     string // the store directory the repository lives in
	targets []tufrepo.Target
	url     string
	root    string // the device's trusted root
	scratch string

	mu        sync.Mutex
	overrides map[string][]byte
	fetched   map[string]int
}

func newTUFEnv(t *testing.T) *tufEnv {
	t.Helper()
	e := &tufEnv{t: t, dir: t.TempDir(), scratch: t.TempDir(), overrides: map[string][]byte{}, fetched: map[string]int{}}
	k, err := verify.GenerateKey(verify.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := verify.MarshalPrivateKey(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	mk := filepath.Join(e.dir, "keys", "mirror.key")
	if err := os.MkdirAll(filepath.Dir(mk), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mk, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	e.r = tufrepo.New(e.dir, func() (crypto.Signer, error) {
		b, err := os.ReadFile(mk)
		if err != nil {
			return nil, err
		}
		return verify.ParsePrivateKey(b, nil)
	})
	if _, err := e.r.Init(tufrepo.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	e.add("gateway", "1.0.0", 4096)
	e.root = filepath.Join(e.scratch, "mirror-root.json")
	if err := os.WriteFile(e.root, e.file("1.root.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/tuf/")
		if !ok || strings.Contains(name, "/") {
			http.NotFound(w, r)
			return
		}
		e.mu.Lock()
		b, over := e.overrides[name]
		e.fetched[name]++
		e.mu.Unlock()
		if !over {
			var err error
			if b, err = os.ReadFile(e.r.Path(name)); err != nil {
				http.NotFound(w, r)
				return
			}
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// add lists one more bundle, as a store's add does, and refreshes.
func (e *tufEnv) add(name, version string, size int64) tufrepo.Target {
	e.t.Helper()
	tg := tufrepo.Target{
		Name: name, Version: version, Tag: version, DeviceTypes: []string{"board-a"},
		Manifest: digest.FromString(name + "@" + version), ManifestSize: 512, Size: size,
	}
	e.targets = append(e.targets, tg)
	if _, err := e.refresh(tufrepo.RefreshOptions{}); err != nil {
		e.t.Fatal(err)
	}
	return tg
}

func (e *tufEnv) refresh(o tufrepo.RefreshOptions) (*tufrepo.Status, error) {
	return e.r.Refresh(e.targets, o)
}

// file reads a file of the mirror's TUF directory.
func (e *tufEnv) file(name string) []byte {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "tuf", name))
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *tufEnv) override(name string, b []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.overrides[name] = b
}

func (e *tufEnv) clear() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.overrides = map[string][]byte{}
	e.fetched = map[string]int{}
}

func (e *tufEnv) check(state string, now time.Time) (*tufclient.Targets, error) {
	return tufclient.Check(context.Background(), e.url, e.root, state, now)
}

// onlineKey is the mirror's online key, as someone who broke into the
// serving machine holds it.
func (e *tufEnv) onlineKey() signature.Signer {
	b, err := os.ReadFile(filepath.Join(e.dir, "keys", "online.key"))
	if err != nil {
		e.t.Fatal(err)
	}
	return loadTUFSigner(e.t, b)
}

func loadTUFSigner(t *testing.T, pemBytes []byte) signature.Signer {
	t.Helper()
	k, err := verify.ParsePrivateKey(pemBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadSigner(k, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return sv
}

func strangerKey(t *testing.T) signature.Signer {
	t.Helper()
	k, err := verify.GenerateKey(verify.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadSigner(k, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return sv
}

func signed[T metadata.Roles](t *testing.T, m *metadata.Metadata[T], k signature.Signer) []byte {
	t.Helper()
	m.ClearSignatures()
	if _, err := m.Sign(k); err != nil {
		t.Fatal(err)
	}
	b, err := m.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func metaOf(version int64, raw []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(raw)
	return &metadata.MetaFiles{Version: version, Length: int64(len(raw)), Hashes: metadata.Hashes{"sha256": sum[:]}}
}

func TestTUFPublishAndCheck(t *testing.T) {
	e := newTUFEnv(t)
	state := filepath.Join(e.scratch, "state")
	now := time.Now()

	tg, err := e.check(state, now)
	if err != nil {
		t.Fatal(err)
	}
	all := tg.All()
	if len(all) != 1 {
		t.Fatalf("targets: %+v", all)
	}
	es := e.targets
	want := tufclient.Target{Path: "gateway/1.0.0", Name: "gateway", Version: "1.0.0", Tag: "1.0.0", DeviceTypes: []string{"board-a"},
		ManifestDigest: es[0].Manifest.String(), ManifestSize: es[0].ManifestSize, Size: es[0].Size}
	got := all[0]
	if b1, b2 := jsonOf(got), jsonOf(want); b1 != b2 {
		t.Errorf("target\n got %s\nwant %s", b1, b2)
	}
	if d, ok := tg.Lookup("gateway", "1.0.0"); !ok || d != es[0].Manifest.String() {
		t.Errorf("Lookup = %s, %v", d, ok)
	}
	if err := tg.Verify("gateway", "1.0.0", es[0].Manifest.String()); err != nil {
		t.Error(err)
	}
	if exp := tg.TimestampExpires.Sub(now); exp < 23*time.Hour || exp > 25*time.Hour {
		t.Errorf("timestamp expires in %v, want a day", exp)
	}
	if ref := all[0].Reference(tg.Host); ref != "oci://"+strings.TrimPrefix(e.url, "http://")+"/gateway@"+es[0].Manifest.String() {
		t.Errorf("Reference = %s", ref)
	}

	t.Run("nothing new: only the timestamp is fetched", func(t *testing.T) {
		e.clear()
		st, err := e.refresh(tufrepo.RefreshOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !st.Timestamp.Signed || st.Snapshot.Signed || st.Targets.Signed {
			t.Errorf("refresh signed %+v", st)
		}
		tg2, err := e.check(state, now)
		if err != nil {
			t.Fatal(err)
		}
		if tg2.TimestampVersion != tg.TimestampVersion+1 || tg2.TargetsVersion != tg.TargetsVersion {
			t.Errorf("versions after refresh: timestamp %d→%d, targets %d→%d", tg.TimestampVersion, tg2.TimestampVersion, tg.TargetsVersion, tg2.TargetsVersion)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(e.fetched) != 2 || e.fetched["timestamp.json"] != 1 {
			t.Errorf("fetched %v, want 2.root.json (absent) and timestamp.json", e.fetched)
		}
	})

	t.Run("a new bundle: new targets", func(t *testing.T) {
		d := e.add("gateway", "1.1.0", 2048).Manifest
		tg3, err := e.check(state, now)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := tg3.Lookup("gateway", "1.1.0"); !ok || got != d.String() {
			t.Errorf("Lookup(1.1.0) = %s, %v", got, ok)
		}
		if n, ok := tg3.Newest("board-a", "gateway", "1.0.0"); !ok || n.Version != "1.1.0" {
			t.Errorf("Newest = %+v, %v", n, ok)
		}
		if _, ok := tg3.Newest("board-a", "", "1.1.0"); ok {
			t.Error("Newest above the newest found one")
		}
		if _, ok := tg3.Newest("board-b", "", ""); ok {
			t.Error("Newest for another device type found one")
		}
	})

	t.Run("root renewed: the device follows the chain", func(t *testing.T) {
		// The mirror key is the root key of a mirror made with Init.
		k, err := verify.ParsePrivateKey(mustRead(t, filepath.Join(e.dir, "keys", "mirror.key")), nil)
		if err != nil {
			t.Fatal(err)
		}
		st, err := e.refresh(tufrepo.RefreshOptions{RootKey: k})
		if err != nil {
			t.Fatal(err)
		}
		if st.Root.Version != 2 || !st.Root.Signed {
			t.Errorf("root after renewal: %+v", st.Root)
		}
		tg4, err := e.check(state, now)
		if err != nil {
			t.Fatal(err)
		}
		if tg4.RootVersion != 2 {
			t.Errorf("root version %d, want 2", tg4.RootVersion)
		}
		// Another key cannot renew it.
		other, _ := verify.GenerateKey(verify.ECDSAP256)
		if _, err := e.refresh(tufrepo.RefreshOptions{RootKey: other}); err == nil || !strings.Contains(err.Error(), "not the mirror's root key") {
			t.Errorf("renewal with another key: %v", err)
		}
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestFreshnessAttacks: each attack on the metadata a device fetches is
// refused with an error of the right kind, naming the role attacked; where
// the attacker holds no key, the device updates normally again once the
// attack stops.
func TestFreshnessAttacks(t *testing.T) {
	type result struct {
		state string // the device's state directory
		now   time.Time
	}
	cases := []struct {
		name string
		// attack runs after the device checked once with state; it
		// returns the clock for the next check.
		attack   func(t *testing.T, e *tufEnv, state string) result
		kind     tufclient.Kind
		role     string
		recovers bool
	}{
		{
			name: "expired timestamp (freeze)",
			attack: func(t *testing.T, e *tufEnv, state string) result {
				return result{state, time.Now().Add(25 * time.Hour)}
			},
			kind: tufclient.Expired, role: "timestamp", recovers: true,
		},
		{
			name: "replayed older timestamp",
			attack: func(t *testing.T, e *tufEnv, state string) result {
				old := e.file("timestamp.json")
				if _, err := e.refresh(tufrepo.RefreshOptions{}); err != nil {
					t.Fatal(err)
				}
				if _, err := e.check(state, time.Now()); err != nil {
					t.Fatal(err)
				}
				e.override("timestamp.json", old)
				return result{state, time.Now()}
			},
			kind: tufclient.Rollback, role: "timestamp", recovers: true,
		},
		{
			name: "older snapshot behind a timestamp signed with the stolen online key",
			attack: func(t *testing.T, e *tufEnv, state string) result {
				oldSnap := e.file("snapshot.json")
				old, err := metadata.Snapshot().FromBytes(oldSnap)
				if err != nil {
					t.Fatal(err)
				}
				e.add("gateway", "1.1.0", 100)
				if _, err := e.check(state, time.Now()); err != nil {
					t.Fatal(err)
				}
				ts, err := metadata.Timestamp().FromBytes(e.file("timestamp.json"))
				if err != nil {
					t.Fatal(err)
				}
				ts.Signed.Version++
				ts.Signed.Meta["snapshot.json"] = metaOf(old.Signed.Version, oldSnap)
				e.override("timestamp.json", signed(t, ts, e.onlineKey()))
				return result{state, time.Now()}
			},
			kind: tufclient.Rollback, role: "snapshot",
		},
		{
			// go-tuf says this only in its message ("missing info");
			// tufclient tells it by comparing the two snapshots.
			name: "snapshot that drops targets.json, signed with the stolen online key",
			attack: func(t *testing.T, e *tufEnv, state string) result {
				sn, err := metadata.Snapshot().FromBytes(e.file("snapshot.json"))
				if err != nil {
					t.Fatal(err)
				}
				sn.Signed.Version++
				sn.Signed.Meta = map[string]*metadata.MetaFiles{}
				snapRaw := signed(t, sn, e.onlineKey())
				ts, err := metadata.Timestamp().FromBytes(e.file("timestamp.json"))
				if err != nil {
					t.Fatal(err)
				}
				ts.Signed.Version++
				ts.Signed.Meta["snapshot.json"] = metaOf(sn.Signed.Version, snapRaw)
				e.override(jsonName(sn.Signed.Version, "snapshot"), snapRaw)
				e.override("timestamp.json", signed(t, ts, e.onlineKey()))
				return result{state, time.Now()}
			},
			kind: tufclient.Rollback, role: "targets",
		},
		{
			name: "tampered targets (bad signature) with snapshot and timestamp signed by the stolen online key",
			attack: func(t *testing.T, e *tufEnv, state string) result {
				tg, err := metadata.Targets().FromBytes(e.file("targets.json"))
				if err != nil {
					t.Fatal(err)
				}
				evil := *tg.Signed.Targets["gateway/1.0.0"]
				evil.Hashes = metadata.Hashes{"sha256": make([]byte, 32)}
				tg.Signed.Targets["gateway/1.0.0"] = &evil
				tg.Signed.Version++
				targetsRaw := signed(t, tg, e.onlineKey()) // not the targets key
				sn, err := metadata.Snapshot().FromBytes(e.file("snapshot.json"))
				if err != nil {
					t.Fatal(err)
				}
				sn.Signed.Version++
				sn.Signed.Meta["targets.json"] = metaOf(tg.Signed.Version, targetsRaw)
				snapRaw := signed(t, sn, e.onlineKey())
				ts, err := metadata.Timestamp().FromBytes(e.file("timestamp.json"))
				if err != nil {
					t.Fatal(err)
				}
				ts.Signed.Version++
				ts.Signed.Meta["snapshot.json"] = metaOf(sn.Signed.Version, snapRaw)
				e.override(jsonName(tg.Signed.Version, "targets"), targetsRaw)
				e.override(jsonName(sn.Signed.Version, "snapshot"), snapRaw)
				e.override("timestamp.json", signed(t, ts, e.onlineKey()))
				return result{state, time.Now()}
			},
			kind: tufclient.BadSignature, role: "targets",
		},
		{
			name: "targets altered in transit",
			attack: func(t *testing.T, e *tufEnv, state string) result {
				tg, err := metadata.Targets().FromBytes(e.file("targets.json"))
				if err != nil {
					t.Fatal(err)
				}
				name := jsonName(tg.Signed.Version, "targets")
				e.override(name, []byte(strings.Replace(string(e.file(name)), `"gateway/1.0.0"`, `"gateway/1.0.1"`, 1)))
				// A device that has not cached these targets yet.
				return result{filepath.Join(e.scratch, "fresh-state"), time.Now()}
			},
			kind: tufclient.Mismatch, role: "targets", recovers: true,
		},
		{
			name: "timestamp signed by an unknown key",
			attack: func(t *testing.T, e *tufEnv, state string) result {
				ts, err := metadata.Timestamp().FromBytes(e.file("timestamp.json"))
				if err != nil {
					t.Fatal(err)
				}
				ts.Signed.Version += 100
				e.override("timestamp.json", signed(t, ts, strangerKey(t)))
				return result{state, time.Now()}
			},
			kind: tufclient.BadSignature, role: "timestamp", recovers: true,
		},
		{
			name: "new root signed by an unknown key",
			attack: func(t *testing.T, e *tufEnv, state string) result {
				r, err := metadata.Root().FromBytes(e.file("root.json"))
				if err != nil {
					t.Fatal(err)
				}
				r.Signed.Version++
				e.override(jsonName(r.Signed.Version, "root"), signed(t, r, strangerKey(t)))
				return result{state, time.Now()}
			},
			kind: tufclient.BadSignature, role: "root", recovers: true,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newTUFEnv(t)
			state := filepath.Join(e.scratch, "state")
			if _, err := e.check(state, time.Now()); err != nil {
				t.Fatal(err)
			}
			r := c.attack(t, e, state)
			_, err := e.check(r.state, r.now)
			var te *tufclient.Error
			if !errors.As(err, &te) || te.Kind != c.kind || te.Role != c.role {
				t.Fatalf("got %v (%#v), want a %s error on %s", err, te, c.kind, c.role)
			}
			t.Logf("refused: %v", err)
			if c.recovers {
				e.clear()
				if _, err := e.check(r.state, time.Now()); err != nil {
					t.Errorf("after the attack: %v", err)
				}
			}
		})
	}

	t.Run("a bundle the targets do not list (mix-and-match)", func(t *testing.T) {
		e := newTUFEnv(t)
		tg, err := e.check(filepath.Join(e.scratch, "state"), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// Never published by the mirror (a validly signed bundle the
		// mirror does not list): another gateway 1.0.0, and a 2.0.0.
		other := digest.FromString("another gateway 1.0.0")
		var nl *tufclient.NotListedError
		if err := tg.Verify("gateway", "1.0.0", other.String()); !errors.As(err, &nl) || nl.Listed == "" {
			t.Errorf("another gateway 1.0.0: %v", err)
		} else {
			t.Logf("refused: %v", err)
		}
		if err := tg.Verify("gateway", "2.0.0", other.String()); !errors.As(err, &nl) || nl.Listed != "" {
			t.Errorf("gateway 2.0.0: %v", err)
		}
		if _, ok := tg.Lookup("gateway", "2.0.0"); ok {
			t.Error("Lookup found an unlisted version")
		}
	})
}

func jsonName(version int64, role string) string {
	return strconv.FormatInt(version, 10) + "." + role + ".json"
}

func TestKeepFresh(t *testing.T) {
	e := newTUFEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	versions := make(chan int64, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		refresh := func() (*tufrepo.Status, error) { return e.refresh(tufrepo.RefreshOptions{}) }
		e.r.KeepFresh(ctx, 20*time.Millisecond, refresh, func(st *tufrepo.Status, err error) {
			if err != nil {
				t.Error(err)
				return
			}
			select {
			case versions <- st.Timestamp.Version:
			default:
			}
		})
	}()
	var last int64
	for last < 5 {
		select {
		case last = <-versions:
		case <-time.After(10 * time.Second):
			t.Fatalf("the timestamp stayed at version %d", last)
		}
	}
	cancel()
	<-done
	if _, err := e.check(filepath.Join(e.scratch, "state"), time.Now()); err != nil {
		t.Error(err)
	}
}

// TestRefreshWithOnlineKeyOnly: a server that cannot read the mirror key
// (as it should run) still keeps snapshot and timestamp fresh.
func TestRefreshWithOnlineKeyOnly(t *testing.T) {
	e := newTUFEnv(t)
	mk := filepath.Join(e.dir, "keys", "mirror.key")
	if err := os.Rename(mk, mk+".away"); err != nil {
		t.Fatal(err)
	}
	// Far enough ahead that the snapshot is due, not the targets.
	st, err := e.refresh(tufrepo.RefreshOptions{Now: time.Now().Add(5 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Timestamp.Signed || !st.Snapshot.Signed || st.Targets.Signed {
		t.Errorf("signed: %+v", st)
	}
	if _, err := e.check(filepath.Join(e.scratch, "state"), time.Now().Add(5*24*time.Hour)); err != nil {
		t.Error(err)
	}
	// Targets that are due cannot be renewed without it: a warning.
	st, err = e.refresh(tufrepo.RefreshOptions{Now: time.Now().Add(200 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(st.Warnings, "\n"); !strings.Contains(w, "targets.json expires at") || !strings.Contains(w, "mirror key is not readable") {
		t.Errorf("warnings: %q", st.Warnings)
	}
}

// TestRefreshCreatesMetadata: a mirror made before it had TUF metadata
// gets it on its first refresh, its root signed by the mirror key and
// its targets listing what the store hands in.
func TestRefreshCreatesMetadata(t *testing.T) {
	e := newTUFEnv(t)
	for _, p := range []string{"tuf", "keys/online.key"} {
		if err := os.RemoveAll(filepath.Join(e.dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := e.refresh(tufrepo.RefreshOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Root.Version != 1 || st.Bundles != 1 {
		t.Errorf("status %+v", st)
	}
	if err := os.WriteFile(e.root, e.file("1.root.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	tg, err := e.check(filepath.Join(e.scratch, "state"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tg.Lookup("gateway", "1.0.0"); !ok {
		t.Errorf("targets: %+v", tg.All())
	}
}
