package depcheck

import (
	"strings"
	"testing"
)

// DeviceTier are the directories of ferry that may be built into the
// device agent: the format, the trust decisions, the agent itself, the
// transport tier and the internal helpers. Everything else (mirror,
// media, audit, cmd/ferry, ...) is host-only. The line is drawn by
// directory, with no list of exceptions: a device-safe package lives under
// one of these.
var DeviceTier = []string{
	Module + "/agent",
	Module + "/bundle",
	Module + "/verify",
	Module + "/transport",
	Module + "/internal",
	Module + "/cmd/ferry-agent",
}

// DeviceModules are the third-party modules the device tier may depend
// on: configuration, digests and OCI types, zstd (pure Go), the
// content-defined chunker of package bundle's writer (restic/chunker,
// pure Go, no dependencies; the device never chunks), signatures
// (sigstore and what it needs), TUF metadata, semver, the CLI, and age
// (pure Go): the device unwraps the file key of encrypted payloads with
// its age identity (bundle/FORMAT.md §6.3); filippo.io/hpke comes with
// age's post-quantum recipients, which are in the same package.
var DeviceModules = []string{
	"filippo.io/age",
	"filippo.io/hpke",
	"github.com/BurntSushi/toml",
	"github.com/klauspost/compress",
	"github.com/mitchellh/colorstring",
	"github.com/opencontainers/go-digest",
	"github.com/opencontainers/image-spec",
	"github.com/restic/chunker",
	"github.com/rivo/uniseg",
	"github.com/schollz/progressbar/v3",
	"github.com/secure-systems-lab/go-securesystemslib",
	"github.com/sigstore/protobuf-specs",
	"github.com/sigstore/sigstore",
	"github.com/spf13/cobra",
	"github.com/spf13/pflag",
	"github.com/theupdateframework/go-tuf/v2",
	"github.com/youmark/pkcs8",
	"golang.org/x/crypto",
	"golang.org/x/mod",
	"golang.org/x/sys",
	"golang.org/x/term",
	"google.golang.org/genproto/googleapis/api",
	"google.golang.org/protobuf",
}

// DevicePackages are single packages of otherwise host-only modules the
// device tier may use: go-containerregistry's pkg/name is a small
// reference parser with no network code, which sigstore's signature
// package imports.
var DevicePackages = []string{
	"github.com/google/go-containerregistry/pkg/name",
}

// Device fails t for every dependency of pkgs, built for a device on each
// of DeviceArchs, that is neither in the standard library, nor in the
// device tier, nor in DeviceModules or DevicePackages.
func Device(t testing.TB, pkgs ...string) {
	t.Helper()
	for _, arch := range DeviceArchs {
		for _, d := range Deps(t, DeviceEnv(arch), pkgs...) {
			if !DeviceSafe(d) {
				t.Errorf("%s (%s): depends on %s (module %q), which is not device-safe", strings.Join(pkgs, " "), arch, d.Path, d.Module)
			}
		}
	}
}

// DeviceSafe reports whether a device build may contain d.
func DeviceSafe(d Dep) bool {
	if d.Standard {
		return true
	}
	if d.Module == Module {
		return underAny(d.Path, DeviceTier)
	}
	for _, m := range DeviceModules {
		if d.Module == m {
			return true
		}
	}
	for _, p := range DevicePackages {
		if d.Path == p {
			return true
		}
	}
	return false
}

func underAny(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if Under(path, p) {
			return true
		}
	}
	return false
}
