package stick

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// within runs fn and fails the test if it has not returned after a long
// while: a FIFO that blocks the reader hangs forever, not slowly.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s blocks", what)
	}
}

// mkfifo replaces path with a FIFO that no one writes.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A FIFO anywhere the agent reads a stick (the layout marker, the index,
// a blob, a trust file, a report) is refused at once as not a regular
// file, never waited on.
func TestStickFIFOsRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		fifo string // relative to ferry/
		read func(s *Stick) error
	}{
		{"oci-layout", "oci-layout", nil},
		{"index", "index.json", func(s *Stick) error { _, err := s.Bundles(); return err }},
		{"blob", "", func(s *Stick) error {
			bs, err := s.Bundles()
			if err != nil {
				return err
			}
			b, _ := Best(bs, "board-a")
			rc, err := s.Open(b)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(io.Discard, rc)
			return err
		}},
		{"trust", "trust/1.root.json", func(s *Stick) error { _, err := s.TrustFile("1.root.json"); return err }},
		{"read file", "roots/2.root.json", func(s *Stick) error { _, err := s.ReadFile("roots/2.root.json", 1<<20); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := testStick(t)
			fifo := tc.fifo
			if fifo == "" { // the first payload part of gw 1.2.0
				s, err := OpenDir(root)
				if err != nil {
					t.Fatal(err)
				}
				bs, _ := s.Bundles()
				b, _ := Best(bs, "board-a")
				fifo = "blobs/sha256/" + b.layers[0].Digest.Encoded()
			}
			os.MkdirAll(filepath.Dir(filepath.Join(root, Dir, fifo)), 0o755)
			mkfifo(t, filepath.Join(root, Dir, fifo))
			var err error
			within(t, "reading a FIFO on the stick", func() {
				var s *Stick
				if s, err = OpenDir(root); err == nil {
					err = tc.read(s)
				}
			})
			if !errors.Is(err, ErrNotRegular) {
				t.Errorf("%v, want ErrNotRegular", err)
			}
		})
	}
}

// A link that leads out of the stick is not followed when reading.
func TestStickLinkOutRefused(t *testing.T) {
	root, _ := testStick(t)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("device secret"), 0o600)
	os.MkdirAll(filepath.Join(root, Dir, "roots"), 0o755)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, Dir, "roots", "2.root.json"))
	s, err := OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := s.ReadFile("roots/2.root.json", 1<<20); err == nil {
		t.Errorf("read %q through a link out of the stick", b)
	}
}

// A reports/ (or ferry/) that is a link is never written through: the
// report fails and nothing appears where the link leads.
func TestReportNotWrittenThroughLink(t *testing.T) {
	for _, link := range []string{ReportsDir, "."} {
		t.Run(link, func(t *testing.T) {
			root, _ := testStick(t)
			target := t.TempDir()
			var s *Stick
			if link == "." { // ferry/ itself leads elsewhere
				real := filepath.Join(t.TempDir(), "ferry")
				if err := os.Rename(filepath.Join(root, Dir), real); err != nil {
					t.Fatal(err)
				}
				os.Symlink(real, filepath.Join(root, Dir))
				target = real
				if _, err := OpenDir(root); err == nil {
					t.Fatal("opened a stick whose ferry/ leads out of it")
				}
				s = &Stick{Root: root, fs: osFS{}, now: time.Now}
			} else {
				os.Symlink(target, filepath.Join(root, Dir, ReportsDir))
				var err error
				if s, err = OpenDir(root); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := os.ReadDir(target)
			if p, err := s.WriteReport(Report{DeviceID: "gw-1", Result: ResultSuccess}); err == nil {
				t.Errorf("report written to %s through a link", p)
			}
			after, _ := os.ReadDir(target)
			if len(after) != len(before) {
				t.Errorf("%d files where the link leads, was %d", len(after), len(before))
			}
		})
	}
}
