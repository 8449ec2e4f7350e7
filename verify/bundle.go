package verify

import (
	"fmt"
	"io"

	"filippo.io/age"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
)

// Policy is what a bundle must satisfy to be trusted.
type Policy struct {
	Keys      []*PublicKey
	Threshold int // distinct keys that must sign; at least 1
	// Revoked lists key ids whose signatures never count and show as
	// Revoked (a trust root's revoked keys; see Root.Policy).
	Revoked []string
	// DeviceType, when set, must be one the bundle names.
	DeviceType string
	// Deep also decompresses every payload and checks its content digest;
	// without it payloads are checked by their signed layer digests, which
	// is what makes them trustworthy, at the speed of SHA-256.
	Deep bool
	// Identities decrypt encrypted payloads for Deep (bundle/FORMAT.md
	// §6.3); one must be a recipient. Without Deep they are not needed:
	// the parts are checked as ciphertext.
	Identities []age.Identity
}

// DeviceTypeError says that a bundle is not meant for this device.
type DeviceTypeError struct {
	Want string
	Have []string
}

func (e *DeviceTypeError) Error() string {
	return fmt.Sprintf("bundle is for device types %v, not %q", e.Have, e.Want)
}

// PayloadReport is the outcome of checking one payload.
type PayloadReport struct {
	bundle.Payload
	Verified bool `json:"verified"`
}

// What Bundle checked (Report.Checked), in the order it checks them. A
// verdict means no more than the checks listed beside it.
const (
	CheckedSignatures = "signatures"      // threshold of trusted keys over the manifest
	CheckedDeviceType = "device type"     // the policy's device type is one the bundle names
	CheckedParts      = "payload parts"   // every part against its signed layer digest
	CheckedContent    = "payload content" // every payload decompressed against its signed size and digest (Deep)
	CheckedEnd        = "archive end"     // nothing after the signed members (FORMAT.md §3.5)
)

// Report is the outcome of Bundle.
type Report struct {
	Manifest   digest.Digest   `json:"manifest"`
	Config     *bundle.Config  `json:"config"`
	Signatures *Result         `json:"signatures,omitempty"`
	Payloads   []PayloadReport `json:"payloads"`
	// Checked lists the checks that passed, from the Checked constants.
	Checked []string `json:"checked"`
}

// CheckHead judges what NewReader has read: the signatures over the manifest
// and the device type. Nothing in the payloads may be trusted before it
// returns nil.
func CheckHead(r *bundle.Reader, p Policy) (*Result, error) {
	res, err := checkSignatures(r.ManifestDigest(), r.Signatures(), p.Keys, p.Threshold, p.Revoked)
	if err != nil {
		return res, err
	}
	if p.DeviceType != "" && !r.Config().Fits(p.DeviceType) {
		return res, &DeviceTypeError{Want: p.DeviceType, Have: r.Config().DeviceTypes}
	}
	return res, nil
}

// Bundle checks a whole bundle stream in one pass: its signatures and device
// type first, then every payload's digests. The report is filled as far as
// the check got, also when it returns an error.
func Bundle(src io.Reader, p Policy) (*Report, error) {
	r, err := bundle.NewReader(src)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	rep := &Report{Manifest: r.ManifestDigest(), Config: r.Config()}
	for _, pl := range r.Config().Payloads {
		rep.Payloads = append(rep.Payloads, PayloadReport{Payload: pl})
	}
	rep.Checked = []string{}
	rep.Signatures, err = CheckHead(r, p)
	if rep.Signatures != nil && rep.Signatures.OK() {
		rep.Checked = append(rep.Checked, CheckedSignatures)
	}
	if err != nil {
		return rep, err
	}
	if p.DeviceType != "" {
		rep.Checked = append(rep.Checked, CheckedDeviceType)
	}
	if p.Deep {
		if err := r.Unlock(p.Identities...); err != nil {
			return rep, err
		}
	}
	for i := range rep.Payloads {
		pr, err := r.Next()
		if err != nil {
			return rep, err
		}
		if p.Deep {
			_, err = io.Copy(io.Discard, pr)
		} else {
			err = pr.Discard()
		}
		if err != nil {
			return rep, err
		}
		rep.Payloads[i].Verified = true
	}
	// Read to the end: bytes the signed manifest does not account for
	// are refused, so other tar readers see nothing ferry did not check.
	rep.Checked = append(rep.Checked, CheckedParts)
	if p.Deep {
		rep.Checked = append(rep.Checked, CheckedContent)
	}
	if err := r.Finish(); err != nil {
		return rep, err
	}
	rep.Checked = append(rep.Checked, CheckedEnd)
	return rep, nil
}
