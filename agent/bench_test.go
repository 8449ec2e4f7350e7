package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"testing"
)

// BenchmarkInstall measures install throughput from a local bundle file
// into a file slot: read, verify, decompress, hash and write, then fsync.
// Bytes are the payload's decompressed size. The payload is half random
// (incompressible) and half zeros, like a filesystem image.
func BenchmarkInstall(b *testing.B) {
	const size = 64 << 20
	payload := make([]byte, size)
	rand.Read(payload[:size/2])
	d := newDevice(b)
	bun := d.bundle(bundleSpec{version: "1.0.0", rootfs: string(payload)})
	path := d.path("b.bundle")
	if err := os.WriteFile(path, bun, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		os.RemoveAll(d.cfg.StateDir)
		d.write("bootenv", "ferry_slot=a\n")
		b.StartTimer()
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		err = d.do(func(a *Agent) error {
			_, err := a.Install(context.Background(), f, path)
			return err
		})
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if got, _ := os.ReadFile(d.path("slot-b.img")); !bytes.Equal(got, payload) {
		b.Fatal("slot b does not hold the payload")
	}
}
