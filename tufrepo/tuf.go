package tufrepo

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
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

	"github.com/opencontainers/go-digest"
	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/transport/tufclient"
	"github.com/ferry-update/ferry/transport/wire"
	"github.com/ferry-update/ferry/verify"
)

// Files of the TUF repository, under the mirror store's directory (see
// doc.go).
const (
	tufDir        = wire.TUFDir
	tufConfigFile = wire.TUFDir + "/config.json"
	onlineKeyFile = "keys/online.key"
	// keepVersions is how many versioned snapshot and targets files stay
	// beside the current ones, for clients that read a timestamp just
	// before a change.
	keepVersions = 16
)

// Repo is the TUF repository of one mirror store directory DIR: it owns
// DIR/tuf/ (the metadata and config.json) and DIR/keys/online.key. The
// store owns the rest of DIR, including the mirror key, which Repo asks
// for through the function given to New when targets must be signed.
// Repo takes no lock: its caller (the store) serialises writers.
type Repo struct {
	dir       string
	mirrorKey func() (crypto.Signer, error)
}

// New returns the TUF repository of the mirror store directory dir;
// mirrorKey returns the key that signs targets (and the root of a mirror
// made without a root key).
func New(dir string, mirrorKey func() (crypto.Signer, error)) *Repo {
	return &Repo{dir: dir, mirrorKey: mirrorKey}
}

// Target is one bundle the targets metadata lists, as the store knows it:
// path "<name>/<version>", length and sha256 those of the manifest.
type Target struct {
	Name, Version, Tag string
	DeviceTypes        []string
	Manifest           digest.Digest // the bundle's manifest digest
	ManifestSize       int64
	Size               int64 // of the payload layers
}

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

func (r *Repo) readTUFConfig() (Expiries, error) {
	var e Expiries
	b, err := os.ReadFile(filepath.Join(r.dir, tufConfigFile))
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

func (r *Repo) writeTUFConfig(e Expiries) error {
	var c tufConfig
	c.Expiries.Root = e.Root.String()
	c.Expiries.Targets = e.Targets.String()
	c.Expiries.Snapshot = e.Snapshot.String()
	c.Expiries.Timestamp = e.Timestamp.String()
	b, _ := json.MarshalIndent(c, "", "  ")
	return atomicfile.WriteFile(filepath.Join(r.dir, tufConfigFile), append(b, '\n'), 0o644)
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

// InitOptions configure Init.
type InitOptions struct {
	// RootKey signs the mirror's TUF root. It should be an offline key
	// (it is not stored); nil means the mirror key signs the root too.
	RootKey crypto.Signer
	// Expiries of the metadata; zero fields take DefaultExpiries.
	Expiries Expiries
	// Now is the signing time; zero means time.Now().
	Now time.Time
}

// Init makes a new TUF repository: it generates the online key
// (keys/online.key), writes tuf/config.json, and publishes root, targets
// (listing no bundle), snapshot and timestamp metadata.
func (r *Repo) Init(o InitOptions) (*Status, error) { return r.init(o, nil) }

// init is Init with the targets to list.
func (r *Repo) init(o InitOptions, targets []Target) (*Status, error) {
	if err := r.initRoot(o); err != nil {
		return nil, err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	return r.Refresh(targets, RefreshOptions{Now: now})
}

// initRoot writes the online key, the config and the first root.
func (r *Repo) initRoot(o InitOptions) error {
	exp := o.Expiries.withDefaults()
	if err := checkExpiries(exp); err != nil {
		return err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	mk, err := r.mirrorKey()
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
	if err := os.MkdirAll(filepath.Join(r.dir, tufDir), 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(r.dir, onlineKeyFile), okPEM, 0o600); err != nil {
		return err
	}
	if err := r.writeTUFConfig(exp); err != nil {
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
	return r.writeRoot(root, signers[0])
}

func expiry(now time.Time, d time.Duration) time.Time {
	return now.Add(d).UTC().Truncate(time.Second)
}

// writeRoot signs root and writes it as N.root.json and root.json.
func (r *Repo) writeRoot(root *metadata.Metadata[metadata.RootType], signer *tufSigner) error {
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
	if err := atomicfile.WriteFile(r.Path(wire.RootFile(root.Signed.Version)), b, 0o644); err != nil {
		return err
	}
	return atomicfile.WriteFile(r.Path(wire.TUFRootFile), b, 0o644)
}

// Path is the path of the TUF metadata file name.
func (r *Repo) Path(name string) string { return filepath.Join(r.dir, tufDir, name) }

// RootPath is the mirror's current TUF root: the file devices are
// provisioned with to trust this mirror.
func (r *Repo) RootPath() string { return r.Path(wire.TUFRootFile) }

func (r *Repo) onlineKey() (crypto.Signer, error) {
	return verify.ReadPrivateKey("online key", filepath.Join(r.dir, onlineKeyFile), nil)
}

// RoleStatus is the state of one role's metadata after Refresh.
type RoleStatus struct {
	Version int64     `json:"version"`
	Expires time.Time `json:"expires"`
	Signed  bool      `json:"signed"` // re-signed by this call
	KeyID   string    `json:"keyId"`  // of the role's key (TUF key id)
}

// Status says what Refresh published.
type Status struct {
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
	// AssignmentKeys are published in targets.json
	// (tufclient.AssignmentKeysField) for devices to verify the mirror's
	// assignments with; the store fills them in. A change re-signs
	// targets.
	AssignmentKeys []ed25519.PublicKey
}

// Refresh re-signs the TUF metadata so that targets lists targets (the
// bundles the store holds):
//
//   - targets (mirror key) when targets differ from what targets.json
//     lists, or when less than half of its lifetime is left;
//   - snapshot (online key) when targets changed or half its lifetime is
//     gone;
//   - timestamp (online key) always, with a fresh expiry.
//
// The versioned files (N.targets.json, N.snapshot.json) are written
// before the unversioned ones and timestamp.json last: a device that read
// any timestamp finds the files it names. A mirror made before it had TUF
// metadata gets it here, its root signed by the mirror key. The caller
// holds the store's writer lock.
func (r *Repo) Refresh(targets []Target, o RefreshOptions) (*Status, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	if _, err := os.Stat(r.Path(wire.TUFRootFile)); errors.Is(err, fs.ErrNotExist) {
		if _, err := r.init(InitOptions{Now: now}, targets); err != nil {
			return nil, err
		}
	}
	exp, err := r.readTUFConfig()
	if err != nil {
		return nil, err
	}
	if o.TimestampExpiry > 0 && o.TimestampExpiry != exp.Timestamp {
		exp.Timestamp = o.TimestampExpiry
		if err := checkExpiries(exp); err != nil {
			return nil, err
		}
		if err := r.writeTUFConfig(exp); err != nil {
			return nil, err
		}
	}
	st := &Status{Warnings: []string{}}
	st.Expiries.Root, st.Expiries.Targets, st.Expiries.Snapshot, st.Expiries.Timestamp = exp.Root.String(), exp.Targets.String(), exp.Snapshot.String(), exp.Timestamp.String()

	root, err := metadata.Root().FromFile(r.Path(wire.TUFRootFile))
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
		if err := r.writeRoot(root, sg); err != nil {
			return nil, err
		}
		st.Root.Signed = true
	}
	st.Root.Version, st.Root.Expires, st.Root.KeyID = root.Signed.Version, root.Signed.Expires, firstID(root, metadata.ROOT)
	if due(root.Signed.Expires, now, exp.Root) {
		st.Warnings = append(st.Warnings, fmt.Sprintf("the TUF root expires at %s: renew it with 'ferry mirror refresh --root-key ROOT.key'", root.Signed.Expires.Format(time.RFC3339)))
	}

	// Targets: what the store holds.
	want, err := targetFiles(targets)
	if err != nil {
		return nil, err
	}
	st.Bundles = len(want)
	tm, targetsRaw, err := readMeta(metadata.Targets(), r.Path(wire.TUFFile(metadata.TARGETS)))
	if err != nil {
		return nil, err
	}
	keys, err := assignmentKeysField(o.AssignmentKeys)
	if err != nil {
		return nil, err
	}
	changed := tm == nil || !sameTargets(tm.Signed.Targets, want) || !sameFields(tm.Signed.UnrecognizedFields, keys)
	if changed || due(tm.Signed.Expires, now, exp.Targets) {
		mk, err := r.mirrorKey()
		if err != nil && changed {
			return nil, fmt.Errorf("the mirror key signs targets.json: %w", err)
		}
		if err != nil {
			st.Warnings = append(st.Warnings, fmt.Sprintf("targets.json expires at %s and the mirror key is not readable: %v", tm.Signed.Expires.Format(time.RFC3339), err))
		} else {
			next := metadata.Targets(expiry(now, exp.Targets))
			if tm != nil {
				next.Signed.Version = tm.Signed.Version + 1
			}
			next.Signed.Targets = want
			next.Signed.UnrecognizedFields = keys
			if targetsRaw, err = writeMeta(r, next, "targets", mk); err != nil {
				return nil, err
			}
			tm = next
			st.Targets.Signed = true
		}
	}
	st.Targets.Version, st.Targets.Expires, st.Targets.KeyID = tm.Signed.Version, tm.Signed.Expires, firstID(root, metadata.TARGETS)

	ok, err := r.onlineKey()
	if err != nil {
		return nil, err
	}
	snapshot, snapshotRaw, err := readMeta(metadata.Snapshot(), r.Path(wire.TUFFile(metadata.SNAPSHOT)))
	if err != nil {
		return nil, err
	}
	if snapshot == nil || st.Targets.Signed || due(snapshot.Signed.Expires, now, exp.Snapshot) || !sameMeta(snapshot.Signed.Meta["targets.json"], metaFile(tm.Signed.Version, targetsRaw)) {
		next := metadata.Snapshot(expiry(now, exp.Snapshot))
		if snapshot != nil {
			next.Signed.Version = snapshot.Signed.Version + 1
		}
		next.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metaFile(tm.Signed.Version, targetsRaw)}
		if snapshotRaw, err = writeMeta(r, next, "snapshot", ok); err != nil {
			return nil, err
		}
		snapshot = next
		st.Snapshot.Signed = true
	}
	st.Snapshot.Version, st.Snapshot.Expires, st.Snapshot.KeyID = snapshot.Signed.Version, snapshot.Signed.Expires, firstID(root, metadata.SNAPSHOT)

	timestamp, _, err := readMeta(metadata.Timestamp(), r.Path(wire.TUFFile(metadata.TIMESTAMP)))
	if err != nil {
		return nil, err
	}
	next := metadata.Timestamp(expiry(now, exp.Timestamp))
	if timestamp != nil {
		next.Signed.Version = timestamp.Signed.Version + 1
	}
	next.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaFile(snapshot.Signed.Version, snapshotRaw)}
	if _, err := writeMeta(r, next, "timestamp", ok); err != nil {
		return nil, err
	}
	st.Timestamp = RoleStatus{Version: next.Signed.Version, Expires: next.Signed.Expires, Signed: true, KeyID: firstID(root, metadata.TIMESTAMP)}
	if err := r.prune(tm.Signed.Version, snapshot.Signed.Version); err != nil {
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
func writeMeta[T metadata.Roles](r *Repo, m *metadata.Metadata[T], role string, key crypto.Signer) ([]byte, error) {
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
		if err := atomicfile.WriteFile(r.Path(wire.TUFVersionFile(versionOf(m), role)), b, 0o644); err != nil {
			return nil, err
		}
	}
	if err := atomicfile.WriteFile(r.Path(wire.TUFFile(role)), b, 0o644); err != nil {
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

// prune removes versioned targets and snapshot files more than
// keepVersions behind the current ones. Roots are kept: devices walk the
// whole chain.
func (r *Repo) prune(targets, snapshot int64) error {
	ents, err := os.ReadDir(filepath.Join(r.dir, tufDir))
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
			if err := os.Remove(filepath.Join(r.dir, tufDir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// targetFiles makes the TUF targets of the store's bundles.
func targetFiles(targets []Target) (map[string]*metadata.TargetFiles, error) {
	out := make(map[string]*metadata.TargetFiles, len(targets))
	for _, t := range targets {
		c, err := json.Marshal(tufclient.Custom{
			Name: t.Name, Version: t.Version, Tag: t.Tag, DeviceTypes: t.DeviceTypes,
			ManifestDigest: t.Manifest.String(), Size: t.Size,
		})
		if err != nil {
			return nil, err
		}
		h, err := hex.DecodeString(t.Manifest.Encoded())
		if err != nil {
			return nil, err
		}
		rm := json.RawMessage(c)
		out[t.Name+"/"+t.Version] = &metadata.TargetFiles{Length: t.ManifestSize, Hashes: metadata.Hashes{"sha256": h}, Custom: &rm}
	}
	return out, nil
}

// assignmentKeysField is the extra field of targets.json that publishes
// the assignment keys (none: no field).
func assignmentKeysField(keys []ed25519.PublicKey) (map[string]any, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	if len(keys) > tufclient.MaxAssignmentKeys {
		return nil, fmt.Errorf("%d assignment keys: at most %d", len(keys), tufclient.MaxAssignmentKeys)
	}
	var list []tufclient.AssignmentKey
	for _, k := range keys {
		list = append(list, tufclient.AssignmentKey{KeyID: assign.KeyID(k), KeyType: "ed25519", Public: k})
	}
	b, err := json.Marshal(list)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return map[string]any{tufclient.AssignmentKeysField: v}, nil
}

// sameFields compares the extra fields of two targets in canonical JSON.
func sameFields(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	ca, err1 := cjson.EncodeCanonical(a)
	cb, err2 := cjson.EncodeCanonical(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

// sameTargets compares two target maps in canonical JSON.
func sameTargets(a, b map[string]*metadata.TargetFiles) bool {
	ca, err1 := cjson.EncodeCanonical(a)
	cb, err2 := cjson.EncodeCanonical(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

// KeepFresh calls refresh every interval (at most a quarter of the
// timestamp expiry, and every minute after a failure) until ctx ends,
// and hands each result to report. 'ferry mirror serve' runs it (through
// the store, whose refresh lists the targets and takes its lock), so
// devices never see an expired timestamp while the mirror is up.
func (r *Repo) KeepFresh(ctx context.Context, every time.Duration, refresh func() (*Status, error), report func(*Status, error)) {
	for {
		st, err := refresh()
		report(st, err)
		wait := every
		if exp, err := r.readTUFConfig(); err == nil && exp.Timestamp/4 < wait {
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
