package bundle_test

import (
	"errors"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/ferry-update/ferry/bundle"
)

func TestParseRecipients(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	ra, rb := a.Recipient().String(), b.Recipient().String()
	good := "# line 7, shift 2\n\n  " + ra + "  \n" +
		`{"id":"3f2a","ageRecipient":"` + rb + `","deviceType":"board-a"}` + "\n" +
		ra + "\n"
	rs, err := bundle.ParseRecipients(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].(*age.X25519Recipient).String() != ra || rs[1].(*age.X25519Recipient).String() != rb {
		t.Fatalf("recipients %v: want %s and %s once each", rs, ra, rb)
	}
	// One character of the checksum changed (to another one: a recipient
	// ending in "x" stays valid with an "x").
	badSum := ra[:len(ra)-1] + "x"
	if ra[len(ra)-1] == 'x' {
		badSum = ra[:len(ra)-1] + "y"
	}
	for _, tt := range []struct {
		name, file string
		line       int
		want       string
	}{
		{"ssh key", ra + "\nssh-ed25519 AAAAC3Nza host\n", 2, "not an age X25519 recipient"},
		{"secret key", "# keys\nAGE-SECRET-KEY-1QQQ\n", 2, "not an age X25519 recipient"},
		{"bad checksum", badSum + "\n", 1, "not an age X25519 recipient"},
		{"json without recipient", `{"id":"3f2a"}` + "\n", 1, `no "ageRecipient"`},
		{"broken json", "\n\n{\"ageRecipient\":\n", 3, "not a JSON object"},
		{"long line", strings.Repeat("a", bundle.MaxRecipientLine+1), 1, "longer than"},
	} {
		_, err := bundle.ParseRecipients(strings.NewReader(tt.file))
		var re *bundle.RecipientError
		if !errors.As(err, &re) || re.Line != tt.line || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want a *RecipientError at line %d saying %q", tt.name, err, tt.line, tt.want)
		}
	}
	if _, err := bundle.ParseRecipients(strings.NewReader("# nobody\n")); err == nil {
		t.Error("a file without recipients was accepted")
	}
}

// FuzzParseRecipients: any input gives recipients or an error, never a
// panic; every recipient returned prints as a valid recipient again.
func FuzzParseRecipients(f *testing.F) {
	id, _ := age.GenerateX25519Identity()
	f.Add(id.Recipient().String() + "\n# c\n")
	f.Add(`{"ageRecipient":"` + id.Recipient().String() + `"}`)
	f.Add("\xff\n{\n")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := bundle.ParseRecipients(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, r := range rs {
			if _, err := bundle.ParseRecipient(r.(*age.X25519Recipient).String()); err != nil {
				t.Fatalf("recipient %v does not parse again: %v", r, err)
			}
		}
	})
}
