// Package registry pushes bundles to and pulls them from OCI registries
// with go-containerregistry. It moves bytes and checks digests; it never
// decides trust (package verify does).
//
// Push uploads a bundle file: blobs the registry already has are skipped,
// the manifest is put byte for byte (its digest is what the signatures
// sign), and the signatures go where cosign puts them, a manifest tagged
// sha256-<hex>.sig, merged with the signatures already there so that two
// signers pushing the same bundle keep both. Where the registry has the
// OCI 1.1 referrers API each signature is also pushed as a referrer
// (artifactType oci.CosignSignatureArtifactType); where it has not
// (Docker's registry 2.8) that step is skipped and reported, and the tag
// scheme carries the signatures alone.
//
// Pull streams a bundle from a registry into the canonical archive,
// through the same code the device uses (package transport/oci) over
// go-containerregistry's authenticating transport, so credentials come
// from the Docker config file and its helpers. PullFile writes it to a
// file atomically and reads it back before it is renamed into place.
//
// The Artifact helpers build the signature manifests (cosign tag scheme
// and OCI 1.1 referrers) that Push uploads and the mirror store keeps.
package registry
