package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/transport/oci"
	"github.com/ferry-update/ferry/verify"
)

// Verdicts of a bundle and of a whole report.
const (
	Pass = "pass"
	Fail = "fail"
)

// Options say how Run judges bundles.
type Options struct {
	// Root is the trust root: its release role's keys and threshold, and
	// its revoked keys, judge the signatures; its version and expiry are
	// reported, and an expired root fails every bundle. The caller checks
	// the root's own signatures (Root.Verify) before trusting it.
	Root *verify.Root
	// Keys and Threshold judge the signatures when Root is nil.
	Keys      []*verify.PublicKey
	Threshold int
	// Now is when the audit runs, what expiries are judged against; zero
	// means time.Now().
	Now time.Time
	// Tool names the program in the report, e.g. "ferry v1.2.0".
	Tool string
}

// Report is the outcome of an audit. Its JSON encoding is what
// `ferry audit --json` prints.
type Report struct {
	Tool      string          `json:"tool"`
	Generated time.Time       `json:"generated"`
	Target    string          `json:"target"`
	Kind      string          `json:"kind"` // KindFile, KindRegistry, KindMirror or KindStick
	Trust     Trust           `json:"trust"`
	Mirror    *MirrorMetadata `json:"mirror,omitempty"`
	Bundles   []BundleReport  `json:"bundles"`
	Skipped   []Skipped       `json:"skipped"` // what the target holds that is not a bundle
	Passed    int             `json:"passed"`
	Failed    int             `json:"failed"`
	// Verdict is Pass when every bundle passed (and there was at least
	// one), else Fail.
	Verdict string `json:"verdict"`
}

// OK reports whether the audit passed.
func (r *Report) OK() bool { return r.Verdict == Pass }

// Trust is what the bundles were judged against.
type Trust struct {
	Source      string    `json:"source"` // "trust root" or "keys"
	RootVersion int64     `json:"rootVersion,omitempty"`
	RootExpires time.Time `json:"rootExpires,omitzero"`
	RootExpired bool      `json:"rootExpired"`
	Role        string    `json:"role,omitempty"` // the root's role that signs bundles
	Threshold   int       `json:"threshold"`
	Keys        []Key     `json:"keys"`
	Revoked     []string  `json:"revoked"` // key ids the root revoked
}

// Key is a trusted key.
type Key struct {
	ID        string           `json:"id"`
	Algorithm verify.Algorithm `json:"algorithm"`
}

// Skipped is something a target holds that is not a ferry bundle (a
// container image in a registry repository, say).
type Skipped struct {
	Source string `json:"source"`
	Reason string `json:"reason"`
}

// BundleReport is everything the audit found about one bundle.
type BundleReport struct {
	Source        string        `json:"source"` // where it is: a path, oci://HOST/REPO:TAG, ...
	Name          string        `json:"name"`
	Version       string        `json:"version"`
	DeviceTypes   []string      `json:"deviceTypes"`
	Created       time.Time     `json:"created,omitzero"`
	Description   string        `json:"description,omitempty"`
	FormatVersion int           `json:"formatVersion,omitempty"`
	Manifest      digest.Digest `json:"manifest,omitempty"`
	// Provides and Depends are the config's (bundle/FORMAT.md §6.2).
	Provides map[string]string `json:"provides,omitempty"`
	Depends  []string          `json:"depends,omitempty"`
	Payloads []Payload         `json:"payloads"`
	// Encryption is set when payloads are encrypted (FORMAT.md §6.3):
	// to how many recipients, from the signed age header; no key needed.
	Encryption   *bundle.EncryptionInfo   `json:"encryption,omitempty"`
	Attachments  []Attachment             `json:"attachments"`
	SBOMs        int                      `json:"sboms"` // attachments that are SBOMs
	Signatures   []verify.SignatureResult `json:"signatures"`
	ValidKeys    int                      `json:"validKeys"`
	Threshold    int                      `json:"threshold"`
	ThresholdMet bool                     `json:"thresholdMet"`
	// Listed says whether the mirror's signed TUF targets list the bundle
	// with this manifest digest; nil when the source has no such metadata.
	Listed *bool `json:"listed,omitempty"`
	// Checked lists the checks that passed (verify's Checked constants):
	// a pass means no more than these.
	Checked  []string `json:"checked"`
	Verdict  string   `json:"verdict"`
	Reasons  []string `json:"reasons"`  // why it failed
	Warnings []string `json:"warnings"` // what does not fail it but deserves a look
}

// Payload is one payload and the digests that cover it.
type Payload struct {
	bundle.Payload
	Layers []Layer `json:"layers"`
	// Verified is true once every part matched its signed layer digest.
	Verified bool `json:"verified"`
}

// Layer is one part of a payload as the manifest lists it.
type Layer struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
}

// Attachment is a signed attachment (an SBOM, a trust root) and what it
// says of itself.
type Attachment struct {
	bundle.Attachment
	// Kind is AttachmentSBOM, AttachmentTrustRoot or AttachmentOther.
	Kind string `json:"kind"`
	// SBOM is set when the document is SPDX or CycloneDX JSON.
	SBOM *bundle.SBOM `json:"sbom,omitempty"`
	// RootVersion is the version of an attached trust root (0 when it
	// cannot be read; see the bundle's warnings).
	RootVersion int64 `json:"rootVersion,omitempty"`
}

// Kinds of attachment. Only SBOMs count as SBOMs: a bundle that carries
// the trust root introducing its keys (bundle/FORMAT.md §6.1) carries no
// SBOM by it.
const (
	AttachmentSBOM      = "sbom"
	AttachmentTrustRoot = "trust-root"
	AttachmentOther     = "other"
)

// attachment says what an attachment is: an SBOM by its content, a trust
// root by its media type (and then its version).
func (b *BundleReport) attachment(a bundle.AttachmentData) Attachment {
	at := Attachment{Attachment: a.Attachment, Kind: AttachmentOther}
	if a.MediaType == bundle.TrustRootMediaType {
		at.Kind = AttachmentTrustRoot
		if r, err := verify.ParseRoot(a.Data); err == nil {
			at.RootVersion = r.Version()
		} else {
			b.warn("attachment %s is labelled a trust root but %v", a.Name, err)
		}
		return at
	}
	if sb, err := bundle.DetectSBOM(a.Data); err == nil {
		at.Kind, at.SBOM = AttachmentSBOM, sb
		b.SBOMs++
		if sb.MediaType != a.MediaType {
			b.warn("attachment %s is labelled %s but its content is %s", a.Name, a.MediaType, sb.MediaType)
		}
	} else if a.MediaType == bundle.SPDXMediaType || a.MediaType == bundle.CycloneDXMediaType {
		b.warn("attachment %s is labelled %s but %v", a.Name, a.MediaType, err)
	}
	return at
}

func (b *BundleReport) fail(format string, a ...any) {
	b.Reasons = append(b.Reasons, fmt.Sprintf(format, a...))
}

func (b *BundleReport) warn(format string, a ...any) {
	b.Warnings = append(b.Warnings, fmt.Sprintf(format, a...))
}

// Run audits every bundle src holds. Its error is for a target that could
// not be listed at all, or options that cannot judge anything; a bundle
// that fails, even one that cannot be read, is in the report.
func Run(ctx context.Context, src Source, o Options) (*Report, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	policy, trust, err := judge(o, now)
	if err != nil {
		return nil, err
	}
	l, err := src.List(ctx)
	if err != nil {
		return nil, err
	}
	if l.Close != nil {
		defer l.Close()
	}
	rep := &Report{
		Tool: o.Tool, Generated: now.UTC().Truncate(time.Second), Target: l.Target, Kind: l.Kind,
		Trust: trust, Mirror: l.Mirror, Bundles: []BundleReport{}, Skipped: append([]Skipped{}, l.Skipped...),
	}
	for _, it := range l.Items {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b, skip := auditItem(ctx, it, policy, trust, l.Mirror)
		if skip != nil {
			rep.Skipped = append(rep.Skipped, *skip)
			continue
		}
		if len(b.Reasons) == 0 {
			b.Verdict = Pass
			rep.Passed++
		} else {
			b.Verdict = Fail
			rep.Failed++
		}
		rep.Bundles = append(rep.Bundles, b)
	}
	rep.Verdict = Fail
	if rep.Failed == 0 && rep.Passed > 0 {
		rep.Verdict = Pass
	}
	return rep, nil
}

// judge turns the options into the policy bundles are checked against.
func judge(o Options, now time.Time) (verify.Policy, Trust, error) {
	var p verify.Policy
	var t Trust
	switch {
	case o.Root != nil && len(o.Keys) > 0:
		return p, t, errors.New("audit: a trust root or keys, not both")
	case o.Root != nil:
		// Root.Policy refuses an expired root; an audit reports it
		// instead (and fails every bundle), so it asks as of the last
		// instant the root was valid.
		var err error
		if p, err = o.Root.Policy(verify.RoleRelease, o.Root.Expires().Add(-time.Nanosecond)); err != nil {
			return p, t, fmt.Errorf("audit: trust root: %w", err)
		}
		t = Trust{Source: "trust root", RootVersion: o.Root.Version(), RootExpires: o.Root.Expires(),
			RootExpired: !now.Before(o.Root.Expires()), Role: verify.RoleRelease, Revoked: append([]string{}, p.Revoked...)}
	case len(o.Keys) > 0:
		p = verify.Policy{Keys: o.Keys, Threshold: max(o.Threshold, 1)}
		t = Trust{Source: "keys", Revoked: []string{}}
	default:
		return p, t, errors.New("audit: no trust root and no keys: nothing to judge signatures against")
	}
	if p.Threshold > len(p.Keys) {
		return p, t, fmt.Errorf("audit: threshold %d is more than the %d trusted key(s)", p.Threshold, len(p.Keys))
	}
	t.Threshold = p.Threshold
	for _, k := range p.Keys {
		t.Keys = append(t.Keys, Key{ID: k.ID, Algorithm: k.Algorithm})
	}
	return p, t, nil
}

// auditItem reads one bundle in one pass: head, signatures, then every
// payload part against its signed digest. It returns a Skipped instead
// when the item turns out not to be a bundle at all.
func auditItem(ctx context.Context, it Item, p verify.Policy, t Trust, mm *MirrorMetadata) (BundleReport, *Skipped) {
	b := BundleReport{Source: it.Ref, Name: it.Name, Version: it.Version, DeviceTypes: []string{},
		Payloads: []Payload{}, Attachments: []Attachment{}, Signatures: []verify.SignatureResult{},
		Threshold: p.Threshold, Reasons: []string{}, Warnings: []string{}, Checked: []string{}}
	if it.Err != nil {
		b.fail("%v", it.Err)
		return b, nil
	}
	rc, err := it.Open(ctx)
	var nb *oci.NotBundleError
	if errors.As(err, &nb) {
		return b, &Skipped{Source: it.Ref, Reason: nb.Error()}
	}
	if err != nil {
		b.fail("cannot read the bundle: %v", err)
		return b, nil
	}
	defer rc.Close()
	r, err := bundle.NewReader(rc)
	if err != nil {
		b.fail("%v", err)
		return b, nil
	}
	defer r.Close()
	if it.Pin && !strings.Contains(b.Source, "@") {
		b.Source += "@" + r.ManifestDigest().String()
	}
	cfg := r.Config()
	b.Name, b.Version, b.DeviceTypes, b.Created, b.Description = cfg.Name, cfg.Version, cfg.DeviceTypes, cfg.Created, cfg.Description
	b.FormatVersion, b.Manifest = cfg.FormatVersion, r.ManifestDigest()
	b.Provides, b.Depends = cfg.Provides, cfg.Depends
	layers := r.Manifest().Layers[len(cfg.Attachments):]
	for _, pl := range cfg.Payloads {
		py := Payload{Payload: pl, Layers: []Layer{}}
		for _, l := range layers[:pl.Parts] {
			py.Layers = append(py.Layers, Layer{Digest: l.Digest, Size: l.Size})
		}
		layers = layers[pl.Parts:]
		b.Payloads = append(b.Payloads, py)
	}
	b.Encryption = r.Encryption()
	for _, a := range r.Attachments() {
		if a.MediaType == bundle.AgeHeaderMediaType {
			continue // key material, reported as Encryption
		}
		b.Attachments = append(b.Attachments, b.attachment(a))
	}

	// Signatures, as the device judges them.
	res, err := verify.CheckHead(r, p)
	if res != nil {
		b.Signatures = append(b.Signatures, res.Signatures...)
		b.ValidKeys, b.Threshold = res.ValidKeys, res.Threshold
		b.ThresholdMet = res.OK()
		if b.ThresholdMet {
			b.Checked = append(b.Checked, verify.CheckedSignatures)
		}
	}
	if err != nil {
		b.fail("signatures: %v", err)
	}
	if len(b.Signatures) == 0 {
		b.warn("the bundle carries no signatures")
	}
	for i, s := range b.Signatures {
		if s.Status == verify.Valid || !b.ThresholdMet {
			continue // below the threshold, the failure says it all
		}
		b.warn("signature %d does not count (%s): %s", i+1, s.Status, s.Reason)
	}
	if t.RootExpired {
		b.fail("trust root version %d expired at %s", t.RootVersion, t.RootExpires.UTC().Format(time.RFC3339))
	}

	// The mirror's signed metadata, as a device pulling from it checks it.
	if mm != nil && mm.Error != "" {
		b.fail("%s", mm.Error)
	}
	if it.Check != nil {
		listed := true
		if err := it.Check(cfg.Name, cfg.Version, r.ManifestDigest()); err != nil {
			listed = false
			b.fail("%v", err)
		}
		b.Listed = &listed
	}

	// Every payload part against its signed layer digest.
	for i := range b.Payloads {
		pr, err := r.Next()
		if err == nil {
			err = pr.Discard()
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("payload %q: %w", b.Payloads[i].Name, bundle.ErrTruncated)
			}
			b.fail("%v", err)
			break // the stream is broken: later payloads cannot be read
		}
		b.Payloads[i].Verified = true
	}
	if len(b.Payloads) == 0 || b.Payloads[len(b.Payloads)-1].Verified {
		b.Checked = append(b.Checked, verify.CheckedParts)
		// The end of the archive: nothing a tar reader could see
		// beyond the signed members.
		if err := r.Finish(); err != nil {
			b.fail("%v", err)
		} else {
			b.Checked = append(b.Checked, verify.CheckedEnd)
		}
	}
	return b, nil
}
