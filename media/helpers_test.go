package media

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/internal/testutil"
)

// testKey is a release key whose public key is also in a file.
type testKey struct {
	testutil.Key
	pubPEM string // path of the public key file
}

func newKey(t testing.TB, dir, name string) testKey {
	t.Helper()
	k := testutil.NewKey(t, name)
	pem, err := k.Pub.PEM()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".pub")
	if err := os.WriteFile(p, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return testKey{Key: k, pubPEM: p}
}

// randomReader is deterministic incompressible data.
func randomReader(seed uint64, size int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1}), size)
}

// makeBundle writes a bundle with one rootfs payload of size random bytes,
// split into parts of partSize (0: one part), signed by keys.
func makeBundle(t testing.TB, dir, name, version string, deviceTypes []string, size, partSize int64, keys ...testKey) string {
	t.Helper()
	signers := make([]testutil.Key, len(keys))
	for i, k := range keys {
		signers[i] = k.Key
	}
	p := filepath.Join(dir, fmt.Sprintf("%s-%s.ferry", name, version))
	_, err := bundle.Create(p, bundle.Options{
		Name: name, Version: version, DeviceTypes: deviceTypes,
		Created: time.Unix(1700000000, 0), PartSize: partSize,
		Sign: testutil.SignWith(name, time.Unix(1700000000, 0), signers...),
	}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: randomReader(uint64(size)+uint64(len(version)), size)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// toolPackages names the Debian package of each tool needTool knows.
var toolPackages = map[string]string{
	"mkfs.fat": "dosfstools", "fsck.fat": "dosfstools",
	"mcopy": "mtools", "mmd": "mtools", "mdir": "mtools",
	"sgdisk": "gdisk",
}

// needTool requires the tools the test runs (see testtool.Require).
func needTool(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		pkg, ok := toolPackages[n]
		if !ok {
			t.Fatalf("needTool: add %s's Debian package to toolPackages", n)
		}
		testtool.Require(t, n, pkg)
	}
}

// fsckClean runs fsck.fat -n on the partition and fails unless it exits 0
// and says nothing but its version and the summary line.
func fsckClean(t testing.TB, img string, off, size int64) {
	t.Helper()
	out, err := fsck(t, img, off, size)
	if err != nil {
		t.Fatalf("fsck.fat -n: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "fsck.fat ") || !strings.Contains(lines[1], " files, ") {
		t.Fatalf("fsck.fat -n warns:\n%s", out)
	}
	t.Logf("fsck.fat -n: exit 0: %s", lines[1])
}

func fsck(t testing.TB, img string, off, size int64) (string, error) {
	t.Helper()
	part := testutil.ExtractPartition(t, img, off, size)
	out, err := exec.Command("fsck.fat", "-n", part).CombinedOutput()
	return string(out), err
}

// mtoolsImage is img@@OFFSET for mtools (-i), with mtools' drive checks off.
func mtools(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "MTOOLSRC=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func imageAt(img string, off int64) string { return img + "@@" + strconv.FormatInt(off, 10) }
