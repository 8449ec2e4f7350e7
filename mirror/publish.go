package mirror

import (
	"context"
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-update/ferry/signing"
	"github.com/ferry-update/ferry/tufrepo"
	"github.com/ferry-update/ferry/verify"
)

// InitWith is Init with the TUF root key and expiries chosen: it makes the
// mirror directory and has package tufrepo publish its first TUF metadata
// (root, targets, snapshot and timestamp; see tufrepo.Repo.Init).
func InitWith(dir string, keyPEM []byte, o tufrepo.InitOptions) (*Store, error) {
	if err := initStore(dir, keyPEM); err != nil {
		return nil, fmt.Errorf("init mirror %s: %w", dir, err)
	}
	s := &Store{dir: dir}
	if _, err := s.tuf().Init(o); err != nil {
		return nil, fmt.Errorf("init mirror %s: TUF metadata: %w", dir, err)
	}
	return s, nil
}

// tuf is the store's TUF repository (DIR/tuf/).
func (s *Store) tuf() *tufrepo.Repo { return tufrepo.New(s.dir, s.mirrorKey) }

// TUFPath is the path of the TUF metadata file name in the store.
func (s *Store) TUFPath(name string) string { return s.tuf().Path(name) }

// TUFRootPath is the mirror's current TUF root: the file devices are
// provisioned with to trust this mirror.
func (s *Store) TUFRootPath() string { return s.tuf().RootPath() }

// mirrorKey opens the mirror key: keys/mirror.key holds the key (PEM), or
// the URI of a key in a PKCS#11 token or a KMS (signing.Open), which the
// store opens once and keeps open.
func (s *Store) mirrorKey() (crypto.Signer, error) {
	path := filepath.Join(s.dir, keyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mirror key: %w", err)
	}
	ref := strings.TrimSpace(string(b))
	if !signing.IsReference(ref) {
		return verify.ReadPrivateKey("mirror key", path, nil)
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key == nil || s.keyRef != ref {
		k, err := signing.Open(context.Background(), ref, signing.Options{What: "mirror key"})
		if err != nil {
			return nil, err
		}
		if s.key != nil {
			s.key.Close()
		}
		s.key, s.keyRef = k, ref
	}
	return s.key, nil
}

// Publish brings the mirror's TUF metadata up to date after an add or a
// sync: see Refresh.
func (s *Store) Publish() (*tufrepo.Status, error) { return s.Refresh(tufrepo.RefreshOptions{}) }

// Refresh re-signs the mirror's TUF metadata so that its targets list the
// bundles in the index (see tufrepo.Repo.Refresh), under the store's
// writer lock.
func (s *Store) Refresh(o tufrepo.RefreshOptions) (*tufrepo.Status, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := s.refresh(o)
	if err != nil {
		return st, fmt.Errorf("mirror %s: publish TUF metadata: %w", s.dir, err)
	}
	return st, nil
}

func (s *Store) refresh(o tufrepo.RefreshOptions) (*tufrepo.Status, error) {
	targets, err := s.tufTargets()
	if err != nil {
		return nil, err
	}
	if o, err = s.publishOptions(o); err != nil {
		return nil, err
	}
	return s.tuf().Refresh(targets, o)
}

// tufTargets lists the bundles of the index as TUF targets.
func (s *Store) tufTargets() ([]tufrepo.Target, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var out []tufrepo.Target
	err = s.eachBundle(idx, func(b storedBundle) error {
		out = append(out, tufrepo.Target{
			Name: b.config.Name, Version: b.config.Version, Tag: b.config.Tag(), DeviceTypes: b.config.DeviceTypes,
			Manifest: b.desc.Digest, ManifestSize: b.desc.Size, Size: payloadSize(b.manifest),
		})
		return nil
	})
	return out, err
}

// KeepFresh refreshes the TUF metadata every interval until ctx ends (see
// tufrepo.Repo.KeepFresh) and hands each result to report. 'ferry mirror
// serve' runs it.
func (s *Store) KeepFresh(ctx context.Context, every time.Duration, report func(*tufrepo.Status, error)) {
	s.tuf().KeepFresh(ctx, every, s.Publish, report)
}
