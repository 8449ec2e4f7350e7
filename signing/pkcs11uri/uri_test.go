package pkcs11uri

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want URI
	}{
		{"pkcs11:token=release;object=release-1", URI{Token: "release", Object: "release-1"}},
		// cosign's form: the PIN and module in the path.
		{"pkcs11:token=ferry;object=k;pin-value=1234;module-path=/lib/x.so", URI{Token: "ferry", Object: "k", PINValue: "1234", ModulePath: "/lib/x.so"}},
		// RFC 7512's form: query attributes after '?'.
		{"pkcs11:token=My%20token;id=%01%02%ff?module-path=/lib/x.so&pin-source=file:/run/pin", URI{Token: "My token", ID: []byte{1, 2, 0xff}, ModulePath: "/lib/x.so", PINSource: "file:/run/pin"}},
		{"PKCS11:object=a;type=private;slot-id=3;serial=42;model=SoftHSM%20v2;manufacturer=x", URI{Object: "a", Type: "private", SlotID: 3, HasSlotID: true, Serial: "42", Model: "SoftHSM v2", Manufacturer: "x"}},
		// Vendor attributes (with a '-') are ignored, as RFC 7512 allows.
		{"pkcs11:object=a;x-vendor=1", URI{Object: "a"}},
	} {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got.String() != tc.want.String() || !bytes.Equal(got.ID, tc.want.ID) || got.PINValue != tc.want.PINValue {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ in, reason string }{
		{"pkcs11:", "names no key"},
		{"pkcs11:token=a", "names no key"},
		{"file.key", `does not start with "pkcs11:"`},
		{"pkcs11:object=a;object=b", "given twice"},
		{"pkcs11:object=a?pin-value=1;pin-value=2", "%3B"},
		{"pkcs11:object=a;pin-value=1?pin-value=2", "given twice"},
		{"pkcs11:object=a?object=b", "path attribute"},
		{"pkcs11:object=a;colour=red", "unknown attribute"},
		{"pkcs11:object=a;type=key", "not one of"},
		{"pkcs11:object=a;slot-id=x", "decimal"},
		{"pkcs11:object=%zz", "percent-encoding"},
		{"pkcs11:object=a;pin-value=1?pin-source=/p", "not both"},
		{"pkcs11:object=a#frag", "'#'"},
		{"pkcs11:object=a?b=c?d=e", "'?'"},
		{"pkcs11:objecta", "not NAME=VALUE"},
		{"pkcs11:" + strings.Repeat("a", maxLen), "longer than"},
	} {
		_, err := Parse(tc.in)
		var se *SyntaxError
		if !errors.As(err, &se) || !strings.Contains(se.Reason, tc.reason) {
			t.Errorf("Parse(%q) = %v, want a SyntaxError saying %q", tc.in, err, tc.reason)
		}
	}
}

func TestPINNeverShown(t *testing.T) {
	const uri = "pkcs11:object=a;pin-value=s3cret;pin-value=again"
	_, err := Parse(uri)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %v shows the PIN", err)
	}
	u, err := Parse("pkcs11:object=a?pin-value=s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(u.String(), "s3cret") {
		t.Errorf("String() = %s shows the PIN", u)
	}
}

func TestPINFile(t *testing.T) {
	for src, want := range map[string]string{
		"file:/run/pin":     "/run/pin",
		"file:///run/pin":   "/run/pin",
		"/run/pin":          "/run/pin",
		"pin.txt":           "pin.txt",
		"file:/a%20dir/pin": "/a dir/pin",
	} {
		got, err := (&URI{PINSource: src}).PINFile()
		if err != nil || got != want {
			t.Errorf("PINFile(%q) = %q, %v; want %q", src, got, err, want)
		}
	}
	if _, err := (&URI{PINSource: "https://example.com/pin"}).PINFile(); err == nil {
		t.Error("an https pin-source was accepted")
	}
}

// FuzzParse: any input parses or is refused with a SyntaxError, never a
// panic; what parses writes back (String) to a URI that parses to the same
// key, and an error never carries a pin-value.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=release;object=release-1",
		"pkcs11:token=My%20token;id=%01%02%ff?module-path=/lib/x.so&pin-source=file:/run/pin",
		"pkcs11:object=a;pin-value=1234",
		"pkcs11:object=a;slot-id=3;type=private",
		"pkcs11:object=a;x-y=1?pin-value=%41",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Parse(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q): error %T is not a SyntaxError", s, err)
			}
			return
		}
		if u.PINValue != "" {
			u.PINValue = "" // String hides it; compare the rest
		}
		again, err := Parse(u.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %s, which does not parse: %v", s, u, err)
		}
		if again.String() != u.String() || !bytes.Equal(again.ID, u.ID) || again.Object != u.Object || again.Token != u.Token {
			t.Fatalf("round trip of %q: %s then %s", s, u, again)
		}
	})
}
