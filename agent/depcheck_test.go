package agent

import (
	"testing"

	"github.com/ferry-update/ferry/internal/depcheck"
)

// TestDepcheck fences ferry-agent's dependencies on every target it is
// built for, without cgo as on the devices: only the standard library,
// the device tier (agent, bundle, verify, transport, internal) and its
// listed third-party modules. Host-side code (registry clients, disk
// images, cgo zstd, databases, mirror, media) stays out, with no list of
// exceptions among ferry's packages. The whole transport tier is held to
// the same line, whether the agent uses a package of it yet or not.
func TestDepcheck(t *testing.T) {
	depcheck.Device(t, depcheck.Module+"/cmd/ferry-agent", depcheck.Module+"/transport/...")
}

// TestDepcheckNoPKCS11: keys in tokens are for the host. Even an agent
// built with cgo links no PKCS#11 library binding and not package signing
// (the fence above holds it out of CGO_ENABLED=0 builds by directory).
func TestDepcheckNoPKCS11(t *testing.T) {
	deps := depcheck.Deps(t, []string{"CGO_ENABLED=1"}, depcheck.Module+"/cmd/ferry-agent")
	depcheck.Forbid(t, deps, "github.com/miekg/pkcs11", "github.com/ThalesGroup/crypto11", depcheck.Module+"/signing")
}
