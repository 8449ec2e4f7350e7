package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/tufclient"
	"github.com/ferry-update/ferry/verify"
)

// trustEnv is a device provisioned with a trust root (v1: one root key,
// release keys rel1 and rel2, release threshold 1) and the keys to make
// more roots and bundles.
type trustEnv struct {
	*device
	rootKey, rel1, rel2, rel3 *verify.Signer
	root1                     *verify.Root
}

func newSigner(t testing.TB) *verify.Signer {
	t.Helper()
	k, err := verify.GenerateKey(verify.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	s, err := verify.NewSigner(k, "test")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTrustEnv(t *testing.T) *trustEnv {
	e := &trustEnv{device: newDevice(t), rootKey: newSigner(t), rel1: newSigner(t), rel2: newSigner(t), rel3: newSigner(t)}
	e.signer = e.rel1
	s := verify.NewRootSigned(time.Now().Add(365 * 24 * time.Hour))
	for _, k := range []struct {
		role string
		s    *verify.Signer
	}{{verify.RoleRoot, e.rootKey}, {verify.RoleRelease, e.rel1}, {verify.RoleRelease, e.rel2}} {
		if err := s.AddKey(k.role, k.s.PublicKey()); err != nil {
			t.Fatal(err)
		}
	}
	e.root1 = e.sign(s, e.rootKey)
	e.write("root.json", string(e.root1.Bytes()))
	e.cfg.Trust = TrustConfig{Root: e.path("root.json")}
	return e
}

func (e *trustEnv) sign(s verify.RootSigned, by ...*verify.Signer) *verify.Root {
	e.t.Helper()
	r, err := verify.SignRoot(s, by...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// next returns the signed part of the root after r, changed by edit.
func (e *trustEnv) next(r *verify.Root, edit func(*verify.RootSigned)) verify.RootSigned {
	s := r.Signed()
	s.Version++
	if edit != nil {
		edit(&s)
	}
	return s
}

// deviceHash hashes what a refused install must leave alone: the boot
// environment, the running slot (a) and the files target. The inactive
// slot (b) is not in it: a streaming install writes there before the
// payload's digest is known at its end, and a refused one is simply never
// activated, which the unchanged boot environment shows.
func (e *trustEnv) deviceHash() string {
	e.t.Helper()
	h := sha256.New()
	for _, name := range []string{"bootenv", "slot-a.img", "app"} {
		filepath.WalkDir(e.path(name), func(p string, d fs.DirEntry, err error) error {
			io.WriteString(h, p+"\x00")
			if err == nil && d.Type().IsRegular() {
				b, _ := os.ReadFile(p)
				h.Write(b)
			}
			if err == nil && d.Type()&fs.ModeSymlink != 0 {
				l, _ := os.Readlink(p)
				io.WriteString(h, l)
			}
			return nil
		})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// tamperConfig changes the version in the bundle's config, leaving its
// digest (which the manifest signs) as it was.
func tamperConfig(t *testing.T, b []byte) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(`"version":"1.0.0"`))
	if i < 0 {
		t.Fatal("no version in the config")
	}
	c := bytes.Clone(b)
	copy(c[i:], `"version":"9.0.0"`)
	return c
}

// endless rewrites the archive with extra bytes after the last payload
// part: its tar member is larger than the size the manifest signs.
func endless(t *testing.T, b []byte) []byte {
	t.Helper()
	r, err := bundle.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	layers := r.Manifest().Layers
	last := "blobs/sha256/" + layers[len(layers)-1].Digest.Encoded()
	tr := tar.NewReader(bytes.NewReader(b))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if hdr.Name == last {
			data = append(data, bytes.Repeat([]byte{0}, 1<<20)...)
			hdr.Size = int64(len(data))
		}
		tw.WriteHeader(hdr)
		tw.Write(data)
	}
	tw.Close()
	return out.Bytes()
}

// appendMember adds a tar member after the bundle's last part, before its
// end-of-archive marker: GNU tar and skopeo would read it.
func appendMember(t *testing.T, b []byte, name string, data []byte) []byte {
	t.Helper()
	var m bytes.Buffer
	tw := tar.NewWriter(&m)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	tw.Write(data)
	tw.Close() // with its own end marker
	return append(bytes.Clone(b[:len(b)-1024]), m.Bytes()...)
}

// mirrorFor serves a mirror holding bundles, with TUF metadata signed by
// the store, and returns the device's [mirror] settings for it.
func mirrorFor(t *testing.T, bundles ...[]byte) (*mirror.Store, MirrorConfig) {
	t.Helper()
	st, err := mirror.Init(filepath.Join(t.TempDir(), "mirror"), testutil.MirrorKey(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bundles {
		p := filepath.Join(t.TempDir(), "b.bundle")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(server.NewHandler(st, server.HandlerOptions{}))
	t.Cleanup(srv.Close)
	return st, MirrorConfig{URL: srv.URL, TUFRoot: st.TUFRootPath(), Interval: Duration{time.Hour}}
}

// TestAttacks is verify/TRUST.md's and DESIGN.md's list of attacks, each
// tried against a device holding a trust root: every one must end in a
// typed error whose message says what was wrong, with the boot
// environment, the slots and the files target exactly as before.
func TestAttacks(t *testing.T) {
	ctx := context.Background()
	type attempt struct {
		bundle  []byte
		roots   [][]byte           // offered by the source before the bundle is judged
		clock   time.Duration      // the device's clock, moved on by this much
		install func(*Agent) error // instead of installing bundle (mirror rows)
	}
	isRefused := func(err error) bool { var re *RefusedError; return errors.As(err, &re) }
	for _, tc := range []struct {
		name string
		// attack sets up the device and returns what it is offered.
		attack func(t *testing.T, e *trustEnv) attempt
		want   string // regexp on the error
		typed  func(error) bool
	}{
		{"tampered payload", func(t *testing.T, e *trustEnv) attempt {
			return attempt{bundle: corruptPayload(t, e.bundle(bundleSpec{version: "1.0.0", rootfs: "new system"}))}
		}, `digest|truncated|corrupt|zstd|checksum`, isRefused},
		{"tampered config", func(t *testing.T, e *trustEnv) attempt {
			return attempt{bundle: tamperConfig(t, e.bundle(bundleSpec{version: "1.0.0", rootfs: "new system"}))}
		}, `config.*digest|digest.*config|sha256`, isRefused},
		{"signatures below threshold", func(t *testing.T, e *trustEnv) attempt {
			s := e.next(e.root1, func(s *verify.RootSigned) { s.SetThreshold(verify.RoleRelease, 2) })
			return attempt{bundle: e.bundle(bundleSpec{version: "1.0.0", rootfs: "new"}), roots: [][]byte{e.sign(s, e.rootKey).Bytes()}}
		}, `1 valid signature\(s\) from trusted keys, 2 required`, isRefused},
		{"unknown key", func(t *testing.T, e *trustEnv) attempt {
			return attempt{bundle: e.bundle(bundleSpec{version: "1.0.0", rootfs: "new", signer: e.rel3})}
		}, `0 valid signature\(s\) from trusted keys, 1 required`, isRefused},
		{"unsigned", func(t *testing.T, e *trustEnv) attempt {
			return attempt{bundle: e.bundle(bundleSpec{version: "1.0.0", rootfs: "new", unsigned: true})}
		}, `signature`, isRefused},
		{"revoked key", func(t *testing.T, e *trustEnv) attempt {
			s := e.next(e.root1, func(s *verify.RootSigned) { s.Revoke(e.rel1.PublicKey().ID) })
			return attempt{bundle: e.bundle(bundleSpec{version: "1.0.0", rootfs: "new"}), roots: [][]byte{e.sign(s, e.rootKey).Bytes()}}
		}, `revoked key`, isRefused},
		{"expired root", func(t *testing.T, e *trustEnv) attempt {
			return attempt{bundle: e.bundle(bundleSpec{version: "1.0.0", rootfs: "new"}), clock: 400 * 24 * time.Hour}
		}, `trust root v1: .*expired`, func(err error) bool {
			var re *verify.RootError
			return isRefused(err) && errors.As(err, &re) && re.Kind == verify.RootExpired
		}},
		{"root that skips a version", func(t *testing.T, e *trustEnv) attempt {
			// v3 moves the release role to rel3; without v2 the device
			// cannot follow, keeps v1 and says why.
			s2 := e.next(e.root1, nil)
			s3 := e.next(e.sign(s2, e.rootKey), func(s *verify.RootSigned) {
				s.AddKey(verify.RoleRelease, e.rel3.PublicKey())
			})
			return attempt{bundle: e.bundle(bundleSpec{version: "1.0.0", rootfs: "new", signer: e.rel3}), roots: [][]byte{e.sign(s3, e.rootKey).Bytes()}}
		}, `0 valid signature.*newer trust root was offered but not accepted: trust root v3: does not follow the trusted version 1`, isRefused},
		{"root without the old root keys' threshold", func(t *testing.T, e *trustEnv) attempt {
			// v2 replaces the root key and trusts rel3, signed only by
			// the new root key.
			thief := newSigner(t)
			s := e.next(e.root1, func(s *verify.RootSigned) {
				s.AddKey(verify.RoleRoot, thief.PublicKey())
				s.RemoveKey(verify.RoleRoot, e.rootKey.PublicKey().ID)
				s.AddKey(verify.RoleRelease, e.rel3.PublicKey())
			})
			return attempt{bundle: e.bundle(bundleSpec{version: "1.0.0", rootfs: "new", signer: e.rel3}), roots: [][]byte{e.sign(s, thief).Bytes()}}
		}, `not accepted: trust root v2: .*trusted v1's`, isRefused},
		{"downgrade", func(t *testing.T, e *trustEnv) attempt {
			os.MkdirAll(e.path("state"), 0o700)
			if err := writeJSON(e.path("state/installed.json"), Installed{Bundle: "sim-os", Version: "2.0.0"}); err != nil {
				t.Fatal(err)
			}
			return attempt{bundle: e.bundle(bundleSpec{version: "1.0.0", rootfs: "old"})}
		}, `1\.0\.0 < installed 2\.0\.0`, func(err error) bool { return isRefused(err) && errors.Is(err, ErrDowngrade) }},
		{"replayed stale mirror metadata (freeze)", func(t *testing.T, e *trustEnv) attempt {
			_, mc := mirrorFor(t, e.bundle(bundleSpec{version: "1.0.0", rootfs: "new"}))
			e.cfg.Mirror = mc
			// The device trusted the metadata once; two days later the
			// mirror (or a man in the middle) still serves it.
			if err := e.do(func(a *Agent) error { _, err := a.CheckMirror(ctx, nil); return err }); err != nil {
				t.Fatal(err)
			}
			return attempt{clock: 48 * time.Hour, install: func(a *Agent) error { _, err := a.UpdateFromMirror(ctx, nil); return err }}
		}, `timestamp.json: expired at .*freeze`, func(err error) bool { return tufclient.IsKind(err, tufclient.Expired) }},
		{"bundle not listed by the mirror (mix-and-match)", func(t *testing.T, e *trustEnv) attempt {
			_, mc := mirrorFor(t, e.bundle(bundleSpec{version: "1.0.0", rootfs: "listed"}))
			e.cfg.Mirror = mc
			other := e.bundle(bundleSpec{version: "1.0.0", rootfs: "validly signed, not listed"})
			return attempt{install: func(a *Agent) error {
				tg, err := a.CheckMirror(ctx, nil)
				if err != nil {
					return err
				}
				_, err = a.InstallWith(ctx, bytes.NewReader(other), "mix", InstallOptions{Listed: tg})
				return err
			}}
		}, `sim-os.*1\.0\.0`, func(err error) bool { var nl *tufclient.NotListedError; return isRefused(err) && errors.As(err, &nl) }},
		{"payload larger than its signed size (endless data)", func(t *testing.T, e *trustEnv) attempt {
			return attempt{bundle: endless(t, e.bundle(bundleSpec{version: "1.0.0", rootfs: "new"}))}
		}, `member holds \d+ bytes, manifest says \d+`, isRefused},
		{"member after the last part (seen by other tar readers)", func(t *testing.T, e *trustEnv) attempt {
			b := e.bundle(bundleSpec{version: "1.0.0", rootfs: "new"})
			return attempt{bundle: appendMember(t, b, "./index.json", []byte(`{"schemaVersion":2}`))}
		}, `end of archive \(\./index\.json at offset \d+\): not accounted for`, func(err error) bool {
			return isRefused(err) && errors.Is(err, bundle.ErrUnaccounted)
		}},
		{"data after the end-of-archive marker", func(t *testing.T, e *trustEnv) attempt {
			b := e.bundle(bundleSpec{version: "1.0.0", rootfs: "new"})
			return attempt{bundle: append(b, []byte("#!/bin/sh\nrm -rf /\n")...)}
		}, `end of archive \(at offset \d+\): not accounted for.*non-zero data`, func(err error) bool {
			return isRefused(err) && errors.Is(err, bundle.ErrUnaccounted)
		}},
		{"wrong device type", func(t *testing.T, e *trustEnv) attempt {
			return attempt{bundle: e.bundle(bundleSpec{version: "1.0.0", rootfs: "new", deviceTypes: []string{"other-board"}})}
		}, `bundle is for device types \[other-board\], not "sim-board"`, func(err error) bool {
			var de *verify.DeviceTypeError
			return isRefused(err) && errors.As(err, &de)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTrustEnv(t)
			at := tc.attack(t, e)
			before := e.deviceHash()
			a := e.open()
			if at.clock != 0 {
				a.now = func() time.Time { return time.Now().Add(at.clock) }
			}
			if at.roots != nil {
				a.ApplyRoots(at.roots) // a failure is told with the refusal
			}
			var err error
			if at.install != nil {
				err = at.install(a)
			} else {
				_, err = a.Install(ctx, bytes.NewReader(at.bundle), "attack")
			}
			if err == nil {
				t.Fatal("the attack was not refused")
			}
			if !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Errorf("error %q does not match %q", err, tc.want)
			}
			if tc.typed != nil && !tc.typed(err) {
				t.Errorf("error %T %q is not of the expected type", err, err)
			}
			if after := e.deviceHash(); after != before {
				t.Error("the boot environment or a slot changed")
			}
			if st := e.bootState(); st.Slot != "a" || st.UpgradeAvailable {
				t.Errorf("boot state %+v", st)
			}
		})
	}
}

// TestTrailerActivatesNothing: a files payload is extracted before the end
// of the archive is read; bytes after it that the manifest does not account
// for must still stop the install before the tree is switched in or a slot
// is marked, for the stream and for a bundle file alike.
func TestTrailerActivatesNothing(t *testing.T) {
	for name, damage := range map[string]func(t *testing.T, b []byte) []byte{
		"member": func(t *testing.T, b []byte) []byte {
			return appendMember(t, b, "blobs/sha256/"+strings.Repeat("0", 64), []byte("x"))
		},
		"trailing": func(_ *testing.T, b []byte) []byte { return append(b, 'x') },
	} {
		t.Run(name, func(t *testing.T) {
			e := newTrustEnv(t)
			b := damage(t, e.bundle(bundleSpec{version: "1.0.0", rootfs: "new", files: map[string]string{"app.conf": "v2"}}))
			_, err := e.open().Install(context.Background(), bytes.NewReader(b), "attack")
			var re *RefusedError
			if !errors.As(err, &re) || !errors.Is(err, bundle.ErrUnaccounted) {
				t.Fatalf("install: %v, want refused as unaccounted", err)
			}
			if _, err := os.Lstat(e.path("app/current")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("app/current exists after a refused install: %v", err)
			}
			if ents, _ := os.ReadDir(e.path("app/releases")); len(ents) > 0 {
				t.Errorf("app/releases keeps %s", ents[0].Name())
			}
			if st := e.bootState(); st.Slot != "a" || st.UpgradeAvailable {
				t.Errorf("boot state %+v", st)
			}
		})
	}
}
