// Package assign is the mirror's per-device assignment (docs/fleet.md,
// "Assignments"), in the manner of Uptane's director: the mirror tells a
// device what to install in a small statement — device id, bundle name,
// version and manifest digest, deployment, counter, expiry — signed with
// the mirror's assignment key in a DSSE envelope. The device fetches it
// by POSTing its signed check-in to Path, verifies it with the keys the
// mirror's signed TUF targets publish (tufclient.Targets.AssignmentKeys),
// and refuses one that is not for it, not for this mirror, expired, or
// older than the last it accepted. An assignment only chooses among
// bundles: the device still requires the bundle's release signatures
// and its trust root, so a stolen assignment key can make a device
// install nothing its release keys did not sign.
//
// It needs only the standard library and package checkin (for the DSSE
// envelope), so the agent can import it.
package assign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/ferry-update/ferry/transport/checkin"
)

// PayloadType names version 1 of the assignment.
const PayloadType = "application/vnd.ferry.assignment.v1+json"

// Path is where a device POSTs its signed check-in to get its
// assignment: 200 with the envelope, 204 when it has none.
const Path = "/ferry/v1/assignment"

// Limits.
const (
	// MaxEnvelopeSize bounds an assignment's envelope.
	MaxEnvelopeSize = 16 << 10
	// MaxValidity bounds how long an assignment is valid: a device
	// refuses one whose expiry is further from its issue.
	MaxValidity = 180 * 24 * time.Hour
	// MaxSignatures bounds the signatures an envelope may carry.
	MaxSignatures = 4
)

// Assignment is what the mirror tells one device to install.
type Assignment struct {
	// Mirror is the id of the mirror that issued it (checkin.MirrorID).
	Mirror string `json:"mirror"`
	// Device is the id of the device it is for.
	Device     string `json:"device"`
	Deployment int64  `json:"deployment"`
	Bundle     string `json:"bundle"`
	Version    string `json:"version"`
	// Digest is the manifest digest of the bundle: the device installs
	// that manifest and no other.
	Digest string `json:"digest"`
	// Counter rises with each new assignment of the device (the mirror's
	// time of it, in Unix milliseconds): the device refuses one lower
	// than the last it accepted.
	Counter uint64    `json:"counter"`
	Issued  time.Time `json:"issued"`
	Expires time.Time `json:"expires"`
}

// Reason is why a device refuses an assignment.
type Reason string

// The reasons.
const (
	Malformed    Reason = "malformed"     // not a valid assignment
	BadSignature Reason = "bad-signature" // not signed by an assignment key the mirror's metadata names
	Foreign      Reason = "foreign"       // for another device or mirror
	Expired      Reason = "expired"       // past its expiry by the device's clock
	Replayed     Reason = "replayed"      // a counter below the last accepted
)

// Error is an assignment a device refuses.
type Error struct {
	Reason Reason
	Msg    string
}

func (e *Error) Error() string { return "assignment refused (" + string(e.Reason) + "): " + e.Msg }

func refuse(r Reason, format string, a ...any) *Error {
	return &Error{Reason: r, Msg: fmt.Sprintf(format, a...)}
}

var (
	hexIDRE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	digestRE  = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	bundleRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)
	versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_-]{0,127}$`)
)

// Validate checks every field of a but the signature.
func (a *Assignment) Validate() error {
	switch {
	case !hexIDRE.MatchString(a.Mirror):
		return refuse(Malformed, "mirror: want 64 lower-case hex digits")
	case !hexIDRE.MatchString(a.Device):
		return refuse(Malformed, "device: want 64 lower-case hex digits")
	case a.Deployment <= 0:
		return refuse(Malformed, "deployment: want a positive number")
	case !bundleRE.MatchString(a.Bundle):
		return refuse(Malformed, "bundle: want a bundle name")
	case !versionRE.MatchString(a.Version):
		return refuse(Malformed, "version: want a version such as 1.4.2")
	case !digestRE.MatchString(a.Digest):
		return refuse(Malformed, "digest: want sha256:<64 hex>")
	case a.Counter == 0 || a.Counter > checkin.MaxCounter:
		return refuse(Malformed, "counter: want 1 to 2^63-1")
	case a.Issued.IsZero() || a.Expires.IsZero() || !a.Expires.After(a.Issued):
		return refuse(Malformed, "issued and expires: want two times, the expiry after the issue")
	case a.Expires.Sub(a.Issued) > MaxValidity:
		return refuse(Malformed, "valid for %s: at most %s", a.Expires.Sub(a.Issued).Round(time.Hour), MaxValidity)
	}
	return nil
}

// KeyID is the id of an assignment key: the hex SHA-256 of its DER
// SubjectPublicKeyInfo (what 'ferry key show' prints).
func KeyID(pub ed25519.PublicKey) string { return checkin.DeviceID(pub) }

// Sign signs a with the mirror's assignment key into a DSSE envelope.
func Sign(a *Assignment, key ed25519.PrivateKey) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("sign assignment: %w", err)
	}
	payload, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	env := checkin.Envelope{PayloadType: PayloadType, Payload: payload,
		Signatures: []checkin.Signature{{KeyID: KeyID(key.Public().(ed25519.PublicKey)), Sig: ed25519.Sign(key, checkin.PAE(PayloadType, payload))}}}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("sign assignment: %d bytes, more than %d", len(b), MaxEnvelopeSize)
	}
	return b, nil
}

// Open parses an assignment's envelope and verifies it: at least one
// signature by one of keys (the assignment keys the mirror's verified
// metadata names). It refuses with an *Error: Malformed, or BadSignature
// (no key, an unknown key, a signature that does not verify). Whether the
// assignment is for this device and mirror, current and fresh is Check's.
func Open(envelope []byte, keys []ed25519.PublicKey) (*Assignment, error) {
	if len(envelope) > MaxEnvelopeSize {
		return nil, refuse(Malformed, "%d bytes, more than %d", len(envelope), MaxEnvelopeSize)
	}
	var env checkin.Envelope
	if err := decodeObject(envelope, &env); err != nil {
		return nil, refuse(Malformed, "envelope: %v", err)
	}
	if env.PayloadType != PayloadType {
		return nil, refuse(Malformed, "payload type %.64q: want %s", env.PayloadType, PayloadType)
	}
	if len(env.Signatures) == 0 || len(env.Signatures) > MaxSignatures {
		return nil, refuse(Malformed, "%d signatures: want 1 to %d", len(env.Signatures), MaxSignatures)
	}
	if len(keys) == 0 {
		return nil, refuse(BadSignature, "the mirror's metadata names no assignment key: this mirror does not assign bundles (run 'ferry fleet' on it, or configure the device unmanaged)")
	}
	byID := map[string]ed25519.PublicKey{}
	for _, k := range keys {
		byID[KeyID(k)] = k
	}
	pae := checkin.PAE(env.PayloadType, env.Payload)
	verified := false
	for _, s := range env.Signatures {
		if k, ok := byID[s.KeyID]; ok && ed25519.Verify(k, pae, s.Sig) {
			verified = true
			break
		}
	}
	if !verified {
		ids := make([]string, 0, len(env.Signatures))
		for _, s := range env.Signatures {
			ids = append(ids, fmt.Sprintf("%.16s", s.KeyID))
		}
		return nil, refuse(BadSignature, "no valid signature by an assignment key the mirror's metadata names (signed by %v)", ids)
	}
	var a Assignment
	if err := decodeObject(env.Payload, &a); err != nil {
		return nil, refuse(Malformed, "payload: %v", err)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return &a, nil
}

// Check refuses an assignment that is not for device, not issued by one
// of mirrorIDs (the ids of the mirror the device trusts), expired at now
// (the device's clock), or whose counter is below last (the highest the
// device accepted before; the same counter is the same assignment again,
// with a later expiry).
func (a *Assignment) Check(device string, mirrorIDs []string, now time.Time, last uint64) error {
	switch {
	case a.Device != device:
		return refuse(Foreign, "it is for device %.16s, this is %.16s", a.Device, device)
	case !slices.Contains(mirrorIDs, a.Mirror):
		return refuse(Foreign, "issued by mirror %.16s, not the mirror this device trusts", a.Mirror)
	case !now.Before(a.Expires):
		return refuse(Expired, "expired at %s (device clock %s)", a.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case a.Counter < last:
		return refuse(Replayed, "counter %d is below %d, the last this device accepted: an old assignment", a.Counter, last)
	}
	return nil
}

// decodeObject decodes exactly one JSON object from b into v, refusing
// unknown fields (an assignment is small and its fields are all known).
func decodeObject(b []byte, v any) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errors.New("want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}
