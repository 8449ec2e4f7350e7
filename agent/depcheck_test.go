package agent

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// forbidden are host-side dependencies that must stay out of ferry-agent:
// registry clients, disk-image writing, cgo zstd, databases.
var forbidden = []string{
	"github.com/google/go-containerregistry",
	"github.com/diskfs/go-diskfs",
	"github.com/DataDog/zstd",
	"modernc.org/sqlite",
	"github.com/ferry-update/ferry/mirror",
	"github.com/ferry-update/ferry/media",
}

// allowed are packages under a forbidden prefix that are let in on
// purpose. go-containerregistry's pkg/name is a small reference parser
// with no network code; sigstore/pkg/signature imports it, and the agent
// needs sigstore to check signatures.
// transport/oci is the device's own net/http-only pull path,
// transport/tufclient its check of the mirror's TUF metadata and
// transport/checkin the check-in wire format; transport/stick reads a stick
// (pure Go, no go-diskfs). The host's registry, store, SQLite and
// disk-image code in mirror and media stays out.
var allowed = map[string]bool{
	"github.com/google/go-containerregistry/pkg/name":   true,
	"github.com/ferry-update/ferry/transport/oci":       true,
	"github.com/ferry-update/ferry/transport/tufclient": true,
	"github.com/ferry-update/ferry/transport/checkin":   true,
	"github.com/ferry-update/ferry/transport/stick":     true,
	"github.com/ferry-update/ferry/internal/mountinfo":  true,
}

// TestDepcheck fences ferry-agent's dependencies on every target it is
// built for, without cgo as on the devices.
func TestDepcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the dependency fence needs the go command: %v", err)
	}
	for _, target := range []struct{ goarch, goarm string }{{"amd64", ""}, {"arm64", ""}, {"arm", "7"}} {
		t.Run(target.goarch, func(t *testing.T) {
			cmd := exec.Command(gobin, "list", "-deps", "github.com/ferry-update/ferry/cmd/ferry-agent")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+target.goarch, "GOARM="+target.goarm)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list: %v", err)
			}
			deps := strings.Fields(string(out))
			if len(deps) < 10 {
				t.Fatalf("go list listed only %v", deps)
			}
			for _, dep := range deps {
				for _, f := range forbidden {
					if (dep == f || strings.HasPrefix(dep, f+"/")) && !allowed[dep] {
						t.Errorf("ferry-agent depends on %s", dep)
					}
				}
			}
		})
	}
}
