package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
)

// NewRootSigned returns version 1 of a trust root with no keys yet, expiring
// at expires. Add keys with AddKey; SignRoot checks the result.
func NewRootSigned(expires time.Time) RootSigned {
	s := RootSigned{
		Type:        RootType,
		SpecVersion: RootSpecVersion,
		Version:     1,
		Keys:        map[string]RootKey{},
		Roles:       map[string]RootRole{},
		Revoked:     []string{},
	}
	s.SetExpires(expires)
	return s
}

// SetExpires sets the expiry, in UTC and truncated to the second as
// TRUST.md requires.
func (s *RootSigned) SetExpires(t time.Time) {
	s.Expires = t.UTC().Truncate(time.Second).Format(rootExpiresLayout)
}

// AddKey adds k to role, creating the role (with threshold 1) if the root
// has none by that name. A revoked key cannot be added back.
func (s *RootSigned) AddKey(role string, k *PublicKey) error {
	if !slices.Contains(RootRoles, role) {
		return fmt.Errorf("unknown role %q (want one of %v)", role, RootRoles)
	}
	if slices.Contains(s.Revoked, k.ID) {
		return fmt.Errorf("key %s is revoked: a revoked key stays revoked, use a new one", k.ShortID())
	}
	r := s.Roles[role]
	if slices.Contains(r.KeyIDs, k.ID) {
		return fmt.Errorf("key %s is already in role %s", k.ShortID(), role)
	}
	pemBytes, err := k.PEM()
	if err != nil {
		return err
	}
	if s.Keys == nil {
		s.Keys = map[string]RootKey{}
	}
	if s.Roles == nil {
		s.Roles = map[string]RootRole{}
	}
	s.Keys[k.ID] = RootKey{Algorithm: k.Algorithm, Public: string(pemBytes)}
	r.KeyIDs = append(slices.Clone(r.KeyIDs), k.ID)
	slices.Sort(r.KeyIDs)
	if r.Threshold == 0 {
		r.Threshold = 1
	}
	s.Roles[role] = r
	return nil
}

// RemoveKey takes the key id out of role, and out of the root's keys when no
// other role has it. A mirror role left without keys goes away; root and
// release roles may not be emptied. Thresholds are not changed: SignRoot
// refuses one above the keys that are left.
func (s *RootSigned) RemoveKey(role, id string) error {
	r, ok := s.Roles[role]
	if !ok || !slices.Contains(r.KeyIDs, id) {
		return fmt.Errorf("key %s is not in role %s", short(id), role)
	}
	r.KeyIDs = slices.DeleteFunc(slices.Clone(r.KeyIDs), func(k string) bool { return k == id })
	switch {
	case len(r.KeyIDs) > 0:
		s.Roles[role] = r
	case role == RoleMirror:
		delete(s.Roles, role)
	default:
		return fmt.Errorf("key %s is the last key of role %s: add its replacement first", short(id), role)
	}
	for _, other := range s.Roles {
		if slices.Contains(other.KeyIDs, id) {
			return nil
		}
	}
	delete(s.Keys, id)
	return nil
}

// Revoke adds the key id to the revoked keys. The key stays in its roles
// (so audits can tell whose signatures they see) but never counts again, in
// this root or any later one.
func (s *RootSigned) Revoke(id string) error {
	if !isKeyID(id) {
		return fmt.Errorf("%q is not a key id (64 lower-case hex digits)", id)
	}
	if slices.Contains(s.Revoked, id) {
		return fmt.Errorf("key %s is already revoked", short(id))
	}
	s.Revoked = append(slices.Clone(s.Revoked), id)
	slices.Sort(s.Revoked)
	return nil
}

// SetKeyNames sets the owner (a person or team) and purpose of key id;
// an empty value removes that name. The root's spec version follows
// (SignRoot): "2" while any key is named, "1" otherwise.
func (s *RootSigned) SetKeyNames(id, owner, purpose string) error {
	k, ok := s.Keys[id]
	if !ok {
		return fmt.Errorf("key %s is not in the root", short(id))
	}
	if err := checkKeyName("owner", owner, maxKeyOwner); err != nil {
		return err
	}
	if err := checkKeyName("purpose", purpose, maxKeyPurpose); err != nil {
		return err
	}
	k.Owner, k.Purpose = owner, purpose
	s.Keys = maps.Clone(s.Keys)
	s.Keys[id] = k
	return nil
}

// specVersion is the spec version s needs: 2 when a key is named.
func (s *RootSigned) specVersion() string {
	for _, k := range s.Keys {
		if k.Owner != "" || k.Purpose != "" {
			return RootSpecVersion2
		}
	}
	return RootSpecVersion
}

// SetThreshold sets how many of role's keys must sign.
func (s *RootSigned) SetThreshold(role string, n int) error {
	r, ok := s.Roles[role]
	if !ok {
		return fmt.Errorf("no role %s", role)
	}
	r.Threshold = n
	s.Roles[role] = r
	return nil
}

// SignRoot checks s as ParseRoot would, signs its canonical JSON with each
// signer and returns the root. The signers need not be keys of s: the next
// version of a root must also be signed by the root keys of the version
// before. Whether the signatures suffice is for Verify or UpdateRoot to say;
// a root may be signed by some keys now and by others later (AddSignatures).
func SignRoot(s RootSigned, signers ...*Signer) (*Root, error) {
	if s.Revoked == nil {
		s.Revoked = []string{}
	}
	s.SpecVersion = s.specVersion()
	if _, err := newRoot(s); err != nil {
		return nil, err
	}
	signed, err := json.Marshal(&s)
	if err != nil {
		return nil, err
	}
	r, err := marshalRoot(signed, nil)
	if err != nil {
		return nil, err
	}
	return r.AddSignatures(signers...)
}

// AddSignatures returns the root with a signature by each signer that has
// not signed it yet.
func (r *Root) AddSignatures(signers ...*Signer) (*Root, error) {
	sigs := slices.Clone(r.signatures)
	if sigs == nil {
		sigs = []RootSignature{}
	}
	for _, s := range signers {
		id := s.PublicKey().ID
		if slices.ContainsFunc(sigs, func(rs RootSignature) bool { return rs.KeyID == id }) {
			continue
		}
		sig, err := s.sv.SignMessage(bytes.NewReader(r.canonical))
		if err != nil {
			return nil, fmt.Errorf("sign trust root with key %s: %w", s.PublicKey().ShortID(), err)
		}
		sigs = append(sigs, RootSignature{KeyID: id, Sig: sig})
	}
	signed, err := json.Marshal(&r.signed)
	if err != nil {
		return nil, err
	}
	return marshalRoot(signed, sigs)
}

// marshalRoot writes the document in ferry's layout (indented, fields in
// the order TRUST.md gives) and parses it back, so that every root ferry
// writes is one it reads.
func marshalRoot(signed []byte, sigs []RootSignature) (*Root, error) {
	if sigs == nil {
		sigs = []RootSignature{}
	}
	doc, err := json.MarshalIndent(rootDocument{Signed: signed, Signatures: sigs}, "", "  ")
	if err != nil {
		return nil, err
	}
	return ParseRoot(append(doc, '\n'))
}

// canonicalJSON returns the canonical JSON (TRUST.md §4) of a JSON document:
// object keys sorted, no insignificant white space, strings with only `"`
// and `\` escaped. It is what trust-root signatures are made over.
func canonicalJSON(data []byte) ([]byte, error) {
	if !json.Valid(data) {
		return nil, fmt.Errorf("canonical JSON: input is not JSON")
	}
	return cjson.EncodeCanonical(json.RawMessage(data))
}
