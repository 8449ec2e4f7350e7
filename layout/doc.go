// Package layout is the shape of a ferry store on disk: the OCI image
// layout (index.json, oci-layout, blobs/sha256/) that a mirror directory
// and a USB stick's /ferry/ directory share, and the OCI artifacts that
// carry signatures and attachments beside a bundle.
//
// It writes no files itself. mirror.Store applies these rules to a
// directory (with locks, atomic writes and a blob store); media.Build
// writes Files' result into a FAT image; registry pushes the same
// artifacts to an OCI registry. Keeping the rules here, apart from all
// three, is what lets a stick, a mirror and a registry hold byte-identical
// manifests, so a bundle's digests and signatures survive every hop, and
// keeps media free of the mirror's and the registry client's dependencies.
//
// In index.json every bundle is tagged <name>:<version> and annotated
// with its repository, name and version (see transport/wire); its
// signatures are a cosign tag-scheme manifest (sha256-<hex>.sig) and one
// OCI 1.1 referrer per signature. Two different manifests under one tag
// are a *ConflictError: a version in a store never changes.
package layout
