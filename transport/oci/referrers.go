package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
)

// CosignSignatureArtifactType is the artifactType of a cosign signature
// stored as an OCI 1.1 referrer of the manifest it signs: an image
// manifest with the empty config and one simple-signing layer carrying the
// signature in its dev.cosignproject.cosign/signature annotation.
const CosignSignatureArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"

// maxReferrers bounds how many referrer manifests a pull fetches while
// looking for signatures.
const maxReferrers = 4 * bundle.MaxSignatures

// referrerLister is what FetchSignatures needs, beyond a Source, to read
// signatures stored as referrers. *Repository implements it.
type referrerLister interface {
	Referrers(ctx context.Context, d digest.Digest, artifactType string) ([]ocispec.Descriptor, error)
}

// FetchReferrerSignatures fetches the cosign signatures stored as OCI 1.1
// referrers of manifest d. A source without a Referrers method, or a
// registry without the referrers API, has none.
func FetchReferrerSignatures(ctx context.Context, src Source, d digest.Digest) ([]bundle.Signature, error) {
	rl, ok := src.(referrerLister)
	if !ok {
		return nil, nil
	}
	// Unfiltered: some registries (go-containerregistry's) report the
	// config media type as artifactType, so the manifest decides.
	descs, err := rl.Referrers(ctx, d, "")
	if errors.Is(err, ErrReferrersUnsupported) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("signature referrers of %s: %w", d, err)
	}
	var sigs []bundle.Signature
	n := 0
	for _, desc := range descs {
		if desc.MediaType != ocispec.MediaTypeImageManifest {
			continue
		}
		if at := desc.ArtifactType; at != "" && at != CosignSignatureArtifactType && at != ocispec.MediaTypeEmptyJSON {
			continue
		}
		if n++; n > maxReferrers {
			return nil, fmt.Errorf("signature referrers of %s: more than %d candidates", d, maxReferrers)
		}
		s, err := fetchReferrerSignature(ctx, src, d, desc)
		if err != nil {
			return nil, fmt.Errorf("signature referrer %s: %w", desc.Digest, err)
		}
		if s != nil {
			sigs = append(sigs, *s)
		}
	}
	return sigs, nil
}

// fetchReferrerSignature fetches one referrer and returns its signature,
// or nil when it is some other kind of artifact.
func fetchReferrerSignature(ctx context.Context, src Source, subject digest.Digest, desc ocispec.Descriptor) (*bundle.Signature, error) {
	if desc.Size > bundle.MaxSigManifestSize {
		return nil, fmt.Errorf("manifest of %d bytes exceeds the limit of %d", desc.Size, bundle.MaxSigManifestSize)
	}
	raw, _, err := src.Manifest(ctx, desc.Digest.String())
	if err != nil {
		return nil, err
	}
	if len(raw) > bundle.MaxSigManifestSize {
		return nil, fmt.Errorf("manifest of %d bytes exceeds the limit of %d", len(raw), bundle.MaxSigManifestSize)
	}
	if got := digest.FromBytes(raw); got != desc.Digest {
		return nil, fmt.Errorf("content digest is %s", got)
	}
	var m ocispec.Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if m.ArtifactType != CosignSignatureArtifactType {
		return nil, nil
	}
	if m.SchemaVersion != 2 || m.MediaType != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("schemaVersion %d mediaType %q: want 2 and %q", m.SchemaVersion, m.MediaType, ocispec.MediaTypeImageManifest)
	}
	if m.Subject == nil || m.Subject.Digest != subject {
		return nil, fmt.Errorf("subject is not %s", subject)
	}
	if len(m.Layers) != 1 {
		return nil, fmt.Errorf("%d layers, want 1", len(m.Layers))
	}
	l := m.Layers[0]
	if l.MediaType != bundle.SimpleSigningType {
		return nil, fmt.Errorf("layer type %q, want %q", l.MediaType, bundle.SimpleSigningType)
	}
	if l.Size > bundle.MaxSigPayloadSize {
		return nil, fmt.Errorf("payload of %d bytes exceeds the limit of %d", l.Size, bundle.MaxSigPayloadSize)
	}
	sig, err := base64.StdEncoding.DecodeString(l.Annotations[bundle.CosignSigAnnotation])
	if err != nil {
		return nil, fmt.Errorf("signature annotation is not base64: %w", err)
	}
	if len(sig) == 0 || len(sig) > bundle.MaxSignatureBytes {
		return nil, fmt.Errorf("signature of %d bytes: want 1 to %d", len(sig), bundle.MaxSignatureBytes)
	}
	p, err := FetchBlob(ctx, src, l)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	ann := map[string]string{}
	for k, v := range l.Annotations {
		if k != bundle.CosignSigAnnotation {
			ann[k] = v
		}
	}
	return &bundle.Signature{Payload: p, Sig: sig, Annotations: ann}, nil
}

// MergeSignatures returns old followed by every signature of add that old
// does not already hold (same payload and same signature bytes), and how
// many were new.
func MergeSignatures(old, add []bundle.Signature) ([]bundle.Signature, int) {
	seen := map[[32]byte]bool{}
	key := func(s bundle.Signature) [32]byte {
		h := sha256.New()
		p := sha256.Sum256(s.Payload)
		h.Write(p[:])
		h.Write(s.Sig)
		var k [32]byte
		copy(k[:], h.Sum(nil))
		return k
	}
	out := make([]bundle.Signature, 0, len(old)+len(add))
	for _, s := range old {
		if k := key(s); !seen[k] {
			seen[k] = true
			out = append(out, s)
		}
	}
	n := 0
	for _, s := range add {
		if k := key(s); !seen[k] {
			seen[k] = true
			out = append(out, s)
			n++
		}
	}
	return out, n
}
