// Package mirror moves bundles: it pushes them to and pulls them from OCI
// registries, keeps them in a local mirror directory, and serves that
// directory read-only over the OCI distribution API. It moves bytes and
// checks digests; it never decides trust (package verify does).
//
// # Registries
//
// Push uploads a bundle file with go-containerregistry: blobs the registry
// already has are skipped, the manifest is put byte for byte (its digest is
// what the signatures sign), and the signatures go where cosign puts them,
// a manifest tagged sha256-<hex>.sig, merged with the signatures already
// there so that two signers pushing the same bundle keep both. Where the
// registry has the OCI 1.1 referrers API each signature is also pushed as a
// referrer (artifactType CosignSignatureArtifactType); where it has not
// (Docker's registry 2.8) that step is skipped and reported, and the tag
// scheme carries the signatures alone.
//
// Pull streams a bundle from a registry into the canonical archive, through
// the same code the device uses (package ociclient) over
// go-containerregistry's authenticating transport, so credentials come from
// the Docker config file and its helpers.
//
// # The store
//
// A Store is one OCI image layout directory:
//
//	DIR/oci-layout            {"imageLayoutVersion":"1.0.0"}
//	DIR/index.json            one entry per manifest: bundles, signatures, referrers
//	DIR/blobs/sha256/<hex>    every blob and manifest, shared by all bundles
//	DIR/ferry-mirror.json     marks the directory as a ferry mirror
//	DIR/keys/mirror.key       the mirror's online key (0600), for its metadata
//	DIR/tmp/                  partial downloads, resumed by the next sync
//
// Each bundle is named by its config: the repository is the bundle's name
// and the tag its version (bundle.Config.Tag), so the mirror serves
// oci://HOST/<name>:<version>. An index entry carries the ref name
// "<name>:<tag>" (org.opencontainers.image.ref.name) and the repository
// again in dev.ferry.repository; signature manifests are tagged
// "<name>:sha256-<hex>.sig"; referrers are untagged entries.
//
// Why one layout with "<name>:<tag>" ref names rather than a layout per
// repository: one blob store means a payload shared by two bundles is kept
// once and an incremental sync needs one existence check per blob; one
// index.json replaced atomically (write, fsync, rename) is the single
// commit point of every add or sync, so the server sees a bundle entirely
// or not at all; and the directory stays a plain OCI layout that skopeo
// reads as oci:DIR:<name>:<version>. Ref names must be unique within a
// layout, which plain version tags would not be once two bundles share a
// version; the bundle name cannot contain ':', so splitting at the first
// ':' is unambiguous, and the annotation spares readers even that.
//
// Blobs are written to tmp/ and renamed into blobs/ only after their size
// and digest are checked, so a killed add or sync never leaves a
// half-written blob visible; the next sync hashes what the partial file
// holds and asks the source for the rest with a Range request. Writers
// take a lock (flock on DIR/.lock); the server reads without one.
//
// A version is immutable: adding a different bundle under a name and
// version the store already holds is a *ConflictError.
//
// # Serving
//
// Server answers the read half of the distribution API from a Store:
// /v2/, manifests and blobs (GET and HEAD, Range, Docker-Content-Digest),
// tags/list with n/last pagination, and referrers with the artifactType
// filter; OCI error bodies (NAME_UNKNOWN, MANIFEST_UNKNOWN, BLOB_UNKNOWN);
// 405 for anything that writes. Blobs are sent with http.ServeContent from
// their files, so the kernel copies them (sendfile) and memory stays flat.
package mirror
