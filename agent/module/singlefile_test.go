package module

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// singleFilePayload is the content single-file-artifact-gen would make.
func singleFilePayload(t *testing.T, dir, name, data, perm string) FileSource {
	files := []testFile{{name, []byte(data)}, {"dest_dir", []byte(dir + "\n")}, {"filename", []byte(name + "\n")}}
	if perm != "" {
		files = append(files, testFile{"permissions", []byte(perm + "\n")})
	}
	return TarFiles(strings.NewReader(string(tarOf(t, files...))))
}

// installSingleFile runs the states up to ArtifactInstall.
func installSingleFile(t *testing.T, r *Runner, src FileSource) (*Session, error) {
	t.Helper()
	ctx := context.Background()
	s, err := r.Prepare(Payload{Type: "single-file", ArtifactName: "app-conf-2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Download(ctx, src); err != nil {
		t.Fatal(err)
	}
	return s, s.Run(ctx, ArtifactInstall)
}

func TestSingleFileInstallRollback(t *testing.T) {
	r, log := newRunner(t)
	ctx := context.Background()
	dest := filepath.Join(t.TempDir(), "etc", "app")
	if err := os.MkdirAll(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dest, "app.conf")
	writeFile(t, target, "old\n")

	s, err := installSingleFile(t, r, singleFilePayload(t, dest, "app.conf", "new\n", "0640"))
	if err != nil {
		t.Fatalf("ArtifactInstall: %v\nlog:\n%s", err, log)
	}
	if got := readFile(t, target); got != "new\n" {
		t.Errorf("installed %q", got)
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v (%v), want 0640", fi.Mode(), err)
	}
	if reboot, err := s.NeedsReboot(ctx); reboot != RebootNo || err != nil {
		t.Errorf("NeedsReboot = %v, %v", reboot, err)
	}
	if ok, err := s.SupportsRollback(ctx); !ok || err != nil {
		t.Errorf("SupportsRollback = %v, %v", ok, err)
	}
	// After a reboot of the agent, from the same tree.
	s, err = r.Resume("single-file", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx, ArtifactRollback); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, target); got != "old\n" {
		t.Errorf("after rollback %q", got)
	}
	for _, st := range []string{ArtifactFailure} {
		if err := s.Run(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dest, "*")); len(left) != 1 {
		t.Errorf("files left in the destination: %v", left)
	}
}

func TestSingleFileCommit(t *testing.T) {
	r, _ := newRunner(t)
	ctx := context.Background()
	dest := filepath.Join(t.TempDir(), "new", "dir") // created by the module
	s, err := installSingleFile(t, r, singleFilePayload(t, dest, "app.bin", "binary", ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx, ArtifactCommit); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dest, "app.bin")); got != "binary" {
		t.Errorf("installed %q", got)
	}
}

func TestSingleFileRollbackOfNewFile(t *testing.T) {
	r, _ := newRunner(t)
	ctx := context.Background()
	dest := t.TempDir()
	s, err := installSingleFile(t, r, singleFilePayload(t, dest, "new.conf", "x", ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx, ArtifactRollback); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dest, "new.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rollback left the new file: %v", err)
	}
	s.Close(ctx)
}

func TestSingleFileBadPayload(t *testing.T) {
	r, _ := newRunner(t)
	ctx := context.Background()
	dest := t.TempDir()
	for _, tc := range []struct {
		name string
		src  FileSource
		err  string
	}{
		{"no dest_dir", &sliceSource{files: []testFile{{"a", []byte("1")}, {"filename", []byte("a")}}}, "payload file 'dest_dir' is missing"},
		{"file missing", &sliceSource{files: []testFile{{"dest_dir", []byte(dest)}, {"filename", []byte("a")}}}, "the payload has no file 'a'"},
	} {
		s, err := installSingleFile(t, r, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
		// Nothing was installed, so rollback has nothing to do.
		if err := s.Run(ctx, ArtifactRollback); err != nil {
			t.Errorf("%s: rollback: %v", tc.name, err)
		}
		s.Close(ctx)
	}
	if left, _ := filepath.Glob(filepath.Join(dest, "*")); len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
}
