package stick

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/verifyio"
	"github.com/ferry-update/ferry/transport/wire"
)

// Names on a stick, relative to the root of its filesystem.
const (
	// Dir is the layout directory at the root of a stick.
	Dir = wire.StickDir
	// ReportsDir and TrustDir are inside Dir.
	ReportsDir = wire.StickReportsDir
	TrustDir   = wire.StickTrustDir
	// IdentitiesFile, inside Dir, lists device identities for a mirror
	// to enroll ('ferry-agent identity --json' lines).
	IdentitiesFile = wire.StickIdentitiesFile
)

// Annotations a mirror store puts on index.json entries (package wire
// names them for both sides).
const (
	repositoryAnnotation    = wire.RepositoryAnnotation
	bundleNameAnnotation    = wire.BundleNameAnnotation
	bundleVersionAnnotation = wire.BundleVersionAnnotation
)

// Limits on what a layout makes a reader hold in memory.
const (
	maxIndexSize  = 16 << 20 // a store index lists every bundle and signature
	MaxReportSize = 64 << 10
	maxTrustSize  = 1 << 20
)

// ErrNotLayout is wrapped by errors for a directory that holds no ferry
// layout.
var ErrNotLayout = errors.New("no ferry layout (ferry/oci-layout) found")

// Layout is a ferry layout, the /ferry/ directory of a stick, read through
// an fs.FS whose root is that directory.
type Layout struct {
	fsys fs.FS
	name string // for messages: where the layout is
}

// NewLayout reads the layout at the root of fsys; name says where it is in
// error messages (a mount point, an image file).
func NewLayout(fsys fs.FS, name string) (*Layout, error) {
	b, err := ReadFile(fsys, ocispec.ImageLayoutFile, 1<<10)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", name, ErrNotLayout)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var l ocispec.ImageLayout
	if err := json.Unmarshal(b, &l); err != nil || l.Version != ocispec.ImageLayoutVersion {
		return nil, fmt.Errorf("%s: %s: want {\"imageLayoutVersion\":%q}", name, ocispec.ImageLayoutFile, ocispec.ImageLayoutVersion)
	}
	return &Layout{fsys: fsys, name: name}, nil
}

// Name says where the layout is.
func (l *Layout) Name() string { return l.name }

// Bundle is one bundle in a layout, as its manifest and config describe it.
// Nothing in it is trusted until the stream from Open has been verified.
type Bundle struct {
	Name        string        `json:"name"`
	Version     string        `json:"version"`
	DeviceTypes []string      `json:"deviceTypes"`
	Created     time.Time     `json:"created,omitzero"`
	Description string        `json:"description,omitempty"`
	Manifest    digest.Digest `json:"manifest"`
	// Size is the bytes Open streams, less the archive's headers: the
	// payload parts.
	Size int64 `json:"size"`
	// Config is the parsed config; Signatures are the signatures the
	// layout holds over Manifest, for a caller that judges them before
	// opening the bundle (verify.CheckSignatures).
	Config     *bundle.Config     `json:"-"`
	Signatures []bundle.Signature `json:"-"`
	// DeltaBases, from the layout's unsigned index, lists the versions
	// of the bases the stick carries this bundle as a delta for
	// ('ferry media build --delta-from'); DeltaOnly says the stick holds
	// only the payload parts those bases need (bundle/FORMAT.md §15.7),
	// so a device on another version cannot install it. Both only
	// inform: what a device installs is judged as always.
	DeltaBases []string `json:"deltaBases,omitempty"`
	DeltaOnly  bool     `json:"deltaOnly,omitempty"`
	// Err says why the bundle cannot be read (a missing or damaged blob);
	// only Name, Version and Manifest are then set, from the unsigned
	// index.
	Err error `json:"-"`

	manifest []byte
	config   []byte
	layers   []ocispec.Descriptor
}

// Bundles lists the bundles of the layout by name, then version (lowest
// first). A bundle that cannot be read is listed with Err set; the error
// is for a layout that cannot be read at all.
func (l *Layout) Bundles() ([]Bundle, error) {
	raw, err := ReadFile(l.fsys, "index.json", maxIndexSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: index.json: %w", l.name, err)
	}
	refs := map[string]ocispec.Descriptor{}
	for _, d := range idx.Manifests {
		if r := d.Annotations[ocispec.AnnotationRefName]; r != "" {
			refs[r] = d
		}
	}
	var out []Bundle
	for _, d := range idx.Manifests {
		if d.ArtifactType != bundle.ArtifactType {
			continue
		}
		b := Bundle{Name: d.Annotations[bundleNameAnnotation], Version: d.Annotations[bundleVersionAnnotation], Manifest: d.Digest}
		b.DeltaBases, b.DeltaOnly = deltaAnnotations(d.Annotations)
		if err := l.readBundle(&b, d, refs); err != nil {
			b.Err = fmt.Errorf("bundle %s %s (%s): %w", orUnknown(b.Name), orUnknown(b.Version), d.Digest, err)
		}
		out = append(out, b)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return bundle.CompareVersions(out[i].Version, out[j].Version) < 0
	})
	return out, nil
}

// maxDeltaBases bounds the base versions read from a delta annotation.
const maxDeltaBases = 64

// deltaAnnotations reads a bundle entry's delta annotations (see
// Bundle.DeltaBases): at most maxDeltaBases non-empty versions.
func deltaAnnotations(a map[string]string) ([]string, bool) {
	v, ok := a[wire.DeltaBasesAnnotation]
	if !ok {
		return nil, false
	}
	var bases []string
	for _, b := range strings.Split(v, ",") {
		if b = strings.TrimSpace(b); b != "" && len(bases) < maxDeltaBases {
			bases = append(bases, b)
		}
	}
	return bases, a[wire.DeltaOnlyAnnotation] == "true"
}

// Has says whether the layout holds blob d, as a file of d's size. A
// stick built as a delta (Bundle.DeltaOnly) lacks the parts its bases
// do not need.
func (l *Layout) Has(d ocispec.Descriptor) bool {
	p, err := blobPath(d.Digest)
	if err != nil {
		return false
	}
	st, err := fs.Stat(l.fsys, p)
	return err == nil && st.Mode().IsRegular() && st.Size() == d.Size
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func (l *Layout) readBundle(b *Bundle, d ocispec.Descriptor, refs map[string]ocispec.Descriptor) error {
	if d.Size > bundle.MaxManifestSize {
		return fmt.Errorf("manifest of %d bytes exceeds the limit of %d", d.Size, bundle.MaxManifestSize)
	}
	var err error
	if b.manifest, err = l.blob(d, bundle.MaxManifestSize); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b.manifest, &m); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if b.config, err = l.blob(m.Config, bundle.MaxConfigSize); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if b.Config, err = bundle.ParseConfig(b.config); err != nil {
		return err
	}
	b.Name, b.Version, b.DeviceTypes = b.Config.Name, b.Config.Version, b.Config.DeviceTypes
	b.Created, b.Description = b.Config.Created, b.Config.Description
	b.layers = m.Layers
	for _, ld := range m.Layers {
		b.Size += ld.Size
	}
	if sd, ok := refs[b.Config.Name+":"+bundle.SignatureTag(d.Digest)]; ok {
		raw, err := l.blob(sd, bundle.MaxSigManifestSize)
		if err != nil {
			return fmt.Errorf("signature manifest: %w", err)
		}
		b.Signatures, err = bundle.ParseSignatures(raw, func(what string, bd ocispec.Descriptor, max int64) ([]byte, error) {
			p, err := l.blob(bd, max)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			return p, nil
		})
		if err != nil {
			return fmt.Errorf("signatures: %w", err)
		}
	}
	return nil
}

// blobPath is a blob's path in the layout.
func blobPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil || d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("digest %q: want sha256:<64 hex>", d)
	}
	return "blobs/sha256/" + d.Encoded(), nil
}

// blob reads a small blob, checked against its descriptor.
func (l *Layout) blob(d ocispec.Descriptor, max int64) ([]byte, error) {
	p, err := blobPath(d.Digest)
	if err != nil {
		return nil, err
	}
	if d.Size < 0 || d.Size > max {
		return nil, fmt.Errorf("%s: size %d outside 0 to %d", d.Digest, d.Size, max)
	}
	f, err := l.fsys.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := verifyio.ReadAll(f, d.Size, d.Digest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return b, nil
}

// Open streams bundle b as the canonical bundle archive (bundle.Assemble),
// reading each payload part from its blob file and checking it against its
// digest as it streams. The stream ends in an error, never a clean EOF, if
// a blob is missing, damaged, or cannot be read (a stick pulled out). The
// reader must be closed; Close waits until the blob files are closed.
func (l *Layout) Open(b Bundle) (io.ReadCloser, error) {
	if b.Err != nil {
		return nil, b.Err
	}
	if b.manifest == nil {
		return nil, fmt.Errorf("%s: bundle %s %s was not listed by Bundles", l.name, b.Name, b.Version)
	}
	parts := bundle.Parts{
		Manifest:   b.manifest,
		Config:     b.config,
		Signatures: b.Signatures,
		Layer: func(d ocispec.Descriptor) (io.ReadCloser, error) {
			p, err := blobPath(d.Digest)
			if err != nil {
				return nil, err
			}
			f, err := l.fsys.Open(p)
			if errors.Is(err, fs.ErrNotExist) && b.DeltaOnly {
				return nil, fmt.Errorf("%s is not on the stick: it carries this bundle as a delta for bases %s only: %w", p, strings.Join(b.DeltaBases, ", "), err)
			}
			if err != nil {
				return nil, err
			}
			return &blobReader{f: f, name: p}, nil
		},
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := bundle.Assemble(pw, parts)
		if err != nil {
			err = fmt.Errorf("%s: bundle %s %s: %w", l.name, b.Name, b.Version, err)
		}
		pw.CloseWithError(err)
	}()
	return &stream{PipeReader: pr, done: done}, nil
}

type stream struct {
	*io.PipeReader
	done chan struct{}
	once sync.Once
}

func (s *stream) Close() error {
	s.once.Do(func() {
		s.PipeReader.CloseWithError(errors.New("bundle stream closed by the reader"))
		<-s.done
	})
	return nil
}

// blobReader names the file in read errors and says what an I/O error on
// a stick most likely means.
type blobReader struct {
	f    fs.File
	name string
}

func (r *blobReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	if err != nil && err != io.EOF {
		if errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) {
			return n, fmt.Errorf("reading %s: %w (was the stick removed?)", r.name, err)
		}
		return n, fmt.Errorf("reading %s: %w", r.name, err)
	}
	return n, err
}

func (r *blobReader) Close() error { return r.f.Close() }

// Raw returns bundle b's manifest and config exactly as the layout
// stores them (both were checked against their digests by Bundles).
func (b Bundle) Raw() (manifest, config []byte) { return b.manifest, b.config }

// Layers returns the layers of bundle b's manifest (attachments, then
// each payload's parts), as listed by Bundles.
func (b Bundle) Layers() []ocispec.Descriptor { return b.layers }

// OpenBlob opens the blob d from byte off, unchecked: the caller checks
// it against its digest. It reads as Open does (errors name the file and
// a stick that was pulled out).
func (l *Layout) OpenBlob(d digest.Digest, off int64) (io.ReadCloser, error) {
	p, err := blobPath(d)
	if err != nil {
		return nil, err
	}
	f, err := l.fsys.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	r := &blobReader{f: f, name: p}
	if s, ok := f.(io.Seeker); ok {
		_, err = s.Seek(off, io.SeekStart)
	} else {
		_, err = io.CopyN(io.Discard, r, off)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %s at byte %d: %w", l.name, p, off, err)
	}
	return r, nil
}

// TrustFiles lists the files in the layout's trust/ directory (trust
// material given to `ferry media build --trust`), by name.
func (l *Layout) TrustFiles() ([]string, error) {
	ents, err := fs.ReadDir(l.fsys, TrustDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// TrustFile reads one file of the trust/ directory (at most 1 MiB). What
// it holds is only as good as the signatures on it.
func (l *Layout) TrustFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) || strings.Contains(name, "/") {
		return nil, fmt.Errorf("trust file %q: want a plain file name", name)
	}
	b, err := ReadFile(l.fsys, path.Join(TrustDir, name), maxTrustSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	return b, nil
}

// ReportFile is one file of the reports/ directory: its report, or why it
// could not be read.
type ReportFile struct {
	Name   string  `json:"file"`
	Report *Report `json:"report,omitempty"`
	Err    error   `json:"-"`
}

// Reports reads the reports in the layout's reports/ directory (see
// ReadReports).
func (l *Layout) Reports() ([]ReportFile, error) {
	sub, err := fs.Sub(l.fsys, ReportsDir)
	if err != nil {
		return nil, err
	}
	rs, err := ReadReports(sub)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	return rs, nil
}

// ReadReports reads every *.json file at the root of fsys (a reports/
// directory), ordered by when the reports were finished. A file that is
// not a valid report is returned with Err set. A missing directory holds
// no reports.
func ReadReports(fsys fs.FS) ([]ReportFile, error) {
	ents, err := fs.ReadDir(fsys, ".")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []ReportFile
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(strings.ToLower(e.Name()), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		rf := ReportFile{Name: e.Name()}
		b, err := ReadFile(fsys, e.Name(), MaxReportSize)
		if err == nil {
			rf.Report, err = ParseReport(b)
		}
		if err != nil {
			rf.Err = fmt.Errorf("%s: %w", e.Name(), err)
		}
		out = append(out, rf)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Report, out[j].Report
		switch {
		case a == nil || b == nil:
			return a != nil && b == nil
		case !a.Finished.Equal(b.Finished):
			return a.Finished.Before(b.Finished)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// ReadFile reads the file name of fsys (a stick's, see DirFS), of at
// most max bytes.
func ReadFile(fsys fs.FS, name string, max int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than the limit of %d bytes", name, max)
	}
	return b, nil
}
