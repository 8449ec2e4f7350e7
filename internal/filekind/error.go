package filekind

import "fmt"

// Error says that an input is of another kind than the one wanted.
type Error struct {
	Got  Kind
	Want Kind
	// URL is set when the input was fetched from an http(s) URL.
	URL bool
	// Err is what reading it as Want gave, if anything.
	Err error
}

func (e *Error) Error() string {
	what := "this is"
	if e.URL {
		what = "the URL served"
	}
	return fmt.Sprintf("%s %s, not %s", what, e.Got, e.Want)
}

func (e *Error) Unwrap() error { return e.Err }

// Hint says what to pass instead, for the CLIs' "hint:" line; "" when
// there is nothing better to say than the error.
func (e *Error) Hint() string {
	switch {
	case e.URL && e.Want == Bundle:
		return "give a URL of a bundle file; for a ferry mirror or an OCI registry use oci://HOST[:PORT]/REPO:TAG (add --plain-http for a mirror without TLS)"
	case e.Want == Bundle && (e.Got == DiskGPT || e.Got == DiskMBR || e.Got == FAT):
		return "a stick image holds bundles in its FAT partition: on a device, mount the stick and give ferry-agent install the mount directory; on a host, 'ferry mirror sync DIR --from IMAGE' takes its bundles and 'ferry media inspect IMAGE' lists them"
	case e.Want == Bundle && e.Got.IsImage():
		return "pack the image into a bundle first: ferry bundle create IMAGE --name NAME --version V --device-type T --key KEY --out FILE.ferry"
	case e.Want == Bundle && (e.Got == TrustRoot || e.Got == TUFRoot || e.Got == PublicKey):
		return "pass the bundle file here; trust material goes with --trust or --key"
	case e.Want == TrustRoot && e.Got == PublicKey:
		return "a public key is not a trust root: pass it with --key PUB, or make a ferry trust root from it (ferry trust init)"
	case e.Want == TrustRoot && e.Got == PrivateKey:
		return "never hand out a private key: pass the ferry trust root (N.root.json, made by ferry trust init), or the public key with --key"
	case e.Want == TrustRoot && (e.Got == TUFRoot || e.Got == TUFMetadata):
		return "that is the mirror TUF root, which vouches for a mirror's metadata (--mirror-root, [mirror] tuf_root); bundles are judged by the ferry trust root (N.root.json, made by ferry trust init)"
	case e.Want == PublicTrust && e.Got == PrivateKey:
		return "give the public key (ferry key generate writes PREFIX.pub beside PREFIX.key) or the ferry trust root (N.root.json); a private key never leaves the machine that signs"
	case e.Want == PublicTrust:
		return "give public keys (PEM) and trust roots only: the ferry trust root (N.root.json) or the mirror TUF root (root.json)"
	case e.Want == TrustRoot:
		return "pass the ferry trust root: N.root.json, made by ferry trust init"
	}
	return ""
}

// Check returns an *Error when head is of a known kind other than want,
// wrapping err (what reading it as want gave); otherwise err as it is.
// Unknown content is not judged: the caller's own error says more.
func Check(head []byte, want Kind, err error) error {
	if got := Detect(head); mismatch(got, want) {
		return &Error{Got: got, Want: want, Err: err}
	}
	return err
}

// mismatch says whether got is known to be something other than want. A
// tar archive that is not a bundle is left to the bundle reader, which
// says where it differs.
func mismatch(got, want Kind) bool {
	return got != want && got != Unknown && got != Empty && !(want == Bundle && got == Tar)
}

// CheckFile is Check for the file at path.
func CheckFile(path string, want Kind, err error) error {
	got, ferr := DetectFile(path)
	if ferr == nil && mismatch(got, want) {
		return &Error{Got: got, Want: want, Err: err}
	}
	return err
}
