package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/ferry-update/ferry/internal/filekind"
)

// The trust root: a signed JSON document, in TUF's shape, that names the keys
// a device trusts, what each key may sign (its role), how many must sign (the
// threshold), a version and an expiry. TRUST.md is its specification.

// Fixed values and limits of a trust-root document (TRUST.md §2, §8).
const (
	RootType        = "ferry-root"
	RootSpecVersion = "1"
	// RootSpecVersion2 is spec version 1 plus the owner and purpose of
	// keys (TRUST.md §2.1). ferry writes it only for a root that names
	// a key, so roots without names stay readable by version-1 devices.
	RootSpecVersion2  = "2"
	maxKeyOwner       = 128     // bytes
	maxKeyPurpose     = 256     // bytes
	MaxRootSize       = 1 << 20 // bytes of the whole document
	MaxRootKeys       = 256
	MaxRootSignatures = 256
	MaxRootRevoked    = 1024
	maxRootVersion    = 1<<53 - 1 // exact in every JSON implementation
	maxRootSigSize    = 8192
	maxRootDepth      = 16
	rootExpiresLayout = "2006-01-02T15:04:05Z"
)

// Roles a trust root gives keys. Bundles are judged against RoleRelease;
// RoleRoot signs the next trust root; RoleMirror is for mirror metadata.
const (
	RoleRoot    = "root"
	RoleRelease = "release"
	RoleMirror  = "mirror"
)

// RootRoles lists the roles of spec version 1; root and release are required.
var RootRoles = []string{RoleRoot, RoleRelease, RoleMirror}

// RootKey is a public key as a trust root lists it.
type RootKey struct {
	Algorithm Algorithm `json:"algorithm"`
	Public    string    `json:"public"` // PEM "PUBLIC KEY", exactly as PublicKey.PEM writes it
	// Owner (a person or team) and Purpose name the key for people
	// (spec version 2; absent, never empty, when not given).
	Owner   string `json:"owner,omitempty"`
	Purpose string `json:"purpose,omitempty"`
}

// RootRole names the keys of a role and how many of them must sign.
type RootRole struct {
	KeyIDs    []string `json:"keyids"`
	Threshold int      `json:"threshold"`
}

// RootSigned is the signed part of a trust root. Edit a copy (Root.Signed)
// and sign it with SignRoot to make the next version.
type RootSigned struct {
	Type        string              `json:"_type"`
	SpecVersion string              `json:"spec_version"`
	Version     int64               `json:"version"`
	Expires     string              `json:"expires"` // UTC, "2006-01-02T15:04:05Z"
	Keys        map[string]RootKey  `json:"keys"`
	Roles       map[string]RootRole `json:"roles"`
	Revoked     []string            `json:"revoked"`
}

// RootSignature is one signature over the canonical JSON of the signed part.
type RootSignature struct {
	KeyID string `json:"keyid"`
	Sig   []byte `json:"sig"` // standard base64 with padding in JSON
}

type rootDocument struct {
	Signed     json.RawMessage `json:"signed"`
	Signatures []RootSignature `json:"signatures"`
}

// Root is a parsed, well-formed trust root. It is immutable: its signatures
// are judged by Verify and UpdateRoot over the canonical bytes it was parsed
// from, and nothing a caller does to a copy of its parts changes them.
type Root struct {
	raw        []byte
	canonical  []byte
	signed     RootSigned
	signatures []RootSignature
	keys       map[string]*PublicKey
	expires    time.Time
	revoked    map[string]bool
}

// RootErrorKind says what is wrong with a trust root, for callers to switch on.
type RootErrorKind string

// Kinds of RootError.
const (
	RootMalformed      RootErrorKind = "malformed"       // not a well-formed trust root
	RootExpired        RootErrorKind = "expired"         // its expiry has passed
	RootRollback       RootErrorKind = "rollback"        // older than, or a different root of the same version as, the trusted one
	RootVersionSkip    RootErrorKind = "version-skip"    // not exactly the trusted version + 1
	RootBelowThreshold RootErrorKind = "below-threshold" // too few valid signatures by a root role
	RootUnrevoked      RootErrorKind = "unrevoked"       // a key the trusted root revoked is no longer revoked
	RootNoRole         RootErrorKind = "no-role"         // the root has no such role
)

// RootError is what ParseRoot, Verify, UpdateRoot and Policy return.
type RootError struct {
	Kind    RootErrorKind
	Version int64 // of the root judged; 0 when it could not be read
	// Step is the 1-based position of the root in the chain given to
	// UpdateRootChain; 0 elsewhere.
	Step int
	// Have and Need count signing keys, for RootBelowThreshold.
	Have, Need int
	// Revoked lists revoked keys whose signatures did not count.
	Revoked []string
	Msg     string
	Err     error
}

func (e *RootError) Error() string {
	var b strings.Builder
	b.WriteString("trust root")
	if e.Version > 0 {
		fmt.Fprintf(&b, " v%d", e.Version)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *RootError) Unwrap() error { return e.Err }

func rootErr(kind RootErrorKind, version int64, format string, a ...any) *RootError {
	return &RootError{Kind: kind, Version: version, Msg: fmt.Sprintf(format, a...)}
}

func malformed(version int64, format string, a ...any) *RootError {
	return rootErr(RootMalformed, version, format, a...)
}

// ParseRoot reads a trust-root document and checks that it is well formed
// (TRUST.md §2–§3): strict JSON in normal form, every field present, key ids
// that are the ids of their keys, sane roles and thresholds, within the
// limits. It does not check signatures or expiry: see Verify and UpdateRoot.
// Every error is or wraps a *RootError of kind RootMalformed.
//
// A document that is not a trust root at all (a public or private key, the
// mirror TUF root, a bundle) gives a *filekind.Error that says what it is,
// wrapping the *RootError.
func ParseRoot(data []byte) (*Root, error) {
	r, err := parseRoot(data)
	if err != nil {
		return nil, filekind.Check(data, filekind.TrustRoot, err)
	}
	return r, nil
}

func parseRoot(data []byte) (*Root, error) {
	if len(data) > MaxRootSize {
		return nil, malformed(0, "document is %d bytes, more than the limit of %d", len(data), MaxRootSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, malformed(0, "document is empty")
	}
	if !utf8.Valid(data) {
		return nil, malformed(0, "document is not UTF-8")
	}
	if err := checkJSONShape(data); err != nil {
		return nil, &RootError{Kind: RootMalformed, Msg: "not a JSON trust root", Err: err}
	}
	var doc rootDocument
	if err := decodeStrict(data, &doc); err != nil {
		return nil, &RootError{Kind: RootMalformed, Msg: "not a JSON trust root", Err: err}
	}
	if err := sameCanonical(json.RawMessage(data), &doc); err != nil {
		return nil, malformed(0, "document: %v", err)
	}
	var s RootSigned
	if err := decodeStrict(doc.Signed, &s); err != nil {
		return nil, &RootError{Kind: RootMalformed, Msg: "signed", Err: err}
	}
	if err := requireFields(doc.Signed); err != nil {
		return nil, malformed(s.Version, "signed: %v", err)
	}
	canonical, err := cjson.EncodeCanonical(doc.Signed)
	if err != nil {
		return nil, malformed(s.Version, "signed: %v", err)
	}
	if err := sameCanonical(doc.Signed, &s); err != nil {
		return nil, malformed(s.Version, "signed: %v", err)
	}
	r, err := newRoot(s)
	if err != nil {
		return nil, err
	}
	if doc.Signatures == nil {
		return nil, malformed(s.Version, "signatures: want an array (it may be empty)")
	}
	if len(doc.Signatures) > MaxRootSignatures {
		return nil, malformed(s.Version, "%d signatures, more than the limit of %d", len(doc.Signatures), MaxRootSignatures)
	}
	seen := map[string]bool{}
	for i, sig := range doc.Signatures {
		switch {
		case !isKeyID(sig.KeyID):
			return nil, malformed(s.Version, "signature %d: keyid %q is not 64 lower-case hex digits", i+1, sig.KeyID)
		case seen[sig.KeyID]:
			return nil, malformed(s.Version, "signature %d: a second signature by key %s", i+1, short(sig.KeyID))
		case len(sig.Sig) == 0 || len(sig.Sig) > maxRootSigSize:
			return nil, malformed(s.Version, "signature %d: %d bytes, want 1 to %d", i+1, len(sig.Sig), maxRootSigSize)
		}
		seen[sig.KeyID] = true
	}
	r.raw = bytes.Clone(data)
	r.canonical = canonical
	r.signatures = doc.Signatures
	return r, nil
}

// newRoot checks the signed part (TRUST.md §3) and returns a Root without
// signatures.
func newRoot(s RootSigned) (*Root, error) {
	v := s.Version
	if s.Type != RootType {
		return nil, malformed(v, "_type is %q, want %q", s.Type, RootType)
	}
	if s.SpecVersion != RootSpecVersion && s.SpecVersion != RootSpecVersion2 {
		return nil, malformed(v, "spec_version is %q, and this ferry knows only %q and %q: upgrade ferry", s.SpecVersion, RootSpecVersion, RootSpecVersion2)
	}
	if v < 1 || v > maxRootVersion {
		return nil, malformed(v, "version %d is not an integer from 1 to 2^53-1", v)
	}
	expires, err := time.Parse(rootExpiresLayout, s.Expires)
	if err != nil || expires.Format(rootExpiresLayout) != s.Expires {
		return nil, malformed(v, "expires %q is not a UTC time in the form 2006-01-02T15:04:05Z", s.Expires)
	}
	if len(s.Keys) == 0 || len(s.Keys) > MaxRootKeys {
		return nil, malformed(v, "%d keys, want 1 to %d", len(s.Keys), MaxRootKeys)
	}
	r := &Root{signed: s, expires: expires, keys: map[string]*PublicKey{}, revoked: map[string]bool{}}
	for _, id := range slices.Sorted(maps.Keys(s.Keys)) {
		k, err := parseRootKey(id, s.Keys[id])
		if err == nil && s.SpecVersion == RootSpecVersion && (k.Owner != "" || k.Purpose != "") {
			err = fmt.Errorf("owner and purpose need spec_version %q", RootSpecVersion2)
		}
		if err != nil {
			return nil, &RootError{Kind: RootMalformed, Version: v, Msg: "key " + short(id), Err: err}
		}
		r.keys[id] = k
	}
	if len(s.Revoked) > MaxRootRevoked {
		return nil, malformed(v, "%d revoked keys, more than the limit of %d", len(s.Revoked), MaxRootRevoked)
	}
	for _, id := range s.Revoked {
		if !isKeyID(id) {
			return nil, malformed(v, "revoked: %q is not a key id (64 lower-case hex digits)", id)
		}
		if r.revoked[id] {
			return nil, malformed(v, "revoked: key %s is listed twice", short(id))
		}
		r.revoked[id] = true
	}
	used := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(s.Roles)) {
		if !slices.Contains(RootRoles, name) {
			return nil, malformed(v, "unknown role %q (spec version %s has %s)", name, RootSpecVersion, strings.Join(RootRoles, ", "))
		}
		role := s.Roles[name]
		if len(role.KeyIDs) == 0 {
			return nil, malformed(v, "role %s has no keys", name)
		}
		inRole := map[string]bool{}
		for _, id := range role.KeyIDs {
			if inRole[id] {
				return nil, malformed(v, "role %s lists key %s twice", name, short(id))
			}
			if r.keys[id] == nil {
				return nil, malformed(v, "role %s names key %s, which is not in keys", name, short(id))
			}
			inRole[id], used[id] = true, true
		}
		if role.Threshold < 1 || role.Threshold > len(role.KeyIDs) {
			return nil, malformed(v, "role %s has threshold %d, want 1 to its %d key(s)", name, role.Threshold, len(role.KeyIDs))
		}
	}
	for _, name := range []string{RoleRoot, RoleRelease} {
		if _, ok := s.Roles[name]; !ok {
			return nil, malformed(v, "role %s is missing", name)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.Keys)) {
		if !used[id] {
			return nil, malformed(v, "key %s belongs to no role", short(id))
		}
	}
	// A root whose own root role cannot reach its threshold can never be
	// followed by another: refuse to make or accept one.
	rootRole := s.Roles[RoleRoot]
	if usable := len(r.unrevoked(rootRole.KeyIDs)); usable < rootRole.Threshold {
		return nil, malformed(v, "role root has %d key(s) that are not revoked, fewer than its threshold %d: no later root could ever be accepted (rotate in a new key)", usable, rootRole.Threshold)
	}
	return r, nil
}

func parseRootKey(id string, rk RootKey) (*PublicKey, error) {
	if !isKeyID(id) {
		return nil, fmt.Errorf("id %q is not 64 lower-case hex digits", id)
	}
	k, err := ParsePublicKey([]byte(rk.Public))
	if err != nil {
		return nil, err
	}
	if k.ID != id {
		return nil, fmt.Errorf("the id of its public key is %s", k.ID)
	}
	if k.Algorithm != rk.Algorithm {
		return nil, fmt.Errorf("algorithm %q, but the key is %s", rk.Algorithm, k.Algorithm)
	}
	if p, err := k.PEM(); err != nil || string(p) != rk.Public {
		return nil, errors.New(`public is not exactly one PEM "PUBLIC KEY" block in the form ferry writes`)
	}
	if err := checkKeyName("owner", rk.Owner, maxKeyOwner); err != nil {
		return nil, err
	}
	if err := checkKeyName("purpose", rk.Purpose, maxKeyPurpose); err != nil {
		return nil, err
	}
	k.Owner, k.Purpose = rk.Owner, rk.Purpose
	return k, nil
}

// checkKeyName checks a key's owner or purpose (TRUST.md §2.1): at most
// max bytes of UTF-8 text without control characters. Empty means not
// given.
func checkKeyName(what, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%s is %d bytes, more than %d", what, len(v), max)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s is not UTF-8", what)
	}
	for _, c := range v {
		if c < 0x20 || (c >= 0x7f && c < 0xa0) || unicode.Is(unicode.Bidi_Control, c) {
			return fmt.Errorf("%s contains the control character %U", what, c)
		}
	}
	if strings.TrimSpace(v) != v {
		return fmt.Errorf("%s %q begins or ends with white space", what, v)
	}
	return nil
}

func isKeyID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkJSONShape reads data as one JSON object with nothing after it, no
// more than maxRootDepth deep, whose object keys are printable ASCII and
// never repeated, not even in another case (encoding/json matches field
// names case-insensitively, and a second implementation might keep the
// first of two equal keys where Go keeps the last).
func checkJSONShape(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object  bool
		wantKey bool
		keys    map[string]bool
	}
	var stack []*frame
	value := func() { // a value ended; in an object, a key comes next
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	for first := true; first || len(stack) > 0; first = false {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if first && tok != json.Delim('{') {
			return errors.New("want a JSON object")
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) == maxRootDepth {
					return fmt.Errorf("nested more than %d deep", maxRootDepth)
				}
				value()
				stack = append(stack, &frame{object: t == '{', wantKey: t == '{', keys: map[string]bool{}})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			top := stack[len(stack)-1]
			if !top.object || !top.wantKey {
				value()
				continue
			}
			for _, c := range []byte(t) {
				if c < 0x20 || c > 0x7e {
					return fmt.Errorf("object key %q is not printable ASCII", t)
				}
			}
			folded := strings.ToLower(t)
			if top.keys[folded] {
				return fmt.Errorf("object key %q appears twice", t)
			}
			top.keys[folded] = true
			top.wantKey = false
		default:
			value()
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// sameCanonical checks that typed, decoded from wire, has the same canonical
// JSON as wire itself: no field was missing, null where a value belongs,
// spelled in another case, or encoded other than as ferry encodes it. So
// what is signed and what is used are the same document.
func sameCanonical(wire json.RawMessage, typed any) error {
	a, err := cjson.EncodeCanonical(wire)
	if err != nil {
		return err
	}
	b, err := cjson.EncodeCanonical(typed)
	if err != nil {
		return err
	}
	if !bytes.Equal(a, b) {
		return errors.New("not in normal form (a field is missing, null, spelled in another case, or not encoded as TRUST.md says)")
	}
	return nil
}

// requireFields names the first missing field of the signed part, for a
// clearer error than sameCanonical's.
func requireFields(signed json.RawMessage) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(signed, &m); err != nil {
		return err
	}
	for _, f := range []string{"_type", "spec_version", "version", "expires", "keys", "roles", "revoked"} {
		if v, ok := m[f]; !ok || string(v) == "null" {
			return fmt.Errorf("field %q is missing", f)
		}
	}
	return nil
}

// Version is the root's version.
func (r *Root) Version() int64 { return r.signed.Version }

// Expires is when the root stops being trusted.
func (r *Root) Expires() time.Time { return r.expires }

// Bytes returns the document as it was parsed (or written by SignRoot).
func (r *Root) Bytes() []byte { return bytes.Clone(r.raw) }

// Key returns the key with id, or nil when the root lists no such key.
func (r *Root) Key(id string) *PublicKey { return r.keys[id] }

// IsRevoked reports whether the root revokes the key id.
func (r *Root) IsRevoked(id string) bool { return r.revoked[id] }

// Signed returns a copy of the signed part, to edit into the next version.
func (r *Root) Signed() RootSigned {
	s := r.signed
	s.Keys = maps.Clone(s.Keys)
	s.Roles = make(map[string]RootRole, len(r.signed.Roles))
	for name, role := range r.signed.Roles {
		role.KeyIDs = slices.Clone(role.KeyIDs)
		s.Roles[name] = role
	}
	s.Revoked = slices.Clone(s.Revoked)
	return s
}

// Signatures returns the key ids that signed the document, valid or not.
func (r *Root) Signatures() []string {
	ids := make([]string, len(r.signatures))
	for i, s := range r.signatures {
		ids[i] = s.KeyID
	}
	return ids
}

func (r *Root) unrevoked(ids []string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return r.revoked[id] })
}

func (r *Root) checkExpiry(now time.Time) error {
	if !now.Before(r.expires) {
		return rootErr(RootExpired, r.Version(), "expired at %s: get a newer root (ferry trust verify-chain checks one)", r.signed.Expires)
	}
	return nil
}

// Verify checks that the root is signed by a threshold of its own root
// role's keys, revoked keys not counting, and that it has not expired at
// now. A device checks the root it is first given this way; later roots go
// through UpdateRoot.
func (r *Root) Verify(now time.Time) error {
	if err := r.signedBy(r, "its own", r.revoked); err != nil {
		return err
	}
	return r.checkExpiry(now)
}

// signedBy checks that r carries valid signatures by a threshold of the
// root role of by (r itself, or the root r is to follow). Keys in revoked
// do not count.
func (r *Root) signedBy(by *Root, whose string, revoked map[string]bool) error {
	role := by.signed.Roles[RoleRoot]
	valid, revokedSigners := r.rootSigners(by, revoked)
	have := len(valid)
	if have >= role.Threshold {
		return nil
	}
	e := rootErr(RootBelowThreshold, r.Version(), "signed by %d of the %d required key(s) of %s root role", have, role.Threshold, whose)
	e.Have, e.Need, e.Revoked = have, role.Threshold, revokedSigners
	if len(revokedSigners) > 0 {
		shorts := make([]string, len(revokedSigners))
		for i, id := range revokedSigners {
			shorts[i] = short(id)
		}
		e.Msg += fmt.Sprintf(" (revoked key(s) %s do not count)", strings.Join(shorts, ", "))
	}
	return e
}

// rootSigners returns the keys of by's root role that made a valid
// signature over r (each once), and those of its keys in revoked that
// signed (not checked: they never count).
func (r *Root) rootSigners(by *Root, revoked map[string]bool) (valid, revokedSigners []string) {
	role := by.signed.Roles[RoleRoot]
	for _, s := range r.signatures {
		if !slices.Contains(role.KeyIDs, s.KeyID) {
			continue // signed by a key that is not in the role: never counts
		}
		if revoked[s.KeyID] {
			revokedSigners = append(revokedSigners, s.KeyID)
			continue
		}
		if verifyRootSignature(by.keys[s.KeyID], r.canonical, s.Sig) == nil {
			valid = append(valid, s.KeyID)
		}
	}
	return valid, revokedSigners
}

func verifyRootSignature(k *PublicKey, msg, sig []byte) error {
	v, err := signature.LoadDefaultVerifier(k.Key)
	if err != nil {
		return err
	}
	return v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg))
}

// UpdateRoot applies TUF's chain rule (TRUST.md §5) to move from the trusted
// root to next, which must be its successor: version exactly one more,
// signed by a threshold of the trusted root's root role and by a threshold of
// its own, keys revoked by either not counting, revoking at least what the
// trusted root revokes, and not expired at now. A root equal to the trusted
// one (same version, same signed content) returns trusted unchanged. Every
// error is a *RootError.
func UpdateRoot(trusted *Root, next []byte, now time.Time) (*Root, error) {
	n, err := nextRoot(trusted, next)
	if err != nil {
		return nil, err
	}
	if err := n.checkExpiry(now); err != nil {
		return nil, err
	}
	return n, nil
}

// UpdateRootChain applies UpdateRoot to each root of chain in turn, as TUF
// does: a root in the middle of the chain may have expired, the last one may
// not. On error, the *RootError's Step says which root of chain failed.
func UpdateRootChain(trusted *Root, chain [][]byte, now time.Time) (*Root, error) {
	cur, err := ProveRootChain(trusted, chain)
	if err != nil {
		return nil, err
	}
	if err := cur.checkExpiry(now); err != nil {
		err.(*RootError).Step = len(chain)
		return nil, err
	}
	return cur, nil
}

// ProveRootChain re-proves roots a device kept: it applies the chain rule
// (UpdateRoot without the expiry check) to each root of chain in turn,
// starting from trusted, and returns the last root proven — trusted itself
// when the first fails. Expiry is not checked, not even for the last root:
// a kept root that has since expired is still the one the device holds
// (it refuses bundles until a newer root comes, TRUST.md §8). On error,
// the returned root is the highest proven one and the *RootError's Step
// says which root of chain failed.
func ProveRootChain(trusted *Root, chain [][]byte) (*Root, error) {
	cur := trusted
	for i, next := range chain {
		n, err := nextRoot(cur, next)
		if err != nil {
			var re *RootError
			if errors.As(err, &re) {
				re.Step = i + 1
			}
			return cur, err
		}
		cur = n
	}
	return cur, nil
}

// nextRoot is UpdateRoot without the expiry check.
func nextRoot(trusted *Root, data []byte) (*Root, error) {
	n, err := ParseRoot(data)
	if err != nil {
		return nil, err
	}
	tv, nv := trusted.Version(), n.Version()
	switch {
	case nv == tv && bytes.Equal(n.canonical, trusted.canonical):
		return trusted, nil
	case nv == tv:
		return nil, rootErr(RootRollback, nv, "version %d is already trusted with different content", tv)
	case nv < tv:
		return nil, rootErr(RootRollback, nv, "older than the trusted version %d", tv)
	case nv == tv+2:
		return nil, rootErr(RootVersionSkip, nv, "does not follow the trusted version %d: apply version %d first", tv, tv+1)
	case nv != tv+1:
		return nil, rootErr(RootVersionSkip, nv, "does not follow the trusted version %d: apply versions %d to %d first", tv, tv+1, nv-1)
	}
	for _, id := range trusted.signed.Revoked {
		if !n.revoked[id] {
			return nil, rootErr(RootUnrevoked, nv, "key %s, revoked by trusted version %d, is not revoked: a revoked key stays revoked", short(id), tv)
		}
	}
	// n.revoked includes trusted.revoked: a key revoked by either counts for
	// neither threshold.
	if err := n.signedBy(trusted, fmt.Sprintf("the trusted v%d's", tv), n.revoked); err != nil {
		return nil, err
	}
	if err := n.signedBy(n, "its own", n.revoked); err != nil {
		return nil, err
	}
	return n, nil
}

// Policy returns what a bundle must satisfy for role (RoleRelease for
// bundles): the role's keys, its threshold, and the root's revoked keys,
// whose signatures show as Revoked and never count. It does not check the
// root's signatures (a device trusts the root it holds; check a root from
// elsewhere with Verify or UpdateRoot) but does refuse an expired root.
func (r *Root) Policy(role string, now time.Time) (Policy, error) {
	if err := r.checkExpiry(now); err != nil {
		return Policy{}, err
	}
	rl, ok := r.signed.Roles[role]
	if !ok {
		return Policy{}, rootErr(RootNoRole, r.Version(), "has no role %q", role)
	}
	keys := make([]*PublicKey, len(rl.KeyIDs))
	for i, id := range rl.KeyIDs {
		keys[i] = r.keys[id] // with its owner and purpose
	}
	return Policy{Keys: keys, Threshold: rl.Threshold, Revoked: slices.Clone(r.signed.Revoked)}, nil
}
