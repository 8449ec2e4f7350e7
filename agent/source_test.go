package agent

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/internal/testutil"
)

// An install streams from a server that drops the connection mid-payload
// and ends with the same slot content as from a file.
func TestInstallOverFlakyHTTP(t *testing.T) {
	d := newDevice(t, "true")
	payload := strings.Repeat("a big system image ", 50000)
	b := d.bundle(bundleSpec{version: "1.0.0", rootfs: payload})
	srv, requests := testutil.FlakyServer(t, b, int64(len(b))/3, 2, nil) // Last-Modified is the validator
	err := d.do(func(a *Agent) error {
		src, err := OpenSource(context.Background(), srv.URL+"/b.bundle", nil, SourceOptions{})
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = a.Install(context.Background(), src, srv.URL)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.read("slot-b.img"); got != payload {
		t.Errorf("slot b holds %d bytes, want %d", len(got), len(payload))
	}
	if requests.Load() != 3 {
		t.Errorf("%d requests", requests.Load())
	}
}

func TestOpenSource(t *testing.T) {
	r, err := OpenSource(context.Background(), "-", strings.NewReader("stdin"), SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); string(b) != "stdin" {
		t.Errorf("got %q", b)
	}
	if _, err := OpenSource(context.Background(), "/nonexistent/b.bundle", nil, SourceOptions{}); err == nil {
		t.Error("opened a missing file")
	}
}
