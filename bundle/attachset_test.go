package bundle_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/bundle"
)

func TestAttachmentName(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"sbom.spdx.json", "sbom.spdx.json"},
		{"dir/SBOM.SPDX.JSON", "sbom.spdx.json"},
		{"my sbom (v2).json", "my-sbom-v2-.json"},
		{"--.json", "json"},
		{"???", "sbom.json"},
		{strings.Repeat("a", 200) + ".json", strings.Repeat("a", 123) + ".json"},
		{strings.Repeat("a", 200) + "-" + strings.Repeat("b", 123) + ".json", strings.Repeat("b", 123) + ".json"},
	} {
		if got := bundle.AttachmentName(tc.path); got != tc.want {
			t.Errorf("AttachmentName(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestAttachmentSet(t *testing.T) {
	type add struct {
		label   string
		root    int64 // a trust root of this version; 0: an SBOM
		data    string
		wantErr string // "": added; "name": an *AttachmentNameError; else ErrNotSBOM
	}
	root := `{"signed":{}}`
	for _, tc := range []struct {
		name  string
		adds  []add
		names []string
		types []string
	}{
		{"one of each", []add{{"a/sbom.spdx.json", 0, testSPDX, ""}, {"r.json", 2, root, ""}},
			[]string{"sbom.spdx.json", "2.root.json"}, []string{bundle.SPDXMediaType, bundle.TrustRootMediaType}},
		{"two sboms of one name", []add{{"a/SBOM.spdx.json", 0, testSPDX, ""}, {"b/sbom.spdx.json", 0, testSPDX, "name"}},
			[]string{"sbom.spdx.json"}, []string{bundle.SPDXMediaType}},
		{"two roots of one version", []add{{"x.json", 3, root, ""}, {"y.json", 3, root, "name"}, {"z.json", 4, root, ""}},
			[]string{"3.root.json", "4.root.json"}, []string{bundle.TrustRootMediaType, bundle.TrustRootMediaType}},
		{"an sbom named like a root", []add{{"5.root.json", 0, testSPDX, ""}, {"r.json", 5, root, "name"}},
			[]string{"5.root.json"}, []string{bundle.SPDXMediaType}},
		{"not an sbom", []add{{"notes.json", 0, `{"notes":1}`, "not"}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var set bundle.AttachmentSet
			var firstType string
			for _, a := range tc.adds {
				var err error
				if a.root > 0 {
					err = set.AddTrustRoot(a.label, a.root, []byte(a.data))
				} else {
					err = set.AddSBOM(a.label, []byte(a.data))
				}
				if firstType == "" && err == nil {
					firstType = set.List()[0].MediaType
				}
				var ne *bundle.AttachmentNameError
				switch a.wantErr {
				case "":
					if err != nil {
						t.Fatalf("add %s: %v", a.label, err)
					}
				case "name":
					if !errors.As(err, &ne) || ne.Second != a.label || ne.First != tc.adds[0].label || ne.FirstMediaType != firstType {
						t.Fatalf("add %s: %#v, want an AttachmentNameError naming %s first", a.label, err, tc.adds[0].label)
					}
				default:
					if !errors.Is(err, bundle.ErrNotSBOM) {
						t.Fatalf("add %s: %v, want ErrNotSBOM", a.label, err)
					}
				}
			}
			list := set.List()
			if len(list) != len(tc.names) {
				t.Fatalf("%d attachments, want %d", len(list), len(tc.names))
			}
			for i, a := range list {
				if a.Name != tc.names[i] || a.MediaType != tc.types[i] {
					t.Errorf("attachment %d: %s %s, want %s %s", i, a.Name, a.MediaType, tc.names[i], tc.types[i])
				}
			}
		})
	}
}
