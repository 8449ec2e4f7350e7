package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/verifyio"
	"github.com/ferry-update/ferry/transport"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/verify"
)

// Verdicts of Inspect. A verdict word says what was checked: "valid" only
// when the signatures hold and every payload part matched its signed digest
// and nothing follows the signed members (what a device would install).
const (
	StatusValid          = "valid"           // signatures hold, every payload byte matches its signed digest
	StatusSignaturesOnly = "signatures-only" // signatures hold; payloads not read (Quick)
	StatusInvalid        = "invalid"         // signatures do not hold, or a payload does not match
	StatusOtherType      = "other-type"      // signed well enough, but not for the policy's device type
	StatusUnchecked      = "unchecked"       // no keys were given: nothing was judged
	StatusUnreadable     = "unreadable"      // the bundle's blobs cannot be read
)

// What Inspect checked of a bundle (InspectedBundle.Checked).
const (
	CheckedNothing    = "nothing"             // no policy: nothing judged
	CheckedSignatures = "signatures"          // the head only: signatures, threshold, device type
	CheckedAll        = "signatures+payloads" // and every payload part, to the end of the archive
)

// InspectOptions say how Inspect judges bundles.
type InspectOptions struct {
	// Policy, when set, is what each bundle is checked against: its head
	// (verify.CheckHead: signatures, threshold, revoked keys, device
	// type), then every payload part against its signed layer digest, to
	// the end of the archive; without it bundles are "unchecked".
	Policy *verify.Policy
	// Quick checks the head only: a bundle whose signatures hold is then
	// "signatures-only", never "valid".
	Quick bool
}

// Inspection is what is on a stick.
type Inspection struct {
	Path            string            `json:"path"`
	Size            int64             `json:"size"`
	PartitionTable  string            `json:"partitionTable"` // gpt, mbr or none
	PartitionOffset int64             `json:"partitionOffset"`
	PartitionSize   int64             `json:"partitionSize"`
	Label           string            `json:"label"`
	Free            int64             `json:"free"`
	Warnings        []string          `json:"warnings,omitempty"`
	Bundles         []InspectedBundle `json:"bundles"`
	Trust           []string          `json:"trust"`
	Reports         []ReportRow       `json:"reports"`
}

// InspectedBundle is one bundle on a stick and the verdict on it.
type InspectedBundle struct {
	Name        string         `json:"name"`
	Version     string         `json:"version"`
	DeviceTypes []string       `json:"deviceTypes"`
	Created     time.Time      `json:"created,omitzero"`
	Manifest    digest.Digest  `json:"manifest"`
	Size        int64          `json:"size"`
	Signatures  int            `json:"signatures"`
	Status      string         `json:"status"`
	Checked     string         `json:"checked"` // CheckedNothing, CheckedSignatures or CheckedAll
	Reason      string         `json:"reason,omitempty"`
	Verdict     *verify.Result `json:"verdict,omitempty"`
	// Delta is set for a bundle the stick carries as a delta ('ferry
	// media build --delta-from').
	Delta *InspectedDelta `json:"delta,omitempty"`
}

// InspectedDelta says what a stick holds of a bundle it carries as a
// delta: the base versions it serves (from the stick's unsigned index)
// and how many payload parts are on it. When Only, devices on other
// versions skip the bundle; "valid" then means the signatures hold and
// every part on the stick matches its signed digest.
type InspectedDelta struct {
	Bases []string `json:"bases"`
	Only  bool     `json:"only"`
	// Parts counts the payload parts of the bundle, Present those on the
	// stick.
	Parts   int `json:"parts"`
	Present int `json:"present"`
}

// ReportRow is one report file: the report, or why it could not be read.
type ReportRow struct {
	File   string        `json:"file"`
	Report *stick.Report `json:"report,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// Inspect opens a stick image or block device read-only (with go-diskfs)
// and lists the bundles in its /ferry/ layout with the verdict on their
// signatures, its trust files and its reports. A damaged partition table
// or filesystem is an error that says what is wrong; a damaged bundle is
// listed as unreadable.
func Inspect(imgOrDevice string, o InspectOptions) (*Inspection, error) {
	in, err := inspect(imgOrDevice, o)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", imgOrDevice, err)
	}
	return in, nil
}

func inspect(p string, o InspectOptions) (*Inspection, error) {
	m, err := openLayout(p)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	img, l := m.img, m.layout
	in := &Inspection{Path: p, Size: img.size, PartitionTable: img.table, PartitionOffset: img.off,
		PartitionSize: img.fsSize, Label: strings.TrimSpace(img.geo.label), Warnings: img.warnings, Trust: []string{}, Reports: []ReportRow{}}
	free, _ := img.fat.free()
	in.Free = int64(free) * img.geo.clusterBytes()
	bs, err := l.Bundles()
	if err != nil {
		return nil, err
	}
	in.Bundles = []InspectedBundle{}
	for _, b := range bs {
		in.Bundles = append(in.Bundles, judge(l, b, o))
	}
	if in.Trust, err = l.TrustFiles(); err != nil {
		return nil, err
	}
	if in.Trust == nil {
		in.Trust = []string{}
	}
	if in.Reports, err = img.reports(); err != nil {
		return nil, err
	}
	return in, nil
}

// judge checks a bundle as a device would, on the stream the stick yields:
// its head (verify.CheckHead), then, unless o.Quick, every payload part
// against its signed digest and the end of the archive.
func judge(l *stick.Layout, b stick.Bundle, o InspectOptions) InspectedBundle {
	p := o.Policy
	ib := InspectedBundle{Name: b.Name, Version: b.Version, DeviceTypes: b.DeviceTypes, Created: b.Created,
		Manifest: b.Manifest, Size: b.Size, Signatures: len(b.Signatures), Status: StatusUnchecked, Checked: CheckedNothing}
	if ib.DeviceTypes == nil {
		ib.DeviceTypes = []string{}
	}
	if b.Err != nil {
		ib.Status, ib.Reason = StatusUnreadable, b.Err.Error()
		return ib
	}
	var omit map[string]bool
	if b.DeltaBases != nil {
		ib.Delta, omit = deltaOnStick(l, b)
	}
	if p == nil {
		return ib
	}
	var rc io.ReadCloser
	var err error
	if omit != nil {
		// The parts of payloads that are not all there are checked one
		// by one after the stream.
		var blobs *transport.Blobs
		if blobs, err = transport.LayoutBlobs(context.Background(), l, b, b.Name+" "+b.Version); err == nil {
			defer blobs.Close()
			rc = blobs.Stream(context.Background(), omit)
		}
	} else {
		rc, err = l.Open(b)
	}
	if err != nil {
		ib.Status, ib.Reason = StatusUnreadable, err.Error()
		return ib
	}
	defer rc.Close()
	r, err := bundle.NewReaderWith(rc, bundle.ReaderOptions{Omitted: omit})
	if err != nil {
		ib.Status, ib.Reason = StatusUnreadable, err.Error()
		return ib
	}
	defer r.Close()
	ib.Checked = CheckedSignatures
	ib.Verdict, err = verify.CheckHead(r, *p)
	var de *verify.DeviceTypeError
	switch {
	case errors.As(err, &de):
		ib.Status, ib.Reason = StatusOtherType, err.Error()
		return ib
	case err != nil:
		ib.Status, ib.Reason = StatusInvalid, err.Error()
		return ib
	case o.Quick:
		ib.Status = StatusSignaturesOnly
		return ib
	}
	ib.Checked = CheckedAll
	if err := r.Finish(); err != nil {
		ib.Status, ib.Reason = StatusInvalid, err.Error()
		return ib
	}
	if err := checkPresentParts(l, r, omit); err != nil {
		ib.Status, ib.Reason = StatusInvalid, err.Error()
		return ib
	}
	ib.Status = StatusValid
	return ib
}

// deltaOnStick says what the stick holds of bundle b, which it carries
// as a delta, and which payloads lack parts.
func deltaOnStick(l *stick.Layout, b stick.Bundle) (*InspectedDelta, map[string]bool) {
	d := &InspectedDelta{Bases: b.DeltaBases, Only: b.DeltaOnly}
	omit := map[string]bool{}
	cfg, layers := b.Config, b.Layers()
	at := len(cfg.Attachments)
	for _, p := range cfg.Payloads {
		if at+p.Parts > len(layers) {
			return d, nil // the reader refuses the manifest
		}
		for _, part := range layers[at : at+p.Parts] {
			d.Parts++
			if l.Has(part) {
				d.Present++
			} else {
				omit[p.Name] = true
			}
		}
		at += p.Parts
	}
	if len(omit) == 0 {
		omit = nil
	}
	return d, omit
}

// checkPresentParts checks every part on the stick of the payloads in
// omit (judged by the reader r) against its signed digest.
func checkPresentParts(l *stick.Layout, r *bundle.Reader, omit map[string]bool) error {
	cfg, m := r.Config(), r.Manifest()
	for i, p := range cfg.Payloads {
		if !omit[p.Name] {
			continue
		}
		for k, part := range bundle.PayloadLayers(cfg, m, i) {
			if !l.Has(part) {
				continue
			}
			rc, err := l.OpenBlob(part.Digest, 0)
			if err == nil {
				var vr *verifyio.Reader
				if vr, err = verifyio.NewReader(rc, part.Size, part.Digest); err == nil {
					_, err = io.Copy(io.Discard, vr)
				}
				rc.Close()
			}
			if err != nil {
				return fmt.Errorf("payload %q part %d of %d: %w", p.Name, k+1, p.Parts, err)
			}
		}
	}
	return nil
}

func reportRows(rs []stick.ReportFile) []ReportRow {
	out := []ReportRow{}
	for _, r := range rs {
		row := ReportRow{File: r.Name, Report: r.Report}
		if r.Err != nil {
			row.Error = r.Err.Error()
		}
		out = append(out, row)
	}
	return out
}

// Reports collects the reports of a stick: from an image or block device
// (read with go-diskfs), or from a directory: a mounted stick or a copy of
// one, its ferry/ directory, or a reports directory itself.
func Reports(imgOrDir string) ([]ReportRow, error) {
	rows, err := reports(imgOrDir)
	if err != nil {
		return nil, fmt.Errorf("reports of %s: %w", imgOrDir, err)
	}
	return rows, nil
}

func reports(p string) ([]ReportRow, error) {
	_, reps, done, err := openStick(p)
	if err != nil {
		return nil, err
	}
	defer done()
	rs, err := stick.ReadReports(reps)
	if err != nil {
		return nil, err
	}
	return reportRows(rs), nil
}

// openStick opens the stick at p, an image or block device (read with
// go-diskfs) or a directory (read as hostile input, stick.DirFS): a
// mounted stick or a copy of one, its ferry/ directory, or a reports
// directory itself. It returns the stick's ferry/ directory (nil for a
// reports directory) and its reports directory; done releases them.
func openStick(p string) (ferry, reps fs.FS, done func(), err error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, nil, nil, err
	}
	if !st.IsDir() {
		img, err := openImage(p)
		if err != nil {
			return nil, nil, nil, err
		}
		return img.sub(stick.Dir), img.sub(path.Join(stick.Dir, stick.ReportsDir)), img.close, nil
	}
	fsys := stick.DirFS(p)
	for _, dir := range []string{stick.Dir, "."} {
		sub := path.Join(dir, stick.ReportsDir)
		if st, err := fs.Stat(fsys, sub); err == nil && st.IsDir() {
			ferry, _ = fs.Sub(fsys, dir)
			reps, _ = fs.Sub(fsys, sub)
			return ferry, reps, func() {}, nil
		}
	}
	if st, err := fs.Stat(fsys, stick.Dir); err == nil && st.IsDir() {
		ferry, _ = fs.Sub(fsys, stick.Dir)
	}
	return ferry, fsys, func() {}, nil
}

// image is a stick image or device opened for reading, its FAT32
// filesystem found and checked.
type image struct {
	f        *os.File
	size     int64
	table    string
	off      int64 // of the filesystem
	fsSize   int64
	geo      *fatGeometry
	fat      *fatTable
	fs       filesystem.FileSystem
	warnings []string
}

func (m *image) close() { m.f.Close() }

// openImage finds the FAT32 filesystem of a stick: in the first GPT or MBR
// partition that holds one, or on the whole disk (a "superfloppy", as
// mkfs.fat makes on a bare image). Before go-diskfs reads anything, the
// partition table header and the FAT are checked (fat.go), so that a
// hostile or damaged image gives an error rather than a hang.
func openImage(p string) (img *image, err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	defer recoverDiskfs(&err)
	d, err := diskfs.OpenBackend(readOnly{f}, diskfs.WithSectorSize(sectorSize))
	if err != nil {
		return nil, err
	}
	img = &image{f: f, size: d.Size, table: "none"}
	if img.size < 4*sectorSize {
		return nil, fmt.Errorf("%d bytes: too small to be a stick", img.size)
	}
	type candidate struct {
		off, size int64
		what      string
	}
	var cands []candidate
	var tableErr error
	if err := checkGPTHeaders(f, img.size); err != nil {
		tableErr = err
	} else if t, err := gpt.Read(d.Backend, sectorSize, sectorSize); err == nil {
		img.table = "gpt"
		if t.RecoveredFromBackup {
			img.warnings = append(img.warnings, "the primary GPT is damaged; the backup GPT was read (repair with sgdisk -e or rebuild the stick)")
		}
		for _, pt := range t.Partitions {
			if pt.Start == 0 || pt.End < pt.Start || int64(pt.End) >= img.size/sectorSize {
				continue
			}
			cands = append(cands, candidate{int64(pt.Start) * sectorSize, int64(pt.End-pt.Start+1) * sectorSize, fmt.Sprintf("GPT partition %d", pt.Index)})
		}
	} else {
		tableErr = fmt.Errorf("GPT: %w", err)
	}
	if img.table == "none" {
		if t, err := mbr.Read(d.Backend, sectorSize, sectorSize); err == nil {
			protective := false
			for i, pt := range t.Partitions {
				if pt.Type == mbr.GPTProtective {
					protective = true
				}
				if pt.Type == mbr.Empty || pt.Type == mbr.GPTProtective || pt.Size == 0 {
					continue
				}
				img.table = "mbr"
				cands = append(cands, candidate{int64(pt.Start) * sectorSize, int64(pt.Size) * sectorSize, fmt.Sprintf("MBR partition %d", i+1)})
			}
			if protective && img.table == "none" {
				return nil, fmt.Errorf("the GPT partition table is damaged (primary and backup): %v", tableErr)
			}
		}
	}
	if img.table == "none" {
		cands = append(cands, candidate{0, img.size, "the whole disk"})
	}
	var errs []string
	for _, c := range cands {
		if c.off+c.size > img.size {
			errs = append(errs, fmt.Sprintf("%s: extends past the end of the disk", c.what))
			continue
		}
		err := img.openFAT(d.Backend, c.off, c.size)
		if err == nil {
			return img, nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", c.what, err))
	}
	return nil, fmt.Errorf("no FAT32 filesystem found (%s)", strings.Join(errs, "; "))
}

func (m *image) openFAT(b backend.Storage, off, size int64) error {
	g, err := parseBootSector(m.f, off, size)
	if err != nil {
		return err
	}
	t, err := loadFAT(m.f, off, g)
	if err != nil {
		return err
	}
	fsys, err := fat32.Read(b, g.totalSectors*g.bytesPerSector, off, g.bytesPerSector)
	if err != nil {
		return err
	}
	m.off, m.fsSize, m.geo, m.fat, m.fs = off, g.totalSectors*g.bytesPerSector, g, t, fsys
	return nil
}

// checkGPTHeaders refuses a GPT header (primary or backup) whose
// partition array go-diskfs would allocate without bound.
func checkGPTHeaders(r io.ReaderAt, size int64) error {
	for _, lba := range []int64{1, size/sectorSize - 1} {
		h := make([]byte, 92)
		if _, err := r.ReadAt(h, lba*sectorSize); err != nil {
			return fmt.Errorf("read GPT header: %w", err)
		}
		if !bytes.Equal(h[:8], []byte("EFI PART")) {
			continue
		}
		n, es := binary.LittleEndian.Uint32(h[80:]), binary.LittleEndian.Uint32(h[84:])
		if es < 128 || es > 4096 || es%8 != 0 || int64(n)*int64(es) > 1<<20 {
			return fmt.Errorf("GPT header at sector %d: %d partition entries of %d bytes", lba, n, es)
		}
	}
	return nil
}

// readOnly is an image file as a read-only go-diskfs backend.
type readOnly struct{ *os.File }

func (r readOnly) Sys() (*os.File, error)                  { return r.File, nil }
func (r readOnly) Writable() (backend.WritableFile, error) { return nil, backend.ErrIncorrectOpenMode }
func (r readOnly) Path() string                            { return r.Name() }
func (r readOnly) Stat() (fs.FileInfo, error)              { return r.File.Stat() }

// recoverDiskfs turns a panic in go-diskfs on a damaged image into an
// error.
func recoverDiskfs(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("damaged filesystem (go-diskfs failed: %v)", r)
	}
}

// sub is the directory dir of the filesystem as an fs.FS.
func (m *image) sub(dir string) fs.FS { return fatFS{fs: m.fs, root: dir} }

// fatFS is a go-diskfs filesystem as a read-only fs.FS rooted at root,
// with go-diskfs's panics on damaged structures turned into errors.
type fatFS struct {
	fs   filesystem.FileSystem
	root string
}

func (f fatFS) path(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	return path.Join(f.root, name), nil
}

// pathError is the error of op on name (at p in the filesystem) after
// go-diskfs failed with err. go-diskfs's errors carry no type that tells
// a missing file from a damaged filesystem, and matching their text would
// break silently with its next wording, so whether p is missing is asked
// of the directory listing instead: fs.ErrNotExist when it is.
func (f fatFS) pathError(op, name, p string, err error) error {
	if f.missing(p) {
		err = fs.ErrNotExist
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// missing reports whether the directory listings show that p does not
// exist: its parent lists no entry of that name (FAT names match without
// regard to case, as go-diskfs matches them), or the parent is itself
// missing. A parent that cannot be read proves nothing: false. Names are
// matched against what ReadDir lists (the long name, else the short
// one); ferry never names a file by the short alias of a long name.
func (f fatFS) missing(p string) bool {
	// go-diskfs takes fs.ValidPath names: "." is the root.
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return false
	}
	dir, base := path.Dir(p), path.Base(p)
	ents, err := f.fs.ReadDir(dir)
	if err != nil {
		return f.missing(dir)
	}
	for _, e := range ents {
		if strings.EqualFold(e.Name(), base) {
			return false
		}
	}
	return true
}

func (f fatFS) Open(name string) (_ fs.File, err error) {
	defer recoverDiskfs(&err)
	p, err := f.path("open", name)
	if err != nil {
		return nil, err
	}
	fl, err := f.fs.OpenFile(p, os.O_RDONLY)
	if err != nil {
		return nil, f.pathError("open", name, p, err)
	}
	st, err := fl.Stat()
	if err != nil {
		fl.Close()
		return nil, err
	}
	return &fatFile{f: fl, size: st.Size()}, nil
}

func (f fatFS) ReadDir(name string) (_ []fs.DirEntry, err error) {
	defer recoverDiskfs(&err)
	p, err := f.path("readdir", name)
	if err != nil {
		return nil, err
	}
	ents, err := f.fs.ReadDir(p)
	if err != nil {
		return nil, f.pathError("readdir", name, p, err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	return ents, nil
}

// fatFile reads a go-diskfs file within its size: go-diskfs v1.9.4's
// File.Read returns the rest of the last cluster when a read starts in the
// middle of it (bytes past the end of the file), and fails on an empty
// file that has no cluster (upstream issue 417), so reads are cut to the
// size the directory entry gives and an empty file is never read.
type fatFile struct {
	f         filesystem.File
	off, size int64
}

func (f *fatFile) Read(b []byte) (n int, err error) {
	defer recoverDiskfs(&err)
	left := f.size - f.off
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > left {
		b = b[:left]
	}
	n, err = f.f.Read(b)
	f.off += int64(n)
	switch {
	case err == io.EOF && f.off < f.size:
		return n, fmt.Errorf("damaged filesystem: %w", io.ErrUnexpectedEOF)
	case n == 0 && err == nil && len(b) > 0:
		// go-diskfs does that at the end of a cluster chain shorter than
		// the file's size; a reader would spin.
		return 0, fmt.Errorf("damaged filesystem: %w", io.ErrNoProgress)
	}
	return n, err
}

func (f *fatFile) Stat() (_ fs.FileInfo, err error) {
	defer recoverDiskfs(&err)
	return f.f.Stat()
}
func (f *fatFile) Close() error { return f.f.Close() }
