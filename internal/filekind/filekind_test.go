package filekind_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/internal/filekind"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/verify"
)

func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found (apt-get install %s)", name, pkg)
		}
		t.Skipf("%s not found (apt-get install %s)", name, pkg)
	}
}

// image makes an 80 MiB file with a real tool and returns its head.
func image(t *testing.T, tool, pkg string, args ...string) []byte {
	t.Helper()
	needTool(t, tool, pkg)
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 80<<20); err != nil {
		t.Fatal(err)
	}
	for i, a := range args {
		if a == "IMG" {
			args[i] = p
		}
	}
	if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, out)
	}
	return head(t, p)
}

func head(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, filekind.HeadSize)
	n, _ := io.ReadFull(f, b)
	return b[:n]
}

func tarOf(names ...string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		_ = tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: 2, Format: tar.FormatPAX})
		_, _ = tw.Write([]byte("{}"))
	}
	_ = tw.Close()
	return buf.Bytes()
}

func TestDetect(t *testing.T) {
	k := testutil.NewKey(t, "release")
	pub, err := k.Pub.PEM()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := verify.MarshalPrivateKey(must(verify.GenerateKey(verify.ECDSAP256)), nil)
	if err != nil {
		t.Fatal(err)
	}
	encPriv, err := verify.MarshalPrivateKey(must(verify.GenerateKey(verify.ECDSAP256)), []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	rs := verify.NewRootSigned(time.Now().Add(time.Hour))
	for _, role := range []string{"root", "release"} {
		if err := rs.AddKey(role, k.Pub); err != nil {
			t.Fatal(err)
		}
	}
	root, err := verify.SignRoot(rs, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	mbr := make([]byte, 1024)
	mbr[510], mbr[511] = 0x55, 0xAA
	mbr[446+4] = 0x83 // one Linux partition
	for _, tc := range []struct {
		name string
		head func(t *testing.T) []byte
		want filekind.Kind
	}{
		{"bundle", func(*testing.T) []byte { return tarOf("oci-layout", "index.json") }, filekind.Bundle},
		{"other tar", func(*testing.T) []byte { return tarOf("etc/motd") }, filekind.Tar},
		{"GPT disk (sgdisk)", func(t *testing.T) []byte { return image(t, "sgdisk", "gdisk", "-n", "1:2048:0", "-t", "1:0700", "IMG") }, filekind.DiskGPT},
		{"MBR disk", func(*testing.T) []byte { return mbr }, filekind.DiskMBR},
		{"FAT32 (mkfs.fat)", func(t *testing.T) []byte { return image(t, "mkfs.fat", "dosfstools", "-F", "32", "IMG") }, filekind.FAT},
		{"ext4 (mkfs.ext4)", func(t *testing.T) []byte { return image(t, "mkfs.ext4", "e2fsprogs", "-q", "-F", "IMG") }, filekind.Ext4},
		{"squashfs", func(*testing.T) []byte { return append([]byte("hsqs"), make([]byte, 92)...) }, filekind.Squashfs},
		{"public key", func(*testing.T) []byte { return pub }, filekind.PublicKey},
		{"private key", func(*testing.T) []byte { return priv }, filekind.PrivateKey},
		{"encrypted private key", func(*testing.T) []byte { return encPriv }, filekind.PrivateKey},
		{"ferry trust root", func(*testing.T) []byte { return root.Bytes() }, filekind.TrustRoot},
		{"ferry trust root, head only", func(*testing.T) []byte { return root.Bytes()[:60] }, filekind.TrustRoot},
		{"mirror TUF root", func(*testing.T) []byte {
			return []byte(`{"signatures":[],"signed":{"_type":"root","consistent_snapshot":true,"spec_version":"1.0.31"}}`)
		}, filekind.TUFRoot},
		{"TUF timestamp", func(*testing.T) []byte { return []byte(`{"signed": {"_type": "timestamp"}}`) }, filekind.TUFMetadata},
		{"other JSON", func(*testing.T) []byte { return []byte(`{"repositories": []}`) }, filekind.JSON},
		{"HTML", func(*testing.T) []byte { return []byte("\n<!DOCTYPE html>\n<html><body>404</body></html>") }, filekind.HTML},
		{"empty", func(*testing.T) []byte { return nil }, filekind.Empty},
		{"random", func(*testing.T) []byte { return bytes.Repeat([]byte{0x5a, 0x13}, 600) }, filekind.Unknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := filekind.Detect(tc.head(t)); got != tc.want {
				t.Errorf("Detect = %v, want %v", got, tc.want)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestNewReader: a stream of another kind fails before a byte is handed
// over; a bundle, or content of no known kind, passes through unchanged.
func TestNewReader(t *testing.T) {
	page := "<html><body>ferry mirror</body></html>"
	_, err := io.ReadAll(filekind.NewReader(strings.NewReader(page), filekind.Bundle, true))
	var fe *filekind.Error
	if !errors.As(err, &fe) || fe.Got != filekind.HTML || !fe.URL || !strings.Contains(fe.Hint(), "oci://") {
		t.Errorf("HTML page: err %v", err)
	}
	for _, in := range [][]byte{tarOf("oci-layout", "index.json"), bytes.Repeat([]byte("x"), 10000), nil} {
		got, err := io.ReadAll(filekind.NewReader(bytes.NewReader(in), filekind.Bundle, false))
		if err != nil || !bytes.Equal(got, in) {
			t.Errorf("%d bytes: got %d bytes, %v", len(in), len(got), err)
		}
	}
}

func TestCheckWraps(t *testing.T) {
	inner := errors.New("bundle is truncated")
	err := filekind.Check([]byte("-----BEGIN PUBLIC KEY-----\n"), filekind.Bundle, inner)
	var fe *filekind.Error
	if !errors.As(err, &fe) || !errors.Is(err, inner) || err.Error() != "this is a PEM public key, not a ferry bundle" {
		t.Errorf("Check = %v", err)
	}
	if err := filekind.Check(bytes.Repeat([]byte{1}, 100), filekind.Bundle, inner); err != inner {
		t.Errorf("unknown content: Check = %v, want the error as it was", err)
	}
}

// FuzzDetect: any bytes get a kind, never a panic, and a head longer than
// HeadSize is judged by its first HeadSize bytes.
func FuzzDetect(f *testing.F) {
	f.Add(tarOf("oci-layout"))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n"))
	f.Add([]byte(`{"signed":{"_type":"ferry-root"}}`))
	mbr := make([]byte, 600)
	mbr[510], mbr[511] = 0x55, 0xAA
	f.Add(mbr)
	f.Fuzz(func(t *testing.T, b []byte) {
		k := filekind.Detect(b)
		if k.String() == "" {
			t.Errorf("kind %d has no name", k)
		}
		if len(b) > filekind.HeadSize && filekind.Detect(b[:filekind.HeadSize]) != k {
			t.Error("bytes after HeadSize changed the kind")
		}
	})
}
