package agent

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/verify"
)

// TestIdentityMadeOnce: the first use makes the key (0600, PKCS#8, in the
// state directory); later ones read the same; processes that start at once
// end up with one key; the id is verify's key id of the public key.
func TestIdentityMadeOnce(t *testing.T) {
	d := newDevice(t)
	var wg sync.WaitGroup
	ids := make([]*Identity, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Go(func() { ids[i], errs[i] = LoadIdentity(d.cfg) })
	}
	wg.Wait()
	created := 0
	for i, id := range ids {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if id.ID != ids[0].ID || id.AgeRecipient != ids[0].AgeRecipient {
			t.Fatalf("identities %s (%s) and %s (%s) from one start", id.ID, id.AgeRecipient, ids[0].ID, ids[0].AgeRecipient)
		}
		if id.Created {
			created++
		}
	}
	if created == 0 {
		t.Error("no load says it made the key")
	}
	path := filepath.Join(d.cfg.StateDir, DefaultKeyFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != KeyPerm {
		t.Fatalf("key file %v, %v", fi, err)
	}
	blk, _ := pem.Decode([]byte(d.read("state/identity/device.key")))
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := verify.NewPublicKey(k.(ed25519.PrivateKey).Public())
	if ids[0].ID != pub.ID || ids[0].Algorithm != verify.Ed25519 {
		t.Errorf("id %s (%s), want the key id %s", ids[0].ID, ids[0].Algorithm, pub.ID)
	}
	again, err := LoadIdentity(d.cfg)
	if err != nil || again.ID != ids[0].ID || again.Created {
		t.Errorf("second start: %+v, %v", again, err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 2 {
		t.Errorf("identity directory holds %d files, want the key and the age identity alone", len(ents))
	}
	// The age identity is an age-keygen file (age -d -i reads it), 0600,
	// whose recipient is the one printed.
	agePath := filepath.Join(d.cfg.StateDir, DefaultAgeKeyFile)
	if fi, err := os.Stat(agePath); err != nil || fi.Mode().Perm() != KeyPerm {
		t.Fatalf("age identity file %v, %v", fi, err)
	}
	f, _ := os.Open(agePath)
	defer f.Close()
	aids, err := age.ParseIdentities(f)
	if err != nil || len(aids) != 1 || aids[0].(*age.X25519Identity).Recipient().String() != ids[0].AgeRecipient || again.AgeRecipient != ids[0].AgeRecipient || again.AgeCreated {
		t.Errorf("age identity %v (%v); printed %s, then %s", aids, err, ids[0].AgeRecipient, again.AgeRecipient)
	}
}

func TestAgeIdentityRefusals(t *testing.T) {
	d := newDevice(t)
	id, _ := age.GenerateX25519Identity()
	good := []byte("# created: 2026-05-01T12:00:00Z\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n")
	other, _ := age.GenerateX25519Identity()
	cases := []struct {
		name    string
		content []byte // nil: no file
		mode    os.FileMode
		want    string
	}{
		{"provisioned", good, 0o600, ""},
		{"missing provisioned identity", nil, 0, "no such file"},
		{"readable by others", good, 0o644, "only its owner may read"},
		{"not an age identity", []byte("hello\n"), 0o600, "not an age identity file"},
		{"two identities", append(append([]byte{}, good...), other.String()+"\n"...), 0o600, "want one age X25519 identity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "device.age")
			if c.content != nil {
				if err := os.WriteFile(path, c.content, c.mode); err != nil {
					t.Fatal(err)
				}
				os.Chmod(path, c.mode)
			}
			cfg := *d.cfg
			cfg.Identity.AgeKey = path
			got, err := LoadIdentity(&cfg)
			var ke *KeyError
			switch {
			case c.want == "" && (err != nil || got.AgeRecipient != id.Recipient().String() || got.AgeCreated || got.AgeKeyFile != path):
				t.Errorf("provisioned identity: %+v, %v", got, err)
			case c.want != "" && (!errors.As(err, &ke) || ke.Path != path || !strings.Contains(err.Error(), c.want)):
				t.Errorf("error %v, want a KeyError for %s saying %q", err, path, c.want)
			}
			if c.content == nil {
				if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Error("made an identity where a provisioned one was missing")
				}
			}
		})
	}
}

func TestIdentityRefusals(t *testing.T) {
	d := newDevice(t)
	_, priv, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	good := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	cases := []struct {
		name    string
		content []byte // nil: no file
		mode    os.FileMode
		want    string
	}{
		{"provisioned", good, 0o600, ""},
		{"missing provisioned key", nil, 0, "no such file"},
		{"readable by others", good, 0o644, "only its owner may read"},
		{"not PEM", []byte("hello"), 0o600, "not a PEM PRIVATE KEY"},
		{"public key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}), 0o600, "not a PEM PRIVATE KEY"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "device.key")
			if c.content != nil {
				if err := os.WriteFile(path, c.content, c.mode); err != nil {
					t.Fatal(err)
				}
				os.Chmod(path, c.mode)
			}
			cfg := *d.cfg
			cfg.Identity.Key = path
			id, err := LoadIdentity(&cfg)
			var ke *KeyError
			switch {
			case c.want == "" && (err != nil || id.ID != checkin.DeviceID(priv.Public().(ed25519.PublicKey)) || id.Created):
				t.Errorf("provisioned key: %+v, %v", id, err)
			case c.want != "" && (!errors.As(err, &ke) || !strings.Contains(err.Error(), c.want)):
				t.Errorf("error %v, want a KeyError saying %q", err, c.want)
			}
			if c.content == nil {
				if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Error("made a key where a provisioned one was missing")
				}
			}
		})
	}
}

// TestCheckinCounter: the counter rises with every check-in, is recorded
// before it is used, follows the clock, and after a lost counter file
// still counts above what went before.
func TestCheckinCounter(t *testing.T) {
	d := newDevice(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	d.cfg.Clock = func() time.Time { return now }
	a := d.open()
	defer a.Close()
	var got []uint64
	for range 3 {
		c, err := a.nextCounter()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	ms := uint64(now.UnixMilli())
	if got[0] < ms || got[1] != got[0]+1 || got[2] != got[1]+1 {
		t.Errorf("counters %v at clock %d", got, ms)
	}
	if rec := strings.TrimSpace(d.read("state/identity/counter")); rec != strconv.FormatUint(got[2], 10) {
		t.Errorf("recorded %s, last used %d", rec, got[2])
	}
	// The state directory lost its counter (wiped, the key provisioned
	// elsewhere): the clock has moved on since, and so does the counter.
	os.Remove(d.path("state/identity/counter"))
	now = now.Add(time.Minute)
	a.now = func() time.Time { return now }
	c, err := a.nextCounter()
	if err != nil || c <= got[2] {
		t.Errorf("after losing the counter file: %d, %v (last was %d)", c, err, got[2])
	}
	// A damaged counter file does not stop check-ins.
	d.write("state/identity/counter", "garbage")
	if c2, err := a.nextCounter(); err != nil || c2 < uint64(now.UnixMilli()) {
		t.Errorf("after a damaged counter file: %d, %v", c2, err)
	}
}
