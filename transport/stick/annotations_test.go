package stick

import (
	"testing"

	"github.com/ferry-update/ferry/mirror"
)

// TestAnnotationsMatchMirror: the annotation names this package repeats
// (the agent must not import mirror) are the ones mirror writes. Only the
// test imports mirror; TestDepcheck covers the package itself.
func TestAnnotationsMatchMirror(t *testing.T) {
	for got, want := range map[string]string{
		repositoryAnnotation:    mirror.RepositoryAnnotation,
		bundleNameAnnotation:    mirror.BundleNameAnnotation,
		bundleVersionAnnotation: mirror.BundleVersionAnnotation,
	} {
		if got != want {
			t.Errorf("annotation %q, mirror writes %q", got, want)
		}
	}
}
