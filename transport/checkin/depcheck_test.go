package checkin_test

import (
	"testing"

	"github.com/ferry-update/ferry/internal/depcheck"
)

// TestDependencies: the agent imports this package to report to a
// mirror, so it stays standard library only, besides package wire (the
// SQLite store is on the mirror's side).
func TestDependencies(t *testing.T) {
	const self = depcheck.Module + "/transport/checkin"
	for _, dep := range depcheck.Deps(t, nil, self) {
		if !dep.Standard && dep.Path != self && dep.Path != depcheck.Module+"/transport/wire" {
			t.Errorf("checkin depends on %s", dep.Path)
		}
	}
}
