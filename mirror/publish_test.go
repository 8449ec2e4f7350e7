package mirror_test

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/transport/tufclient"
)

// TestPublishListsTheIndex: the targets the store hands package tufrepo
// are the bundles of its index, with each manifest's length and digest
// and the custom fields devices match against, and nothing else (a
// signature manifest is no target).
func TestPublishListsTheIndex(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	key := testutil.NewKey(t, "release")
	for _, v := range []string{"1.0.0", "1.1.0"} {
		p, _ := testutil.MakeBundle(t, dir, "gateway", v, 2048, 0, key)
		if _, err := s.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	es, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := metadata.Targets().FromFile(s.TUFPath("targets.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Signed.Targets) != len(es) {
		t.Fatalf("targets %v, want one per bundle of %+v", tm.Signed.Targets, es)
	}
	for _, e := range es {
		tf := tm.Signed.Targets[e.Name+"/"+e.Version]
		if tf == nil {
			t.Errorf("no target for %s %s", e.Name, e.Version)
			continue
		}
		st, err := os.Stat(s.BlobPath(e.Digest))
		if err != nil {
			t.Fatal(err)
		}
		if tf.Length != st.Size() || hex.EncodeToString(tf.Hashes["sha256"]) != e.Digest.Encoded() {
			t.Errorf("%s: length %d sha256 %x, want the manifest's %d %s", e.Version, tf.Length, tf.Hashes["sha256"], st.Size(), e.Digest)
		}
		var c tufclient.Custom
		if err := json.Unmarshal(*tf.Custom, &c); err != nil {
			t.Fatal(err)
		}
		want := tufclient.Custom{Name: e.Name, Version: e.Version, Tag: e.Tag, DeviceTypes: e.DeviceTypes, ManifestDigest: e.Digest.String(), Size: e.Size}
		if !reflect.DeepEqual(c, want) {
			t.Errorf("custom %+v, want %+v", c, want)
		}
	}
}
