package bundle

import (
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Head is what Diff reads of a bundle: its config, its manifest layers and
// its attachments (a Reader has all three).
type Head interface {
	Config() *Config
	Manifest() ocispec.Manifest
	Attachments() []AttachmentData
}

// PayloadDiff says what moves to update one payload from old to new.
type PayloadDiff struct {
	Payload string `json:"payload"`
	// Chunked is false when either side's payload has no chunk index:
	// then a device fetches all of it (Full).
	Chunked bool `json:"chunked"`
	ChunkDiff
	// IndexBytes is the size of new's chunk index, which a device
	// fetches too.
	IndexBytes int64 `json:"indexBytes"`
	// Fetch is what a device holding old fetches: the new chunks' frames
	// and the index, or the whole compressed payload when not chunked.
	Fetch int64 `json:"fetch"`
	// Full is the compressed payload's size: what a full install fetches.
	Full int64 `json:"full"`
	// Parts and SharedParts count new's part layers and those old has
	// too (by digest); NewPartBytes is what a mirror or registry holding
	// old stores or moves for new.
	Parts        int   `json:"parts"`
	SharedParts  int   `json:"sharedParts"`
	NewPartBytes int64 `json:"newPartBytes"`
}

// ChunkIndexOf returns the chunk index of a chunked payload from the
// bundle's attachments, parsed and located against its parts, or nil
// when the payload is not chunked.
func ChunkIndexOf(h Head, payload string) (*ChunkIndex, []ChunkLoc, error) {
	c := h.Config()
	i := payloadIndex(c, payload)
	if i < 0 {
		return nil, nil, fmt.Errorf("no payload %q", payload)
	}
	p := &c.Payloads[i]
	if p.Chunks == nil {
		return nil, nil, nil
	}
	for _, a := range h.Attachments() {
		if a.Name != p.Chunks.Index {
			continue
		}
		ix, err := ParseChunkIndex(a.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("payload %s: %w", payload, err)
		}
		locs, err := ix.Locate(p, PayloadLayers(c, h.Manifest(), i))
		if err != nil {
			return nil, nil, fmt.Errorf("payload %s: %w", payload, err)
		}
		return ix, locs, nil
	}
	return nil, nil, fmt.Errorf("payload %s: %w: attachment %q missing", payload, ErrChunkIndex, p.Chunks.Index)
}

func payloadIndex(c *Config, name string) int {
	for i, p := range c.Payloads {
		if p.Name == name {
			return i
		}
	}
	return -1
}

// PayloadLayers returns the part layers of payload i of a bundle whose
// manifest the reader checked (§5: attachments first, then each payload's
// parts in order).
func PayloadLayers(c *Config, m ocispec.Manifest, i int) []ocispec.Descriptor {
	at := len(c.Attachments)
	for _, p := range c.Payloads[:i] {
		at += p.Parts
	}
	return m.Layers[at : at+c.Payloads[i].Parts]
}

// DiffBundles compares every payload of new with the payload of the same name in
// old: what a device holding old fetches, and what a mirror holding old
// adds.
func DiffBundles(old, new Head) ([]PayloadDiff, error) {
	oldParts := map[digest.Digest]bool{}
	for _, l := range old.Manifest().Layers {
		oldParts[l.Digest] = true
	}
	var out []PayloadDiff
	for i, p := range new.Config().Payloads {
		d := PayloadDiff{Payload: p.Name, Full: p.CompressedSize, Fetch: p.CompressedSize}
		for _, l := range PayloadLayers(new.Config(), new.Manifest(), i) {
			d.Parts++
			if oldParts[l.Digest] {
				d.SharedParts++
			} else {
				d.NewPartBytes += l.Size
			}
		}
		nix, _, err := ChunkIndexOf(new, p.Name)
		if err != nil {
			return nil, fmt.Errorf("new bundle: %w", err)
		}
		var oix *ChunkIndex
		if payloadIndex(old.Config(), p.Name) >= 0 {
			if oix, _, err = ChunkIndexOf(old, p.Name); err != nil {
				return nil, fmt.Errorf("old bundle: %w", err)
			}
		}
		if nix != nil && oix != nil {
			d.Chunked = true
			d.ChunkDiff = Diff(oix, nix)
			d.IndexBytes = chunkIndexBytes(new, p.Chunks.Index)
			d.Fetch = d.NewCompressedBytes + d.IndexBytes
		}
		out = append(out, d)
	}
	return out, nil
}

// chunkIndexBytes is the size of h's attachment name.
func chunkIndexBytes(h Head, name string) int64 {
	for _, a := range h.Attachments() {
		if a.Name == name {
			return int64(len(a.Data))
		}
	}
	return 0
}
