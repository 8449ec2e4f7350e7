package verify_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/verify"
)

// TestBundleChecked: a report lists exactly the checks that passed, so a
// verdict never claims more than was checked; the end of the archive is
// one of them.
func TestBundleChecked(t *testing.T) {
	k := newTestKey(t, verify.ECDSAP256, "release")
	path := filepath.Join(t.TempDir(), "b.ferry")
	_, err := bundle.Create(path, bundle.Options{
		Name: "demo", Version: "1.0.0", DeviceTypes: []string{"board"}, Created: now,
		Sign: func(d digest.Digest) ([]bundle.Signature, error) { return []bundle.Signature{k.sign(t, d)}, nil },
	}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: strings.NewReader("hello")})
	must(t, err)
	raw, err := os.ReadFile(path)
	must(t, err)
	good := verify.Policy{Keys: []*verify.PublicKey{k.pub}, Threshold: 1}
	stranger := newTestKey(t, verify.ECDSAP256, "stranger")
	for _, tc := range []struct {
		name    string
		raw     []byte
		policy  verify.Policy
		checked []string
		ok      bool
		err     error
	}{
		{"parts", raw, good, []string{verify.CheckedSignatures, verify.CheckedParts, verify.CheckedEnd}, true, nil},
		{"deep", raw, verify.Policy{Keys: good.Keys, Threshold: 1, Deep: true, DeviceType: "board"},
			[]string{verify.CheckedSignatures, verify.CheckedDeviceType, verify.CheckedParts, verify.CheckedContent, verify.CheckedEnd}, true, nil},
		{"other device", raw, verify.Policy{Keys: good.Keys, Threshold: 1, DeviceType: "other"}, []string{verify.CheckedSignatures}, false, nil},
		{"untrusted", raw, verify.Policy{Keys: []*verify.PublicKey{stranger.pub}, Threshold: 1}, []string{}, false, nil},
		{"trailing data", append(bytes.Clone(raw), 'x'), good, []string{verify.CheckedSignatures, verify.CheckedParts}, false, bundle.ErrUnaccounted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := verify.Bundle(bytes.NewReader(tc.raw), tc.policy)
			if (err == nil) != tc.ok {
				t.Fatalf("error %v, want ok=%v", err, tc.ok)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("error %v, want %v", err, tc.err)
			}
			if !slices.Equal(rep.Checked, tc.checked) {
				t.Errorf("checked %q, want %q", rep.Checked, tc.checked)
			}
		})
	}
}
