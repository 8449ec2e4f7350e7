package module

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrepareTree(t *testing.T) {
	r, _ := newRunner(t)
	s, err := r.Prepare(Payload{
		Index:               3,
		Type:                "store",
		ArtifactName:        "app-1.2.0",
		ArtifactGroup:       "apps",
		CurrentArtifactName: "app-1.1.0",
		MetaData:            []byte(`{"k":"v"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(r.WorkDir, "payloads", "0003", "tree")
	if s.Tree() != want {
		t.Fatalf("tree %s, want %s", s.Tree(), want)
	}
	for name, content := range map[string]string{
		"version":                "3\n",
		"current_artifact_name":  "app-1.1.0\n",
		"current_artifact_group": "",
		"current_device_type":    "test-board\n",
		"header/artifact_name":   "app-1.2.0",
		"header/artifact_group":  "apps",
		"header/payload_type":    "store",
		"header/type-info":       `{"type":"store"}`,
		"header/meta-data":       `{"k":"v"}`,
	} {
		if got := readFile(t, filepath.Join(s.Tree(), name)); got != content {
			t.Errorf("%s = %q, want %q", name, got, content)
		}
	}
	var hi struct {
		Payloads []struct{ Type string } `json:"payloads"`
		Provides map[string]string       `json:"artifact_provides"`
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(s.Tree(), "header/header-info"))), &hi); err != nil {
		t.Fatal(err)
	}
	if len(hi.Payloads) != 1 || hi.Payloads[0].Type != "store" || hi.Provides["artifact_name"] != "app-1.2.0" {
		t.Errorf("header-info = %+v", hi)
	}
	if fi, err := os.Stat(filepath.Join(s.Tree(), "tmp")); err != nil || !fi.IsDir() {
		t.Errorf("tmp/: %v", err)
	}

	// A second Prepare starts from an empty tree.
	writeFile(t, filepath.Join(s.Tree(), "tmp", "leftover"), "x")
	s, err = r.Prepare(Payload{Index: 3, Type: "store"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Tree(), "tmp", "leftover")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover survived Prepare: %v", err)
	}
}

func TestModuleLookup(t *testing.T) {
	r, _ := newRunner(t)
	writeFile(t, filepath.Join(r.ModulesDir, "not-executable"), "#!/bin/sh\n")
	if err := os.WriteFile(filepath.Join(r.ModulesDir, "no-interpreter"), []byte("echo hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := r.Prepare(Payload{Type: "no-interpreter"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background(), ArtifactInstall); err == nil || !strings.Contains(err.Error(), "exec format error") {
		t.Errorf("module without #!: %v", err)
	}
	if err := os.Mkdir(filepath.Join(r.ModulesDir, "a-directory"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, err string
	}{
		{"store", ""},
		{"", "want a plain file name"},
		{".", "want a plain file name"},
		{"..", "want a plain file name"},
		{"../module", "want a plain file name"},
		{"sub/store", "want a plain file name"},
		{"a\x00b", "want a plain file name"},
		{"missing", `no update module "missing" in`},
		{"not-executable", "not an executable file"},
		{"a-directory", "not an executable file"},
	} {
		_, err := r.Prepare(Payload{Type: tc.name})
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Prepare(%q) = %v, want %q", tc.name, err, tc.err)
		}
	}
	if _, err := r.Prepare(Payload{Type: "store", Index: 10000}); err == nil {
		t.Error("index 10000 accepted")
	}
}

func TestDownloadStreams(t *testing.T) {
	files := []testFile{
		{"app.bin", bigData(1<<20 + 17)},
		{"empty", nil},
		{"name with spaces.txt", []byte("hello\n")},
	}
	for _, tc := range []struct {
		sizes string // the module's answer to ProvidePayloadFileSizes
		lines string
	}{
		{"", "streams/app.bin\nstreams/empty\nstreams/name with spaces.txt\n"},
		{"No\n", "streams/app.bin\nstreams/empty\nstreams/name with spaces.txt\n"},
		{"Yes\n", "streams/app.bin 1048593\nstreams/empty 0\nstreams/name with spaces.txt 6\n"},
	} {
		t.Run(fmt.Sprintf("sizes=%q", tc.sizes), func(t *testing.T) {
			r, log := newRunner(t)
			s, err := r.Prepare(Payload{Type: "stream"})
			if err != nil {
				t.Fatal(err)
			}
			if tc.sizes != "" {
				writeFile(t, filepath.Join(s.Tree(), "tmp", "sizes"), tc.sizes)
			}
			content := tarOf(t, files...)
			src := bytes.NewReader(append(content, make([]byte, 10240)...)) // tar padding after the end
			if err := s.Download(context.Background(), TarFiles(src)); err != nil {
				t.Fatalf("Download: %v\nlog:\n%s", err, log)
			}
			if src.Len() != 0 {
				t.Errorf("%d bytes of the content left unread", src.Len())
			}
			for _, f := range files {
				got, err := os.ReadFile(filepath.Join(s.Tree(), "tmp", "got", f.name))
				if err != nil || !bytes.Equal(got, f.data) {
					t.Errorf("%s: got %d bytes (%v), want %d", f.name, len(got), err, len(f.data))
				}
			}
			if got := readFile(t, filepath.Join(s.Tree(), "tmp", "lines")); got != tc.lines {
				t.Errorf("stream-next lines:\n%s\nwant:\n%s", got, tc.lines)
			}
			for _, gone := range []string{"files", "streams", "stream-next"} {
				if _, err := os.Lstat(filepath.Join(s.Tree(), gone)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s exists after a streamed download", gone)
				}
			}
			if !strings.Contains(log.String(), "module stream "+map[bool]string{true: "DownloadWithFileSizes", false: "Download"}[tc.sizes == "Yes\n"]+": stdout: streamed\n") {
				t.Errorf("log:\n%s", log)
			}
		})
	}
}

func TestDownloadNoFiles(t *testing.T) {
	for _, module := range []string{"stream", "store"} {
		t.Run(module, func(t *testing.T) {
			r, log := newRunner(t)
			s, err := r.Prepare(Payload{Type: module})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Download(context.Background(), TarFiles(bytes.NewReader(tarOf(t)))); err != nil {
				t.Fatalf("Download: %v\nlog:\n%s", err, log)
			}
		})
	}
}

func TestDownloadStores(t *testing.T) {
	r, log := newRunner(t)
	s, err := r.Prepare(Payload{Type: "store"})
	if err != nil {
		t.Fatal(err)
	}
	files := []testFile{{"a", []byte("first")}, {"b.img", bigData(300 << 10)}, {"c", nil}}
	if err := s.Download(context.Background(), &sliceSource{files: files}); err != nil {
		t.Fatalf("Download: %v\nlog:\n%s", err, log)
	}
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(s.Tree(), "files", f.name))
		if err != nil || !bytes.Equal(got, f.data) {
			t.Errorf("files/%s: got %d bytes (%v), want %d", f.name, len(got), err, len(f.data))
		}
	}
	for _, gone := range []string{"streams", "stream-next"} {
		if _, err := os.Lstat(filepath.Join(s.Tree(), gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after the download", gone)
		}
	}
	ctx := context.Background()
	if err := s.Run(ctx, ArtifactInstall); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(s.Tree(), "tmp", "installed")); got != "a\nb.img\nc\n" {
		t.Errorf("module saw files %q", got)
	}
	// Invocation: MODULE STATE TREE, in TREE.
	calls := readFile(t, filepath.Join(s.Tree(), "tmp", "calls"))
	tree := s.Tree()
	want := fmt.Sprintf("ProvidePayloadFileSizes %s %s\nDownload %s %s\nArtifactInstall %s %s\n", tree, tree, tree, tree, tree, tree)
	if calls != want {
		t.Errorf("calls:\n%s\nwant:\n%s", calls, want)
	}
	for _, l := range []string{
		"module store ArtifactInstall: stdout: installing\n",
		"module store ArtifactInstall: stderr: a warning\n",
	} {
		if !strings.Contains(log.String(), l) {
			t.Errorf("log lacks %q:\n%s", l, log)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tree); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tree not removed by Close: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Run(ctx, ArtifactCommit); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Run without a tree: %v", err)
	}
}

func TestInstallFailure(t *testing.T) {
	r, _ := newRunner(t)
	ctx := context.Background()
	s, err := r.Prepare(Payload{Type: "fail-install"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Download(ctx, &sliceSource{files: []testFile{{"x", []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
	err = s.Run(ctx, ArtifactInstall)
	if err == nil {
		t.Fatal("ArtifactInstall succeeded")
	}
	for _, want := range []string{`update module "fail-install": ArtifactInstall: exit status 3: no space left on /data`} {
		if err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
	}
	if err := s.Run(ctx, ArtifactFailure); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Tree(), "tmp", "failure-ran")); err != nil {
		t.Error("ArtifactFailure did not run")
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestQueries(t *testing.T) {
	r, _ := newRunner(t)
	ctx := context.Background()
	s, err := r.Prepare(Payload{Type: "answer"})
	if err != nil {
		t.Fatal(err)
	}
	set := func(state, out, code string) {
		writeFile(t, filepath.Join(s.Tree(), "tmp", state), out)
		writeFile(t, filepath.Join(s.Tree(), "tmp", state+".exit"), code)
	}
	for _, tc := range []struct {
		out, code string
		want      Reboot
		err       string
	}{
		{"", "0", RebootNo, ""},
		{"No\n", "0", RebootNo, ""},
		{"Yes\n", "0", RebootYes, ""},
		{"Automatic\n", "0", RebootAutomatic, ""},
		{"  Automatic \r\n\n", "0", RebootAutomatic, ""},
		{"Automatic", "0", RebootAutomatic, ""},
		{"Maybe\n", "0", RebootNo, `answered "Maybe"`},
		{"yes\n", "0", RebootNo, `answered "yes"`},
		{"Yes\nNo\n", "0", RebootNo, "2 lines"},
		{"Yes\n", "1", RebootNo, "exit status 1"},
	} {
		set(NeedsArtifactReboot, tc.out, tc.code)
		got, err := s.NeedsReboot(ctx)
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("NeedsReboot with %q = %v, %v; want %v", tc.out, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("NeedsReboot with %q: error %v, want %q", tc.out, err, tc.err)
		}
	}
	for _, tc := range []struct {
		out  string
		want bool
		err  string
	}{
		{"", false, ""},
		{"No\n", false, ""},
		{"Yes\n", true, ""},
		{"AutomaticDualRootfs\n", false, "want Yes or No"},
	} {
		set(SupportsRollback, tc.out, "0")
		got, err := s.SupportsRollback(ctx)
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("SupportsRollback with %q = %v, %v; want %v", tc.out, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("SupportsRollback with %q: error %v, want %q", tc.out, err, tc.err)
		}
	}

	// An answer too long for the capture is refused, not cut.
	set(NeedsArtifactReboot, strings.Repeat("x", MaxLogOutput+1), "0")
	if _, err := s.NeedsReboot(ctx); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("long answer: %v", err)
	}
	// A bad answer to ProvidePayloadFileSizes fails the download.
	set(ProvidePayloadFileSizes, "Sometimes\n", "0")
	if err := s.Download(ctx, &sliceSource{}); err == nil || !strings.Contains(err.Error(), "ProvidePayloadFileSizes") {
		t.Errorf("Download with a bad size answer: %v", err)
	}
	// Any other state can be asked, too.
	set("FutureQuery", "\n  42 \n", "0")
	if got, err := s.Query(ctx, "FutureQuery"); got != "42" || err != nil {
		t.Errorf("Query = %q, %v", got, err)
	}
}

func TestStates(t *testing.T) {
	r, _ := newRunner(t)
	ctx := context.Background()
	s, err := r.Prepare(Payload{Type: "store"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		state, err string
	}{
		{"SomeFutureState", ""}, // modules ignore states they do not know
		{ArtifactVerifyRollbackReboot, ""},
		{Download, "Session.Download"},
		{DownloadWithFileSizes, "Session.Download"},
		{"", "want a state name"},
		{"Artifact Install", "want letters and digits"},
		{"-rf", "want letters and digits"},
	} {
		err := s.Run(ctx, tc.state)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Run(%q) = %v, want %q", tc.state, err, tc.err)
		}
	}
}

func TestTimeout(t *testing.T) {
	r, _ := newRunner(t)
	r.Timeout = 300 * time.Millisecond
	ctx := context.Background()

	s, err := r.Prepare(Payload{Type: "hang"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.Run(ctx, ArtifactInstall)
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("Run: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %s after a 300ms timeout", d)
	}

	// A module that opens stream-next and then reads nothing.
	start = time.Now()
	err = s.Download(ctx, &sliceSource{files: []testFile{{"big", bigData(1 << 20)}}})
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("Download: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Download took %s after a 300ms timeout", d)
	}

	// The caller's context stops a call the same way.
	r.Timeout = time.Hour
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err = s.Run(cctx, ArtifactCommit)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run with a cancelled context: %v", err)
	}
	cctx, cancel = context.WithCancel(ctx)
	time.AfterFunc(200*time.Millisecond, cancel)
	err = s.Download(cctx, &sliceSource{files: []testFile{{"big", bigData(1 << 20)}}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Download with a cancelled context: %v", err)
	}
}

func TestBrokenStreams(t *testing.T) {
	files := []testFile{{"first", bigData(1 << 20)}, {"second", []byte("2")}}
	for _, tc := range []struct {
		mode, err string
	}{
		{"short", "stopped reading streams/first after "},
		{"nostream", "exited without reading streams/first"},
		{"onefile", "exited before it read the end of stream-next"},
		{"fail", "exit status 1: cannot download"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			r, _ := newRunner(t)
			s, err := r.Prepare(Payload{Type: "partial"})
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(s.Tree(), "tmp", "mode"), tc.mode)
			start := time.Now()
			err = s.Download(context.Background(), &sliceSource{files: files})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Download: %v, want %q", err, tc.err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Download took %s", d)
			}
		})
	}
}

// failingSource fails after its first file.
type failingSource struct{ n int }

func (f *failingSource) Next() (File, io.Reader, error) {
	f.n++
	if f.n == 1 {
		return File{Name: "ok", Size: 2}, strings.NewReader("ok"), nil
	}
	return File{}, nil, errors.New("digest mismatch")
}

func TestSourceFailure(t *testing.T) {
	for _, module := range []string{"stream", "store"} {
		t.Run(module, func(t *testing.T) {
			r, _ := newRunner(t)
			s, err := r.Prepare(Payload{Type: module})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Download(context.Background(), &failingSource{})
			if err == nil || !strings.Contains(err.Error(), "digest mismatch") {
				t.Errorf("Download: %v", err)
			}
			// Bad names from a source are refused before they reach the tree.
			err = s.Download(context.Background(), &sliceSource{files: []testFile{{"../escape", nil}}})
			if err == nil || !strings.Contains(err.Error(), "want a plain file name") && !strings.Contains(err.Error(), "want no '/'") {
				t.Errorf("Download of ../escape: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(s.Tree(), "..", "escape")); !errors.Is(err, os.ErrNotExist) {
				t.Error("../escape was written")
			}
		})
	}
}

func TestLeftBehindChild(t *testing.T) {
	r, log := newRunner(t)
	ctx := context.Background()
	s, err := r.Prepare(Payload{Type: "daemon"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Run(ctx, ArtifactCommit); err != nil {
		t.Fatal(err)
	}
	if got, err := s.NeedsReboot(ctx); got != RebootAutomatic || err != nil {
		t.Errorf("NeedsReboot = %v, %v", got, err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("calls took %s: waited for the child", d)
	}
	if !strings.Contains(log.String(), "module daemon ArtifactCommit: stdout: starting service\n") {
		t.Errorf("log:\n%s", log)
	}
}

func TestLogLimit(t *testing.T) {
	r, log := newRunner(t)
	s, err := r.Prepare(Payload{Type: "answer"})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("y", 99) + "\n"
	writeFile(t, filepath.Join(s.Tree(), "tmp", ArtifactCommit), strings.Repeat(line, 2000))
	if err := s.Run(context.Background(), ArtifactCommit); err != nil {
		t.Fatal(err)
	}
	out := log.String()
	if len(out) > MaxLogOutput+MaxLogOutput/2 {
		t.Errorf("logged %d bytes", len(out))
	}
	if !strings.Contains(out, "more bytes not logged)") {
		t.Errorf("no truncation note in the log")
	}
}

func TestResume(t *testing.T) {
	r, _ := newRunner(t)
	s, err := r.Prepare(Payload{Type: "store", Index: 1})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(s.Tree(), "tmp", "backup"), "kept")
	s2, err := r.Resume("store", 1)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Tree() != s.Tree() || readFile(t, filepath.Join(s2.Tree(), "tmp", "backup")) != "kept" {
		t.Error("Resume did not find the tree as it was")
	}
	if _, err := r.Resume("stream", 1); err == nil || !strings.Contains(err.Error(), `is for "store"`) {
		t.Errorf("Resume with another module: %v", err)
	}
	if _, err := r.Resume("store", 2); err == nil {
		t.Error("Resume without a tree succeeded")
	}
	if err := s2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resume("store", 1); err == nil {
		t.Error("Resume after Close succeeded")
	}
}

func TestParseAnswer(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"", "", false},
		{"\n", "", false},
		{"Yes", "Yes", false},
		{"Yes\n", "Yes", false},
		{"\r\n Yes \r\n\n", "Yes", false},
		{"Yes\nNo", "", true},
		{"a b\n", "a b", false},
	} {
		got, err := parseAnswer([]byte(tc.in), false)
		if got != tc.want && !tc.err || (err != nil) != tc.err {
			t.Errorf("parseAnswer(%q) = %q, %v", tc.in, got, err)
		}
	}
}
