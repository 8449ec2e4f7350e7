package layout

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/transport/wire"
)

// Files of every store layout besides index.json and blobs/.
const (
	// MarkerFile marks a directory as a ferry store; it holds the
	// store's format version (Marker).
	MarkerFile = "ferry-mirror.json"
)

// OCILayoutFile is the content of the oci-layout file of every store.
var OCILayoutFile = []byte(`{"imageLayoutVersion":"1.0.0"}`)

// BlobPath is a blob's path relative to a layout directory.
func BlobPath(d digest.Digest) string {
	return "blobs/" + string(d.Algorithm()) + "/" + d.Encoded()
}

// ConflictError says that a tag already names another bundle: a version
// in a store never changes its content.
type ConflictError struct {
	Ref       string // repository:tag
	Have, Add digest.Digest
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s already holds bundle %s, refusing %s: a version in a store is immutable (bump the version)", e.Ref, e.Have, e.Add)
}

type marker struct {
	FormatVersion int `json:"formatVersion"`
}

// CheckMarker returns an error unless b, a MarkerFile's content, names
// the format this version reads.
func CheckMarker(b []byte) error {
	var m marker
	if err := json.Unmarshal(b, &m); err != nil || m.FormatVersion != 1 {
		return fmt.Errorf("unsupported format %q", b)
	}
	return nil
}

// Marker is the content of MarkerFile.
func Marker() []byte {
	m, _ := json.Marshal(marker{FormatVersion: 1})
	return m
}

// NewIndex is an OCI image index of ms (an empty list, never null, for none).
func NewIndex(ms []ocispec.Descriptor) ocispec.Index {
	if ms == nil {
		ms = []ocispec.Descriptor{}
	}
	return ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: ms}
}

// EncodeIndex sorts the entries by ref name, then digest, and encodes
// index.json as the store writes it.
func EncodeIndex(idx *ocispec.Index) ([]byte, error) {
	sort.SliceStable(idx.Manifests, func(i, j int) bool {
		a, b := idx.Manifests[i], idx.Manifests[j]
		if ra, rb := a.Annotations[ocispec.AnnotationRefName], b.Annotations[ocispec.AnnotationRefName]; ra != rb {
			return ra < rb
		}
		return a.Digest < b.Digest
	})
	return json.MarshalIndent(idx, "", "  ")
}

// BundleEntry is a bundle's index.json entry: tagged <name>:<tag>, with
// the repository, name and version as annotations.
func BundleEntry(cfg *bundle.Config, d digest.Digest, size int64) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:    bundle.ManifestMediaType,
		ArtifactType: bundle.ArtifactType,
		Digest:       d,
		Size:         size,
		Annotations: map[string]string{
			ocispec.AnnotationRefName:    cfg.Name + ":" + cfg.Tag(),
			wire.RepositoryAnnotation:    cfg.Name,
			wire.BundleNameAnnotation:    cfg.Name,
			wire.BundleVersionAnnotation: cfg.Version,
		},
	}
}

// SignatureEntries returns the artifacts that carry sigs over subject (the
// cosign tag-scheme manifest, then one referrer per signature) and their
// index.json entries, in the same order.
func SignatureEntries(repo string, subject ocispec.Descriptor, sigs []bundle.Signature) ([]ocispec.Descriptor, []*Artifact, error) {
	art, err := SignatureArtifact(sigs)
	if err != nil {
		return nil, nil, err
	}
	d := art.Descriptor()
	d.Annotations = map[string]string{
		ocispec.AnnotationRefName: repo + ":" + bundle.SignatureTag(subject.Digest),
		wire.RepositoryAnnotation: repo,
	}
	entries, arts := []ocispec.Descriptor{d}, []*Artifact{art}
	refs, err := ReferrerArtifacts(ocispec.Descriptor{MediaType: bundle.ManifestMediaType, Digest: subject.Digest, Size: subject.Size}, sigs)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range refs {
		d := r.Descriptor()
		d.ArtifactType = CosignSignatureArtifactType
		d.Annotations = map[string]string{wire.RepositoryAnnotation: repo}
		entries, arts = append(entries, d), append(arts, r)
	}
	return entries, arts, nil
}

// FindRef is the entry tagged ref (repository:tag), or nil.
func FindRef(idx *ocispec.Index, ref string) *ocispec.Descriptor {
	for i, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == ref {
			return &idx.Manifests[i]
		}
	}
	return nil
}

// SetEntry adds d to the index, replacing the entry with the same ref
// name, or (for untagged entries) the same digest.
func SetEntry(idx *ocispec.Index, d ocispec.Descriptor) {
	ref := d.Annotations[ocispec.AnnotationRefName]
	for i, m := range idx.Manifests {
		mref := m.Annotations[ocispec.AnnotationRefName]
		if (ref != "" && mref == ref) || (ref == "" && mref == "" && m.Digest == d.Digest) {
			idx.Manifests[i] = d
			return
		}
	}
	idx.Manifests = append(idx.Manifests, d)
}
