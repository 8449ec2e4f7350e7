package layout_test

import (
	"testing"

	"github.com/ferry-update/ferry/internal/depcheck"
)

// TestDepcheck: the layout rules are shared by the mirror, sticks and
// pushes, so they depend on none of them (and on no registry client).
func TestDepcheck(t *testing.T) {
	const m = depcheck.Module
	depcheck.Forbid(t, depcheck.Deps(t, nil, m+"/layout"),
		m+"/mirror", m+"/registry", m+"/media", m+"/devices", m+"/tufrepo", m+"/agent", m+"/cmd",
		"github.com/google/go-containerregistry")
}

// TestMediaNotMirror: media writes sticks from the layout rules, not
// through the mirror store (it used to import mirror for them).
func TestMediaNotMirror(t *testing.T) {
	const m = depcheck.Module
	depcheck.Forbid(t, depcheck.Deps(t, nil, m+"/media"), m+"/mirror", m+"/registry", m+"/tufrepo")
}
