package bundle_test

import (
	"testing"

	"github.com/ferry-update/ferry/internal/depcheck"
)

// TestDepcheck keeps the format free of transport: bundle reads and
// writes streams and knows nothing of where they come from (STYLE.md).
// It is also part of the device tier.
func TestDepcheck(t *testing.T) {
	const m = depcheck.Module
	depcheck.Forbid(t, depcheck.Deps(t, nil, m+"/bundle"),
		m+"/transport", m+"/mirror", m+"/media", m+"/agent", m+"/audit", m+"/cmd",
		m+"/registry", m+"/tufrepo", m+"/devices", "net/http")
	depcheck.Device(t, m+"/bundle")
}
