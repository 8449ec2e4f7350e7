package mirror

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/wire"
)

// MirrorIDs are the ids this mirror answers to in signed check-ins
// (checkin.MirrorID): one for each distinct set of root keys among the
// mirror TUF root versions it has published, newest first. A device that
// trusts any of those versions binds its reports to this mirror.
func (s *Store) MirrorIDs() ([]string, error) {
	names, err := filepath.Glob(filepath.Join(s.dir, wire.TUFDir, "*"+wire.RootSuffix))
	if err != nil {
		return nil, err
	}
	sort.Slice(names, func(i, j int) bool { return rootVersionOf(names[i]) > rootVersionOf(names[j]) })
	names = append([]string{s.TUFRootPath()}, names...)
	var ids []string
	seen := map[string]bool{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("mirror id: %w", err)
		}
		id, err := checkin.MirrorID(b)
		if err != nil {
			return nil, fmt.Errorf("mirror id of %s: %w", n, err)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("mirror %s has no TUF root: run 'ferry mirror init'", s.dir)
	}
	return ids, nil
}

func rootVersionOf(path string) int {
	var n int
	fmt.Sscanf(strings.TrimSuffix(filepath.Base(path), wire.RootSuffix), "%d", &n)
	return n
}
