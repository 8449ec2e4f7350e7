package tufclient_test

import (
	"strings"
	"testing"

	"github.com/ferry-update/ferry/internal/depcheck"
)

// TestDependencies keeps the device-side TUF client small: it imports
// only the standard library, go-tuf's metadata and trustedmetadata
// packages, x/mod/semver, internal/atomicfile, internal/verifyio and transport/wire
// (standard library only, besides go-digest), and nothing pulls in go-tuf's updater (and
// its retry library), go-containerregistry's registry code, cobra, SQLite
// or any other ferry package. Everything go-tuf's metadata needs
// (sigstore's signature package and its dependencies) the agent already
// has for checking bundle signatures.
func TestDependencies(t *testing.T) {
	const self = depcheck.Module + "/transport/tufclient"
	allowed := map[string]bool{
		"github.com/theupdateframework/go-tuf/v2/metadata":                 true,
		"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata": true,
		"golang.org/x/mod/semver":                                          true,
		"github.com/ferry-update/ferry/internal/atomicfile":                true,
		"github.com/ferry-update/ferry/internal/verifyio":                  true,
		"github.com/ferry-update/ferry/transport/wire":                     true,
	}
	for _, imp := range depcheck.Imports(t, self) {
		first, _, _ := strings.Cut(imp, "/")
		if strings.Contains(first, ".") && !allowed[imp] {
			t.Errorf("tufclient imports %s", imp)
		}
	}
	banned := []string{
		"github.com/theupdateframework/go-tuf/v2/metadata/updater",
		"github.com/theupdateframework/go-tuf/v2/metadata/fetcher",
		"github.com/theupdateframework/go-tuf/v2/metadata/config",
		"github.com/cenkalti/",
		"github.com/google/go-containerregistry/pkg/v1",
		"github.com/spf13/",
		"github.com/docker/",
		"modernc.org/",
		"github.com/ferry-update/ferry/",
	}
	for _, dep := range depcheck.Deps(t, nil, self) {
		if dep.Path == self || allowed[dep.Path] {
			continue
		}
		for _, b := range banned {
			if strings.HasPrefix(dep.Path, b) {
				t.Errorf("tufclient depends on %s", dep.Path)
			}
		}
	}
	depcheck.Device(t, self)
}
