package media

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestBuildDevice: a stick built onto a "device" (a regular file, as
// CheckTarget allows) fills it when no size is given, reads back as a
// stick with every bundle, and a size larger than the device is refused
// before anything is written.
func TestBuildDevice(t *testing.T) {
	_, paths, key := testBundles(t)
	dev := filepath.Join(t.TempDir(), "sdx")
	const devSize = 96<<20 + 12345 // not a whole MiB
	old := bytes.Repeat([]byte{0xaa}, 4096)
	if err := os.WriteFile(dev, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(dev, devSize); err != nil {
		t.Fatal(err)
	}

	_, _, err := BuildDevice(dev, paths, BuildOptions{Size: devSize + 1<<20}, WriteOptions{})
	var te *DeviceTooSmallError
	if !errors.As(err, &te) || te.DeviceSize != devSize || te.Device != dev {
		t.Fatalf("a size above the device's: %v", err)
	}
	if b, _ := os.ReadFile(dev); !bytes.Equal(b[:4096], old) {
		t.Fatal("the refused build wrote to the device")
	}

	res, wr, err := BuildDevice(dev, paths, BuildOptions{Trust: []string{key.pubPEM}}, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != dev || res.Size != 96<<20 || wr == nil || wr.Device != dev || wr.Bytes == 0 {
		t.Errorf("build %+v, write %+v", res, wr)
	}
	in, err := Inspect(dev, InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Bundles) != len(paths) {
		t.Errorf("the device holds %d bundles, want %d", len(in.Bundles), len(paths))
	}
}
