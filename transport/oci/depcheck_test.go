package oci_test

import (
	"testing"

	"github.com/ferry-update/ferry/internal/depcheck"
)

// TestDependencies keeps the device-side puller small: the agent imports
// it, and the agent must not grow go-containerregistry, cobra or the
// Docker config machinery.
func TestDependencies(t *testing.T) {
	deps := depcheck.Deps(t, nil, depcheck.Module+"/transport/oci")
	depcheck.Forbid(t, deps, "github.com/google/go-containerregistry", "github.com/spf13", "github.com/docker")
	depcheck.Device(t, depcheck.Module+"/transport/oci")
}
