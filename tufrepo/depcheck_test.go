package tufrepo_test

import (
	"testing"

	"github.com/ferry-update/ferry/internal/depcheck"
)

// TestDepcheck keeps tufrepo to its one job: it publishes what the store
// hands it and never reads the store or the registry itself.
func TestDepcheck(t *testing.T) {
	const m = depcheck.Module
	depcheck.Forbid(t, depcheck.Deps(t, nil, m+"/tufrepo"),
		m+"/mirror", m+"/registry", m+"/devices", m+"/media", m+"/audit", m+"/agent", m+"/cmd")
}
