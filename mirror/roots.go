package mirror

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/transport/wire"
	"github.com/ferry-update/ferry/verify"
)

// Trust roots (verify/TRUST.md §10): the mirror keeps the chain of the
// release side's trust roots in DIR/roots/N.root.json and serves them at
// wire.RootsPath, so devices move their root forward before judging
// bundles.
const rootsDir = wire.RootsDir

var rootNameRE = regexp.MustCompile(`^[1-9][0-9]{0,15}\.root\.json$`)

// RootFile returns the path of the trust root file name (N.root.json) in
// the store, and false when name is not such a file name.
func (s *Store) RootFile(name string) (string, bool) {
	return filepath.Join(s.dir, rootsDir, name), rootNameRE.MatchString(name)
}

func (s *Store) rootPath(v int64) string {
	return filepath.Join(s.dir, rootsDir, wire.RootFile(v))
}

// AddRootResult says what AddRoot did.
type AddRootResult struct {
	Version int64  `json:"version"`
	Path    string `json:"path"`
	// Unchanged: the mirror already held this version with the same
	// signed content.
	Unchanged bool `json:"unchanged,omitempty"`
}

// AddRoot stores the trust-root document data as DIR/roots/N.root.json.
// The first root stored must be signed by its own root role; every later
// one must follow the one before it by the chain rule (verify.UpdateRoot),
// so the mirror only ever serves a chain devices can walk. An expiry that
// has passed is no reason to refuse: devices judge it, and a chain may
// run through expired roots.
func (s *Store) AddRoot(data []byte) (*AddRootResult, error) {
	r, err := verify.ParseRoot(data)
	if err != nil {
		return nil, fmt.Errorf("add trust root: %w", err)
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	v := r.Version()
	res := &AddRootResult{Version: v, Path: s.rootPath(v)}
	highest, err := s.highestRoot()
	if err != nil {
		return nil, err
	}
	switch {
	case highest == 0:
		if err := r.Verify(time.Now()); err != nil && !isExpired(err) {
			return nil, fmt.Errorf("add trust root: %w", err)
		}
	case v <= highest:
		old, err := os.ReadFile(s.rootPath(v))
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("add trust root v%d: the mirror's chain starts above it", v)
		}
		if err != nil {
			return nil, fmt.Errorf("add trust root v%d: %w", v, err)
		}
		o, err := verify.ParseRoot(old)
		if err != nil {
			return nil, fmt.Errorf("add trust root: stored %s: %w", s.rootPath(v), err)
		}
		// The same signed content is no change (TRUST.md §9).
		if _, err := verify.UpdateRoot(o, data, time.Time{}); err != nil {
			return nil, fmt.Errorf("add trust root v%d: the mirror holds a different v%d: %w", v, v, err)
		}
		res.Unchanged = true
		return res, nil
	default:
		prev, err := os.ReadFile(s.rootPath(highest))
		if err != nil {
			return nil, fmt.Errorf("add trust root v%d: %w", v, err)
		}
		p, err := verify.ParseRoot(prev)
		if err != nil {
			return nil, fmt.Errorf("add trust root: stored %s: %w", s.rootPath(highest), err)
		}
		if _, err := verify.UpdateRoot(p, data, time.Now()); err != nil && !isExpired(err) {
			return nil, fmt.Errorf("add trust root: it does not follow the mirror's v%d: %w", highest, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(s.dir, rootsDir), 0o755); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(res.Path, data, 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

func isExpired(err error) bool {
	var re *verify.RootError
	return errors.As(err, &re) && re.Kind == verify.RootExpired
}

// highestRoot returns the highest version in DIR/roots, 0 when none.
func (s *Store) highestRoot() (int64, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, rootsDir))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var highest int64
	for _, e := range ents {
		if !rootNameRE.MatchString(e.Name()) {
			continue
		}
		v, err := strconv.ParseInt(e.Name()[:len(e.Name())-len(wire.RootSuffix)], 10, 64)
		if err == nil && v > highest {
			highest = v
		}
	}
	return highest, nil
}
