package oci_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the device-side puller small: the agent imports
// it, and the agent must not grow go-containerregistry, cobra or the
// Docker config machinery.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/ferry-update/ferry/transport/oci").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	banned := []string{"github.com/google/go-containerregistry/", "github.com/spf13/", "github.com/docker/"}
	for _, dep := range strings.Fields(string(out)) {
		for _, b := range banned {
			if strings.HasPrefix(dep, b) {
				t.Errorf("transport/oci depends on %s", dep)
			}
		}
		if dep == "github.com/ferry-update/ferry/mirror" {
			t.Error("transport/oci depends on package mirror")
		}
	}
}
