// Package audit tells a security team who signed what, wherever bundles
// are: a bundle file, a registry repository, a mirror (a directory or a
// URL) or a stick (mounted, or an image or device read with package
// media). For every bundle it reports the name, version,
// device types, manifest and payload digests and sizes, every signature
// (key id, algorithm, signer, time, verdict), whether the threshold is
// met, the attached SBOMs, the trust root's version and expiry and, for a
// mirror, its TUF metadata; and a verdict, pass or fail with the reasons.
//
// The verdict is the device's: a bundle passes when a device holding the
// same trust would install it from there, that is when verify.CheckHead
// accepts its signatures, every payload part matches its signed digest, the
// trust root has not expired and, for a mirror with TUF metadata, that
// metadata verifies and lists the bundle with this manifest digest.
// Signatures that do not count (unknown or revoked keys, bad signatures)
// beside enough that do are warnings, not failures.
//
// Package audit moves and judges nothing itself: bundle files, registries
// and sticks (mounted, or images through media.Images) are read through
// transport.Open; mirrors through their own server and transport/oci,
// with their TUF metadata checked by tufclient as a device checks it; and
// judging is package verify's. A Source is one method, so another place that holds
// bundles is one small adapter.
//
//	src, err := audit.Open("oci://registry.example.com/gateway", audit.SourceOptions{})
//	rep, err := audit.Run(ctx, src, audit.Options{Root: root})
//	rep.WriteHTML(f) // or WriteText, or encoding/json
package audit
