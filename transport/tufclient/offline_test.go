package tufclient_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/ferry-update/ferry/transport/tufclient"
)

// files reads a copy of the metadata as a stick carries it.
func (r *repo) read(name string, max int64) ([]byte, error) {
	b, ok := r.files[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than %d bytes", name, max)
	}
	return b, nil
}

func TestCheckOffline(t *testing.T) {
	r := newRepo(t)
	now := time.Now()
	tg, err := tufclient.CheckOffline(r.read, r.root, t.TempDir(), now)
	if err != nil {
		t.Fatal(err)
	}
	if all := tg.All(); len(all) != 2 || all[0].Version != "1.0.0" {
		t.Fatalf("targets %+v", all)
	}
	for _, tc := range []struct {
		name   string
		change func(c *repo)
		state  func(dir string) // what the device trusted before
		at     time.Time
		kind   tufclient.Kind
		role   string
	}{
		{name: "no targets", change: func(c *repo) { delete(c.files, "targets.json") }, kind: tufclient.Unavailable, role: "targets"},
		{name: "targets changed", change: func(c *repo) {
			c.files["targets.json"] = bytes.Replace(c.files["targets.json"], []byte(`"1.0.0"`), []byte(`"9.0.0"`), 1)
		}, kind: tufclient.BadSignature, role: "targets"},
		{name: "targets not metadata", change: func(c *repo) { c.files["targets.json"] = []byte(`{}`) }, kind: tufclient.Malformed, role: "targets"},
		{name: "timestamp in place of targets", change: func(c *repo) { c.files["targets.json"] = c.files["timestamp.json"] }, kind: tufclient.Malformed, role: "targets"},
		{name: "forged next root", change: func(c *repo) {
			c.files["2.root.json"] = bytes.Replace(c.files["1.root.json"], []byte(`"version": 1`), []byte(`"version": 2`), 1)
		}, kind: tufclient.BadSignature, role: "root"},
		{name: "expired root", at: now.Add(400 * 24 * time.Hour), kind: tufclient.Expired, role: "root"},
		{name: "older than the trusted targets", state: func(dir string) {
			newer := regexp.MustCompile(`"version": ([0-9]+)`).ReplaceAll(r.files["targets.json"], []byte(`"version": 1$1`))
			os.WriteFile(filepath.Join(dir, "targets.json"), newer, 0o644)
		}, kind: tufclient.Rollback, role: "targets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := r.clone()
			if tc.change != nil {
				tc.change(c)
			}
			state := t.TempDir()
			if tc.state != nil {
				tc.state(state)
			}
			at := tc.at
			if at.IsZero() {
				at = now
			}
			_, err := tufclient.CheckOffline(c.read, r.root, state, at)
			var te *tufclient.Error
			if !errors.As(err, &te) || te.Kind != tc.kind || te.Role != tc.role {
				t.Fatalf("got %v, want %s of %s", err, tc.kind, tc.role)
			}
			if ents, _ := os.ReadDir(state); tc.state == nil && len(ents) != 0 {
				t.Errorf("CheckOffline wrote %d files to the state directory", len(ents))
			}
		})
	}
}

// offlineFiles are the files of a stick's copy a fuzz iteration may
// replace.
var offlineFiles = []string{"targets.json", "2.root.json", "1.root.json"}

// FuzzCheckOffline feeds arbitrary bytes in place of one of the files a
// stick carries. CheckOffline must never panic, must answer with an
// *Error when it refuses, and whatever it accepts lists exactly the
// mirror's bundles (a forged targets or root never gets through).
func FuzzCheckOffline(f *testing.F) {
	r := newRepo(f)
	for i, name := range offlineFiles {
		if b, ok := r.files[name]; ok {
			f.Add(uint8(i), b)
			f.Add(uint8(i), bytes.Replace(b, []byte(`"version": `), []byte(`"version": 1`), 1))
		}
	}
	f.Add(uint8(0), []byte(`{"signed":{"_type":"targets"},"signatures":[]}`))
	f.Add(uint8(1), []byte(`null`))
	good, err := tufclient.CheckOffline(r.read, r.root, f.TempDir(), time.Now())
	if err != nil {
		f.Fatal(err)
	}
	want := fmt.Sprint(good.All(), good.AssignmentKeys)
	now := time.Now()
	state := f.TempDir()
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		c := r.clone()
		c.files[offlineFiles[int(which)%len(offlineFiles)]] = data
		tg, err := tufclient.CheckOffline(c.read, r.root, state, now)
		if err != nil {
			var te *tufclient.Error
			if !errors.As(err, &te) {
				t.Fatalf("not a *tufclient.Error: %v", err)
			}
			return
		}
		if got := fmt.Sprint(tg.All(), tg.AssignmentKeys); got != want {
			t.Fatalf("accepted targets %s, want %s", got, want)
		}
	})
}
