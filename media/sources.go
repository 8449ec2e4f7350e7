package media

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/verifyio"
	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/transport/wire"
)

// bundleSource is one bundle to put on a stick: from a bundle archive,
// or from a layout (a mirror store).
type bundleSource struct {
	file                   string // the archive, or the layout's name
	rawManifest, rawConfig []byte
	digest                 digest.Digest
	cfg                    *bundle.Config
	sigs                   []bundle.Signature
	layers                 []ocispec.Descriptor
	// blob opens a layer; the reader fails at its end if the bytes do
	// not match the layer's digest.
	blob func(l ocispec.Descriptor) (io.Reader, error)
	// head reads the bundle's chunk indexes (a bundle archive's; nil
	// for a layout's).
	head bundle.Head
}

// bundleSources opens the bundle archives and o.FromBundles of o.From;
// closeAll closes what they opened.
func bundleSources(paths []string, o BuildOptions) (srcs []*bundleSource, _ func(), err error) {
	var closers []io.Closer
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	for _, p := range paths {
		a, err := bundle.OpenArchive(p)
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, a)
		srcs = append(srcs, &bundleSource{file: p, rawManifest: a.RawManifest(), rawConfig: a.RawConfig(), digest: a.ManifestDigest(),
			cfg: a.Config(), sigs: a.Signatures(), layers: a.Manifest().Layers, head: a,
			blob: func(l ocispec.Descriptor) (io.Reader, error) {
				r, _, err := a.Blob(l.Digest)
				return r, err
			}})
	}
	if len(o.FromBundles) == 0 {
		return srcs, closeAll, nil
	}
	if o.From == nil {
		return nil, nil, fmt.Errorf("bundles %v of no layout", o.FromBundles)
	}
	all, err := o.From.Bundles()
	if err != nil {
		return nil, nil, err
	}
	for _, want := range o.FromBundles {
		var b *stick.Bundle
		for i := range all {
			if all[i].Manifest == want {
				b = &all[i]
			}
		}
		if b == nil {
			return nil, nil, fmt.Errorf("%s holds no bundle %s", o.From.Name(), want)
		}
		if b.Err != nil {
			return nil, nil, fmt.Errorf("%s: %s %s: %w", o.From.Name(), b.Name, b.Version, b.Err)
		}
		rawManifest, rawConfig := b.Raw()
		var m ocispec.Manifest
		if err := json.Unmarshal(rawManifest, &m); err != nil {
			return nil, nil, fmt.Errorf("%s: manifest %s: %w", o.From.Name(), want, err)
		}
		from := o.From
		srcs = append(srcs, &bundleSource{file: from.Name(), rawManifest: rawManifest, rawConfig: rawConfig, digest: b.Manifest,
			cfg: b.Config, sigs: b.Signatures, layers: m.Layers,
			blob: func(l ocispec.Descriptor) (io.Reader, error) {
				rc, err := from.OpenBlob(l.Digest, 0)
				if err != nil {
					return nil, err
				}
				closers = append(closers, rc)
				return verifyio.NewReader(rc, l.Size, l.Digest)
			}})
	}
	return srcs, closeAll, nil
}

var deviceIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// deploymentFiles are the files of a stick built for a deployment:
// /ferry/assignments/<device id>.json and /ferry/tuf/<name>.
func deploymentFiles(d *DeploymentFiles) ([]stickFile, error) {
	var files []stickFile
	for id, env := range d.Assignments {
		if !deviceIDRE.MatchString(id) {
			return nil, fmt.Errorf("assignment for %q: want a device id (64 lower-case hex digits)", id)
		}
		if len(env) > assign.MaxEnvelopeSize {
			return nil, fmt.Errorf("assignment for %s: %d bytes, at most %d", id, len(env), assign.MaxEnvelopeSize)
		}
		files = append(files, stickFile{path: path.Join("/", stick.Dir, wire.StickAssignmentsDir, id+".json"), data: env, size: int64(len(env))})
	}
	for name, b := range d.TUF {
		if name != wire.TUFFile("targets") && !tufRootRE.MatchString(name) {
			return nil, fmt.Errorf("mirror metadata %q: want N.root.json or targets.json", name)
		}
		files = append(files, stickFile{path: path.Join("/", stick.Dir, wire.TUFDir, name), data: b, size: int64(len(b))})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	return files, nil
}

var tufRootRE = regexp.MustCompile(`^[1-9][0-9]{0,9}\.root\.json$`)
