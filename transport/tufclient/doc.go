// Package tufclient is the device side of a ferry mirror's freshness
// metadata: it fetches the mirror's TUF metadata over HTTP, checks it the
// way the TUF specification's client workflow says, and returns the
// bundles the mirror lists. The agent imports it (with transport/oci to pull
// and checkin to report), so it stays small: see depcheck_test.go.
//
//	tg, err := tufclient.Check(ctx, "http://mirror.local:5000", "/etc/ferry/mirror-root.json", "/var/lib/ferry/tuf", time.Now())
//	// err: *tufclient.Error (Expired = freeze, Rollback, BadSignature,
//	// Mismatch, Malformed, Unavailable): install nothing, back off.
//	t, ok := tg.Newest(deviceType, "", installedVersion)
//	// pull t.Reference(tg.Host) (by digest) with transport/oci, then before
//	// installing: tg.Verify(cfg.Name, cfg.Version, head.Digest.String())
//
// What it protects against, with package verify doing the rest (bundle
// signatures, thresholds, device type, anti-rollback of the installed
// version):
//
//   - freeze: a mirror (or a man in the middle) that keeps serving old but
//     validly signed metadata is refused once the timestamp expires (a day
//     by default): *Error of kind Expired;
//   - rollback: a timestamp, snapshot or targets older than the device
//     already saw (kept in the state directory) is refused: kind Rollback;
//   - mix-and-match: a validly signed bundle that the mirror's targets do
//     not list under its name and version (an old or a foreign one) is
//     refused by Targets.Verify: *NotListedError. Pulling by digest
//     (Target.Reference) makes the registry unable to substitute one;
//   - tampering and forgery: every file must be signed by its role's keys
//     in the trusted root (kind BadSignature) and match the length and
//     hash its parent lists (kind Mismatch); sizes are bounded before
//     anything is parsed.
//
// # Why not go-tuf's updater
//
// go-tuf/v2 has a full client, metadata/updater. It is not used here,
// measured with 'go list -deps' against cmd/ferry-agent: the metadata and
// trustedmetadata packages this package uses add exactly those two
// packages to the agent (everything they need — sigstore's signature
// package, securesystemslib's canonical JSON, protobuf — the agent already
// links to check bundle signatures); the updater adds four more (updater,
// config, fetcher and github.com/cenkalti/backoff/v5). Beyond size, its
// shape does not fit the agent: it keeps its own cache layout, downloads
// targets itself (ferry pulls bundles over the OCI API, resumable), its
// fetcher takes no context (the agent's run loop cancels on shutdown),
// retries with its own backoff (the agent owns backoff and jitter), and
// sets the reference time only through UnsafeSetRefTime. So this package
// keeps go-tuf's trustedmetadata — the spec's checks, as go-tuf
// implements and tests them — and adds only the fetching, the size limits,
// the state files and the typed errors.
//
// The metadata layout it expects (ferry mirror serve):
//
//	/tuf/root.json, /tuf/N.root.json     the root chain
//	/tuf/timestamp.json                  short-lived, re-signed by the online key
//	/tuf/N.snapshot.json                 consistent snapshots (version-named)
//	/tuf/N.targets.json                  one target per bundle: "<name>/<version>",
//	                                     length and sha256 of the manifest,
//	                                     custom fields as in Custom
package tufclient
