//go:build !cgo

package zstd

import "testing"

func buildEncoders() []encoder { return nil }

func buildDecoders() []decoder { return nil }

func TestImplementation(t *testing.T) {
	if got, want := Implementation(), "klauspost/compress (pure Go)"; got != want {
		t.Errorf("Implementation() = %q, want %q", got, want)
	}
}
