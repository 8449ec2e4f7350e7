package media

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/ferry-update/ferry/transport"
	"github.com/ferry-update/ferry/transport/stick"
)

// Image is the ferry layout inside a stick image or block device, opened
// read-only: what a device would find on the stick once mounted, read
// with go-diskfs instead. Its bundle streams all read the image through
// one filesystem: read them one at a time, and Close the Image after the
// last.
type Image struct {
	img    *image
	layout *stick.Layout
}

// OpenImage opens the stick image or block device at path read-only and
// reads its /ferry/ layout; an image without one is an error wrapping
// stick.ErrNotLayout. The partition table and FAT are checked before
// go-diskfs reads them, as for Inspect.
func OpenImage(path string) (*Image, error) {
	m, err := openLayout(path)
	if err != nil {
		return nil, fmt.Errorf("open stick image %s: %w", path, err)
	}
	return m, nil
}

func openLayout(p string) (*Image, error) {
	img, err := openImage(p)
	if err != nil {
		return nil, err
	}
	l, err := stick.NewLayout(img.sub(stick.Dir), p)
	if err != nil {
		img.close()
		return nil, err
	}
	return &Image{img: img, layout: l}, nil
}

// Bundles lists the bundles on the stick (stick.Layout.Bundles): one that
// cannot be read is listed with Err set.
func (m *Image) Bundles() ([]stick.Bundle, error) { return m.layout.Bundles() }

// Open streams bundle b, as listed by Bundles, as the canonical bundle
// archive, each payload part checked against its digest as it streams
// (stick.Layout.Open). The stream must be closed before the next one is
// opened.
func (m *Image) Open(b stick.Bundle) (io.ReadCloser, error) { return m.layout.Open(b) }

// TrustFiles lists the files in the stick's /ferry/trust/.
func (m *Image) TrustFiles() ([]string, error) { return m.layout.TrustFiles() }

// Reports reads the reports in the stick's /ferry/reports/.
func (m *Image) Reports() ([]ReportRow, error) { return m.img.reports() }

// Close closes the image.
func (m *Image) Close() error { return m.img.f.Close() }

// reports reads the reports of an opened image; it needs no layout.
func (m *image) reports() ([]ReportRow, error) {
	rs, err := stick.ReadReports(m.sub(path.Join(stick.Dir, stick.ReportsDir)))
	if err != nil {
		return nil, err
	}
	return reportRows(rs), nil
}

// Images reads stick images and block devices for transport.Open (and so
// for mirror sync and audit): the image's FAT filesystem, found and
// checked as OpenImage does, as an fs.FS in which package stick reads the
// layout. It is how a host-only source plugs into the device's transport.
type Images struct{}

var _ transport.Images = Images{}

// IsImage is IsDiskImage.
func (Images) IsImage(path string) bool { return IsDiskImage(path) }

// OpenImage opens the image at path read-only and returns its filesystem,
// rooted at the directory that holds ferry/.
func (Images) OpenImage(path string) (fs.FS, io.Closer, error) {
	img, err := openImage(path)
	if err != nil {
		return nil, nil, err
	}
	return img.sub(""), img.f, nil
}

// IsDiskImage reports whether p is a block device or a disk image rather
// than a directory or a bundle file: a bundle is a tar archive, whose
// first block never ends in the MBR boot signature 0x55 0xAA (bytes
// 510-511 lie in a tar header's zero padding), which GPT, MBR and
// superfloppy sticks all carry.
func IsDiskImage(p string) bool {
	st, err := os.Stat(p)
	if err != nil || st.IsDir() {
		return false
	}
	if st.Mode()&os.ModeDevice != 0 {
		return true
	}
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 512)
	if _, err := io.ReadFull(f, b); err != nil {
		return false
	}
	return b[510] == 0x55 && b[511] == 0xAA && string(b[257:262]) != "ustar"
}
