package server_test

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/mirror/server"
)

// TestListenUnix: unix:PATH replaces a socket an earlier run left, says
// where it serves, and closing the listener removes the socket.
func TestListenUnix(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.sock")
	if err := os.WriteFile(p, nil, 0o600); err != nil { // left by an earlier run
		t.Fatal(err)
	}
	ln, err := server.Listen("unix:" + p)
	if err != nil {
		t.Fatal(err)
	}
	if got := server.Where(ln, false); got != "unix:"+p {
		t.Errorf("Where = %q, want unix:%s", got, p)
	}
	ln.Close()
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket after Close: %v", err)
	}
}

// TestServeOpensCheckins: with Checkins set and no Devices, Serve opens
// the store's device database, records check-ins in it and is stopped by
// its context; Serving is called before the first request is answered.
func TestServeOpensCheckins(t *testing.T) {
	s := newStore(t)
	ln, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	where := server.Where(ln, false)
	if !strings.HasPrefix(where, "http://127.0.0.1:") {
		t.Errorf("Where = %q", where)
	}
	ctx, cancel := context.WithCancel(context.Background())
	serving := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- server.Serve(ctx, ln, server.Options{Store: s, Checkins: true, AcceptLegacy: true, Serving: func() { close(serving) }})
	}()
	<-serving
	res, err := http.Post(where+"/ferry/v1/checkin", "application/json",
		strings.NewReader(`{"deviceId":"gw-1","deviceType":"board-a","bundle":"gateway","version":"1.0.0","result":"committed","time":"2024-01-01T00:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent && res.StatusCode != http.StatusOK {
		t.Errorf("check-in: %s", res.Status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
	ds, err := devices.ListDir(s.Dir())
	if err != nil || len(ds) != 1 || ds[0].ID != "gw-1" {
		t.Errorf("devices after a check-in: %+v, %v", ds, err)
	}
	if err := server.Serve(ctx, ln, server.Options{}); err == nil {
		t.Error("Serve without a store succeeded")
	}
}
