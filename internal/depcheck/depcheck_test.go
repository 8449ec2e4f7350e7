package depcheck

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing the
// test, so the fence's own failures can be checked.
type recorder struct {
	testing.TB
	fatal  bool
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = true
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// run calls f with a recorder on its own goroutine, as Fatalf ends it.
func run(t testing.TB, f func(testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func TestFencesFailWhenGoListFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(testing.TB)
	}{
		{"Deps", func(tb testing.TB) { Deps(tb, nil, Module+"/no/such/package") }},
		{"Imports", func(tb testing.TB) { Imports(tb, Module+"/no/such/package") }},
		{"Device", func(tb testing.TB) { Device(tb, Module+"/no/such/package") }},
		{"bad environment", func(tb testing.TB) { Deps(tb, []string{"GOFLAGS=-nosuchflag"}, Module+"/bundle") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.f)
			if !r.fatal {
				t.Fatalf("no fatal failure; errors %q", r.errors)
			}
			if !strings.Contains(r.errors[0], "go list") {
				t.Errorf("failure %q does not say go list failed", r.errors[0])
			}
		})
	}
}

func TestFencesFailWithoutGo(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	r := run(t, func(tb testing.TB) { Deps(tb, nil, Module+"/bundle") })
	if !r.fatal || !strings.Contains(r.errors[0], "needs the go command") {
		t.Fatalf("fatal %v, errors %q", r.fatal, r.errors)
	}
}

func TestDeps(t *testing.T) {
	deps := Deps(t, DeviceEnv("arm"), Module+"/internal/depcheck")
	find := func(path string) (Dep, bool) {
		i := slices.IndexFunc(deps, func(d Dep) bool { return d.Path == path })
		if i < 0 {
			return Dep{}, false
		}
		return deps[i], true
	}
	if d, ok := find(Module + "/internal/depcheck"); !ok || d.Standard || d.Module != Module {
		t.Errorf("self: %+v, listed %v", d, ok)
	}
	if d, ok := find("os/exec"); !ok || !d.Standard || d.Module != "" {
		t.Errorf("os/exec: %+v, listed %v", d, ok)
	}
	imps := Imports(t, Module+"/internal/depcheck")
	if !slices.Contains(imps, "os/exec") || slices.Contains(imps, "io") {
		t.Errorf("imports %v", imps)
	}
}

func TestForbid(t *testing.T) {
	deps := []Dep{{Path: "net/httpx"}, {Path: "net/http/httptrace"}, {Path: Module + "/mirror"}, {Path: Module + "/mirrorx"}}
	for _, tc := range []struct {
		prefixes []string
		want     []string
	}{
		{nil, nil},
		{[]string{"net/http"}, []string{"depends on net/http/httptrace"}},
		{[]string{Module + "/mirror", "net"}, []string{"depends on net/httpx", "depends on net/http/httptrace", "depends on " + Module + "/mirror"}},
		{[]string{"crypto/tls"}, nil},
	} {
		r := run(t, func(tb testing.TB) { Forbid(tb, deps, tc.prefixes...) })
		if r.fatal || !slices.Equal(r.errors, tc.want) {
			t.Errorf("Forbid %v: fatal %v, errors %q, want %q", tc.prefixes, r.fatal, r.errors, tc.want)
		}
	}
}

func TestDeviceSafe(t *testing.T) {
	for _, tc := range []struct {
		dep  Dep
		want bool
	}{
		{Dep{Path: "net/http", Standard: true}, true},
		{Dep{Path: Module + "/transport/oci", Module: Module}, true},
		{Dep{Path: Module + "/agent/bootenv", Module: Module}, true},
		{Dep{Path: Module + "/internal/zstd", Module: Module}, true},
		{Dep{Path: Module + "/mirror", Module: Module}, false},
		{Dep{Path: Module + "/media", Module: Module}, false},
		{Dep{Path: Module + "/agentx", Module: Module}, false},
		{Dep{Path: Module + "/cmd/ferry", Module: Module}, false},
		{Dep{Path: "github.com/sigstore/sigstore/pkg/signature", Module: "github.com/sigstore/sigstore"}, true},
		{Dep{Path: "github.com/google/go-containerregistry/pkg/name", Module: "github.com/google/go-containerregistry"}, true},
		{Dep{Path: "github.com/google/go-containerregistry/pkg/v1/remote", Module: "github.com/google/go-containerregistry"}, false},
		{Dep{Path: "github.com/diskfs/go-diskfs", Module: "github.com/diskfs/go-diskfs"}, false},
		{Dep{Path: "modernc.org/sqlite", Module: "modernc.org/sqlite"}, false},
		{Dep{Path: "github.com/DataDog/zstd", Module: "github.com/DataDog/zstd"}, false},
	} {
		if got := DeviceSafe(tc.dep); got != tc.want {
			t.Errorf("DeviceSafe(%s) = %v, want %v", tc.dep.Path, got, tc.want)
		}
	}
}

// TestDeviceFailsOnHostDependency runs the device fence over a host-only
// package: it must fail, naming what is not device-safe.
func TestDeviceFailsOnHostDependency(t *testing.T) {
	r := run(t, func(tb testing.TB) { Device(tb, Module+"/media") })
	if r.fatal || len(r.errors) == 0 {
		t.Fatalf("fatal %v, errors %q", r.fatal, r.errors)
	}
	if !strings.Contains(strings.Join(r.errors, "\n"), "github.com/diskfs/go-diskfs") {
		t.Errorf("errors do not name go-diskfs: %q", r.errors)
	}
}
