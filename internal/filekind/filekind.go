package filekind

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// Kind is what a file is. The zero Kind is Unknown.
type Kind int

// The kinds Detect knows.
const (
	Unknown     Kind = iota
	Bundle           // a tar archive with an OCI layout: a ferry bundle
	Tar              // another tar archive
	DiskGPT          // a disk image with a GPT partition table (ferry media build makes these)
	DiskMBR          // a disk image with an MBR partition table
	FAT              // a FAT filesystem image (a partition, no partition table)
	Ext4             // an ext2/3/4 filesystem image
	Squashfs         // a squashfs filesystem image
	PublicKey        // a PEM public key
	PrivateKey       // a PEM private key, encrypted or not
	Certificate      // a PEM certificate
	TrustRoot        // a ferry trust root (verify/TRUST.md)
	TUFRoot          // a mirror's TUF root.json
	TUFMetadata      // other TUF metadata (targets, snapshot, timestamp)
	HTML             // an HTML page
	JSON             // other JSON
	Empty            // no bytes at all
	// PublicTrust is not detected: it is what a --trust file for a stick
	// must be, a PublicKey, a TrustRoot or a TUFRoot (see IsPublicTrust).
	PublicTrust
	numKinds
)

var names = [numKinds]string{
	Unknown:     "a file of unknown kind",
	Bundle:      "a ferry bundle",
	Tar:         "a tar archive that is not a bundle",
	DiskGPT:     "a GPT disk image (such as a ferry stick image)",
	DiskMBR:     "an MBR disk image",
	FAT:         "a FAT filesystem image",
	Ext4:        "an ext4 filesystem image",
	Squashfs:    "a squashfs filesystem image",
	PublicKey:   "a PEM public key",
	PrivateKey:  "a PEM private key",
	Certificate: "a PEM certificate",
	TrustRoot:   "a ferry trust root",
	TUFRoot:     "a mirror TUF root (root.json)",
	TUFMetadata: "mirror TUF metadata",
	HTML:        "an HTML page",
	JSON:        "a JSON document",
	Empty:       "an empty file",
	PublicTrust: "a public key or a trust root",
}

// String names the kind with an article, to follow "this is".
func (k Kind) String() string {
	if k < 0 || k >= numKinds {
		return names[Unknown]
	}
	return names[k]
}

// IsImage says whether k is a disk or filesystem image (a raw image as a
// build system makes it, or a stick image).
func (k Kind) IsImage() bool {
	switch k {
	case DiskGPT, DiskMBR, FAT, Ext4, Squashfs:
		return true
	}
	return false
}

// IsPublicTrust says whether k is trust material that may be handed out:
// a public key, a ferry trust root or a mirror TUF root.
func (k Kind) IsPublicTrust() bool {
	return k == PublicKey || k == TrustRoot || k == TUFRoot
}

// HeadSize is how many bytes Detect looks at; more are ignored.
const HeadSize = 64 << 10

// Detect tells what a file starting with head is. A head cut short of the
// whole file is fine: only the first HeadSize bytes matter.
func Detect(head []byte) Kind {
	if len(head) > HeadSize {
		head = head[:HeadSize]
	}
	if len(head) == 0 {
		return Empty
	}
	if k := detectImage(head); k != Unknown {
		return k
	}
	if isTar(head) {
		if tarHasLayout(head) {
			return Bundle
		}
		return Tar
	}
	text := bytes.TrimLeft(head, "\ufeff \t\r\n")
	switch {
	case bytes.HasPrefix(text, []byte("-----BEGIN ")):
		return detectPEM(text)
	case bytes.HasPrefix(text, []byte("{")):
		return detectJSON(text)
	case hasPrefixFold(text, "<!doctype html") || hasPrefixFold(text, "<html") || hasPrefixFold(text, "<head") || hasPrefixFold(text, "<body"):
		return HTML
	}
	return Unknown
}

// DetectFile tells what the file at path is (see Detect).
func DetectFile(path string) (Kind, error) {
	f, err := os.Open(path)
	if err != nil {
		return Unknown, err
	}
	defer f.Close()
	head := make([]byte, HeadSize)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return Unknown, err
	}
	return Detect(head[:n]), nil
}

func detectImage(b []byte) Kind {
	if len(b) >= 4 && string(b[:4]) == "hsqs" {
		return Squashfs
	}
	if len(b) >= 0x438+2 && binary.LittleEndian.Uint16(b[0x438:]) == 0xEF53 {
		return Ext4
	}
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xAA {
		return Unknown
	}
	if len(b) >= 520 && string(b[512:520]) == "EFI PART" {
		return DiskGPT
	}
	// A FAT boot sector names its type; an MBR has a partition table
	// with a non-empty entry instead.
	if string(b[82:87]) == "FAT32" || string(b[54:59]) == "FAT12" || string(b[54:59]) == "FAT16" {
		return FAT
	}
	for i := range 4 {
		e := b[446+16*i:]
		if e[0]&0x7f == 0 && e[4] != 0 {
			if e[4] == 0xEE {
				return DiskGPT // protective MBR, GPT header not in head
			}
			return DiskMBR
		}
	}
	return Unknown
}

// isTar: a ustar (or GNU tar) header with a valid checksum.
func isTar(b []byte) bool {
	if len(b) < 512 {
		return false
	}
	h := b[:512]
	if string(h[257:262]) != "ustar" {
		return false
	}
	var sum int64
	for i, c := range h {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	field := strings.TrimRight(strings.TrimSpace(string(h[148:156])), "\x00 ")
	var want int64
	if _, err := fmt.Sscanf(field, "%o", &want); err != nil {
		return false
	}
	return sum == want
}

// tarHasLayout: a bundle's first member is oci-layout (bundle/FORMAT.md).
func tarHasLayout(b []byte) bool {
	name := b[:100]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	n := strings.TrimPrefix(string(name), "./")
	return n == "oci-layout" || n == "index.json" || strings.HasPrefix(n, "blobs/")
}

func detectPEM(text []byte) Kind {
	line, _, _ := bytes.Cut(text, []byte("\n"))
	t := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(string(line)), "-----BEGIN "), "-----")
	if blk, _ := pem.Decode(text); blk != nil {
		t = blk.Type
	}
	switch {
	case strings.Contains(t, "PRIVATE KEY"):
		return PrivateKey
	case strings.Contains(t, "PUBLIC KEY"):
		return PublicKey
	case strings.Contains(t, "CERTIFICATE"):
		return Certificate
	}
	return Unknown
}

var typeField = regexp.MustCompile(`"_type"\s*:\s*"([a-z-]+)"`)

func detectJSON(text []byte) Kind {
	var doc struct {
		Signed struct {
			Type string `json:"_type"`
		} `json:"signed"`
	}
	typ := ""
	if err := json.Unmarshal(text, &doc); err == nil {
		typ = doc.Signed.Type
	} else if m := typeField.FindSubmatch(text); m != nil {
		typ = string(m[1]) // a head cut short of a large document
	}
	switch typ {
	case "ferry-root":
		return TrustRoot
	case "root":
		return TUFRoot
	case "targets", "snapshot", "timestamp":
		return TUFMetadata
	}
	return JSON
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}
