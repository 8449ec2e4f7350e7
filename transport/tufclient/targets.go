package tufclient

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"golang.org/x/mod/semver"
)

// Custom is the "custom" object of a target in the mirror's targets.json:
// what a device needs to pick a bundle before it downloads anything. The
// target's path is "<name>/<version>", its length the manifest's size and
// its sha256 hash the manifest digest, so the TUF hashes and
// ManifestDigest say the same thing (Check refuses a target where they
// differ).
type Custom struct {
	Name           string   `json:"name"`
	Version        string   `json:"version"`
	Tag            string   `json:"tag"` // the OCI tag: Version with '+' as '_'
	DeviceTypes    []string `json:"deviceTypes"`
	ManifestDigest string   `json:"manifestDigest"` // sha256:<hex>
	Size           int64    `json:"size"`           // bytes of all payload layers
}

// Target is one bundle the mirror's signed targets list.
type Target struct {
	Path           string   // <name>/<version>
	Name           string   // bundle name, also the OCI repository
	Version        string   // semantic version
	Tag            string   // OCI tag of the version
	DeviceTypes    []string // device types the bundle fits
	ManifestDigest string   // sha256:<hex>, what the bundle's signatures sign
	ManifestSize   int64    // bytes of the manifest
	Size           int64    // bytes of all payload layers, for a download bound
}

// Fits reports whether the bundle is meant for deviceType.
func (t Target) Fits(deviceType string) bool {
	for _, d := range t.DeviceTypes {
		if d == deviceType {
			return true
		}
	}
	return false
}

// Reference is the bundle's pull reference by digest on the mirror at
// host (HOST[:PORT]): oci://HOST/<name>@sha256:<hex>. Pulling by digest
// makes the mirror's registry unable to serve anything but the listed
// manifest (transport/oci checks the digest of what it fetches).
func (t Target) Reference(host string) string {
	return "oci://" + host + "/" + t.Name + "@" + t.ManifestDigest
}

// Targets is what Check verified: the bundles the mirror lists, and the
// versions and expiries of the metadata that vouched for them.
type Targets struct {
	// Host is HOST[:PORT] of the mirror Check asked, for Target.Reference;
	// Scheme is "http" or "https" (for oci.Options.PlainHTTP).
	Host, Scheme string
	// Versions and expiries of the trusted metadata.
	RootVersion, TimestampVersion, SnapshotVersion, TargetsVersion int64
	TimestampExpires, TargetsExpires                               time.Time

	// AssignmentKeys are the mirror's assignment keys (package
	// transport/assign), as its signed targets publish them
	// (AssignmentKeysField); none when the mirror assigns nothing.
	AssignmentKeys []ed25519.PublicKey

	list   []Target
	byPath map[string]int
}

// AssignmentKeysField is the field of the signed part of targets.json
// in which a mirror publishes its assignment keys: a list of
// AssignmentKey. The targets role (the mirror key) signs it, so the
// device trusts the keys as it trusts the bundle list.
const AssignmentKeysField = "x-ferry-assignment-keys"

// MaxAssignmentKeys bounds the assignment keys a mirror publishes (a
// key and the one it replaces, with room).
const MaxAssignmentKeys = 8

// AssignmentKey is one published assignment key.
type AssignmentKey struct {
	KeyID   string `json:"keyid"`   // assign.KeyID of the key
	KeyType string `json:"keytype"` // "ed25519"
	Public  []byte `json:"public"`  // the raw 32-byte key, base64
}

// parseAssignmentKeys reads the AssignmentKeysField of a targets' signed
// part.
func parseAssignmentKeys(fields map[string]any) ([]ed25519.PublicKey, error) {
	v, ok := fields[AssignmentKeysField]
	if !ok {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var ks []AssignmentKey
	if err := json.Unmarshal(b, &ks); err != nil {
		return nil, fmt.Errorf("targets %s: %w", AssignmentKeysField, err)
	}
	if len(ks) > MaxAssignmentKeys {
		return nil, fmt.Errorf("targets %s: %d keys, at most %d", AssignmentKeysField, len(ks), MaxAssignmentKeys)
	}
	var out []ed25519.PublicKey
	for i, k := range ks {
		if k.KeyType != "ed25519" || len(k.Public) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("targets %s[%d]: want an ed25519 key of 32 bytes", AssignmentKeysField, i)
		}
		out = append(out, ed25519.PublicKey(k.Public))
	}
	return out, nil
}

// All returns every listed bundle, by name and then by version.
func (t *Targets) All() []Target { return append([]Target(nil), t.list...) }

// Lookup returns the manifest digest the targets list for a bundle name
// and version, and whether they list it at all. The agent must refuse a
// bundle whose manifest digest is not this one (see Verify).
func (t *Targets) Lookup(name, version string) (digest string, ok bool) {
	i, ok := t.byPath[name+"/"+version]
	if !ok {
		return "", false
	}
	return t.list[i].ManifestDigest, true
}

// Target returns the listed target of a bundle name and version.
func (t *Targets) Target(name, version string) (Target, bool) {
	i, ok := t.byPath[name+"/"+version]
	if !ok {
		return Target{}, false
	}
	return t.list[i], true
}

// Verify returns a *NotListedError unless the targets list the bundle
// name and version with exactly this manifest digest (sha256:<hex>). Call
// it with the name and version from the bundle's signed config and the
// digest of its manifest, before installing.
func (t *Targets) Verify(name, version, manifestDigest string) error {
	listed, ok := t.Lookup(name, version)
	if !ok || listed != manifestDigest {
		return &NotListedError{Name: name, Version: version, Digest: manifestDigest, Listed: listed}
	}
	return nil
}

// Newest returns the listed bundle of the highest version that fits
// deviceType and is above installed (a semantic version; "" means
// nothing is installed). With name non-empty only bundles of that name
// count. ok is false when there is none: the device is up to date.
func (t *Targets) Newest(deviceType, name, installed string) (Target, bool) {
	return t.NewestFor(deviceType, name, func(string) string { return installed })
}

// NewestFor is Newest with the installed version per bundle name
// (component, bundle/FORMAT.md §6.2): a bundle counts when it is above
// installed(its name).
func (t *Targets) NewestFor(deviceType, name string, installed func(name string) string) (Target, bool) {
	var best Target
	found := false
	for _, c := range t.list {
		if !c.Fits(deviceType) || (name != "" && c.Name != name) {
			continue
		}
		if in := installed(c.Name); in != "" && compareVersions(c.Version, in) <= 0 {
			continue
		}
		if !found || compareVersions(c.Version, best.Version) > 0 {
			best, found = c, true
		}
	}
	return best, found
}

// compareVersions compares semantic versions as semver 2.0.0 does.
func compareVersions(a, b string) int { return semver.Compare("v"+a, "v"+b) }

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)
	tagRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	typeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	hexRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// maxDeviceTypes bounds a target's device types.
const maxDeviceTypes = 256

// parseTarget checks one entry of targets.json and returns it as a Target.
func parseTarget(path string, tf *metadata.TargetFiles) (Target, error) {
	if tf == nil || tf.Custom == nil {
		return Target{}, fmt.Errorf("target %q: no custom fields: not a ferry bundle", path)
	}
	var c Custom
	dec := json.NewDecoder(bytes.NewReader(*tf.Custom))
	if err := dec.Decode(&c); err != nil {
		return Target{}, fmt.Errorf("target %q: custom fields: %w", path, err)
	}
	if !nameRE.MatchString(c.Name) {
		return Target{}, fmt.Errorf("target %q: bad bundle name %q", path, c.Name)
	}
	if !semver.IsValid("v"+c.Version) || strings.HasPrefix(c.Version, "v") || len(c.Version) > 128 {
		return Target{}, fmt.Errorf("target %q: bad version %q", path, c.Version)
	}
	if path != c.Name+"/"+c.Version {
		return Target{}, fmt.Errorf("target %q names bundle %s version %s: want the path %s/%s", path, c.Name, c.Version, c.Name, c.Version)
	}
	if !tagRE.MatchString(c.Tag) || c.Tag != strings.ReplaceAll(c.Version, "+", "_") {
		return Target{}, fmt.Errorf("target %q: bad tag %q", path, c.Tag)
	}
	if len(c.DeviceTypes) == 0 || len(c.DeviceTypes) > maxDeviceTypes {
		return Target{}, fmt.Errorf("target %q: %d device types (want 1 to %d)", path, len(c.DeviceTypes), maxDeviceTypes)
	}
	for _, d := range c.DeviceTypes {
		if !typeRE.MatchString(d) {
			return Target{}, fmt.Errorf("target %q: bad device type %q", path, d)
		}
	}
	hexDigest, ok := strings.CutPrefix(c.ManifestDigest, "sha256:")
	if !ok || !hexRE.MatchString(hexDigest) {
		return Target{}, fmt.Errorf("target %q: bad manifest digest %q", path, c.ManifestDigest)
	}
	if h := tf.Hashes["sha256"]; hex.EncodeToString(h) != hexDigest {
		return Target{}, fmt.Errorf("target %q: its sha256 hash %x is not its manifest digest %s", path, []byte(h), c.ManifestDigest)
	}
	if tf.Length <= 0 || tf.Length > maxManifestSize {
		return Target{}, fmt.Errorf("target %q: manifest length %d out of range", path, tf.Length)
	}
	if c.Size < 0 {
		return Target{}, fmt.Errorf("target %q: negative size", path)
	}
	return Target{
		Path: path, Name: c.Name, Version: c.Version, Tag: c.Tag,
		DeviceTypes: c.DeviceTypes, ManifestDigest: c.ManifestDigest,
		ManifestSize: tf.Length, Size: c.Size,
	}, nil
}

// maxManifestSize is bundle.MaxManifestSize (this package does not import
// bundle, to stay small).
const maxManifestSize = 4 << 20

// newTargets builds Targets from verified targets metadata.
func newTargets(m *metadata.Metadata[metadata.TargetsType]) (*Targets, error) {
	t := &Targets{byPath: map[string]int{}, TargetsVersion: m.Signed.Version, TargetsExpires: m.Signed.Expires}
	keys, err := parseAssignmentKeys(m.Signed.UnrecognizedFields)
	if err != nil {
		return nil, err
	}
	t.AssignmentKeys = keys
	for path, tf := range m.Signed.Targets {
		tg, err := parseTarget(path, tf)
		if err != nil {
			return nil, err
		}
		t.list = append(t.list, tg)
	}
	sort.Slice(t.list, func(i, j int) bool {
		a, b := t.list[i], t.list[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if c := compareVersions(a.Version, b.Version); c != 0 {
			return c < 0
		}
		return a.Version < b.Version
	})
	for i, tg := range t.list {
		t.byPath[tg.Path] = i
	}
	return t, nil
}

// RootKeys returns the public keys of the root role of a mirror's TUF
// root (root.json), after checking that the root is signed by them. A
// device can use it to accept a mirror's first root because its own trust
// root names one of these keys (e.g. in its "mirror" role), instead of
// being provisioned with the file.
func RootKeys(rootJSON []byte) ([]crypto.PublicKey, error) {
	r, err := metadata.Root().FromBytes(rootJSON)
	if err != nil {
		return nil, &Error{Kind: Malformed, Role: "root", Err: err}
	}
	if err := r.VerifyDelegate(metadata.ROOT, r); err != nil {
		return nil, classify("root", err)
	}
	var keys []crypto.PublicKey
	for _, id := range r.Signed.Roles[metadata.ROOT].KeyIDs {
		k, ok := r.Signed.Keys[id]
		if !ok {
			return nil, &Error{Kind: Malformed, Role: "root", Msg: "root key " + id + " is not in the root's keys"}
		}
		pub, err := k.ToPublicKey()
		if err != nil {
			return nil, &Error{Kind: Malformed, Role: "root", Err: err}
		}
		keys = append(keys, pub)
	}
	return keys, nil
}
