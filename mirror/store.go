package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/internal/verifyio"
	"github.com/ferry-update/ferry/layout"
	"github.com/ferry-update/ferry/signing"
	"github.com/ferry-update/ferry/transport"
	"github.com/ferry-update/ferry/transport/oci"
	"github.com/ferry-update/ferry/transport/wire"
	"github.com/ferry-update/ferry/tufrepo"
)

// Annotations the store puts on its index.json entries.
const (
	// RepositoryAnnotation names the repository (the bundle's name) an
	// entry belongs to, so no tool has to split ref names.
	RepositoryAnnotation = wire.RepositoryAnnotation
	// BundleNameAnnotation and BundleVersionAnnotation are on bundle
	// entries, from the bundle's config.
	BundleNameAnnotation    = wire.BundleNameAnnotation
	BundleVersionAnnotation = wire.BundleVersionAnnotation
)

// Files of a store directory.
const (
	keyFile  = "keys/mirror.key"
	tmpDir   = "tmp"
	lockFile = ".lock"
)

// ErrNotStore is wrapped by Open's error for a directory that is not a
// ferry mirror.
var ErrNotStore = errors.New("not a ferry mirror (run 'ferry mirror init' first)")

// Store is a mirror directory: an OCI image layout holding many bundles,
// their signatures and their referrers, with one shared blob store. See
// doc.go for the layout and why.
type Store struct {
	dir string
	// The mirror key, when it is in a token or a KMS: opened once (see
	// mirrorKey) and held while the store is.
	keyMu  sync.Mutex
	key    signing.Key
	keyRef string
}

// Init makes dir (which must be empty or absent) a mirror, keeping the
// mirror's signing key (PEM) in it with mode 0600, and publishes its TUF
// metadata with the mirror key as root key (see InitWith).
func Init(dir string, keyPEM []byte) (*Store, error) {
	return InitWith(dir, keyPEM, tufrepo.InitOptions{})
}

func initStore(dir string, keyPEM []byte) error {
	if len(keyPEM) == 0 {
		return errors.New("no key")
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return errors.New("directory is not empty")
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, d := range []string{"blobs/sha256", "keys", tmpDir} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "keys"), 0o700); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, keyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), layout.OCILayoutFile, 0o644); err != nil {
		return err
	}
	idx, _ := json.Marshal(layout.NewIndex(nil))
	if err := atomicfile.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, layout.MarkerFile), layout.Marker(), 0o644)
}

// Open opens an existing mirror directory.
func Open(dir string) (*Store, error) {
	b, err := os.ReadFile(filepath.Join(dir, layout.MarkerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open mirror %s: %w", dir, ErrNotStore)
	}
	if err != nil {
		return nil, fmt.Errorf("open mirror %s: %w", dir, err)
	}
	if err := layout.CheckMarker(b); err != nil {
		return nil, fmt.Errorf("open mirror %s: %s: %w", dir, layout.MarkerFile, err)
	}
	return &Store{dir: dir}, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// IndexPath is the path of the store's index.json, the commit point of
// every add and sync.
func (s *Store) IndexPath() string { return filepath.Join(s.dir, "index.json") }

// Index reads the store's index.json.
func (s *Store) Index() (*ocispec.Index, error) { return s.readIndex() }

// BlobPath is the path of the blob d in the store (it may not exist).
func (s *Store) BlobPath(d digest.Digest) string { return s.blobPath(d) }

// ReadBlob reads the blob d, of at most max bytes, and checks its digest.
func (s *Store) ReadBlob(d digest.Digest, max int64) ([]byte, error) { return s.readBlob(d, max) }

func (s *Store) blobPath(d digest.Digest) string {
	return filepath.Join(s.dir, "blobs", string(d.Algorithm()), d.Encoded())
}

func (s *Store) hasBlob(d digest.Digest, size int64) bool {
	st, err := os.Stat(s.blobPath(d))
	return err == nil && st.Mode().IsRegular() && st.Size() == size
}

// readBlob reads a small blob, checked against its digest.
func (s *Store) readBlob(d digest.Digest, max int64) ([]byte, error) {
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("blob %s: %d bytes exceed the limit of %d", d, st.Size(), max)
	}
	return verifyio.ReadAll(f, st.Size(), d)
}

// putBytes stores a small blob unless present.
func (s *Store) putBytes(b []byte) (bool, error) {
	d := digest.FromBytes(b)
	if s.hasBlob(d, int64(len(b))) {
		return false, nil
	}
	return true, s.writeBlob(ocispec.Descriptor{Digest: d, Size: int64(len(b))}, func(off int64) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b[off:])), nil
	})
}

// writeBlob fetches a blob into tmp/, continuing a partial file from an
// earlier run when there is one, checks its size and digest, then renames
// it into blobs/. A killed writer leaves only the partial file, which no
// reader ever sees. open returns the content from byte offset off.
func (s *Store) writeBlob(d ocispec.Descriptor, open func(off int64) (io.ReadCloser, error)) error {
	if err := os.MkdirAll(filepath.Join(s.dir, tmpDir), 0o755); err != nil {
		return err
	}
	partial := filepath.Join(s.dir, tmpDir, string(d.Digest.Algorithm())+"-"+d.Digest.Encoded()+".partial")
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	// Hash what an earlier run left, then append the rest.
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if have > d.Size {
		if err := f.Truncate(0); err != nil {
			return err
		}
		have = 0
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	// A partial file that is already whole (killed before the rename)
	// needs nothing more from the source.
	rc := io.NopCloser(strings.NewReader(""))
	if have < d.Size {
		if rc, err = open(have); err != nil {
			return err
		}
	}
	defer rc.Close()
	vr, err := verifyio.NewReader(io.MultiReader(io.LimitReader(f, have), rc), d.Size, d.Digest)
	if err != nil {
		return err
	}
	// Copy: the first have bytes are read back from f only to be hashed,
	// the rest is appended.
	if _, err := io.CopyN(io.Discard, vr, have); err != nil {
		return s.dropPartial(partial, err)
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(f, vr); err != nil {
		if errors.As(err, new(*verifyio.DigestError)) || errors.Is(err, verifyio.ErrTooLong) {
			return s.dropPartial(partial, err)
		}
		return err // keep the partial file: the next run resumes it
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := os.Rename(partial, s.blobPath(d.Digest)); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(s.blobPath(d.Digest)))
}

// dropPartial removes a partial file whose content is wrong, so the next
// run starts over.
func (s *Store) dropPartial(path string, err error) error {
	os.Remove(path)
	return err
}

// lock takes the store's writer lock (flock on .lock), so that two adds
// or syncs never interleave their index updates.
func (s *Store) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// readIndex reads index.json.
func (s *Store) readIndex() (*ocispec.Index, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "index.json"))
	if err != nil {
		return nil, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	return &idx, nil
}

func (s *Store) writeIndex(idx *ocispec.Index) error {
	b, err := layout.EncodeIndex(idx)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(s.dir, "index.json"), b, 0o644)
}

// AddResult says what Add or one bundle of Sync did.
type AddResult struct {
	Entry
	New             bool `json:"new"`             // the bundle was not in the mirror before
	BlobsAdded      int  `json:"blobsAdded"`      // blobs that moved
	SignaturesAdded int  `json:"signaturesAdded"` // signatures not in the mirror before
	// BytesFetched counts the layer bytes read from the source;
	// BytesReused the bytes of parts rebuilt from chunks the mirror held
	// (bundle/FORMAT.md §15.8).
	BytesFetched int64 `json:"bytesFetched"`
	BytesReused  int64 `json:"bytesReused"`
}

// Add copies the bundle file at bundlePath into the store, tagged
// <name>:<version>, merging its signatures with any the store holds for
// the same manifest.
func (s *Store) Add(bundlePath string) (*AddResult, error) {
	var res *AddResult
	err := s.Batch(func(add func(string) (*AddResult, error)) error {
		var err error
		res, err = add(bundlePath)
		return err
	})
	return res, err
}

// Batch runs fn, in which add works as Add does but leaves the TUF
// metadata alone, and then publishes it once: adding many bundles signs
// the metadata once, not once per bundle. It publishes also when fn fails
// after adding some, so what is in the index is always listed.
func (s *Store) Batch(fn func(add func(bundlePath string) (*AddResult, error)) error) error {
	added := false
	err := fn(func(p string) (*AddResult, error) {
		r, err := s.addFile(p)
		added = added || err == nil
		return r, err
	})
	if !added {
		return err
	}
	if _, perr := s.Publish(); perr != nil {
		return errors.Join(err, fmt.Errorf("mirror add: the bundles are in the mirror, but %w (run 'ferry mirror refresh %s')", perr, s.dir))
	}
	return err
}

// addFile is Add without publishing the TUF metadata (Sync publishes once
// at the end).
func (s *Store) addFile(bundlePath string) (*AddResult, error) {
	src := transport.File(bundlePath)
	defer src.Close()
	e, err := transport.Only(context.Background(), src, bundlePath)
	if err != nil {
		return nil, err
	}
	return s.addEntry(context.Background(), src, e)
}

// addEntry adds the bundle file that is entry e of src (a file or
// directory source), naming the file in its error.
func (s *Store) addEntry(ctx context.Context, src transport.Source, e transport.Entry) (*AddResult, error) {
	res, err := s.ingestFrom(ctx, src, e)
	if err != nil {
		return nil, fmt.Errorf("mirror add %s: %w", e.Ref, err)
	}
	return res, nil
}

// ingest stores a bundle whose head has been fetched: blobs first, then
// manifests, then the index, so the index never names a missing blob.
// With rng (a source that reads ranges), parts of chunked payloads are
// rebuilt from the chunks the store holds and the others' frames
// (chunksync.go). The caller holds the lock.
func (s *Store) ingest(h *oci.Head, layer func(l ocispec.Descriptor, off int64) (io.ReadCloser, error), rng rangeFunc) (*AddResult, error) {
	cfg, err := bundle.ParseConfig(h.Config)
	if err != nil {
		return nil, err
	}
	repo := cfg.Name
	if !oci.ValidRepository(repo) {
		return nil, fmt.Errorf("bundle name %q cannot be a repository name", repo)
	}
	tag := cfg.Tag()
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	ref := repo + ":" + tag
	if have := layout.FindRef(idx, ref); have != nil && have.Digest != h.Digest {
		return nil, &layout.ConflictError{Ref: ref, Have: have.Digest, Add: h.Digest}
	}
	res := &AddResult{New: layout.FindRef(idx, ref) == nil}

	if added, err := s.putBytes(h.Config); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	} else if added {
		res.BlobsAdded++
	}
	var plans map[digest.Digest][]frameSpan // parts to rebuild from chunks (chunksync.go)
	planned := false
	for i, l := range h.Parsed.Layers {
		if s.hasBlob(l.Digest, l.Size) {
			continue
		}
		if rng != nil && !planned && i >= len(cfg.Attachments) {
			// The attachments, chunk indexes among them, are stored.
			plans, planned = s.partPlans(cfg, h.Parsed, idx), true
		}
		whole := func() error {
			return s.writeBlob(l, func(off int64) (io.ReadCloser, error) {
				rc, err := layer(l, off)
				if err != nil {
					return nil, err
				}
				return countingCloser{rc, &res.BytesFetched}, nil
			})
		}
		var err error
		if frames := plans[l.Digest]; frames != nil {
			if err = s.rebuildPart(l, frames, rng, res); isDigestError(err) {
				err = whole() // the same chunk compressed otherwise
			}
		} else {
			err = whole()
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
		}
		res.BlobsAdded++
	}
	if added, err := s.putBytes(h.Manifest); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	} else if added {
		res.BlobsAdded++
	}
	bundleDesc := layout.BundleEntry(cfg, h.Digest, int64(len(h.Manifest)))
	layout.SetEntry(idx, bundleDesc)

	// Signatures: merge with what the store holds for this manifest.
	old, err := s.signatures(idx, repo, h.Digest)
	if err != nil {
		return nil, err
	}
	merged, added := oci.MergeSignatures(old, h.Signatures)
	res.SignaturesAdded = added
	if len(merged) > bundle.MaxSignatures {
		return nil, fmt.Errorf("%d signatures would exceed the limit of %d", len(merged), bundle.MaxSignatures)
	}
	if added > 0 {
		entries, arts, err := layout.SignatureEntries(repo, bundleDesc, merged)
		if err != nil {
			return nil, err
		}
		for i, art := range arts {
			if err := s.putArtifact(res, art); err != nil {
				return nil, err
			}
			layout.SetEntry(idx, entries[i])
		}
	}
	if err := s.writeIndex(idx); err != nil {
		return nil, err
	}
	res.Entry = entryOf(bundleDesc, cfg, h.Parsed, len(merged))
	return res, nil
}

func (s *Store) putArtifact(res *AddResult, a *layout.Artifact) error {
	for _, b := range a.Blobs {
		added, err := s.putBytes(b.Data)
		if err != nil {
			return err
		}
		if added {
			res.BlobsAdded++
		}
	}
	added, err := s.putBytes(a.Manifest)
	if added {
		res.BlobsAdded++
	}
	return err
}

// signatures reads the signatures the store holds for manifest d.
func (s *Store) signatures(idx *ocispec.Index, repo string, d digest.Digest) ([]bundle.Signature, error) {
	e := layout.FindRef(idx, repo+":"+bundle.SignatureTag(d))
	if e == nil {
		return nil, nil
	}
	raw, err := s.readBlob(e.Digest, bundle.MaxSigManifestSize)
	if err != nil {
		return nil, fmt.Errorf("stored signatures of %s: %w", d, err)
	}
	sigs, err := bundle.ParseSignatures(raw, func(_ string, desc ocispec.Descriptor, max int64) ([]byte, error) {
		return s.readBlob(desc.Digest, max)
	})
	if err != nil {
		return nil, fmt.Errorf("stored signatures of %s: %w", d, err)
	}
	return sigs, nil
}

// Entry is one bundle in the mirror.
type Entry struct {
	Repository  string        `json:"repository"`
	Tag         string        `json:"tag"`
	Name        string        `json:"name"`
	Version     string        `json:"version"`
	Digest      digest.Digest `json:"digest"`
	Size        int64         `json:"size"` // of the payload layers
	DeviceTypes []string      `json:"deviceTypes"`
	Created     time.Time     `json:"created"`
	Signatures  int           `json:"signatures"`
}

func entryOf(d ocispec.Descriptor, cfg *bundle.Config, m *ocispec.Manifest, sigs int) Entry {
	repo, tag, _ := strings.Cut(d.Annotations[ocispec.AnnotationRefName], ":")
	return Entry{
		Repository: repo, Tag: tag, Name: cfg.Name, Version: cfg.Version, Digest: d.Digest,
		Size: payloadSize(m), DeviceTypes: cfg.DeviceTypes, Created: cfg.Created, Signatures: sigs,
	}
}

// payloadSize is the size of a bundle's payload layers.
func payloadSize(m *ocispec.Manifest) int64 {
	var size int64
	for _, l := range m.Layers {
		size += l.Size
	}
	return size
}

// storedBundle is one bundle entry of the index with its manifest and
// config, read back and checked against their digests.
type storedBundle struct {
	desc     ocispec.Descriptor // Size is the manifest's length as read
	manifest *ocispec.Manifest
	config   *bundle.Config
}

// eachBundle calls fn for every bundle entry of idx, in index order.
func (s *Store) eachBundle(idx *ocispec.Index, fn func(storedBundle) error) error {
	for _, d := range idx.Manifests {
		if d.ArtifactType != bundle.ArtifactType {
			continue
		}
		raw, err := s.readBlob(d.Digest, bundle.MaxManifestSize)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
		m, err := layout.ParseManifest(raw)
		if err != nil {
			return err
		}
		cb, err := s.readBlob(m.Config.Digest, bundle.MaxConfigSize)
		if err != nil {
			return fmt.Errorf("config of %s: %w", d.Digest, err)
		}
		cfg, err := bundle.ParseConfig(cb)
		if err != nil {
			return err
		}
		d.Size = int64(len(raw))
		if err := fn(storedBundle{desc: d, manifest: m, config: cfg}); err != nil {
			return err
		}
	}
	return nil
}

// List returns every bundle in the mirror, by repository and version.
func (s *Store) List() ([]Entry, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, fmt.Errorf("list mirror %s: %w", s.dir, err)
	}
	var out []Entry
	err = s.eachBundle(idx, func(b storedBundle) error {
		sigs, err := s.signatures(idx, b.desc.Annotations[RepositoryAnnotation], b.desc.Digest)
		if err != nil {
			return err
		}
		out = append(out, entryOf(b.desc, b.config, b.manifest, len(sigs)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list mirror %s: %w", s.dir, err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Repository != out[j].Repository {
			return out[i].Repository < out[j].Repository
		}
		return bundle.CompareVersions(out[i].Version, out[j].Version) < 0
	})
	return out, nil
}
