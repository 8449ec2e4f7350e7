// Package oci pulls ferry bundles over the OCI distribution API with
// nothing but net/http. It is the device side of package mirror: the agent
// imports it to install from oci:// references and from a ferry mirror,
// so it must stay small (see depcheck_test.go: no go-containerregistry, no
// cobra, no registry SDKs).
//
// It implements just the pull half of the distribution spec: GET/HEAD a
// manifest with the right Accept header, GET a blob with Range resume, list
// tags with pagination, list referrers, and the two ways registries ask for
// credentials (anonymous or basic-authenticated bearer tokens, and plain
// basic auth).
//
// Everything it fetches is untrusted: manifests are bounded and checked
// against their digest when fetched by digest, small blobs are read through
// internal/verifyio, and layers are checked by bundle.Assemble while they
// stream. Trust is not decided here; the caller hands the assembled bundle
// to package verify.
//
//	r, err := oci.Open(ctx, "oci://mirror.local:5000/gateway:1.4.2", oci.Options{})
//	// r is a canonical bundle archive stream, as if read from a file.
package oci
