package audit_test

import (
	"bytes"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/ferry-update/ferry/audit"
	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
)

// TestEncryptedAudit: an audit needs no key to judge an encrypted bundle:
// its parts are checked as ciphertext, and the report (JSON, text, HTML)
// says that it is encrypted and to how many recipients, from the signed
// age header, which is not listed as a document.
func TestEncryptedAudit(t *testing.T) {
	var recipients []age.Recipient
	for range 2 {
		id, err := age.GenerateX25519Identity()
		must(t, err)
		recipients = append(recipients, id.Recipient())
	}
	k := testutil.NewKey(t, "release@example.com")
	path := makeBundle(t, t.TempDir(), bundleSpec{name: "gateway", version: "1.0.0", signers: []testutil.Key{k}, sbom: true, encryptTo: recipients})
	rep := run(t, path, audit.Options{Root: makeRoot(t, k, []testutil.Key{k}, 1, nil, now.Add(year)), Tool: "ferry test"}, audit.SourceOptions{})
	b := rep.Bundles[0]
	if !rep.OK() || b.Encryption == nil || b.Encryption.Recipients != 2 || b.Encryption.Method != bundle.EncryptionAge || !b.Payloads[0].Verified {
		t.Fatalf("report %+v", b)
	}
	if len(b.Attachments) != 1 || b.Attachments[0].MediaType != bundle.SPDXMediaType {
		t.Errorf("attachments %+v: want the SBOM alone", b.Attachments)
	}
	var text, page bytes.Buffer
	must(t, rep.WriteText(&text))
	must(t, rep.WriteHTML(&page))
	for _, want := range []string{"zstd+age in 3 part(s), verified", "  encrypted   age to 2 recipient(s): rootfs; age header sha256:"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	for _, want := range []string{`<dd class="encryption">age to 2 recipient(s): rootfs; age header`, "zstd&#43;age</td>"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
}
