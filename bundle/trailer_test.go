package bundle_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/bundle"
)

// specMember appends a regular tar member (header, data, padding).
func specMemberBytes(t testing.TB, name string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o644, ModTime: specCreated, Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	tw.Write(data)
	tw.Flush()
	return buf.Bytes()
}

// specTrailerCases are archives that hold bytes the signed index and
// manifests do not account for, or lack their end (FORMAT.md §3.5). Each
// names the offset the reader must report.
type specTrailerCase struct {
	name     string
	raw      []byte
	offset   int64  // where the error must point
	member   string // the member it must name, if any
	sentinel error
}

func specTrailerCases(t testing.TB, b *specBundle) (ok map[string][]byte, bad []specTrailerCase) {
	t.Helper()
	ms := specMembers(t, b.raw)
	end := ms[len(ms)-1].paddedEnd() // where the end-of-archive marker starts
	body := b.raw[:end]
	marker := make([]byte, 1024)
	cat := func(parts ...[]byte) []byte { return bytes.Join(append([][]byte{{}}, parts...), nil) }
	firstPart := ms[9] // the first rootfs part (after the pax pad)
	if !strings.HasPrefix(firstPart.name, "blobs/sha256/") || firstPart.typ != tar.TypeReg {
		t.Fatalf("member 9 is %q, want the first part", firstPart.name)
	}
	dir := func(name string, size int64) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, Size: size, ModTime: specCreated, Format: tar.FormatUSTAR})
		tw.Flush()
		return buf.Bytes()
	}
	glob := func(rec map[string]string) []byte {
		return specHeader(t, &tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: rec, Format: tar.FormatPAX})
	}
	nonzero := cat(body, marker, make([]byte, 700), []byte{1}, make([]byte, 323))
	ok = map[string][]byte{
		"end marker only":              b.raw,
		"tar record padding (10240)":   cat(body, marker, make([]byte, 10240-len(b.raw)%10240)),
		"1 MiB of zeros after the end": cat(body, marker, make([]byte, bundle.MaxTrailerSize)),
	}
	bad = []specTrailerCase{
		{"extra member after the last part", cat(body, specMemberBytes(t, "blobs/sha256/"+strings.Repeat("0", 64), []byte("extra")), marker), end, "blobs/sha256/" + strings.Repeat("0", 64), bundle.ErrUnaccounted},
		{"index.json shadowed as ./index.json", cat(body, specMemberBytes(t, "./index.json", []byte(`{"schemaVersion":2}`)), marker), end, "./index.json", bundle.ErrUnaccounted},
		{"a part shadowed as ./blobs/...", cat(body, specMemberBytes(t, "./"+firstPart.name, make([]byte, firstPart.size)), marker), end, "./" + firstPart.name, bundle.ErrUnaccounted},
		{"duplicate of the last part", cat(body, b.raw[ms[len(ms)-1].hdrOff:end], marker), end, ms[len(ms)-1].name, bundle.ErrUnaccounted},
		{"member after the end marker", cat(body, marker, specMemberBytes(t, "oci-layout", []byte("{}")), marker), end + 1024, "", bundle.ErrUnaccounted},
		{"non-zero byte after the end marker", nonzero, end + 1024 + 700, "", bundle.ErrUnaccounted},
		{"garbage instead of the end marker", cat(body, bytes.Repeat([]byte("x"), 1024)), end, "", bundle.ErrUnaccounted},
		{"zero block then data", cat(body, make([]byte, 512), bytes.Repeat([]byte("x"), 512)), end, "", bundle.ErrUnaccounted},
		{"directory after the last part", cat(body, dir("blobs/", 0), marker), end, "blobs/", bundle.ErrUnaccounted},
		{"pax global header after the last part", cat(body, glob(map[string]string{"comment": "x"}), marker), end, "pax_global_header", bundle.ErrUnaccounted},
		{"endless zeros", cat(body, marker, make([]byte, bundle.MaxTrailerSize+1)), end + 1024, "", bundle.ErrUnaccounted},
		{"no end marker", body, end, "", bundle.ErrTruncated},
		{"half an end marker", cat(body, make([]byte, 512)), end, "", bundle.ErrTruncated},
		{"end marker cut short", cat(body, make([]byte, 700)), end, "", bundle.ErrTruncated},
		// Entries before a member that another tar reader would not skip.
		{"pax global header renaming members", specSplice(b.raw, firstPart.hdrOff, glob(map[string]string{"path": "index.json"})), firstPart.hdrOff, "index.json", bundle.ErrUnaccounted}, // archive/tar names the entry by its path record
		{"directory outside the layout", specSplice(b.raw, firstPart.hdrOff, dir("etc/", 0)), firstPart.hdrOff, "etc/", bundle.ErrUnaccounted},
		{"directory named like a member", specSplice(b.raw, ms[1].hdrOff, dir("index.json/", 0)), ms[1].hdrOff, "index.json/", bundle.ErrUnaccounted},
	}
	return ok, bad
}

// TestFormatEndOfArchive: every reader reads the archive to its end and
// refuses whatever the signed index and manifests do not account for, so
// that another tar reader (tar, skopeo, a registry) finds nothing ferry did
// not check. Trailing zero blocks are fine.
func TestFormatEndOfArchive(t *testing.T) {
	b := specCreate(t, 1, true)
	ok, bad := specTrailerCases(t, b)
	for name, raw := range ok {
		t.Run(name, func(t *testing.T) {
			if err := specSameView(b, raw); err != nil {
				t.Fatal(err)
			}
			if a, err := bundle.OpenArchive(specWrite(t, raw)); err != nil {
				t.Fatalf("OpenArchive: %v", err)
			} else {
				a.Close()
			}
		})
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			check := func(how string, err error) {
				t.Helper()
				var be *bundle.Error
				if !errors.As(err, &be) {
					t.Fatalf("%s: %v, want a *bundle.Error", how, err)
				}
				if !errors.Is(err, tc.sentinel) {
					t.Errorf("%s: %v, want %v", how, err, tc.sentinel)
				}
				if be.Offset != tc.offset || be.Member != tc.member {
					t.Errorf("%s: %v: at %q offset %d, want %q offset %d", how, err, be.Member, be.Offset, tc.member, tc.offset)
				}
				if !strings.Contains(err.Error(), "offset "+strconv.FormatInt(tc.offset, 10)) {
					t.Errorf("%s: %q does not say the offset", how, err)
				}
			}
			for _, discard := range []bool{false, true} {
				_, _, err := specRead(tc.raw, discard)
				check("stream (discard="+strconv.FormatBool(discard)+")", err)
			}
			r, err := bundle.NewReader(bytes.NewReader(tc.raw))
			if err != nil {
				check("NewReader", err)
			} else {
				check("Finish", r.Finish())
			}
			path := specWrite(t, tc.raw)
			a, err := bundle.OpenArchive(path)
			if err == nil {
				a.Close()
			}
			check("OpenArchive", err)

			// Extract writes nothing at all.
			out := t.TempDir()
			if r, err := bundle.NewReader(bytes.NewReader(tc.raw)); err == nil {
				got, err := bundle.Extract(r, out)
				check("Extract", err)
				if len(got) > 0 {
					t.Errorf("Extract put %v in place", got)
				}
			}
			if ents, _ := os.ReadDir(out); len(ents) > 0 {
				t.Errorf("Extract left %d entries behind, e.g. %s", len(ents), ents[0].Name())
			}
		})
	}
}

// TestFormatExtraMemberSeenByTar shows why the end is read: GNU tar lists
// a member appended after the last part, which ferry refuses.
func TestFormatExtraMemberSeenByTar(t *testing.T) {
	b := specCreate(t, 1, true)
	_, bad := specTrailerCases(t, b)
	raw := bad[1].raw // ./index.json after the last part
	tr := tar.NewReader(bytes.NewReader(raw))
	var last string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		last = h.Name
	}
	if last != "./index.json" {
		t.Fatalf("archive/tar's last member is %q, want the appended ./index.json", last)
	}
	if _, _, err := specRead(raw, true); !errors.Is(err, bundle.ErrUnaccounted) {
		t.Fatalf("ferry read an archive whose index.json a tar reader replaces: %v", err)
	}
}

func specWrite(t testing.TB, raw []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "b.bundle")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
