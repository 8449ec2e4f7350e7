package verify

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestCanonicalJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{ "b": 1, "a": [true, false, null], "_type": "x" }`, `{"_type":"x","a":[true,false,null],"b":1}`},
		{`{"pem": "-----BEGIN\nAB\n-----END\n"}`, "{\"pem\":\"-----BEGIN\nAB\n-----END\n\"}"},
		{`{"q": "say \"hi\" \\ \u0041 \u00e9 <&>"}`, `{"q":"say \"hi\" \\ A é <&>"}`},
		{`{"n": -12, "z": 0, "big": 9007199254740991}`, `{"big":9007199254740991,"n":-12,"z":0}`},
		{`{"B": 1, "a": 2, "_": 3, "é": 4}`, `{"B":1,"_":3,"a":2,"é":4}`},
	}
	for _, tt := range tests {
		got, err := canonicalJSON([]byte(tt.in))
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
	for _, in := range []string{`{"f": 1.5}`, `{"f": 1e3}`, `{"n": 99999999999999999999}`, `{`} {
		if got, err := canonicalJSON([]byte(in)); err == nil {
			t.Errorf("%s: canonical %s, want an error", in, got)
		}
	}
}

// FuzzCanonicalJSON checks that the canonical form depends on the JSON value
// only: re-indenting the input does not change it, and the canonical form of
// a canonical form (when it is JSON: raw control characters in strings are
// not) is itself.
func FuzzCanonicalJSON(f *testing.F) {
	f.Add([]byte(`{"b":[1,2,{"d":"x","c":null}],"a":"\"\\\n"}`))
	f.Add([]byte(`{"keys":{"ff":{"public":"-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"}}}`))
	f.Add([]byte(`["\u2028", "\ud800", -0, 1E2]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := canonicalJSON(data)
		if err != nil {
			return
		}
		var indented bytes.Buffer
		if err := json.Indent(&indented, data, " ", "\t"); err != nil {
			t.Fatalf("valid JSON does not indent: %v", err)
		}
		c2, err := canonicalJSON(indented.Bytes())
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("re-indented input: %q (%v), want %q", c2, err, c)
		}
		if json.Valid(c) {
			c3, err := canonicalJSON(c)
			if err != nil || !bytes.Equal(c, c3) {
				t.Fatalf("canonical of canonical: %q (%v), want %q", c3, err, c)
			}
		}
	})
}
