package module

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The states of the protocol, in the order Mender runs them.
const (
	ProvidePayloadFileSizes      = "ProvidePayloadFileSizes"
	Download                     = "Download"
	DownloadWithFileSizes        = "DownloadWithFileSizes"
	ArtifactInstall              = "ArtifactInstall"
	NeedsArtifactReboot          = "NeedsArtifactReboot"
	SupportsRollback             = "SupportsRollback"
	ArtifactReboot               = "ArtifactReboot"
	ArtifactVerifyReboot         = "ArtifactVerifyReboot"
	ArtifactCommit               = "ArtifactCommit"
	ArtifactRollback             = "ArtifactRollback"
	ArtifactRollbackReboot       = "ArtifactRollbackReboot"
	ArtifactVerifyRollbackReboot = "ArtifactVerifyRollbackReboot"
	ArtifactFailure              = "ArtifactFailure"
	Cleanup                      = "Cleanup"
)

// Defaults of [Runner].
const (
	DefaultModulesDir = "/usr/share/mender/modules/v3"
	DefaultWorkDir    = "/var/lib/ferry/modules/v3"
	DefaultTimeout    = 4 * time.Hour
	// MaxLogOutput is how much of each output stream of one call goes to
	// the log; the rest is counted and dropped.
	MaxLogOutput = 64 << 10
)

var (
	// ErrTimeout is wrapped by the error of a call that ran out of
	// [Runner.Timeout].
	ErrTimeout = errors.New("update module timed out")
	// ErrNoModule is wrapped when the payload names a module that is not
	// installed in the modules directory.
	ErrNoModule = errors.New("no such update module")
	// ErrUnsupported is returned where named pipes are not available.
	ErrUnsupported = errors.New("update modules need named pipes: Linux, macOS or a BSD")
)

// Runner finds update modules and runs them. Its zero value uses the
// defaults; set the fields before the first call and do not copy it after.
type Runner struct {
	// ModulesDir holds the modules, one executable per payload type.
	ModulesDir string
	// WorkDir holds the file trees, WorkDir/payloads/NNNN/tree.
	WorkDir string
	// DeviceType is written to the tree's current_device_type.
	DeviceType string
	// Timeout bounds every call of a module, Download included (Mender's
	// ModuleTimeoutSeconds). Zero means DefaultTimeout.
	Timeout time.Duration
	// Log receives the modules' output, one prefixed line at a time.
	// Nil discards it.
	Log io.Writer

	logMu sync.Mutex
}

// Payload is what the file tree tells a module about the payload.
type Payload struct {
	// Index numbers the payload within its bundle: tree payloads/NNNN.
	Index int
	// Type is the payload type, which names the module ("single-file").
	Type string
	// ArtifactName and ArtifactGroup name the update being installed.
	ArtifactName, ArtifactGroup string
	// CurrentArtifactName and CurrentArtifactGroup name what is installed.
	CurrentArtifactName, CurrentArtifactGroup string
	// HeaderInfo, TypeInfo and MetaData are JSON documents written
	// verbatim to header/; empty ones get a minimal document.
	HeaderInfo, TypeInfo, MetaData []byte
}

// Session is one payload's file tree and the module that works on it. Its
// methods must not be called concurrently.
type Session struct {
	r      *Runner
	name   string // module name
	module string // module path
	tree   string // absolute file tree path
}

// Tree returns the absolute path of the session's file tree.
func (s *Session) Tree() string { return s.tree }

// Module returns the path of the session's module executable.
func (s *Session) Module() string { return s.module }

func (r *Runner) modulesDir() string {
	if r.ModulesDir == "" {
		return DefaultModulesDir
	}
	return r.ModulesDir
}

func (r *Runner) timeout() time.Duration {
	if r.Timeout <= 0 {
		return DefaultTimeout
	}
	return r.Timeout
}

// treePath returns the absolute file tree path of payload index.
func (r *Runner) treePath(index int) (string, error) {
	if index < 0 || index > 9999 {
		return "", fmt.Errorf("payload index %d: want 0 to 9999", index)
	}
	dir := r.WorkDir
	if dir == "" {
		dir = DefaultWorkDir
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("update module work directory: %w", err)
	}
	return filepath.Join(dir, "payloads", fmt.Sprintf("%04d", index), "tree"), nil
}

// findModule checks name and returns the path of an executable module.
func (r *Runner) findModule(name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return "", fmt.Errorf("update module name %q: want a plain file name", name)
	}
	dir, err := filepath.Abs(r.modulesDir())
	if err != nil {
		return "", fmt.Errorf("update modules directory: %w", err)
	}
	p := filepath.Join(dir, name)
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no update module %q in %s: install it there, or set the modules directory: %w", name, dir, ErrNoModule)
	}
	if err != nil {
		return "", fmt.Errorf("update module %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("update module %s is not an executable file (mode %s)", p, fi.Mode())
	}
	return p, nil
}

// Prepare finds the module for p.Type and builds a fresh file tree for p,
// removing whatever an earlier run left at the same place. The tree is
// fsynced before Prepare returns.
func (r *Runner) Prepare(p Payload) (*Session, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	module, err := r.findModule(p.Type)
	if err != nil {
		return nil, err
	}
	tree, err := r.treePath(p.Index)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(tree); err != nil {
		return nil, fmt.Errorf("cleaning update module file tree: %w", err)
	}
	if err := buildTree(tree, r.DeviceType, p); err != nil {
		return nil, fmt.Errorf("building update module file tree %s: %w", tree, err)
	}
	return &Session{r: r, name: p.Type, module: module, tree: tree}, nil
}

// Resume re-attaches to the file tree of payload index that an earlier
// Prepare built (before a reboot or a restart of the agent). The tree must
// exist and be for module name.
func (r *Runner) Resume(name string, index int) (*Session, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	module, err := r.findModule(name)
	if err != nil {
		return nil, err
	}
	tree, err := r.treePath(index)
	if err != nil {
		return nil, err
	}
	got, err := os.ReadFile(filepath.Join(tree, "header", "payload_type"))
	if err != nil {
		return nil, fmt.Errorf("resuming update module %q: no file tree: %w", name, err)
	}
	if string(got) != name {
		return nil, fmt.Errorf("resuming update module %q: file tree %s is for %q", name, tree, got)
	}
	return &Session{r: r, name: name, module: module, tree: tree}, nil
}

func buildTree(tree, deviceType string, p Payload) error {
	if err := os.MkdirAll(filepath.Dir(tree), 0o700); err != nil {
		return err
	}
	for _, d := range []string{tree, filepath.Join(tree, "header"), filepath.Join(tree, "tmp")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	line := func(s string) string {
		if s == "" {
			return ""
		}
		return s + "\n"
	}
	files := []struct {
		name string
		data []byte
	}{
		{"version", []byte("3\n")},
		{"current_artifact_name", []byte(line(p.CurrentArtifactName))},
		{"current_artifact_group", []byte(line(p.CurrentArtifactGroup))},
		{"current_device_type", []byte(line(deviceType))},
		{"header/artifact_group", []byte(p.ArtifactGroup)},
		{"header/artifact_name", []byte(p.ArtifactName)},
		{"header/payload_type", []byte(p.Type)},
		{"header/header-info", orDefault(p.HeaderInfo, defaultHeaderInfo(p))},
		{"header/type-info", orDefault(p.TypeInfo, mustJSON(map[string]any{"type": p.Type}))},
		{"header/meta-data", orDefault(p.MetaData, []byte("{}"))},
	}
	for _, f := range files {
		if err := writeFileSync(filepath.Join(tree, filepath.FromSlash(f.name)), f.data, 0o600); err != nil {
			return err
		}
	}
	for _, d := range []string{filepath.Join(tree, "header"), filepath.Join(tree, "tmp"), tree, filepath.Dir(tree)} {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

func orDefault(b, def []byte) []byte {
	if len(b) == 0 {
		return def
	}
	return b
}

// defaultHeaderInfo is a header-info document in the shape
// mender-artifact writes (version 3), for payloads that bring none.
func defaultHeaderInfo(p Payload) []byte {
	provides := map[string]string{"artifact_name": p.ArtifactName}
	if p.ArtifactGroup != "" {
		provides["artifact_group"] = p.ArtifactGroup
	}
	return mustJSON(map[string]any{
		"payloads":          []map[string]string{{"type": p.Type}},
		"artifact_provides": provides,
		"artifact_depends":  map[string]any{},
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings reach here
	}
	return b
}

func writeFileSync(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Run calls the module with state and waits for it. Any state name is
// accepted (modules ignore states they do not know), except the download
// states, which only [Session.Download] runs. Standard output and error go
// to the log.
func (s *Session) Run(ctx context.Context, state string) error {
	if err := checkState(state); err != nil {
		return err
	}
	if state == Download || state == DownloadWithFileSizes {
		return fmt.Errorf("update module %q: %s runs through Session.Download", s.name, state)
	}
	return s.call(ctx, state, nil)
}

// Query calls the module with a query state and returns its one-line answer
// with surrounding blanks removed ("" if it printed nothing).
func (s *Session) Query(ctx context.Context, state string) (string, error) {
	if err := checkState(state); err != nil {
		return "", err
	}
	var out capBuffer
	if err := s.call(ctx, state, &out); err != nil {
		return "", err
	}
	ans, err := parseAnswer(out.b, out.dropped)
	if err != nil {
		return "", fmt.Errorf("update module %q: %s: %w", s.name, state, err)
	}
	return ans, nil
}

// Reboot is a module's answer to NeedsArtifactReboot.
type Reboot int

const (
	// RebootNo: no reboot; ArtifactReboot is not called.
	RebootNo Reboot = iota
	// RebootYes: call the module's ArtifactReboot, which reboots.
	RebootYes
	// RebootAutomatic: the agent reboots the device itself, once for all
	// modules that answer so; ArtifactReboot is not called.
	RebootAutomatic
)

func (r Reboot) String() string {
	switch r {
	case RebootNo:
		return "No"
	case RebootYes:
		return "Yes"
	case RebootAutomatic:
		return "Automatic"
	}
	return fmt.Sprintf("Reboot(%d)", int(r))
}

// NeedsReboot asks NeedsArtifactReboot: "No" (or nothing), "Yes" or
// "Automatic"; any other answer is an error.
func (s *Session) NeedsReboot(ctx context.Context) (Reboot, error) {
	ans, err := s.Query(ctx, NeedsArtifactReboot)
	if err != nil {
		return RebootNo, err
	}
	switch ans {
	case "", "No":
		return RebootNo, nil
	case "Yes":
		return RebootYes, nil
	case "Automatic":
		return RebootAutomatic, nil
	}
	return RebootNo, fmt.Errorf("update module %q: %s answered %q: want No, Yes or Automatic", s.name, NeedsArtifactReboot, ans)
}

// SupportsRollback asks SupportsRollback: "Yes", or "No" (or nothing).
func (s *Session) SupportsRollback(ctx context.Context) (bool, error) {
	return s.yesNo(ctx, SupportsRollback)
}

func (s *Session) yesNo(ctx context.Context, state string) (bool, error) {
	ans, err := s.Query(ctx, state)
	if err != nil {
		return false, err
	}
	switch ans {
	case "", "No":
		return false, nil
	case "Yes":
		return true, nil
	}
	return false, fmt.Errorf("update module %q: %s answered %q: want Yes or No", s.name, state, ans)
}

// Close runs Cleanup and then removes the file tree, whether Cleanup
// succeeded or not. Without a tree (already closed) it does nothing.
func (s *Session) Close(ctx context.Context) error {
	if _, err := os.Lstat(s.tree); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	err := s.call(ctx, Cleanup, nil)
	if rerr := os.RemoveAll(s.tree); rerr != nil {
		err = errors.Join(err, fmt.Errorf("removing update module file tree: %w", rerr))
	}
	return err
}

// checkState refuses what cannot be a state name.
func checkState(state string) error {
	if state == "" || len(state) > 64 {
		return fmt.Errorf("update module state %q: want a state name", state)
	}
	for _, c := range state {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("update module state %q: want letters and digits", state)
		}
	}
	return nil
}

// parseAnswer returns the one non-blank line of a query's output.
func parseAnswer(out []byte, truncated bool) (string, error) {
	if truncated {
		return "", errors.New("answer too long: want one line")
	}
	var ans string
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		n++
		ans = l
	}
	if n > 1 {
		return "", fmt.Errorf("answer has %d lines: want one", n)
	}
	return ans, nil
}
