package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/fleetload"
)

// TestList: 'list' writes an enrollment list that 'ferry fleet enroll
// --file' takes (devices.ParseEnrollments), -download devices spread
// over the list labelled to download.
func TestList(t *testing.T) {
	out := filepath.Join(t.TempDir(), "devices.jsonl")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"list", "-devices", "5", "-download", "2", "-o", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	es, err := devices.ParseEnrollments(b)
	if err != nil || len(es) != 5 {
		t.Fatalf("%d entries, %v", len(es), err)
	}
	for i, e := range es {
		want := fleetload.LabelPoll
		if i == 0 || i == 3 {
			want = fleetload.LabelDownload
		}
		if e.Labels[fleetload.Label] != want {
			t.Errorf("entry %d: label %q, want %q", i, e.Labels[fleetload.Label], want)
		}
	}
}

// TestUsage: usage errors exit 2 and say what is wrong.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "list|run"},
		{[]string{"fly"}, `no command "fly"`},
		{[]string{"list"}, "-o FILE is required"},
		{[]string{"list", "-devices", "0", "-o", "x"}, "devices: 0"},
		{[]string{"run", "-url", "http://127.0.0.1:1"}, "-root, -state and -database are required"},
		{[]string{"run", "-bogus"}, "flag provided but not defined"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q: want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}
