package verify

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/ferry-update/ferry/bundle"
)

// Status is the verdict on one signature.
type Status string

// Signature verdicts.
const (
	Valid        Status = "valid"
	BadSignature Status = "bad-signature" // made by no key we know, or altered
	UnknownKey   Status = "unknown-key"   // claims a key id we do not hold
	WrongDigest  Status = "wrong-digest"  // a valid signature over another manifest
	Malformed    Status = "malformed"     // the payload is not a cosign payload
	Duplicate    Status = "duplicate"     // a second valid signature by the same key
	Revoked      Status = "revoked"       // by a key the trust root revoked; never counts
)

// SignatureResult is what CheckSignatures found out about one signature.
type SignatureResult struct {
	KeyID     string    `json:"keyId,omitempty"`
	Algorithm Algorithm `json:"algorithm,omitempty"`
	// Owner and Purpose are what the trust root says of the key that made
	// the signature (empty without a trust root, or for a key it does not
	// list). Signer, by contrast, is what the signature claims.
	Owner    string    `json:"owner,omitempty"`
	Purpose  string    `json:"purpose,omitempty"`
	Signer   string    `json:"signer,omitempty"`
	SignedAt time.Time `json:"signedAt,omitzero"`
	Status   Status    `json:"status"`
	Reason   string    `json:"reason,omitempty"`
}

// Result is the verdict on a bundle's signatures.
type Result struct {
	Manifest   digest.Digest     `json:"manifest"`
	Signatures []SignatureResult `json:"signatures"`
	ValidKeys  int               `json:"validKeys"`
	Threshold  int               `json:"threshold"`
}

// OK reports whether enough distinct keys signed.
func (r *Result) OK() bool { return r.ValidKeys >= r.Threshold && r.Threshold > 0 }

// ThresholdError says that too few distinct trusted keys signed.
type ThresholdError struct {
	Manifest digest.Digest
	Have     int
	Need     int
	// Revoked lists the revoked keys that signed; their signatures did not
	// count.
	Revoked []string
	// Owners are the owners the trust root names for the keys above, by
	// key id.
	Owners map[string]string
}

func (e *ThresholdError) Error() string {
	msg := fmt.Sprintf("manifest %s: %d valid signature(s) from trusted keys, %d required", e.Manifest, e.Have, e.Need)
	if len(e.Revoked) > 0 {
		ids := make([]string, len(e.Revoked))
		for i, id := range e.Revoked {
			ids[i] = short(id)
			if o := e.Owners[id]; o != "" {
				ids[i] += " (" + o + ")"
			}
		}
		msg += fmt.Sprintf("; signature(s) by revoked key(s) %s do not count", strings.Join(ids, ", "))
	}
	return msg
}

// ErrNoKeys is returned when there is nothing to check signatures against.
var ErrNoKeys = errors.New("no trusted public keys given")

// CheckSignatures judges sigs over manifest against keys. It returns the
// per-signature verdicts and, when fewer than threshold distinct keys made a
// valid signature, a *ThresholdError.
func CheckSignatures(manifest digest.Digest, sigs []bundle.Signature, keys []*PublicKey, threshold int) (*Result, error) {
	return checkSignatures(manifest, sigs, keys, threshold, nil)
}

// checkSignatures is CheckSignatures where the keys listed in revoked never
// count: a signature by one has status Revoked.
func checkSignatures(manifest digest.Digest, sigs []bundle.Signature, keys []*PublicKey, threshold int, revoked []string) (*Result, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	if threshold < 1 {
		threshold = 1
	}
	if threshold > len(keys) {
		return nil, fmt.Errorf("threshold %d is more than the %d trusted key(s): it can never be met", threshold, len(keys))
	}
	res := &Result{Manifest: manifest, Threshold: threshold}
	seen := map[string]bool{}
	var revokedSigners []string
	for _, s := range sigs {
		r := checkOne(manifest, s, keys)
		if slices.Contains(revoked, r.KeyID) && r.Status != Malformed && r.Status != BadSignature {
			r = revokedResult(r)
			if !slices.Contains(revokedSigners, r.KeyID) {
				revokedSigners = append(revokedSigners, r.KeyID)
			}
		}
		if r.Status == Revoked && r.Owner == "" {
			r.Owner, r.Purpose = ownerOf(keys, r.KeyID)
		}
		if r.Status == Valid {
			if seen[r.KeyID] {
				r.Status = Duplicate
			} else {
				seen[r.KeyID] = true
				res.ValidKeys++
			}
		}
		res.Signatures = append(res.Signatures, r)
	}
	if !res.OK() {
		owners := map[string]string{}
		for _, k := range keys {
			if k.Owner != "" && slices.Contains(revokedSigners, k.ID) {
				owners[k.ID] = k.Owner
			}
		}
		return res, &ThresholdError{Manifest: manifest, Have: res.ValidKeys, Need: threshold, Revoked: revokedSigners, Owners: owners}
	}
	return res, nil
}

// revokedResult turns the verdict on a signature by a revoked key into
// Revoked. A valid signature (or one over another manifest) was made by the
// key; an unknown-key one only claims it, the key being no longer listed.
func revokedResult(r SignatureResult) SignatureResult {
	if r.Status == UnknownKey {
		r.Reason = "signed by key " + short(r.KeyID) + ", which the trust root revoked (signature not checked)"
	} else {
		r.Reason = "key " + short(r.KeyID) + " was revoked by the trust root"
	}
	r.Status = Revoked
	return r
}

func checkOne(manifest digest.Digest, s bundle.Signature, keys []*PublicKey) SignatureResult {
	payload, err := bundle.ParseSimpleSigning(s.Payload)
	if err != nil {
		return SignatureResult{Status: Malformed, Reason: err.Error()}
	}
	c := claimsOf(payload)
	r := SignatureResult{KeyID: c.KeyID, Signer: c.Signer, SignedAt: c.SignedAt}
	// The key id claim is only a hint to find the key; the signature check
	// below is what counts. Signatures made by cosign carry no hint, so
	// every key is tried.
	candidates := keys
	if r.KeyID != "" {
		candidates = nil
		for _, k := range keys {
			if k.ID == r.KeyID {
				candidates = append(candidates, k)
			}
		}
		if len(candidates) == 0 {
			r.Status, r.Reason = UnknownKey, "signed by key "+short(r.KeyID)+", which is not trusted"
			return r
		}
	}
	var signer *PublicKey
	for _, k := range candidates {
		if verifyWith(k, s) == nil {
			signer = k
			break
		}
	}
	if signer == nil {
		r.Status, r.Reason = BadSignature, "signature does not verify with any trusted key"
		if r.KeyID != "" {
			r.Reason = "signature does not verify with key " + short(r.KeyID) + " (altered payload or signature)"
		}
		return r
	}
	r.KeyID, r.Algorithm, r.Owner, r.Purpose = signer.ID, signer.Algorithm, signer.Owner, signer.Purpose
	if got := payload.Critical.Image.DockerManifestDigest; got != manifest.String() {
		r.Status, r.Reason = WrongDigest, "signature is for manifest "+got
		return r
	}
	r.Status = Valid
	return r
}

// ownerOf is what keys say of key id.
func ownerOf(keys []*PublicKey, id string) (owner, purpose string) {
	for _, k := range keys {
		if k.ID == id {
			return k.Owner, k.Purpose
		}
	}
	return "", ""
}

func verifyWith(k *PublicKey, s bundle.Signature) error {
	v, err := signature.LoadDefaultVerifier(k.Key)
	if err != nil {
		return err
	}
	return v.VerifySignature(bytes.NewReader(s.Sig), bytes.NewReader(s.Payload))
}

func short(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}
