package layout

import (
	"fmt"
	"sort"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/transport/oci"
)

// Bundle is one bundle for Files: its manifest and config
// exactly as signed, and its signatures.
type Bundle struct {
	Manifest   []byte
	Config     []byte
	Signatures []bundle.Signature
	// Annotations are added to the bundle's index.json entry (a stick's
	// delta annotations, wire.DeltaBasesAnnotation); they cannot replace
	// the entry's own.
	Annotations map[string]string
}

// Files returns the small files of a store layout that holds the
// given bundles, by slash-separated path relative to the layout
// directory: oci-layout, index.json, the ferry-mirror.json marker and,
// under blobs/sha256/, every manifest, config and signature blob, named,
// tagged and annotated exactly as Store.Add writes them. The payload
// layers (blobs/sha256/<hex> for each layer of each bundle manifest) are
// left to the caller, which streams them.
//
// It exists for package media: a USB stick's /ferry/ directory is a store
// layout written into a FAT filesystem image, where Store's os-based
// writer cannot go, so that Open, List and Server read a stick (or a copy
// of one) like any mirror, and skopeo reads it as oci:DIR:<name>:<version>.
// The online key and tmp/ of a store are not part of it.
//
// Two bundles with the same name and version but different manifests are a
// *ConflictError; the same bundle given twice has its signatures merged.
func Files(bundles []Bundle) (map[string][]byte, error) {
	idx := NewIndex(nil)
	files := map[string][]byte{}
	put := func(b []byte) { files[BlobPath(digest.FromBytes(b))] = b }
	type signed struct {
		repo    string
		subject ocispec.Descriptor
		sigs    []bundle.Signature
	}
	bySubject := map[digest.Digest]*signed{}
	for i, b := range bundles {
		m, err := ParseManifest(b.Manifest)
		if err != nil {
			return nil, fmt.Errorf("bundle %d: %w", i, err)
		}
		if digest.FromBytes(b.Config) != m.Config.Digest {
			return nil, fmt.Errorf("bundle %d: config does not match the manifest's config descriptor %s", i, m.Config.Digest)
		}
		cfg, err := bundle.ParseConfig(b.Config)
		if err != nil {
			return nil, fmt.Errorf("bundle %d: %w", i, err)
		}
		if !oci.ValidRepository(cfg.Name) {
			return nil, fmt.Errorf("bundle name %q cannot be a repository name", cfg.Name)
		}
		e := BundleEntry(cfg, digest.FromBytes(b.Manifest), int64(len(b.Manifest)))
		for k, v := range b.Annotations {
			if _, own := e.Annotations[k]; !own {
				e.Annotations[k] = v
			}
		}
		ref := e.Annotations[ocispec.AnnotationRefName]
		if have := FindRef(&idx, ref); have != nil && have.Digest != e.Digest {
			return nil, &ConflictError{Ref: ref, Have: have.Digest, Add: e.Digest}
		}
		put(b.Config)
		put(b.Manifest)
		SetEntry(&idx, e)
		s := bySubject[e.Digest]
		if s == nil {
			s = &signed{repo: cfg.Name, subject: e}
			bySubject[e.Digest] = s
		}
		s.sigs, _ = oci.MergeSignatures(s.sigs, b.Signatures)
	}
	subjects := make([]digest.Digest, 0, len(bySubject))
	for d := range bySubject {
		subjects = append(subjects, d)
	}
	sort.Slice(subjects, func(i, j int) bool { return subjects[i] < subjects[j] })
	for _, d := range subjects {
		s := bySubject[d]
		if len(s.sigs) == 0 {
			continue
		}
		if len(s.sigs) > bundle.MaxSignatures {
			return nil, fmt.Errorf("%s: %d signatures would exceed the limit of %d", d, len(s.sigs), bundle.MaxSignatures)
		}
		entries, arts, err := SignatureEntries(s.repo, s.subject, s.sigs)
		if err != nil {
			return nil, err
		}
		for i, a := range arts {
			for _, b := range a.Blobs {
				put(b.Data)
			}
			put(a.Manifest)
			SetEntry(&idx, entries[i])
		}
	}
	ib, err := EncodeIndex(&idx)
	if err != nil {
		return nil, err
	}
	files[ocispec.ImageLayoutFile] = OCILayoutFile
	files["index.json"] = ib
	files[MarkerFile] = Marker()
	return files, nil
}
