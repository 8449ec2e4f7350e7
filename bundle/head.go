package bundle

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// blob is a small JSON or signature blob written in the head of the archive.
type blob struct {
	desc ocispec.Descriptor
	data []byte
}

func newBlob(mediaType string, data []byte) blob {
	return blob{
		desc: ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))},
		data: data,
	}
}

func blobName(d digest.Digest) string {
	return "blobs/" + string(d.Algorithm()) + "/" + d.Encoded()
}

// head is everything in front of the payloads: the members a reader checks
// before it trusts a payload byte.
type head struct {
	manifest    blob
	config      blob
	sigs        []Signature
	attachments []blob // in config order, after the signature blobs
	tag         string
}

// newHead builds the head of a bundle whose config lists atts (in order)
// and whose payload parts are layers.
func newHead(cfg *Config, atts []AttachmentData, layers []ocispec.Descriptor) (*head, error) {
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	config := newBlob(ConfigMediaType, cfgJSON)
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ManifestMediaType,
		ArtifactType: ArtifactType,
		Config:       config.desc,
		Layers:       append(attachmentLayers(cfg.Attachments), layers...),
		Annotations: map[string]string{
			ocispec.AnnotationTitle:   cfg.Name,
			ocispec.AnnotationVersion: cfg.Version,
			ocispec.AnnotationCreated: cfg.Created.UTC().Format(time.RFC3339),
		},
	}
	mJSON, err := json.Marshal(&m)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return &head{manifest: newBlob(ManifestMediaType, mJSON), config: config, attachments: attachmentBlobs(atts), tag: cfg.Tag()}, nil
}

func attachmentLayers(as []Attachment) []ocispec.Descriptor {
	var ls []ocispec.Descriptor
	for _, a := range as {
		ls = append(ls, a.layer())
	}
	return ls
}

func attachmentBlobs(as []AttachmentData) []blob {
	var bs []blob
	for _, a := range as {
		bs = append(bs, blob{desc: a.layer(), data: a.Data})
	}
	return bs
}

// signatureBlobs builds the cosign signature manifest, its config and its
// layers (one simple-signing payload per signature).
func (h *head) signatureBlobs() (manifest blob, rest []blob, err error) {
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	seen := map[digest.Digest]bool{}
	var payloads []blob
	for _, s := range h.sigs {
		b := newBlob(SimpleSigningType, s.Payload)
		d := b.desc
		d.Annotations = map[string]string{}
		for k, v := range s.Annotations {
			d.Annotations[k] = v
		}
		d.Annotations[CosignSigAnnotation] = encodeSig(s.Sig)
		layers = append(layers, d)
		diffIDs = append(diffIDs, d.Digest)
		if !seen[d.Digest] {
			seen[d.Digest] = true
			payloads = append(payloads, b)
		}
	}
	cfg := ocispec.Image{
		Platform: ocispec.Platform{},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	cfgJSON, err := json.Marshal(&cfg)
	if err != nil {
		return blob{}, nil, fmt.Errorf("encode signature config: %w", err)
	}
	config := newBlob(SigConfigMediaType, cfgJSON)
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ManifestMediaType,
		Config:    config.desc,
		Layers:    layers,
	}
	mJSON, err := json.Marshal(&m)
	if err != nil {
		return blob{}, nil, fmt.Errorf("encode signature manifest: %w", err)
	}
	return newBlob(ManifestMediaType, mJSON), append([]blob{config}, payloads...), nil
}

// encode returns the head as tar members, padded to a 512-byte boundary,
// without the end-of-archive marker.
func (h *head) encode(mtime time.Time) ([]byte, error) {
	bundleDesc := h.manifest.desc
	bundleDesc.ArtifactType = ArtifactType
	bundleDesc.Annotations = map[string]string{RefNameAnnotation: h.tag}
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: IndexMediaType,
		Manifests: []ocispec.Descriptor{bundleDesc},
	}
	members := []blob{h.manifest, h.config}
	if len(h.sigs) > 0 {
		sigManifest, rest, err := h.signatureBlobs()
		if err != nil {
			return nil, err
		}
		sigDesc := sigManifest.desc
		sigDesc.Annotations = map[string]string{RefNameAnnotation: SignatureTag(h.manifest.desc.Digest)}
		idx.Manifests = append(idx.Manifests, sigDesc)
		members = append(members, sigManifest)
		members = append(members, rest...)
	}
	members = append(members, h.attachments...)
	idxJSON, err := json.Marshal(&idx)
	if err != nil {
		return nil, fmt.Errorf("encode index: %w", err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(fileHeader(name, int64(len(data)), mtime)); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return nil, err
	}
	if err := add("index.json", idxJSON); err != nil {
		return nil, err
	}
	for _, b := range members {
		if err := add(blobName(b.desc.Digest), b.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func fileHeader(name string, size int64, mtime time.Time) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     size,
		Mode:     0o644,
		ModTime:  mtime,
		Format:   tar.FormatUSTAR,
	}
}

// encodeHeader returns the single 512-byte ustar header block of a member.
func encodeHeader(name string, size int64, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	if err := tar.NewWriter(&buf).WriteHeader(fileHeader(name, size, mtime)); err != nil {
		return nil, fmt.Errorf("tar header for %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// padMember returns a pax global header of exactly n bytes (n a multiple of
// 512, at least 1024) whose only record is a comment. Readers ignore it; the
// writer uses it to fill the space it reserved for the head.
func padMember(n int) ([]byte, error) {
	if n%512 != 0 || n < 1024 {
		return nil, fmt.Errorf("pad of %d bytes", n)
	}
	rec := n - 512 // the record fills the data blocks exactly
	// A pax record is "<len> comment=<value>\n" where <len> counts itself.
	fixed := len(" comment=\n")
	digits := len(strconv.Itoa(rec))
	value := bytes.Repeat([]byte{' '}, rec-fixed-digits)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := tw.WriteHeader(&tar.Header{
		Typeflag:   tar.TypeXGlobalHeader,
		PAXRecords: map[string]string{"comment": string(value)},
		Format:     tar.FormatPAX,
	})
	if err == nil {
		err = tw.Flush()
	}
	if err != nil {
		return nil, fmt.Errorf("pad member: %w", err)
	}
	if buf.Len() != n {
		return nil, fmt.Errorf("pad member is %d bytes, want %d", buf.Len(), n)
	}
	return buf.Bytes(), nil
}
