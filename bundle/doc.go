// Package bundle reads and writes ferry update bundles.
//
// A bundle is an OCI image layout packed as a tar archive (an "oci-archive"):
// registries, skopeo and oras carry it without knowing ferry. Its members come
// in a fixed order (layout, index, manifest, config, signatures, payloads) so
// that a device can check the signed manifest before it reads a payload byte
// and then stream every payload straight to its target, hashing on the way.
// FORMAT.md in this directory is the binding specification.
//
// This package knows the format and nothing else: it does not decide whether
// a signature is trusted (package verify does) and it does not move bundles
// anywhere (packages mirror and media do). Its currency is an io.Reader:
//
//	r, err := bundle.NewReader(f)      // reads and checks everything up to the payloads
//	// ... let package verify judge r.ManifestDigest() and r.Signatures() ...
//	for {
//		p, err := r.Next()             // io.EOF after the last payload
//		...
//		io.Copy(slot, p)               // decompressed; Read fails on any mismatch
//	}
//
// Payloads may be encrypted to age recipients (Options.EncryptTo;
// FORMAT.md §6.3). The head is read and checked without a key; a reader
// that wants the content calls Reader.Unlock with an age identity that is
// a recipient before the first Next, and Reencrypt wraps the file key for
// new recipients without decrypting a payload.
package bundle
