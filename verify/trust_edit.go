package verify

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// MinKeyIDPrefix is the fewest hex digits of a key id that KeyIDByPrefix
// accepts: fewer would match keys by accident.
const MinKeyIDPrefix = 8

// LooksLikeKeyID reports whether s is written as a key id or a prefix of
// one that KeyIDByPrefix resolves: at least MinKeyIDPrefix lower-case hex
// digits. Anything else (a path such as "rel.pub") is not.
func LooksLikeKeyID(s string) bool {
	if len(s) < MinKeyIDPrefix {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// KeyIDError is KeyIDByPrefix's answer when a prefix names no key or more
// than one. Matches counts the keys it names.
type KeyIDError struct {
	Prefix  string
	Matches int
}

func (e *KeyIDError) Error() string {
	if e.Matches == 0 {
		return fmt.Sprintf("no key in the root has an id starting with %s", e.Prefix)
	}
	return fmt.Sprintf("key id prefix %s is ambiguous: give more digits", e.Prefix)
}

// KeyIDByPrefix returns the id of the one key of s whose id starts with
// prefix. A full id (64 hex digits) is returned as given, whether or not s
// lists it, so that revoking a key the root no longer holds can still be
// refused by Revoke with its own message. The error is a *KeyIDError.
func (s RootSigned) KeyIDByPrefix(prefix string) (string, error) {
	if len(prefix) == 64 {
		return prefix, nil
	}
	var found []string
	for id := range s.Keys {
		if strings.HasPrefix(id, prefix) {
			found = append(found, id)
		}
	}
	if len(found) != 1 {
		return "", &KeyIDError{Prefix: prefix, Matches: len(found)}
	}
	return found[0], nil
}

// CheckEditable checks that r may be the base of a new version: it is
// valid, or its only fault is that it expired (renewing an expired root is
// how it is mended). The error is a *RootError.
func (r *Root) CheckEditable(now time.Time) error {
	err := r.Verify(now)
	var re *RootError
	if err != nil && errors.As(err, &re) && re.Kind == RootExpired {
		return nil
	}
	return err
}

// Next returns the contents of the next version of r: the same keys,
// roles, thresholds and revoked keys, one version up, expiring at expires,
// changed by edit (which may be nil). Sign the result with SignNext.
func (r *Root) Next(expires time.Time, edit func(*RootSigned) error) (RootSigned, error) {
	signed := r.Signed()
	signed.Version++
	signed.SetExpires(expires)
	if edit != nil {
		if err := edit(&signed); err != nil {
			return RootSigned{}, err
		}
	}
	return signed, nil
}

// SignNext signs next (made by r.Next) with signers and judges it as a
// device holding r would. err is a failure to sign; verdict, when not nil,
// is why a device holding r would refuse next (a *RootError: for example
// RootBelowThreshold when more signatures are needed), and next is still
// returned so that it can be written for others to sign.
func (r *Root) SignNext(next RootSigned, now time.Time, signers ...*Signer) (root *Root, verdict, err error) {
	root, err = SignRoot(next, signers...)
	if err != nil {
		return nil, nil, err
	}
	_, verdict = UpdateRoot(r, root.Bytes(), now)
	return root, verdict, nil
}
