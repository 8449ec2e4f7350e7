package filelock_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-update/ferry/internal/filelock"
)

func TestLockExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	unlock, err := filelock.Lock(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	go func() {
		u, err := filelock.Lock(path, 0o600)
		if err == nil {
			u()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("a second lock was granted while the first was held")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	<-got
}
