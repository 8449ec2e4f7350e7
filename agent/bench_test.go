package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"testing"

	"filippo.io/age"
)

// BenchmarkInstall measures install throughput from a local bundle file
// into a file slot: read, verify, decrypt (encrypted), decompress, hash
// and write, then fsync. Bytes are the payload's decompressed size. The
// payload is half random (incompressible) and half zeros, like a
// filesystem image. The encrypted bundle is the same payload encrypted to
// the device (bundle/FORMAT.md §6.3); compare the two MB/s.
func BenchmarkInstall(b *testing.B) {
	const size = 64 << 20
	payload := make([]byte, size)
	rand.Read(payload[:size/2])
	for _, encrypted := range []bool{false, true} {
		b.Run(map[bool]string{false: "clear", true: "encrypted"}[encrypted], func(b *testing.B) {
			d := newDevice(b)
			spec := bundleSpec{version: "1.0.0", rootfs: string(payload)}
			if encrypted {
				spec.encryptTo = []age.Recipient{d.recipient()}
			}
			benchInstall(b, d, d.bundle(spec), payload)
		})
	}
}

func benchInstall(b *testing.B, d *device, bun, payload []byte) {
	path := d.path("b.bundle")
	if err := os.WriteFile(path, bun, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		os.Remove(d.path("state/journal.json"))
		os.Remove(d.path("state/installed.json"))
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
