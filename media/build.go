package media

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/internal/filekind"
	"github.com/ferry-update/ferry/layout"
	"github.com/ferry-update/ferry/transport/stick"
)

// Image geometry.
const (
	sectorSize     = 512
	partitionStart = 2048 // sectors: 1 MiB, the usual alignment
	gptBackup      = 33   // sectors at the end: the backup partition array and header
	// DefaultLabel is the volume label of a stick, which the agent may look
	// for (/dev/disk/by-label/FERRY).
	DefaultLabel = "FERRY"
	minImageSize = 64 << 20
	autoRound    = 64 << 20
	// autoHeadroom is free space an auto-sized stick keeps beyond its
	// content (reports, and a margin), besides autoHeadroomPct.
	autoHeadroom    = 16 << 20
	autoHeadroomPct = 5
	// reportRoom is the least free space any stick keeps for reports.
	reportRoom = 1 << 20
)

// MaxImageSize is the largest image Build makes (a go-diskfs limit; a
// larger stick gets a partition of this size).
const MaxImageSize = maxImageSize

// BuildOptions are the settings of Build.
type BuildOptions struct {
	// Size is the image size in bytes; 0 picks the content plus headroom,
	// rounded up to 64 MiB (at least 64 MiB).
	Size int64
	// Label is the FAT volume label (up to 11 of A-Z, 0-9, '_', '-');
	// DefaultLabel if empty.
	Label string
	// Trust lists files (public keys, trust roots) copied to /ferry/trust/.
	Trust []string
	// DeltaFrom lists bundle files of base versions: a bundle file of the
	// same name goes on the stick as a delta for them (only the chunk
	// packs its chunked payloads need beyond what each base holds),
	// with the full bundle as fallback when Size has room for it (never
	// when Size is 0: the smallest stick). See bundle/FORMAT.md §15.7.
	DeltaFrom []string
	// Progress, if set, is called as payload bytes are written, with the
	// bytes done and the total.
	Progress func(done, total int64)
	// From and FromBundles put bundles of a layout (a mirror store, read
	// with stick.OpenLayout) on the stick, by manifest digest, besides
	// the bundle files given to Build.
	From        *stick.Layout
	FromBundles []digest.Digest
	// Deployment, when set, is what a stick built for a deployment
	// carries besides its bundle (docs/fleet.md §12; the layout is in
	// package transport/stick's doc).
	Deployment *DeploymentFiles
}

// DeploymentFiles are a deployment's signed assignments and the mirror
// metadata that vouches for their keys (package fleet's StickFor makes
// them), put in /ferry/assignments/ and /ferry/tuf/.
type DeploymentFiles struct {
	ID int64
	// Assignments are the assignment envelopes by device id; TUF the
	// mirror's metadata files by name (N.root.json, targets.json).
	Assignments map[string][]byte
	TUF         map[string][]byte
}

// BuildResult describes the image Build made.
type BuildResult struct {
	Path            string        `json:"path"`
	Size            int64         `json:"size"`
	Label           string        `json:"label"`
	PartitionOffset int64         `json:"partitionOffset"`
	PartitionSize   int64         `json:"partitionSize"`
	Free            int64         `json:"free"` // bytes free on the filesystem
	Bundles         []BuiltBundle `json:"bundles"`
	Trust           []string      `json:"trust,omitempty"`
	// Deployment and Assignments: the deployment the stick was built for
	// and the devices it carries assignments for.
	Deployment  int64    `json:"deployment,omitempty"`
	Assignments []string `json:"assignments,omitempty"`
}

// BuiltBundle is one bundle put on a stick.
type BuiltBundle struct {
	File        string        `json:"file"`
	Name        string        `json:"name"`
	Version     string        `json:"version"`
	DeviceTypes []string      `json:"deviceTypes"`
	Manifest    digest.Digest `json:"manifest"`
	Size        int64         `json:"size"`
	Signatures  int           `json:"signatures"`
	// Delta is set for a bundle put on the stick as a delta.
	Delta *BuiltDelta `json:"delta,omitempty"`
}

var labelRE = regexp.MustCompile(`^[A-Z0-9_-]{1,11}$`)

// NormalizeLabel upper-cases a volume label and checks it.
func NormalizeLabel(l string) (string, error) {
	if l == "" {
		return DefaultLabel, nil
	}
	u := strings.ToUpper(l)
	if !labelRE.MatchString(u) {
		return "", fmt.Errorf("label %q: want 1 to 11 of A-Z, 0-9, '_' and '-'", l)
	}
	return u, nil
}

// Build writes a stick image to out: a GPT disk with one FAT32 partition
// (made with go-diskfs) holding the bundles as a mirror-store layout in
// /ferry/, the trust files in /ferry/trust/, an empty /ferry/reports/ and
// a README.txt. Payload parts are streamed from the bundle files into the
// image and checked against their digests on the way; memory use does not
// grow with them. The image is written beside out and renamed over it
// when complete.
func Build(out string, bundles []string, o BuildOptions) (*BuildResult, error) {
	res, err := build(out, bundles, o)
	if err != nil {
		return nil, fmt.Errorf("build stick image %s: %w", out, err)
	}
	return res, nil
}

// stickFile is a file to put on the stick: small content in data, or a
// payload layer streamed from an archive.
type stickFile struct {
	path string // absolute in the filesystem, e.g. /ferry/index.json
	data []byte
	size int64
	open func() (io.Reader, error)
}

func build(out string, bundlePaths []string, o BuildOptions) (*BuildResult, error) {
	if len(bundlePaths) == 0 && len(o.FromBundles) == 0 {
		return nil, errors.New("no bundles given")
	}
	label, err := NormalizeLabel(o.Label)
	if err != nil {
		return nil, err
	}
	res := &BuildResult{Path: out, Label: label}
	bases, closeBases, err := openBases(o.DeltaFrom)
	if err != nil {
		return nil, err
	}
	defer closeBases()

	// The layout: the store files, then every distinct payload layer;
	// fallback holds the layers only the full bundles of deltas need.
	var lbs []layout.Bundle
	var layers, fallback []stickFile
	var deltas []*BuiltDelta // by lbs entry, nil: a full bundle
	seen := map[digest.Digest]bool{}
	listed := map[digest.Digest]*BuiltDelta{}
	served := map[string]bool{}
	srcs, closeAll, err := bundleSources(bundlePaths, o)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	for _, a := range srcs {
		lbs = append(lbs, layout.Bundle{Manifest: a.rawManifest, Config: a.rawConfig, Signatures: a.sigs})
		if d, ok := listed[a.digest]; ok {
			// The same bundle again (maybe with other signatures): its
			// signatures are merged, it is listed once.
			deltas = append(deltas, d)
			continue
		}
		var need map[digest.Digest]bool
		var delta *BuiltDelta
		if bs := bases[a.cfg.Name]; len(bs) > 0 {
			served[a.cfg.Name] = true
			if a.head == nil {
				return nil, fmt.Errorf("%s %s of %s: --delta-from applies to bundle files", a.cfg.Name, a.cfg.Version, a.file)
			}
			if need, delta, err = deltaLayers(a.head, bs); err != nil {
				return nil, fmt.Errorf("%s: %w", a.file, err)
			}
		}
		listed[a.digest] = delta
		deltas = append(deltas, delta)
		bb := BuiltBundle{File: a.file, Name: a.cfg.Name, Version: a.cfg.Version, DeviceTypes: a.cfg.DeviceTypes, Manifest: a.digest, Signatures: len(a.sigs), Delta: delta}
		for _, l := range a.layers {
			bb.Size += l.Size
			if seen[l.Digest] {
				continue
			}
			sf := stickFile{
				path: "/" + stick.Dir + "/blobs/sha256/" + l.Digest.Encoded(),
				size: l.Size,
				open: func() (io.Reader, error) { return a.blob(l) },
			}
			if need != nil && !need[l.Digest] {
				fallback = append(fallback, sf)
				continue
			}
			seen[l.Digest] = true
			layers = append(layers, sf)
		}
		res.Bundles = append(res.Bundles, bb)
	}
	for name, bs := range bases {
		if !served[name] {
			return nil, fmt.Errorf("delta base %s: no bundle named %s is given", bs[0].path, name)
		}
	}
	// A layer another bundle needs whole is carried anyway.
	fallback = slices.DeleteFunc(fallback, func(sf stickFile) bool {
		d := digest.Digest("sha256:" + path.Base(sf.path))
		defer func() { seen[d] = true }()
		return seen[d]
	})
	var extra []stickFile // trust and deployment files
	trustNames := map[string]bool{}
	for _, t := range o.Trust {
		data, err := readTrust(t)
		if err != nil {
			return nil, err
		}
		name := filepath.Base(t)
		if trustNames[strings.ToLower(name)] {
			return nil, fmt.Errorf("trust file %s: another --trust file has the same name", t)
		}
		trustNames[strings.ToLower(name)] = true
		extra = append(extra, stickFile{path: path.Join("/", stick.Dir, stick.TrustDir, name), data: data, size: int64(len(data))})
		res.Trust = append(res.Trust, name)
	}
	if dp := o.Deployment; dp != nil {
		df, err := deploymentFiles(dp)
		if err != nil {
			return nil, err
		}
		extra = append(extra, df...)
		res.Deployment = dp.ID
		for id := range dp.Assignments {
			res.Assignments = append(res.Assignments, id)
		}
		sort.Strings(res.Assignments)
	}
	// list is everything to write, with the full fallback or without.
	list := func(full bool) ([]stickFile, error) {
		ls := slices.Clone(lbs)
		for i, d := range deltas {
			if d != nil {
				d.Full = full
				ls[i].Annotations = deltaAnnotations(d)
			}
		}
		layoutFiles, err := layout.Files(ls)
		if err != nil {
			return nil, err
		}
		var files []stickFile
		for name, data := range layoutFiles {
			files = append(files, stickFile{path: "/" + stick.Dir + "/" + name, data: data, size: int64(len(data))})
		}
		sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
		files = append(files, extra...)
		readme := []byte(readmeText(res, time.Now()))
		files = append(files, stickFile{path: "/README.txt", data: readme, size: int64(len(readme))})
		files = append(files, layers...)
		if full {
			files = append(files, fallback...)
		}
		return files, nil
	}
	// With deltas: the full fallback when --size has room for it.
	full, note := true, ""
	if len(fallback) > 0 {
		if o.Size == 0 {
			full, note = false, "no full fallback: --size auto makes the smallest stick (give --size to keep one)"
		} else if all, err := list(true); err != nil {
			return nil, err
		} else if _, err := chooseSize(o.Size, all); err != nil {
			var ts *tooSmallError
			if !errors.As(err, &ts) {
				return nil, err
			}
			full, note = false, fmt.Sprintf("no full fallback: it needs a stick of at least %s, --size is %s", display.Bytes(ts.need), display.Bytes(ts.size))
		}
		for _, d := range deltas {
			if d != nil {
				d.Note = note
			}
		}
	}
	files, err := list(full)
	if err != nil {
		return nil, err
	}
	size, err := chooseSize(o.Size, files)
	if err != nil {
		return nil, err
	}
	geo, err := diskGeometry(size)
	if err != nil {
		return nil, err
	}
	res.Size, res.PartitionOffset, res.PartitionSize = size, geo.start*sectorSize, geo.sectors*sectorSize

	f, err := atomicfile.CreateTempPerm(out, 0o644)
	if err != nil {
		return nil, err
	}
	defer func() {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Truncate(size); err != nil {
		return nil, err
	}
	if err := writeImage(f, geo, label, files, o.Progress); err != nil {
		return nil, err
	}
	if err := fixFAT32(f, res.PartitionOffset, res.PartitionSize); err != nil {
		return nil, fmt.Errorf("post-pass over the FAT: %w", err)
	}
	g, err := parseBootSector(f, res.PartitionOffset, res.PartitionSize)
	if err != nil {
		return nil, err
	}
	t, err := loadFAT(f, res.PartitionOffset, g)
	if err != nil {
		return nil, err
	}
	free, _ := t.free()
	res.Free = int64(free) * g.clusterBytes()
	err = atomicfile.Commit(f, out) // on error it removes f itself
	f = nil
	if err != nil {
		return nil, err
	}
	return res, nil
}

func readTrust(p string) ([]byte, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("trust file: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() > 1<<20 {
		return nil, fmt.Errorf("trust file %s: want a regular file of at most 1 MiB", p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	// Only what may be handed out goes onto a stick: never a private key.
	if k := filekind.Detect(b); !k.IsPublicTrust() {
		return nil, fmt.Errorf("trust file %s: %w", p, &filekind.Error{Got: k, Want: filekind.PublicTrust})
	}
	return b, nil
}

// geometry is where the partition goes on a disk of a given size.
type geometry struct {
	start, sectors int64 // of the partition (and filesystem), in sectors
}

// diskGeometry places the FAT32 partition: from 1 MiB to the last whole
// MiB before the backup GPT, shrunk to a size go-diskfs formats correctly
// (fatfix.go, workaround 2).
func diskGeometry(size int64) (geometry, error) {
	if size%sectorSize != 0 {
		return geometry{}, fmt.Errorf("image size %d is not a multiple of %d", size, sectorSize)
	}
	if size > maxImageSize {
		return geometry{}, fmt.Errorf("image size %s: at most %s (go-diskfs limit)", display.Bytes(size), display.Bytes(maxImageSize))
	}
	disk := size / sectorSize
	max := (disk-gptBackup-1)/partitionStart*partitionStart - partitionStart
	s := int64(0)
	if max > 0 {
		s = fat32Sectors(max)
	}
	if s == 0 {
		return geometry{}, fmt.Errorf("image size %s is too small for FAT32 (at least %s)", display.Bytes(size), display.Bytes(minImageSize))
	}
	return geometry{start: partitionStart, sectors: s}, nil
}

// clustersFor counts the clusters files take in a filesystem of
// clusterBytes clusters, with their directories: each file at least one
// cluster (go-diskfs allocates one for an empty file too), each directory
// entry a short entry and a long-name entry per 13 characters.
func clustersFor(files []stickFile, clusterBytes int64) int64 {
	up := func(n int64) int64 { return max(1, (n+clusterBytes-1)/clusterBytes) }
	entry := func(p string) int64 { return 1 + int64(len(path.Base(p))+12)/13 }
	dirs := map[string]int64{"/": 2} // the volume label, and a margin
	var addDir func(d string)
	addDir = func(d string) {
		if _, ok := dirs[d]; ok {
			return
		}
		addDir(path.Dir(d))
		dirs[d] = 2 // . and ..
		dirs[path.Dir(d)] += entry(d)
	}
	addDir("/" + stick.Dir + "/" + stick.ReportsDir)
	var n int64
	for _, f := range files {
		addDir(path.Dir(f.path))
		dirs[path.Dir(f.path)] += entry(f.path)
		n += up(f.size)
	}
	for _, e := range dirs {
		n += up(e * 32)
	}
	return n
}

// tooSmallError is chooseSize's error for a size the files do not fit.
type tooSmallError struct{ size, need int64 }

func (e *tooSmallError) Error() string {
	return fmt.Sprintf("the bundles do not fit in %s with room for reports: use --size auto or at least %s", display.Bytes(e.size), display.Bytes(e.need))
}

// chooseSize returns the image size: the one asked for, if the files fit
// with room for reports, or an automatic one.
func chooseSize(want int64, files []stickFile) (int64, error) {
	fits := func(size, headroom int64) (bool, error) {
		geo, err := diskGeometry(size)
		if err != nil {
			return false, err
		}
		g := diskfsGeometry(geo.sectors * sectorSize)
		need := clustersFor(files, g.clusterBytes()) + (headroom+g.clusterBytes()-1)/g.clusterBytes()
		return need <= int64(g.clusters()), nil
	}
	if want > 0 {
		want = want / sectorSize * sectorSize
		ok, err := fits(want, reportRoom)
		if err != nil {
			return 0, err
		}
		if !ok {
			auto, err := chooseSize(0, files)
			if err != nil {
				return 0, err
			}
			return 0, &tooSmallError{size: want, need: auto}
		}
		return want, nil
	}
	var content int64
	for _, f := range files {
		content += f.size
	}
	headroom := autoHeadroom + content*autoHeadroomPct/100
	size := max(minImageSize, (content+headroom+4<<20+autoRound-1)/autoRound*autoRound)
	for ; size <= maxImageSize; size += autoRound {
		ok, err := fits(size, headroom)
		if err != nil {
			return 0, err
		}
		if ok {
			return size, nil
		}
	}
	return 0, fmt.Errorf("the bundles (%s) do not fit on the largest image ferry makes (%s)", display.Bytes(content), display.Bytes(maxImageSize))
}

// writeImage partitions the image and fills its filesystem with go-diskfs.
func writeImage(f *os.File, geo geometry, label string, files []stickFile, progress func(done, total int64)) error {
	d, err := diskfs.OpenBackend(file.New(f, false), diskfs.WithSectorSize(sectorSize))
	if err != nil {
		return err
	}
	table := &gpt.Table{
		LogicalSectorSize: sectorSize, PhysicalSectorSize: sectorSize, ProtectiveMBR: true,
		Partitions: []*gpt.Partition{{
			Index: 1, Start: uint64(geo.start), End: uint64(geo.start + geo.sectors - 1), Size: uint64(geo.sectors * sectorSize),
			Type: gpt.MicrosoftBasicData, Name: "ferry",
		}},
	}
	if err := d.Partition(table); err != nil {
		return err
	}
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32, VolumeLabel: label})
	if err != nil {
		return fmt.Errorf("create FAT32: %w", err)
	}
	fsStart := geo.start * sectorSize
	for _, dir := range []string{"/" + stick.Dir + "/blobs/sha256", "/" + stick.Dir + "/" + stick.ReportsDir} {
		if err := fsys.Mkdir(dir); err != nil {
			return fmt.Errorf("mkdir %s: %w", dir, err)
		}
	}
	var total, done int64
	for _, sf := range files {
		if sf.open != nil {
			total += sf.size
		}
	}
	buf := make([]byte, 1<<20)
	wb := &writeBehind{f: f}
	for _, sf := range files {
		if err := fsys.Mkdir(path.Dir(sf.path)); err != nil {
			return fmt.Errorf("mkdir %s: %w", path.Dir(sf.path), err)
		}
		if sf.open == nil {
			if err := writeSmall(fsys, sf.path, sf.data); err != nil {
				return err
			}
			continue
		}
		r, err := sf.open()
		if err != nil {
			return err
		}
		var step func(int64)
		if progress != nil {
			base := done
			step = func(n int64) { progress(base+n, total) }
		}
		if err := writeStreamed(fsys, f, wb, fsStart, sf.path, sf.size, r, buf, step); err != nil {
			return fmt.Errorf("%s: %w", sf.path, err)
		}
		done += sf.size
	}
	wb.flush()
	if progress != nil {
		progress(done, total)
	}
	return nil
}

func writeSmall(fsys filesystem.FileSystem, name string, data []byte) error {
	fl, err := fsys.OpenFile(name, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	defer fl.Close()
	if len(data) == 0 {
		return nil
	}
	if n, err := fl.Write(data); err != nil || n != len(data) {
		return fmt.Errorf("write %s: %d of %d bytes: %v", name, n, len(data), err)
	}
	return nil
}

// writeStreamed makes a file of size bytes with go-diskfs, which allocates
// its clusters and directory entry in one step (a write of its last byte),
// then copies src straight into those clusters of the image. Writing
// through go-diskfs's File.Write instead would re-walk the cluster chain
// and rewrite both FATs on every call. wb (if not nil) is told of every
// write, so that the image goes to disk while src is still being hashed.
func writeStreamed(fsys filesystem.FileSystem, img io.WriterAt, wb *writeBehind, fsStart int64, name string, size int64, src io.Reader, buf []byte, progress func(int64)) error {
	fl, err := fsys.OpenFile(name, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer fl.Close()
	if size > 0 {
		if _, err := fl.Seek(size-1, io.SeekStart); err != nil {
			return err
		}
		if _, err := fl.Write([]byte{0}); err != nil {
			return fmt.Errorf("allocate %d bytes: %w", size, err)
		}
	}
	rf, ok := fl.(interface {
		GetDiskRanges() ([]fat12.DiskRange, error)
	})
	if !ok {
		return fmt.Errorf("go-diskfs file %T does not tell its clusters", fl)
	}
	ranges, err := rf.GetDiskRanges()
	if err != nil {
		return err
	}
	w := &rangeWriter{w: img, wb: wb, base: fsStart, ranges: ranges, progress: progress}
	n, err := pipeCopy(w, io.LimitReader(src, size+1))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("copied %d bytes, want %d", n, size)
	}
	// Let the source check its digest at EOF.
	if k, err := src.Read(buf[:1]); k != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = errors.New("more data than its size")
		}
		return err
	}
	return nil
}

// pipeCopy copies r to w, reading (and hashing: r checks its digest) in
// one goroutine while writing in another, with four 1 MiB buffers.
func pipeCopy(w io.Writer, r io.Reader) (int64, error) {
	const bufs, size = 4, 1 << 20
	type chunk struct {
		b   []byte
		err error
	}
	free, full := make(chan []byte, bufs), make(chan chunk, bufs+1)
	for range bufs {
		free <- make([]byte, size)
	}
	stop := make(chan struct{})
	go func() {
		defer close(full)
		for {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			n, err := io.ReadFull(r, b)
			if n > 0 {
				full <- chunk{b: b[:n]}
			}
			switch err {
			case nil:
				continue
			case io.EOF, io.ErrUnexpectedEOF:
				return
			}
			full <- chunk{err: err}
			return
		}
	}()
	var written int64
	for c := range full {
		err := c.err
		if err == nil {
			var n int
			n, err = w.Write(c.b)
			written += int64(n)
			free <- c.b[:cap(c.b)]
		}
		if err != nil {
			close(stop)
			for range full {
			}
			return written, err
		}
	}
	return written, nil
}

// rangeWriter writes a stream sequentially into disk ranges.
type rangeWriter struct {
	w        io.WriterAt
	wb       *writeBehind // nil: none
	base     int64
	ranges   []fat12.DiskRange
	i        int   // current range
	off      int64 // within it
	n        int64
	progress func(int64)
}

func (r *rangeWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if r.i >= len(r.ranges) {
			return written, errors.New("more data than the clusters allocated for it")
		}
		rg := r.ranges[r.i]
		k := min(int64(len(p)), int64(rg.Length)-r.off)
		at := r.base + int64(rg.Offset) + r.off
		if _, err := r.w.WriteAt(p[:k], at); err != nil {
			return written, err
		}
		r.wb.wrote(at, k)
		written += int(k)
		p = p[k:]
		r.off += k
		if r.off == int64(rg.Length) {
			r.i, r.off = r.i+1, 0
		}
	}
	r.n += int64(written)
	if r.progress != nil {
		r.progress(r.n)
	}
	return written, nil
}

// writeBehind starts writeback of the payload as it is written, a window
// at a time, and waits for the window written two windows earlier. Build
// ends with an fsync; without this, all of the image would go to disk only
// then, after the (slower) reading and hashing of the bundles, instead of
// alongside it. Waiting keeps dirty pages, and the final fsync, small, and
// holds the copy to the pace of the disk (the bound on any image writer).
type writeBehind struct {
	f          *os.File
	start, end int64      // the run of written bytes not yet handed to the kernel
	pending    [][2]int64 // runs handed over and not waited for: offset, length
}

// writeBehindWindow is how many bytes are handed to the kernel at a time.
const writeBehindWindow = 8 << 20

// writeBehindDepth is how many windows may be in flight.
const writeBehindDepth = 2

// wrote records n bytes written at off. A nil writeBehind does nothing.
func (w *writeBehind) wrote(off, n int64) {
	if w == nil {
		return
	}
	if off != w.end || w.end-w.start >= writeBehindWindow {
		w.kick()
		w.start = off
	}
	w.end = off + n
}

// kick hands the current run to the kernel.
func (w *writeBehind) kick() {
	if w.end > w.start {
		startWriteback(w.f, w.start, w.end-w.start)
		w.pending = append(w.pending, [2]int64{w.start, w.end - w.start})
	}
	w.start = w.end
	for len(w.pending) > writeBehindDepth {
		waitWriteback(w.f, w.pending[0][0], w.pending[0][1])
		w.pending = append(w.pending[:0], w.pending[1:]...)
	}
}

// flush hands the rest to the kernel; the caller's fsync waits for it.
func (w *writeBehind) flush() {
	w.kick()
	w.pending = w.pending[:0]
}

// readmeText is README.txt, for a technician on any laptop (CRLF).
func readmeText(res *BuildResult, now time.Time) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\r\n", a...) }
	w("FERRY UPDATE STICK")
	w("==================")
	w("")
	w("This stick carries signed software updates for devices that run the")
	w("ferry agent. Made on %s.", now.UTC().Format("2006-01-02 15:04 MST"))
	w("")
	w("HOW TO USE IT")
	w("1. Plug the stick into the device while it is running.")
	w("2. The device finds the stick, checks the signatures of the updates on")
	w("   it, and installs the newest one made for its device type. It refuses")
	w("   an update that is not signed by a key it trusts, is for another kind")
	w("   of device, or is older than what it runs.")
	w("3. Leave the stick in until the device says it is done: it writes a")
	w("   report (one .json file per device and attempt) into ferry\\reports")
	w("   first. Then the device may restart into the new version.")
	w("4. Back at a computer, read the reports in ferry\\reports, or run")
	w("   'ferry media reports <this stick or its image>'.")
	w("")
	w("Do not change or delete anything under ferry\\ other than the reports:")
	w("the updates are checked against their signatures, and a changed file")
	w("makes every device refuse the update.")
	w("")
	w("WHAT IS ON IT")
	for _, bb := range res.Bundles {
		w("  %-24s %-16s %10s  for %s", bb.Name, bb.Version, display.Bytes(bb.Size), strings.Join(bb.DeviceTypes, ", "))
		w("  %24s manifest %s, %d signature(s)", "", bb.Manifest, bb.Signatures)
		if bb.Delta != nil {
			w("  %24s delta %s", "", bb.Delta.Describe())
		}
	}
	if len(res.Trust) > 0 {
		w("")
		w("Trust material (in ferry\\trust): %s", strings.Join(res.Trust, ", "))
	}
	if res.Deployment != 0 {
		w("")
		w("Built for deployment %d: it carries the signed assignments of %d device(s)", res.Deployment, len(res.Assignments))
		w("(ferry\\assignments). A device its mirror manages installs only the update")
		w("its own assignment names, and skips (with a report saying why) when the")
		w("stick holds none for it.")
	}
	w("")
	w("The updates are in ferry\\ as an OCI image layout, readable with")
	w("'ferry media inspect', 'ferry mirror list' or skopeo (oci:ferry:NAME:VERSION).")
	return b.String()
}
