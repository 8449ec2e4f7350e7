// Package verify decides trust: it makes and parses keys, signs bundle
// manifests the cosign way, and judges a bundle's signatures against the
// keys and threshold a device or an auditor holds.
//
// It does no network I/O and reads nothing but what it is handed: a key's
// PEM bytes, a bundle stream. Signing and checking go through
// sigstore/sigstore, so what ferry signs `cosign verify --key` accepts
// (for ECDSA P-256 keys, which is why P-256 is the default).
package verify
