package wire_test

import (
	"testing"

	"github.com/ferry-update/ferry/internal/depcheck"
)

// TestDependencies keeps wire importable by both sides: the standard
// library only.
func TestDependencies(t *testing.T) {
	const self = depcheck.Module + "/transport/wire"
	for _, dep := range depcheck.Deps(t, nil, self) {
		if !dep.Standard && dep.Path != self {
			t.Errorf("wire depends on %s", dep.Path)
		}
	}
}
