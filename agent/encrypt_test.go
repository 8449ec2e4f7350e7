package agent

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"testing"

	"filippo.io/age"

	"github.com/ferry-update/ferry/bundle"
)

func otherRecipient(t *testing.T) age.Recipient {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient()
}

// TestEncryptedInstall: a bundle encrypted to the device (among others)
// installs like any other: the slot and the files tree get the plaintext,
// and the install commits.
func TestEncryptedInstall(t *testing.T) {
	d := newDevice(t)
	rootfs := string(noise(300<<10, 1))
	b := d.bundle(bundleSpec{version: "1.0.0", rootfs: rootfs, files: map[string]string{"app.conf": "secret=42\n"},
		encryptTo: []age.Recipient{otherRecipient(t), d.recipient()}})
	if bytes.Contains(b, []byte("secret=42")) {
		t.Fatal("the bundle holds plaintext")
	}
	if err := d.install(b); err != nil {
		t.Fatal(err)
	}
	if got := d.read("slot-b.img"); got != rootfs {
		t.Errorf("slot b holds %d bytes, want the %d of the plaintext", len(got), len(rootfs))
	}
	if got := d.read("app/current/app.conf"); got != "secret=42\n" {
		t.Errorf("app.conf %q", got)
	}
	if st := d.bootState(); st.Slot != "b" || !st.UpgradeAvailable {
		t.Errorf("boot state %+v: want slot b on trial", st)
	}
	if err := d.bootCheck(); err != nil {
		t.Fatal(err)
	}
	if j := d.journal(); j.State != StateCommitted {
		t.Errorf("journal state %s", j.State)
	}
}

// TestNotRecipientRefused: a device that is not among the recipients
// refuses the bundle (exit code 3) naming its recipient, after judging
// the signatures and before it reads a payload byte: no slot, tree or
// boot variable changes.
func TestNotRecipientRefused(t *testing.T) {
	d := newDevice(t)
	mine := d.recipient()
	b := d.bundle(bundleSpec{version: "1.0.0", rootfs: "new system", files: map[string]string{"app.conf": "x"},
		encryptTo: []age.Recipient{otherRecipient(t), otherRecipient(t)}})
	bootenvBefore := d.read("bootenv")
	err := d.install(b)
	var re *RefusedError
	var nre *bundle.NotRecipientError
	if !errors.As(err, &re) || !errors.As(err, &nre) {
		t.Fatalf("install: %v, want a RefusedError wrapping a NotRecipientError", err)
	}
	if nre.Recipients != 2 || len(nre.Identities) != 1 || nre.Identities[0] != mine.(*age.X25519Recipient).String() {
		t.Errorf("error %v: want the device's recipient among 2", err)
	}
	if got := d.read("slot-b.img"); got != "" {
		t.Errorf("slot b was written: %q", got)
	}
	if _, err := os.Stat(d.path("app")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the files target was touched: %v", err)
	}
	if got := d.read("bootenv"); got != bootenvBefore {
		t.Errorf("boot environment changed:\n%s", got)
	}
	if j := d.journal(); j.State != StateFailed || !j.Refused {
		t.Errorf("journal %s refused=%v", j.State, j.Refused)
	}

	// An unsigned bundle is refused for its signatures first: nothing is
	// decrypted for a bundle that fails them, even for a recipient.
	err = d.install(d.bundle(bundleSpec{version: "1.0.0", rootfs: "new system", unsigned: true, encryptTo: []age.Recipient{mine}}))
	if !errors.As(err, &re) || errors.As(err, &nre) || d.read("slot-b.img") != "" {
		t.Errorf("unsigned encrypted bundle: %v", err)
	}
}

// TestTamperedCiphertext: a byte changed in the ciphertext is refused;
// no plaintext of the changed chunk or after it reaches the slot (age's
// STREAM authenticates each 64 KiB chunk before it is decrypted), what
// came before is the authentic plaintext, and nothing is activated.
func TestTamperedCiphertext(t *testing.T) {
	d := newDevice(t)
	rootfs := noise(1<<20, 2) // incompressible: ciphertext offsets follow the plaintext's
	b := d.bundle(bundleSpec{version: "1.0.0", rootfs: string(rootfs), encryptTo: []age.Recipient{d.recipient()}})
	off, size := lastPart(t, b)
	const at = 600 << 10
	if size < at {
		t.Fatalf("part of %d bytes", size)
	}
	bad := bytes.Clone(b)
	bad[off+at] ^= 1
	err := d.install(bad)
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("install: %v, want a RefusedError", err)
	}
	got := []byte(d.read("slot-b.img"))
	if len(got) >= at || !bytes.Equal(got, rootfs[:len(got)]) {
		t.Errorf("slot b holds %d bytes; want fewer than %d, all authentic plaintext", len(got), at)
	}
	if st := d.bootState(); st.Slot != "a" || st.UpgradeAvailable {
		t.Errorf("boot state %+v", st)
	}
}

// noise is n incompressible bytes.
func noise(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
