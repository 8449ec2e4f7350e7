package tufclient

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// FuzzParseTarget: no target entry makes parseTarget panic, and what it
// accepts is consistent: the path names the bundle, the sha256 hash is
// the manifest digest, and the fields are within their limits.
func FuzzParseTarget(f *testing.F) {
	const d = "67961bfec01b770448ca1e9aa932e153a20c8cf0ad6b1f7211c58a7ea6e009f1"
	f.Add("gateway/1.0.0", `{"name":"gateway","version":"1.0.0","tag":"1.0.0","deviceTypes":["board-a"],"manifestDigest":"sha256:`+d+`","size":1009}`, d, int64(687))
	f.Add("gateway/1.0.0+b.1", `{"name":"gateway","version":"1.0.0+b.1","tag":"1.0.0_b.1","deviceTypes":["a","b"],"manifestDigest":"sha256:`+d+`","size":0}`, d, int64(1))
	f.Add("x/1", `{"name":"x","version":"1","tag":"1","deviceTypes":[],"manifestDigest":"sha256:","size":-1}`, "", int64(0))
	f.Add("", `null`, "zz", int64(-1))
	f.Fuzz(func(t *testing.T, path, custom, hash string, length int64) {
		h, _ := hex.DecodeString(hash)
		raw := json.RawMessage(custom)
		tf := &metadata.TargetFiles{Length: length, Hashes: metadata.Hashes{"sha256": h}, Custom: &raw}
		tg, err := parseTarget(path, tf)
		if err != nil {
			return
		}
		if tg.Path != tg.Name+"/"+tg.Version || tg.ManifestDigest != "sha256:"+hex.EncodeToString(h) ||
			tg.ManifestSize <= 0 || tg.ManifestSize > maxManifestSize || tg.Size < 0 || len(tg.DeviceTypes) == 0 ||
			tg.Tag != strings.ReplaceAll(tg.Version, "+", "_") {
			t.Fatalf("accepted %+v", tg)
		}
	})
}
