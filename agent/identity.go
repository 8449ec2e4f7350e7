package agent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"filippo.io/age"

	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/verify"
)

// Where the device's identity lives in the state directory.
const (
	identityDir = "identity"
	// DefaultKeyFile is the device key's default path, relative to the
	// state directory.
	DefaultKeyFile = identityDir + "/device.key"
	// counterFile holds the last check-in counter the device signed.
	counterFile = identityDir + "/counter"
	// DefaultAgeKeyFile is the default path of the device's age
	// identity, relative to the state directory.
	DefaultAgeKeyFile = identityDir + "/device.age"
)

// KeyPerm is the only mode a device key may have: readable by its owner
// alone.
const KeyPerm fs.FileMode = 0o600

// Identity is who the device is to a mirror: an Ed25519 key pair of its
// own, made at its first start or provisioned at the factory. Its id is
// the hex SHA-256 of the public key's DER SubjectPublicKeyInfo
// (checkin.DeviceID), the same id 'ferry key show' prints for the public
// key, so it does not change while the key does not.
//
// Beside the signing key the device holds an age X25519 identity, which
// unwraps the key of payloads encrypted to it (bundle/FORMAT.md §6.3);
// its recipient (AgeRecipient, "age1…") is what a release engineer
// encrypts to.
type Identity struct {
	ID        string           `json:"id"`
	Algorithm verify.Algorithm `json:"algorithm"`
	// PublicKey is the public key as PEM (SubjectPublicKeyInfo), what a
	// factory's enrollment list may carry.
	PublicKey string `json:"publicKey"`
	KeyFile   string `json:"keyFile"`
	// Name and DeviceType are the configuration's device_id and
	// device_type, for the factory's enrollment list.
	Name       string `json:"name,omitempty"`
	DeviceType string `json:"deviceType"`
	// AgeRecipient is the public half of the device's age identity, the
	// recipient 'ferry bundle create --encrypt-to' takes; AgeKeyFile
	// holds the identity.
	AgeRecipient string `json:"ageRecipient"`
	AgeKeyFile   string `json:"ageKeyFile"`
	// Created says the key was made just now; AgeCreated the age
	// identity.
	Created    bool `json:"created,omitempty"`
	AgeCreated bool `json:"ageCreated,omitempty"`

	key ed25519.PrivateKey
	age *age.X25519Identity
}

// KeyError says the device key cannot be used.
type KeyError struct {
	Path string
	Err  error
}

func (e *KeyError) Error() string { return fmt.Sprintf("device key %s: %v", e.Path, e.Err) }
func (e *KeyError) Unwrap() error { return e.Err }

// keyPath is the configured key file, and whether it was configured.
func keyPath(cfg *Config) (string, bool) {
	if cfg.Identity.Key != "" {
		return cfg.Identity.Key, true
	}
	return filepath.Join(cfg.StateDir, DefaultKeyFile), false
}

// ageKeyPath is the configured age identity file, and whether it was
// configured.
func ageKeyPath(cfg *Config) (string, bool) {
	if cfg.Identity.AgeKey != "" {
		return cfg.Identity.AgeKey, true
	}
	return filepath.Join(cfg.StateDir, DefaultAgeKeyFile), false
}

// LoadIdentity reads the device's keys: its Ed25519 key ([identity] key,
// default STATE_DIR/identity/device.key) and its age identity ([identity]
// age_key, default STATE_DIR/identity/device.age). When a default file is
// missing it makes a new key there (mode 0600); a configured key must
// exist. A key that others may read, or of the wrong kind, is refused
// with a *KeyError. It does not need the state directory's lock: two
// processes making the first key at once end up with the same one.
func LoadIdentity(cfg *Config) (*Identity, error) {
	path, configured := keyPath(cfg)
	id, created, err := loadOrCreate(path, configured, readIdentity, newEd25519Key)
	if err != nil {
		return nil, err
	}
	id.Created, id.Name, id.DeviceType = created, cfg.DeviceID, cfg.DeviceType
	path, configured = ageKeyPath(cfg)
	if id.age, id.AgeCreated, err = loadOrCreate(path, configured, readAgeIdentity, newAgeKey); err != nil {
		return nil, err
	}
	id.AgeRecipient, id.AgeKeyFile = id.age.Recipient().String(), path
	return id, nil
}

// loadOrCreate reads the key at path, first making one with create when
// path is a default (not configured) that does not exist yet.
func loadOrCreate[K any](path string, configured bool, read func(string) (K, error), create func() ([]byte, error)) (K, bool, error) {
	k, err := read(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || configured {
		return k, false, err
	}
	if err := createKeyFile(path, create); err != nil {
		return k, false, &KeyError{Path: path, Err: err}
	}
	k, err = read(path)
	return k, err == nil, err
}

// readKeyFile reads a private key file, refusing one others may read.
func readKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, &KeyError{Path: path, Err: err}
	}
	if m := fi.Mode(); !m.IsRegular() || m.Perm()&^KeyPerm != 0 {
		return nil, &KeyError{Path: path, Err: fmt.Errorf("mode %v: a private key must be a regular file only its owner may read (chmod 600)", m)}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &KeyError{Path: path, Err: err}
	}
	return b, nil
}

// readAgeIdentity reads an age identity file as age-keygen writes it:
// comments and one AGE-SECRET-KEY-1… line.
func readAgeIdentity(path string) (*age.X25519Identity, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return nil, &KeyError{Path: path, Err: fmt.Errorf("not an age identity file, as age-keygen writes: %w", err)}
	}
	x, ok := ids[0].(*age.X25519Identity)
	if len(ids) != 1 || !ok {
		return nil, &KeyError{Path: path, Err: fmt.Errorf("%d identities: want one age X25519 identity (AGE-SECRET-KEY-1…)", len(ids))}
	}
	return x, nil
}

// newAgeKey makes an age identity file as age-keygen does.
func newAgeKey() ([]byte, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	return []byte("# ferry-agent device identity (age)\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"), nil
}

// newEd25519Key makes an Ed25519 private key as PEM (PKCS#8).
func newEd25519Key() ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func readIdentity(path string) (*Identity, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, &KeyError{Path: path, Err: errors.New("not a PEM PRIVATE KEY (PKCS#8), as 'openssl genpkey -algorithm ed25519' writes")}
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, &KeyError{Path: path, Err: err}
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, &KeyError{Path: path, Err: fmt.Errorf("a %T: a device key is Ed25519", k)}
	}
	pub, err := verify.NewPublicKey(priv.Public())
	if err != nil {
		return nil, &KeyError{Path: path, Err: err}
	}
	pubPEM, err := pub.PEM()
	if err != nil {
		return nil, err
	}
	return &Identity{ID: checkin.DeviceID(priv.Public().(ed25519.PublicKey)), Algorithm: pub.Algorithm, PublicKey: string(pubPEM), KeyFile: path, key: priv}, nil
}

// createKeyFile makes a new key at path, durably, without ever replacing
// a key that is there: it is written to a temporary file and linked into
// place, which fails if another process got there first.
func createKeyFile(path string, create func() ([]byte, error)) error {
	data, err := create()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := atomicfile.CreateTempPerm(path, KeyPerm)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return atomicfile.SyncDir(dir)
}

// Identity returns the device's identity (LoadIdentity), made at its
// first use.
func (a *Agent) Identity() (*Identity, error) {
	if a.id == nil {
		id, err := LoadIdentity(a.cfg)
		if err != nil {
			return nil, err
		}
		if id.Created {
			a.logf("made the device key %s: device id %s", id.KeyFile, id.ID)
		}
		if id.AgeCreated {
			a.logf("made the device's age identity %s: recipient %s", id.AgeKeyFile, id.AgeRecipient)
		}
		a.id = id
	}
	return a.id, nil
}

// nextCounter returns the counter of the next check-in and records it
// durably before the check-in goes out: one above the last signed, and
// at least the agent's clock in milliseconds, so a device whose state
// directory was wiped while its (provisioned) key stayed still counts
// above what it sent before. The state directory's lock is held.
func (a *Agent) nextCounter() (uint64, error) {
	var last uint64
	b, err := os.ReadFile(a.path(counterFile))
	switch {
	case err == nil:
		if last, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
			a.logf("warning: %s: %v; counting on from the clock", a.path(counterFile), err)
			last = 0
		}
	case !errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Errorf("check-in counter: %w", err)
	}
	next := max(last+1, uint64(max(a.now().UnixMilli(), 1)))
	if next > checkin.MaxCounter {
		return 0, fmt.Errorf("check-in counter %s: %d is at its maximum", a.path(counterFile), last)
	}
	if err := os.MkdirAll(a.path(identityDir), 0o700); err != nil {
		return 0, fmt.Errorf("check-in counter: %w", err)
	}
	if err := atomicfile.WriteFile(a.path(counterFile), []byte(strconv.FormatUint(next, 10)+"\n"), 0o600); err != nil {
		return 0, fmt.Errorf("check-in counter: %w", err)
	}
	return next, nil
}

// mirrorID is the id of the configured mirror: that of the newest mirror
// TUF root the device trusts (the TUF client's state, else [mirror]
// tuf_root).
func (a *Agent) mirrorID() (string, error) {
	for _, p := range []string{filepath.Join(a.path(tufStateDir), "root.json"), a.cfg.Mirror.TUFRoot} {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) && p != a.cfg.Mirror.TUFRoot {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("mirror id: %w", err)
		}
		id, err := checkin.MirrorID(b)
		if err != nil {
			return "", fmt.Errorf("mirror id from %s: %w", p, err)
		}
		return id, nil
	}
	return "", errors.New("mirror id: no mirror TUF root")
}
