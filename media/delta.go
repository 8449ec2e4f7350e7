package media

import (
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/transport/wire"
)

// Delta sticks (bundle/FORMAT.md §15.7). A bundle given with bases
// (BuildOptions.DeltaFrom) is put on a stick with the parts of its
// chunked payloads that hold a chunk one of the bases lacks; the other
// parts (the full fallback) are added when the stick has room for them.

// BuiltDelta says how a bundle went onto a stick as a delta.
type BuiltDelta struct {
	// Bases are the versions of the bases (--delta-from) it serves.
	Bases []string `json:"bases"`
	// Full says the stick holds the whole bundle too (the fallback for
	// devices on any other version); Note says why not when it does not.
	Full bool   `json:"full"`
	Note string `json:"note,omitempty"`
	// Parts counts the bundle's chunked payload parts, DeltaParts those
	// the bases need (on the stick either way) and DeltaBytes their size.
	Parts      int   `json:"parts"`
	DeltaParts int   `json:"deltaParts"`
	DeltaBytes int64 `json:"deltaBytes"`
}

// base is a --delta-from bundle.
type base struct {
	path string
	a    *bundle.Archive
}

// openBases opens the base bundles, by bundle name.
func openBases(paths []string) (map[string][]base, func(), error) {
	byName := map[string][]base{}
	var opened []*bundle.Archive
	closeAll := func() {
		for _, a := range opened {
			a.Close()
		}
	}
	for _, p := range paths {
		a, err := bundle.OpenArchive(p)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("delta base: %w", err)
		}
		opened = append(opened, a)
		n := a.Config().Name
		byName[n] = append(byName[n], base{p, a})
	}
	return byName, closeAll, nil
}

// deltaLayers returns the layers of a that a stick must hold for devices
// on each of the bases: the attachments, every part of a payload that is
// not chunked, and each part of a chunked payload that holds a chunk one
// of the bases lacks. Every base must have the payload, chunked.
func deltaLayers(a bundle.Head, bases []base) (map[digest.Digest]bool, *BuiltDelta, error) {
	cfg, m := a.Config(), a.Manifest()
	need := map[digest.Digest]bool{}
	for _, l := range m.Layers[:len(cfg.Attachments)] {
		need[l.Digest] = true
	}
	d := &BuiltDelta{}
	for _, b := range bases {
		d.Bases = append(d.Bases, b.a.Config().Version)
	}
	chunked := false
	for i, p := range cfg.Payloads {
		parts := bundle.PayloadLayers(cfg, m, i)
		nix, locs, err := bundle.ChunkIndexOf(a, p.Name)
		if err != nil {
			return nil, nil, err
		}
		if nix == nil {
			for _, l := range parts {
				need[l.Digest] = true
			}
			continue
		}
		chunked = true
		d.Parts += len(parts)
		for _, b := range bases {
			bix, _, err := bundle.ChunkIndexOf(b.a, p.Name)
			if err != nil {
				return nil, nil, fmt.Errorf("delta base %s: %w", b.path, err)
			}
			if bix == nil {
				return nil, nil, fmt.Errorf("delta base %s: payload %s is not chunked (bundle create --delta), so a device on it reuses nothing", b.path, p.Name)
			}
			have := make(map[bundle.ChunkID]bool, len(bix.Chunks))
			for _, c := range bix.Chunks {
				have[c.ID] = true
			}
			for j, c := range nix.Chunks {
				if !have[c.ID] {
					need[parts[locs[j].Part].Digest] = true
				}
			}
		}
		for _, l := range parts {
			if need[l.Digest] {
				d.DeltaParts++
				d.DeltaBytes += l.Size
			}
		}
	}
	if !chunked {
		return nil, nil, fmt.Errorf("no payload of %s %s is chunked (bundle create --delta): it cannot go on a stick as a delta", cfg.Name, cfg.Version)
	}
	return need, d, nil
}

// deltaAnnotations are the index.json annotations of a bundle put on a
// stick as a delta.
func deltaAnnotations(d *BuiltDelta) map[string]string {
	a := map[string]string{wire.DeltaBasesAnnotation: strings.Join(d.Bases, ",")}
	if !d.Full {
		a[wire.DeltaOnlyAnnotation] = "true"
	}
	return a
}

// Describe says in a line what a delta stick holds of the bundle
// ("for bases ...").
func (d *BuiltDelta) Describe() string {
	s := fmt.Sprintf("for bases %s: %d of %d chunk packs (%s)", strings.Join(d.Bases, ", "), d.DeltaParts, d.Parts, display.Bytes(d.DeltaBytes))
	if d.Full {
		return s + ", and the full bundle for devices on other versions"
	}
	return s + "; no full bundle: devices on other versions skip it"
}
