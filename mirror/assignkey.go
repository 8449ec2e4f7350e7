package mirror

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/tufrepo"
	"github.com/ferry-update/ferry/verify"
)

// The assignment key (docs/fleet.md, "Assignments"): it signs the
// per-device assignments 'ferry mirror serve' hands out, so it is an
// online key like keys/online.key — the server must read it — and it is
// published in the targets metadata the mirror key signs, so a device
// trusts it exactly as far as it trusts the mirror's bundle list.
// Retired keys stay published (keys/assign.<id>.pub) until removed, so
// assignments signed before a rotation still verify until they expire.
const (
	assignKeyFile    = "keys/assign.key"
	assignRetiredPat = "keys/assign.*.pub"
)

// AssignmentKeyPath is the file of the mirror's assignment key.
func (s *Store) AssignmentKeyPath() string { return filepath.Join(s.dir, assignKeyFile) }

// AssignmentKey returns the mirror's assignment key; an error wrapping
// fs.ErrNotExist when the mirror has none (EnsureAssignmentKey makes it).
func (s *Store) AssignmentKey() (ed25519.PrivateKey, error) {
	k, err := verify.ReadPrivateKey("assignment key", s.AssignmentKeyPath(), nil)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("assignment key %s: a %T, want Ed25519", s.AssignmentKeyPath(), k)
	}
	return ek, nil
}

// EnsureAssignmentKey makes the mirror's assignment key if it has none,
// and publishes it (the TUF targets are re-signed, which needs the
// mirror key). It returns the key's id and whether it was made now.
func (s *Store) EnsureAssignmentKey() (string, bool, error) {
	k, err := s.AssignmentKey()
	if err == nil {
		return assign.KeyID(k.Public().(ed25519.PublicKey)), false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	id, err := s.newAssignmentKey()
	if err != nil && !errors.Is(err, fs.ErrExist) { // another process made it first
		return "", false, err
	}
	if _, err := s.Publish(); err != nil {
		return "", false, err
	}
	return id, err == nil, nil
}

func (s *Store) newAssignmentKey() (string, error) {
	k, err := verify.GenerateKey(verify.Ed25519)
	if err != nil {
		return "", err
	}
	pemKey, err := verify.MarshalPrivateKey(k, nil)
	if err != nil {
		return "", err
	}
	if err := atomicfile.WriteNew(s.AssignmentKeyPath(), pemKey, 0o600); err != nil {
		return "", fmt.Errorf("assignment key: %w", err)
	}
	return assign.KeyID(k.Public().(ed25519.PublicKey)), nil
}

// RotateAssignmentKey replaces the assignment key with a new one. The
// old key stays published (keys/assign.<id>.pub) so that assignments it
// signed verify until they expire; remove that file and refresh the
// mirror to stop trusting it. It returns the new key's id.
func (s *Store) RotateAssignmentKey() (string, error) {
	old, err := s.AssignmentKey()
	if err != nil {
		return "", err
	}
	pub, err := verify.NewPublicKey(old.Public())
	if err != nil {
		return "", err
	}
	pemPub, err := pub.PEM()
	if err != nil {
		return "", err
	}
	oldID := assign.KeyID(old.Public().(ed25519.PublicKey))
	retired := filepath.Join(s.dir, "keys", "assign."+oldID[:16]+".pub")
	if err := atomicfile.WriteFile(retired, pemPub, 0o644); err != nil {
		return "", fmt.Errorf("rotate assignment key: %w", err)
	}
	if err := os.Remove(s.AssignmentKeyPath()); err != nil {
		return "", fmt.Errorf("rotate assignment key: %w", err)
	}
	id, err := s.newAssignmentKey()
	if err != nil {
		return "", err
	}
	if _, err := s.Publish(); err != nil {
		return "", err
	}
	return id, nil
}

// assignmentPublicKeys are the keys the mirror publishes: its
// assignment key and the retired ones still kept.
func (s *Store) assignmentPublicKeys() ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	k, err := s.AssignmentKey()
	switch {
	case err == nil:
		out = append(out, k.Public().(ed25519.PublicKey))
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	retired, err := filepath.Glob(filepath.Join(s.dir, assignRetiredPat))
	if err != nil {
		return nil, err
	}
	sort.Strings(retired)
	for _, p := range retired {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		pk, err := verify.ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("retired assignment key %s: %w", p, err)
		}
		ek, ok := pk.Key.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("retired assignment key %s: want Ed25519", p)
		}
		out = append(out, ek)
	}
	return out, nil
}

// publishOptions adds what the store publishes besides its bundles.
func (s *Store) publishOptions(o tufrepo.RefreshOptions) (tufrepo.RefreshOptions, error) {
	keys, err := s.assignmentPublicKeys()
	if err != nil {
		return o, fmt.Errorf("assignment keys: %w", err)
	}
	o.AssignmentKeys = keys
	return o, nil
}
