package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/agent/bootenv"
	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/verify"
)

// device is a simulated device: file slots, a file boot environment and a
// reboot command that records the reboot.
type device struct {
	t      testing.TB
	dir    string
	cfg    *Config
	signer *verify.Signer
}

const deviceType = "sim-board"

// newDevice makes a device booted from slot a holding "factory", with
// health command health (empty: none).
func newDevice(t testing.TB, health ...string) *device {
	t.Helper()
	dir := t.TempDir()
	signer := testutil.NewKey(t, "test").Signer
	pub, err := signer.PublicKey().PEM()
	if err != nil {
		t.Fatal(err)
	}
	d := &device{t: t, dir: dir, signer: signer}
	d.write("release.pub", string(pub))
	d.write("slot-a.img", "factory")
	d.write("slot-b.img", "")
	d.write("bootenv", "bootcmd=run ferry\nferry_slot=a\n")
	d.cfg = &Config{
		DeviceType:    deviceType,
		StateDir:      d.path("state"),
		RebootCommand: "echo reboot >> " + d.path("reboots"),
		Trust:         TrustConfig{Keys: []string{d.path("release.pub")}, Threshold: 1},
		Slots: map[string]SlotConfig{
			"rootfs": {A: d.path("slot-a.img"), B: d.path("slot-b.img")},
			"app":    {Dir: d.path("app")},
		},
		Boot:   BootConfig{Backend: BackendFile, Path: d.path("bootenv"), SlotVar: bootenv.DefaultSlotVar, Cmdline: "none"},
		Health: HealthConfig{Commands: health, Timeout: Duration{5 * time.Second}},
	}
	return d
}

func (d *device) path(name string) string { return filepath.Join(d.dir, name) }

func (d *device) write(name, content string) {
	d.t.Helper()
	if err := os.WriteFile(d.path(name), []byte(content), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

func (d *device) read(name string) string {
	d.t.Helper()
	b, err := os.ReadFile(d.path(name))
	if err != nil {
		d.t.Fatal(err)
	}
	return string(b)
}

func (d *device) open() *Agent {
	d.t.Helper()
	a, err := Open(d.cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { a.Close() })
	return a
}

// do opens the agent, runs fn and closes it, as one ferry-agent command.
func (d *device) do(fn func(a *Agent) error) error {
	a, err := Open(d.cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	return fn(a)
}

func (d *device) install(b []byte) error {
	return d.do(func(a *Agent) error {
		_, err := a.Install(context.Background(), bytes.NewReader(b), "test")
		return err
	})
}

func (d *device) bootCheck() error {
	return d.do(func(a *Agent) error {
		_, err := a.BootCheck(context.Background())
		return err
	})
}

func (d *device) bootState() bootenv.BootState {
	d.t.Helper()
	st, err := bootenv.Boot{Store: &bootenv.FileEnv{Path: d.cfg.Boot.Path}}.State()
	if err != nil {
		d.t.Fatal(err)
	}
	return st
}

func (d *device) journal() *Journal {
	d.t.Helper()
	var j Journal
	if ok, err := readJSON(d.path("state/journal.json"), &j); err != nil || !ok {
		d.t.Fatalf("journal: %v %v", ok, err)
	}
	return &j
}

// bundleSpec describes a test bundle.
type bundleSpec struct {
	version     string
	deviceTypes []string
	rootfs      string            // content of a rootfs payload, if set
	files       map[string]string // a files payload for target "app", if set
	module      map[string]string // a module payload's files, if set
	moduleName  string            // its target, the update module (default single-file)
	signer      *verify.Signer    // default: the device's key
	unsigned    bool
	name        string // default sim-os
	provides    map[string]string
	depends     []string
	encryptTo   []age.Recipient // encrypt the payloads to these
	chunkBits   int             // chunk the rootfs payload (FORMAT.md §15)
}

func (d *device) bundle(s bundleSpec) []byte {
	d.t.Helper()
	var srcs []bundle.Source
	if s.rootfs != "" {
		srcs = append(srcs, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: strings.NewReader(s.rootfs)})
	}
	if s.files != nil {
		tree := d.t.TempDir()
		for name, content := range s.files {
			os.MkdirAll(filepath.Dir(filepath.Join(tree, name)), 0o755)
			if err := os.WriteFile(filepath.Join(tree, name), []byte(content), 0o644); err != nil {
				d.t.Fatal(err)
			}
		}
		srcs = append(srcs, bundle.Source{Name: "app", Type: bundle.Files, Target: "app", Content: bundle.TarTree(tree, time.Time{})})
	}
	if s.module != nil {
		tree := d.t.TempDir()
		for name, content := range s.module {
			if err := os.WriteFile(filepath.Join(tree, name), []byte(content), 0o644); err != nil {
				d.t.Fatal(err)
			}
		}
		target := s.moduleName
		if target == "" {
			target = "single-file"
		}
		srcs = append(srcs, bundle.Source{Name: "conf", Type: bundle.Module, Target: target, Content: bundle.TarTree(tree, time.Time{})})
	}
	if s.deviceTypes == nil {
		s.deviceTypes = []string{deviceType}
	}
	signer := s.signer
	if signer == nil {
		signer = d.signer
	}
	if s.name == "" {
		s.name = "sim-os"
	}
	opts := bundle.Options{Name: s.name, Version: s.version, DeviceTypes: s.deviceTypes, Created: time.Unix(1700000000, 0), Provides: s.provides, Depends: s.depends, EncryptTo: s.encryptTo, ChunkAvgBits: s.chunkBits}
	if !s.unsigned {
		opts.Sign = func(m digest.Digest) ([]bundle.Signature, error) {
			sig, err := signer.Sign(m, "example.com/sim-os", time.Unix(1700000000, 0))
			return []bundle.Signature{sig}, err
		}
	}
	path := filepath.Join(d.t.TempDir(), "b.bundle")
	if _, err := bundle.Create(path, opts, srcs...); err != nil {
		d.t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		d.t.Fatal(err)
	}
	return b
}

// recipient is the device's age recipient (its identity is made at the
// first use).
func (d *device) recipient() age.Recipient {
	d.t.Helper()
	id, err := LoadIdentity(d.cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	r, err := age.ParseX25519Recipient(id.AgeRecipient)
	if err != nil {
		d.t.Fatal(err)
	}
	return r
}

// corruptPayload flips a byte in the middle of the last payload part's
// compressed data, which ends the archive before its 1024-byte end marker.
func corruptPayload(t *testing.T, b []byte) []byte {
	t.Helper()
	r, err := bundle.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	layers := r.Manifest().Layers
	size := layers[len(layers)-1].Size
	end := int64(len(b)) - 1024 - (512-size%512)%512
	c := bytes.Clone(b)
	c[end-size/2] ^= 0xff
	return c
}
