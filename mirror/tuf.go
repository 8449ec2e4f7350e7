package mirror

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/registry"
	"github.com/ferry-update/ferry/transport/tufclient"
	"github.com/ferry-update/ferry/transport/wire"
	"github.com/ferry-update/ferry/verify"
)

// Files of the mirror's TUF repository (see doc.go, "Freshness").
const (
	tufDir        = wire.TUFDir
	tufConfigFile = "tuf/config.json"
	onlineKeyFile = "keys/online.key"
	// keepVersions is how many versioned snapshot and targets files stay
	// beside the current ones, for clients that read a timestamp just
	// before a change.
	keepVersions = 16
)

// Expiries say how long each role's metadata is valid after it is
// signed.
type Expiries struct {
	Root, Targets, Snapshot, Timestamp time.Duration
}

// DefaultExpiries are the expiries of a new mirror.
var DefaultExpiries = Expiries{
	Root:      365 * 24 * time.Hour,
	Targets:   365 * 24 * time.Hour,
	Snapshot:  7 * 24 * time.Hour,
	Timestamp: 24 * time.Hour,
}

func (e Expiries) withDefaults() Expiries {
	d := DefaultExpiries
	if e.Root > 0 {
		d.Root = e.Root
	}
	if e.Targets > 0 {
		d.Targets = e.Targets
	}
	if e.Snapshot > 0 {
		d.Snapshot = e.Snapshot
	}
	if e.Timestamp > 0 {
		d.Timestamp = e.Timestamp
	}
	return d
}

// MinTimestampExpiry is the shortest timestamp expiry a mirror takes: the
// server re-signs at a quarter of it, and devices' clocks drift.
const MinTimestampExpiry = 5 * time.Minute

// tufConfig is tuf/config.json: the settings of the mirror's metadata.
type tufConfig struct {
	Expiries struct {
		Root      string `json:"root"`
		Targets   string `json:"targets"`
		Snapshot  string `json:"snapshot"`
		Timestamp string `json:"timestamp"`
	} `json:"expiries"`
}

func (s *Store) readTUFConfig() (Expiries, error) {
	var e Expiries
	b, err := os.ReadFile(filepath.Join(s.dir, tufConfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultExpiries, nil
	}
	if err != nil {
		return e, err
	}
	var c tufConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return e, fmt.Errorf("%s: %w", tufConfigFile, err)
	}
	for _, f := range []struct {
		s string
		d *time.Duration
	}{{c.Expiries.Root, &e.Root}, {c.Expiries.Targets, &e.Targets}, {c.Expiries.Snapshot, &e.Snapshot}, {c.Expiries.Timestamp, &e.Timestamp}} {
		if f.s == "" {
			continue
		}
		d, err := time.ParseDuration(f.s)
		if err != nil || d <= 0 {
			return e, fmt.Errorf("%s: bad expiry %q", tufConfigFile, f.s)
		}
		*f.d = d
	}
	return e.withDefaults(), nil
}

func (s *Store) writeTUFConfig(e Expiries) error {
	var c tufConfig
	c.Expiries.Root = e.Root.String()
	c.Expiries.Targets = e.Targets.String()
	c.Expiries.Snapshot = e.Snapshot.String()
	c.Expiries.Timestamp = e.Timestamp.String()
	b, _ := json.MarshalIndent(c, "", "  ")
	return atomicfile.WriteFile(filepath.Join(s.dir, tufConfigFile), append(b, '\n'), 0o644)
}

func checkExpiries(e Expiries) error {
	if e.Timestamp < MinTimestampExpiry {
		return fmt.Errorf("timestamp expiry %v is shorter than %v", e.Timestamp, MinTimestampExpiry)
	}
	if e.Snapshot < e.Timestamp {
		return fmt.Errorf("snapshot expiry %v is shorter than the timestamp expiry %v", e.Snapshot, e.Timestamp)
	}
	return nil
}

// InitOptions configure InitWith.
type InitOptions struct {
	// RootKey signs the mirror's TUF root. It should be an offline key
	// (it is not stored); nil means the mirror key signs the root too.
	RootKey crypto.Signer
	// Expiries of the metadata; zero fields take DefaultExpiries.
	Expiries Expiries
	// Now is the signing time; zero means time.Now().
	Now time.Time
}

// InitWith is Init with the TUF root key and expiries chosen: it makes the
// mirror directory, generates the online key (keys/online.key), and
// publishes root, targets, snapshot and timestamp metadata.
func InitWith(dir string, keyPEM []byte, o InitOptions) (*Store, error) {
	if err := initStore(dir, keyPEM); err != nil {
		return nil, fmt.Errorf("init mirror %s: %w", dir, err)
	}
	s := &Store{dir: dir}
	if err := s.initTUF(o); err != nil {
		return nil, fmt.Errorf("init mirror %s: TUF metadata: %w", dir, err)
	}
	return s, nil
}

func (s *Store) initTUF(o InitOptions) error {
	exp := o.Expiries.withDefaults()
	if err := checkExpiries(exp); err != nil {
		return err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	mk, err := s.mirrorKey()
	if err != nil {
		return err
	}
	rk := o.RootKey
	if rk == nil {
		rk = mk
	}
	ok, err := verify.GenerateKey(verify.ECDSAP256)
	if err != nil {
		return err
	}
	okPEM, err := verify.MarshalPrivateKey(ok, nil)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(s.dir, tufDir), 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(s.dir, onlineKeyFile), okPEM, 0o600); err != nil {
		return err
	}
	if err := s.writeTUFConfig(exp); err != nil {
		return err
	}
	signers := make([]*tufSigner, 3)
	for i, k := range []crypto.Signer{rk, mk, ok} {
		if signers[i], err = newTUFSigner(k); err != nil {
			return err
		}
	}
	root := &metadata.Metadata[metadata.RootType]{
		Signed: metadata.RootType{
			Type:               metadata.ROOT,
			SpecVersion:        metadata.SPECIFICATION_VERSION,
			ConsistentSnapshot: true,
			Version:            1,
			Expires:            expiry(now, exp.Root),
			Keys:               map[string]*metadata.Key{},
			Roles:              map[string]*metadata.Role{},
		},
	}
	for _, sg := range signers {
		root.Signed.Keys[sg.id] = sg.tkey
	}
	for role, sg := range map[string]*tufSigner{metadata.ROOT: signers[0], metadata.TARGETS: signers[1], metadata.SNAPSHOT: signers[2], metadata.TIMESTAMP: signers[2]} {
		root.Signed.Roles[role] = &metadata.Role{KeyIDs: []string{sg.id}, Threshold: 1}
	}
	if err := s.writeRoot(root, signers[0]); err != nil {
		return err
	}
	_, err = s.refresh(RefreshOptions{Now: now})
	return err
}

func expiry(now time.Time, d time.Duration) time.Time {
	return now.Add(d).UTC().Truncate(time.Second)
}

// writeRoot signs root and writes it as N.root.json and root.json.
func (s *Store) writeRoot(root *metadata.Metadata[metadata.RootType], signer *tufSigner) error {
	if err := signMetadata(root, signer); err != nil {
		return err
	}
	b, err := root.ToBytes(true)
	if err != nil {
		return err
	}
	if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
		return fmt.Errorf("the new root does not verify: %w", err)
	}
	if err := atomicfile.WriteFile(s.TUFPath(wire.RootFile(root.Signed.Version)), b, 0o644); err != nil {
		return err
	}
	return atomicfile.WriteFile(s.TUFPath(wire.TUFRootFile), b, 0o644)
}

// TUFPath is the path of the TUF metadata file name in the store.
func (s *Store) TUFPath(name string) string { return filepath.Join(s.dir, tufDir, name) }

// TUFRootPath is the mirror's current TUF root: the file devices are
// provisioned with to trust this mirror.
func (s *Store) TUFRootPath() string { return s.TUFPath(wire.TUFRootFile) }

func (s *Store) mirrorKey() (crypto.Signer, error) {
	b, err := s.KeyPEM()
	if err != nil {
		return nil, fmt.Errorf("mirror key: %w", err)
	}
	k, err := verify.ParsePrivateKey(b, nil)
	if err != nil {
		return nil, fmt.Errorf("mirror key %s: %w", keyFile, err)
	}
	return k, nil
}

func (s *Store) onlineKey() (crypto.Signer, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, onlineKeyFile))
	if err != nil {
		return nil, fmt.Errorf("online key: %w", err)
	}
	k, err := verify.ParsePrivateKey(b, nil)
	if err != nil {
		return nil, fmt.Errorf("online key %s: %w", onlineKeyFile, err)
	}
	return k, nil
}

// RoleStatus is the state of one role's metadata after Refresh.
type RoleStatus struct {
	Version int64     `json:"version"`
	Expires time.Time `json:"expires"`
	Signed  bool      `json:"signed"` // re-signed by this call
	KeyID   string    `json:"keyId"`  // of the role's key (TUF key id)
}

// TUFStatus says what Refresh published.
type TUFStatus struct {
	Root      RoleStatus `json:"root"`
	Targets   RoleStatus `json:"targets"`
	Snapshot  RoleStatus `json:"snapshot"`
	Timestamp RoleStatus `json:"timestamp"`
	Bundles   int        `json:"bundles"`
	Expiries  struct {
		Root      string `json:"root"`
		Targets   string `json:"targets"`
		Snapshot  string `json:"snapshot"`
		Timestamp string `json:"timestamp"`
	} `json:"expiries"` // as Go durations
	Warnings []string `json:"warnings"`
}

// RefreshOptions configure Refresh.
type RefreshOptions struct {
	// Now is the signing time; zero means time.Now().
	Now time.Time
	// TimestampExpiry, when positive, becomes the mirror's timestamp
	// expiry (stored in tuf/config.json).
	TimestampExpiry time.Duration
	// RootKey, when set, renews the root: version N+1 with a fresh expiry,
	// signed by this key, which must be the root's key.
	RootKey crypto.Signer
}

// Publish brings the mirror's TUF metadata up to date after an add or a
// sync: see Refresh.
func (s *Store) Publish() (*TUFStatus, error) { return s.Refresh(RefreshOptions{}) }

// Refresh re-signs the mirror's TUF metadata:
//
//   - targets (mirror key) when the bundles in the index differ from what
//     targets.json lists, or when less than half of its lifetime is left;
//   - snapshot (online key) when targets changed or half its lifetime is
//     gone;
//   - timestamp (online key) always, with a fresh expiry.
//
// The versioned files (N.targets.json, N.snapshot.json) are written
// before the unversioned ones and timestamp.json last: a device that read
// any timestamp finds the files it names. A mirror made before it had TUF
// metadata gets it here, its root signed by the mirror key.
func (s *Store) Refresh(o RefreshOptions) (*TUFStatus, error) {
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

func (s *Store) refresh(o RefreshOptions) (*TUFStatus, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	if _, err := os.Stat(s.TUFPath("root.json")); errors.Is(err, fs.ErrNotExist) {
		if err := s.initTUF(InitOptions{Now: now}); err != nil {
			return nil, err
		}
	}
	exp, err := s.readTUFConfig()
	if err != nil {
		return nil, err
	}
	if o.TimestampExpiry > 0 && o.TimestampExpiry != exp.Timestamp {
		exp.Timestamp = o.TimestampExpiry
		if err := checkExpiries(exp); err != nil {
			return nil, err
		}
		if err := s.writeTUFConfig(exp); err != nil {
			return nil, err
		}
	}
	st := &TUFStatus{Warnings: []string{}}
	st.Expiries.Root, st.Expiries.Targets, st.Expiries.Snapshot, st.Expiries.Timestamp = exp.Root.String(), exp.Targets.String(), exp.Snapshot.String(), exp.Timestamp.String()

	root, err := metadata.Root().FromFile(s.TUFPath("root.json"))
	if err != nil {
		return nil, fmt.Errorf("root.json: %w", err)
	}
	if o.RootKey != nil {
		sg, err := newTUFSigner(o.RootKey)
		if err != nil {
			return nil, err
		}
		if !contains(root.Signed.Roles[metadata.ROOT].KeyIDs, sg.id) {
			return nil, fmt.Errorf("key %s is not the mirror's root key (root.json names %v)", sg.id[:16], shortIDs(root.Signed.Roles[metadata.ROOT].KeyIDs))
		}
		root.Signed.Version++
		root.Signed.Expires = expiry(now, exp.Root)
		if err := s.writeRoot(root, sg); err != nil {
			return nil, err
		}
		st.Root.Signed = true
	}
	st.Root.Version, st.Root.Expires, st.Root.KeyID = root.Signed.Version, root.Signed.Expires, firstID(root, metadata.ROOT)
	if due(root.Signed.Expires, now, exp.Root) {
		st.Warnings = append(st.Warnings, fmt.Sprintf("the TUF root expires at %s: renew it with 'ferry mirror refresh --root-key ROOT.key'", root.Signed.Expires.Format(time.RFC3339)))
	}

	// Targets: what the index holds.
	want, err := s.tufTargets()
	if err != nil {
		return nil, err
	}
	st.Bundles = len(want)
	targets, targetsRaw, err := readMeta(metadata.Targets(), s.TUFPath("targets.json"))
	if err != nil {
		return nil, err
	}
	changed := targets == nil || !sameTargets(targets.Signed.Targets, want)
	if changed || due(targets.Signed.Expires, now, exp.Targets) {
		mk, err := s.mirrorKey()
		if err != nil && changed {
			return nil, fmt.Errorf("the mirror key signs targets.json: %w", err)
		}
		if err != nil {
			st.Warnings = append(st.Warnings, fmt.Sprintf("targets.json expires at %s and the mirror key is not readable: %v", targets.Signed.Expires.Format(time.RFC3339), err))
		} else {
			next := metadata.Targets(expiry(now, exp.Targets))
			if targets != nil {
				next.Signed.Version = targets.Signed.Version + 1
			}
			next.Signed.Targets = want
			if targetsRaw, err = writeMeta(s, next, "targets", mk); err != nil {
				return nil, err
			}
			targets = next
			st.Targets.Signed = true
		}
	}
	st.Targets.Version, st.Targets.Expires, st.Targets.KeyID = targets.Signed.Version, targets.Signed.Expires, firstID(root, metadata.TARGETS)

	ok, err := s.onlineKey()
	if err != nil {
		return nil, err
	}
	snapshot, snapshotRaw, err := readMeta(metadata.Snapshot(), s.TUFPath("snapshot.json"))
	if err != nil {
		return nil, err
	}
	if snapshot == nil || st.Targets.Signed || due(snapshot.Signed.Expires, now, exp.Snapshot) || !sameMeta(snapshot.Signed.Meta["targets.json"], metaFile(targets.Signed.Version, targetsRaw)) {
		next := metadata.Snapshot(expiry(now, exp.Snapshot))
		if snapshot != nil {
			next.Signed.Version = snapshot.Signed.Version + 1
		}
		next.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metaFile(targets.Signed.Version, targetsRaw)}
		if snapshotRaw, err = writeMeta(s, next, "snapshot", ok); err != nil {
			return nil, err
		}
		snapshot = next
		st.Snapshot.Signed = true
	}
	st.Snapshot.Version, st.Snapshot.Expires, st.Snapshot.KeyID = snapshot.Signed.Version, snapshot.Signed.Expires, firstID(root, metadata.SNAPSHOT)

	timestamp, _, err := readMeta(metadata.Timestamp(), s.TUFPath("timestamp.json"))
	if err != nil {
		return nil, err
	}
	next := metadata.Timestamp(expiry(now, exp.Timestamp))
	if timestamp != nil {
		next.Signed.Version = timestamp.Signed.Version + 1
	}
	next.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaFile(snapshot.Signed.Version, snapshotRaw)}
	if _, err := writeMeta(s, next, "timestamp", ok); err != nil {
		return nil, err
	}
	st.Timestamp = RoleStatus{Version: next.Signed.Version, Expires: next.Signed.Expires, Signed: true, KeyID: firstID(root, metadata.TIMESTAMP)}
	if err := s.pruneTUF(targets.Signed.Version, snapshot.Signed.Version); err != nil {
		st.Warnings = append(st.Warnings, "pruning old metadata: "+err.Error())
	}
	return st, nil
}

// due reports whether metadata expiring at expires, with a lifetime of
// life, should be re-signed: less than half of it is left.
func due(expires, now time.Time, life time.Duration) bool {
	return expires.Sub(now) < life/2
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func shortIDs(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id[:min(16, len(id))]
	}
	return out
}

func firstID(root *metadata.Metadata[metadata.RootType], role string) string {
	if r := root.Signed.Roles[role]; r != nil && len(r.KeyIDs) > 0 {
		return r.KeyIDs[0]
	}
	return ""
}

func metaFile(version int64, raw []byte) *metadata.MetaFiles {
	m := metadata.MetaFile(version)
	m.Length = int64(len(raw))
	sum := sha256.Sum256(raw)
	m.Hashes = metadata.Hashes{"sha256": sum[:]}
	return m
}

// sameMeta reports whether a lists the same file as b.
func sameMeta(a, b *metadata.MetaFiles) bool {
	return a != nil && b != nil && a.Version == b.Version && a.Length == b.Length && a.Hashes.Equal(b.Hashes)
}

// readMeta reads one of the mirror's own metadata files; nil if missing.
func readMeta[T metadata.Roles](m *metadata.Metadata[T], path string) (*metadata.Metadata[T], []byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	m, err = m.FromBytes(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return m, b, nil
}

// writeMeta signs m with key and writes it as N.<role>.json (except the
// timestamp) and <role>.json, returning the bytes.
func writeMeta[T metadata.Roles](s *Store, m *metadata.Metadata[T], role string, key crypto.Signer) ([]byte, error) {
	sg, err := newTUFSigner(key)
	if err != nil {
		return nil, err
	}
	if err := signMetadata(m, sg); err != nil {
		return nil, err
	}
	b, err := m.ToBytes(true)
	if err != nil {
		return nil, err
	}
	if role != metadata.TIMESTAMP {
		if err := atomicfile.WriteFile(s.TUFPath(strconv.FormatInt(versionOf(m), 10)+"."+role+".json"), b, 0o644); err != nil {
			return nil, err
		}
	}
	if err := atomicfile.WriteFile(s.TUFPath(role+".json"), b, 0o644); err != nil {
		return nil, err
	}
	return b, nil
}

func versionOf[T metadata.Roles](m *metadata.Metadata[T]) int64 {
	switch s := any(&m.Signed).(type) {
	case *metadata.TargetsType:
		return s.Version
	case *metadata.SnapshotType:
		return s.Version
	case *metadata.TimestampType:
		return s.Version
	case *metadata.RootType:
		return s.Version
	}
	return 0
}

var versionedRE = regexp.MustCompile(`^([0-9]+)\.(targets|snapshot)\.json$`)

// pruneTUF removes versioned targets and snapshot files more than
// keepVersions behind the current ones. Roots are kept: devices walk the
// whole chain.
func (s *Store) pruneTUF(targets, snapshot int64) error {
	ents, err := os.ReadDir(filepath.Join(s.dir, tufDir))
	if err != nil {
		return err
	}
	for _, e := range ents {
		m := versionedRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		v, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			continue
		}
		cur := targets
		if m[2] == "snapshot" {
			cur = snapshot
		}
		if v <= cur-keepVersions {
			if err := os.Remove(filepath.Join(s.dir, tufDir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// tufTargets lists the bundles of the index as TUF targets.
func (s *Store) tufTargets() (map[string]*metadata.TargetFiles, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	out := map[string]*metadata.TargetFiles{}
	for _, d := range idx.Manifests {
		if d.ArtifactType != bundle.ArtifactType {
			continue
		}
		raw, err := s.readBlob(d.Digest, bundle.MaxManifestSize)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
		m, err := registry.ParseManifest(raw)
		if err != nil {
			return nil, err
		}
		cb, err := s.readBlob(m.Config.Digest, bundle.MaxConfigSize)
		if err != nil {
			return nil, fmt.Errorf("config of %s: %w", d.Digest, err)
		}
		cfg, err := bundle.ParseConfig(cb)
		if err != nil {
			return nil, err
		}
		var size int64
		for _, l := range m.Layers {
			size += l.Size
		}
		c, err := json.Marshal(tufclient.Custom{
			Name: cfg.Name, Version: cfg.Version, Tag: cfg.Tag(), DeviceTypes: cfg.DeviceTypes,
			ManifestDigest: d.Digest.String(), Size: size,
		})
		if err != nil {
			return nil, err
		}
		h, err := hex.DecodeString(d.Digest.Encoded())
		if err != nil {
			return nil, err
		}
		rm := json.RawMessage(c)
		out[cfg.Name+"/"+cfg.Version] = &metadata.TargetFiles{Length: int64(len(raw)), Hashes: metadata.Hashes{"sha256": h}, Custom: &rm}
	}
	return out, nil
}

// sameTargets compares two target maps in canonical JSON.
func sameTargets(a, b map[string]*metadata.TargetFiles) bool {
	ca, err1 := cjson.EncodeCanonical(a)
	cb, err2 := cjson.EncodeCanonical(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

// KeepFresh calls Refresh every interval (at most a quarter of the
// timestamp expiry, and every minute after a failure) until ctx ends,
// and hands each result to report. 'ferry mirror serve' runs it, so
// devices never see an expired timestamp while the mirror is up.
func (s *Store) KeepFresh(ctx context.Context, every time.Duration, report func(*TUFStatus, error)) {
	for {
		st, err := s.Refresh(RefreshOptions{})
		report(st, err)
		wait := every
		if exp, err := s.readTUFConfig(); err == nil && exp.Timestamp/4 < wait {
			wait = exp.Timestamp / 4
		}
		if err != nil && wait > time.Minute {
			wait = time.Minute
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
