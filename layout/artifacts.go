package layout

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/transport/oci"
)

// CosignSignatureArtifactType is the artifactType of a cosign signature
// stored as an OCI 1.1 referrer of the manifest it signs.
const CosignSignatureArtifactType = oci.CosignSignatureArtifactType

// emptyConfig is the OCI 1.1 empty descriptor's content.
var emptyConfig = []byte("{}")

// Artifact is a manifest and the blobs it needs, ready to store or push.
type Artifact struct {
	Manifest  []byte
	MediaType string
	Blobs     map[digest.Digest]Blob
}

// Blob is one blob of an Artifact.
type Blob struct {
	MediaType string
	Data      []byte
}

// Digest is the manifest's digest.
func (a *Artifact) Digest() digest.Digest { return digest.FromBytes(a.Manifest) }

// Descriptor describes the manifest.
func (a *Artifact) Descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: a.MediaType, Digest: a.Digest(), Size: int64(len(a.Manifest))}
}

// SignatureArtifact is the cosign tag-scheme manifest for sigs.
func SignatureArtifact(sigs []bundle.Signature) (*Artifact, error) {
	sa, err := bundle.NewSignatureArtifact(sigs)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(sa.Manifest)
	if err != nil {
		return nil, err
	}
	a := &Artifact{Manifest: sa.Manifest, MediaType: bundle.ManifestMediaType, Blobs: map[digest.Digest]Blob{}}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		a.Blobs[d.Digest] = Blob{MediaType: d.MediaType, Data: sa.Blobs[d.Digest]}
	}
	return a, nil
}

// ReferrerArtifacts returns one OCI 1.1 referrer manifest per signature,
// each with subject = the bundle manifest. One per signature keeps them
// immutable and deterministic: pushing again is a no-op, and two signers
// add two referrers instead of racing to rewrite one.
func ReferrerArtifacts(subject ocispec.Descriptor, sigs []bundle.Signature) ([]*Artifact, error) {
	var out []*Artifact
	for _, s := range sigs {
		layer := ocispec.Descriptor{
			MediaType:   bundle.SimpleSigningType,
			Digest:      digest.FromBytes(s.Payload),
			Size:        int64(len(s.Payload)),
			Annotations: map[string]string{bundle.CosignSigAnnotation: base64.StdEncoding.EncodeToString(s.Sig)},
		}
		for k, v := range s.Annotations {
			layer.Annotations[k] = v
		}
		a, err := referrer(subject, CosignSignatureArtifactType, layer, s.Payload)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// AttachmentReferrer is the OCI 1.1 referrer that makes an attachment (an
// SBOM) discoverable beside the bundle: artifactType = its media type, its
// one layer = the attachment blob, which is also a layer of the bundle.
func AttachmentReferrer(subject ocispec.Descriptor, at bundle.AttachmentData) (*Artifact, error) {
	layer := ocispec.Descriptor{MediaType: at.MediaType, Digest: at.Digest, Size: at.Size,
		Annotations: map[string]string{ocispec.AnnotationTitle: at.Name, bundle.AttachmentNameAnnotation: at.Name}}
	return referrer(subject, at.MediaType, layer, at.Data)
}

// referrer is a manifest with the empty config and one layer (data),
// pointing at subject.
func referrer(subject ocispec.Descriptor, artifactType string, layer ocispec.Descriptor, data []byte) (*Artifact, error) {
	empty := ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: digest.FromBytes(emptyConfig), Size: int64(len(emptyConfig))}
	raw, err := json.Marshal(&ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       empty,
		Layers:       []ocispec.Descriptor{layer},
		Subject:      &ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
	})
	if err != nil {
		return nil, fmt.Errorf("encode referrer: %w", err)
	}
	return &Artifact{Manifest: raw, MediaType: ocispec.MediaTypeImageManifest, Blobs: map[digest.Digest]Blob{
		empty.Digest: {MediaType: empty.MediaType, Data: emptyConfig},
		layer.Digest: {MediaType: layer.MediaType, Data: data},
	}}, nil
}

// ParseManifest decodes an OCI image manifest.
func ParseManifest(raw []byte) (*ocispec.Manifest, error) {
	var m ocispec.Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	return &m, nil
}
