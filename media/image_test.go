package media

import (
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/oci"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/verify"
)

func newStore(t *testing.T) *mirror.Store {
	t.Helper()
	st, err := mirror.Init(filepath.Join(t.TempDir(), "m"), testutil.MirrorKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestOpenImage: the bundles of an image stream back whole, verified
// against their signatures.
func TestOpenImage(t *testing.T) {
	_, paths, key := testBundles(t)
	img := filepath.Join(t.TempDir(), "stick.img")
	if _, err := Build(img, paths, BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	if !IsDiskImage(img) || IsDiskImage(paths[0]) || IsDiskImage(filepath.Dir(img)) {
		t.Error("IsDiskImage cannot tell an image from a bundle or a directory")
	}
	m, err := OpenImage(img)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	bs, err := m.Bundles()
	if err != nil || len(bs) != 2 {
		t.Fatalf("bundles: %v %+v", err, bs)
	}
	for _, b := range bs {
		rc, err := m.Open(b)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := verify.Bundle(rc, verify.Policy{Keys: []*verify.PublicKey{key.Pub}, Threshold: 1, Deep: true})
		rc.Close()
		if err != nil || rep.Manifest != b.Manifest || len(rep.Payloads) == 0 {
			t.Errorf("%s %s: %v %+v", b.Name, b.Version, err, rep)
		}
	}
	if rows, err := m.Reports(); err != nil || len(rows) != 0 {
		t.Errorf("reports of a new stick: %v %+v", err, rows)
	}
}

// TestSyncFromImage: through Images, mirror sync reads a stick image:
// every bundle of the stick lands in the mirror, and the mirror serves it
// whole and verified; a second sync moves nothing.
func TestSyncFromImage(t *testing.T) {
	img, _, key := buildTestImage(t)
	st := newStore(t)
	sync := func(from string) (*mirror.SyncResult, error) {
		return st.Sync(t.Context(), from, mirror.SyncOptions{Images: Images{}})
	}
	res, err := sync(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Bundles) != 2 || !res.Bundles[0].New || !res.Bundles[1].New || len(res.Failed) != 0 {
		t.Fatalf("sync: %+v", res)
	}
	es, err := st.List()
	if err != nil || len(es) != 2 || es[0].Name != "gateway" || es[0].Signatures != 1 {
		t.Fatalf("list: %v %+v", err, es)
	}
	srv := httptest.NewServer(server.NewHandler(st, server.HandlerOptions{}))
	defer srv.Close()
	for _, e := range es {
		rc, err := oci.Open(t.Context(), "oci://"+strings.TrimPrefix(srv.URL, "http://")+"/"+e.Repository+":"+e.Tag, oci.Options{PlainHTTP: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = verify.Bundle(rc, verify.Policy{Keys: []*verify.PublicKey{key.Pub}, Threshold: 1, Deep: true})
		rc.Close()
		if err != nil {
			t.Errorf("%s:%s from the mirror: %v", e.Repository, e.Tag, err)
		}
	}
	res, err = sync(img)
	if err != nil || len(res.Bundles) != 2 || res.Bundles[0].New || res.Bundles[0].BlobsAdded != 0 {
		t.Fatalf("second sync: %v %+v", err, res)
	}
	if left, _ := filepath.Glob(filepath.Join(st.Dir(), "tmp", "*")); len(left) != 0 {
		t.Errorf("partial files left: %v", left)
	}
	if _, err := sync(filepath.Join(t.TempDir(), "none.img")); err == nil {
		t.Error("synced from a missing image")
	}
	if _, err := st.Sync(t.Context(), img, mirror.SyncOptions{}); err == nil {
		t.Error("synced from an image without Images")
	}
}

// TestIngestReports: reports written by stick.WriteReport into a stick
// directory, then the same and one more on an mkfs.fat image, become
// check-ins once each.
func TestIngestReports(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, stick.Dir), 0o755)
	os.WriteFile(filepath.Join(root, stick.Dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	s, err := stick.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 1, 2, 3, 6, 0, 0, time.UTC)
	for _, r := range []stick.Report{
		{DeviceID: "gw-0041", Bundle: "gateway", BundleVersion: "1.4.2", VersionBefore: "1.4.1", VersionAfter: "1.4.2", Result: stick.ResultSuccess, Finished: at},
		{DeviceID: "gw-0042", Bundle: "gateway", BundleVersion: "1.4.2", VersionBefore: "1.4.1", VersionAfter: "1.4.1", Result: stick.ResultFailure,
			Finished: at.Add(time.Hour), Error: "verify: " + strings.Repeat("é", 3000)},
		{DeviceID: "gw 0043", Result: stick.ResultSkipped, Finished: at}, // a name a check-in does not take
	} {
		if _, err := s.WriteReport(r); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, stick.Dir, stick.ReportsDir, "notes.json"), []byte("not json"), 0o644)

	st := newStore(t)
	d, err := devices.OpenDir(st.Dir())
	if err != nil {
		t.Fatal(err)
	}
	err = d.Record(&checkin.Report{DeviceID: "gw-0042", DeviceType: "board-b", Version: "1.4.1", Result: "idle", Time: at.Add(-time.Hour)}, at, "10.0.0.2")
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	check := func(from string, want IngestResult) {
		t.Helper()
		d, err := devices.OpenDir(st.Dir())
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		res, err := IngestReports(st, d, from, IngestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Reports != want.Reports || res.New != want.New || res.Known != want.Known || len(res.Rejected) != 2 {
			t.Fatalf("ingest %s: %+v, want %+v", from, res, want)
		}
	}
	check(root, IngestResult{Reports: 3, New: 2})
	check(root, IngestResult{Reports: 3, Known: 2})
	ds, err := devices.ListDir(st.Dir())
	if err != nil || len(ds) != 2 {
		t.Fatalf("devices: %v %+v", err, ds)
	}
	if g := ds[0]; g.ID != "gw-0041" || g.Type != "unknown" || g.Bundle != "gateway" || g.Version != "1.4.2" || g.Result != "success" ||
		!g.ReportedAt.Equal(at) || g.Remote != StickRemote+root || g.Checkins != 1 {
		t.Errorf("gw-0041: %+v", g)
	}
	if g := ds[1]; g.Type != "board-b" || g.Result != "failure" || g.Version != "1.4.1" || g.Checkins != 2 || len(g.Error) > checkin.MaxErrorSize || !strings.HasPrefix(g.Error, "verify: é") {
		t.Errorf("gw-0042: %+v", g)
	}

	// The same reports, and one more, on an image.
	needTool(t, "mkfs.fat", "mcopy")
	img := filepath.Join(t.TempDir(), "stick.img")
	f, _ := os.Create(img)
	f.Truncate(64 << 20)
	f.Close()
	if out, err := exec.Command("mkfs.fat", "-F", "32", "-n", "FERRY", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.fat: %v\n%s", err, out)
	}
	if _, err := s.WriteReport(stick.Report{DeviceID: "gw-0041", Bundle: "gateway", VersionAfter: "1.4.2", Result: stick.ResultSkipped, Finished: at.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	mtools(t, "mcopy", "-s", "-i", img, filepath.Join(root, stick.Dir), "::/ferry")
	check(img, IngestResult{Reports: 4, New: 1, Known: 2})
	check(img, IngestResult{Reports: 4, Known: 3})
	if _, err := OpenImage(img); err != nil {
		t.Errorf("open the image: %v", err)
	}
	if _, err := OpenImage(emptyFATImage(t)); !errors.Is(err, stick.ErrNotLayout) {
		t.Errorf("an image without a layout: %v", err)
	}
}

// emptyFATImage is an mkfs.fat image with no ferry layout.
func emptyFATImage(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "empty.img")
	f, _ := os.Create(img)
	f.Truncate(64 << 20)
	f.Close()
	if out, err := exec.Command("mkfs.fat", "-F", "32", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.fat: %v\n%s", err, out)
	}
	return img
}
