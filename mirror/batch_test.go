package mirror_test

import (
	"errors"
	"testing"

	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/tufrepo"
)

// TestBatchPublishesOnce: adding several bundles in one batch signs the
// targets metadata once, and a batch that fails part-way still lists what
// it added.
func TestBatchPublishesOnce(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	key := testutil.NewKey(t, "release")
	before, err := s.Publish()
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		p, _ := testutil.MakeBundle(t, dir, "gateway", v, 2048, 0, key)
		paths = append(paths, p)
	}
	boom := errors.New("stop here")
	err = s.Batch(func(add func(string) (*mirror.AddResult, error)) error {
		for _, p := range paths {
			if _, err := add(p); err != nil {
				return err
			}
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Batch returned %v, want fn's error", err)
	}
	after, err := s.Refresh(tufrepo.RefreshOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Targets.Version - before.Targets.Version; got != 1 {
		t.Errorf("targets signed %d times for one batch of 3 bundles, want 1", got)
	}
	if after.Bundles != 3 {
		t.Errorf("targets list %d bundles, want 3", after.Bundles)
	}
}
