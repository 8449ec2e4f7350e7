// Package mirror is the mirror store: a local mirror directory of
// bundles (layout, add, sync, roots) with its TUF metadata. It moves bytes
// and checks digests; it never decides trust (package verify does).
// Serving the directory is package mirror/server's job, pushing to and
// pulling from registries package registry's, the device records package
// devices'.
//
// # The store
//
// A Store is one OCI image layout directory:
//
//	DIR/oci-layout            {"imageLayoutVersion":"1.0.0"}
//	DIR/index.json            one entry per manifest: bundles, signatures, referrers
//	DIR/blobs/sha256/<hex>    every blob and manifest, shared by all bundles
//	DIR/ferry-mirror.json     marks the directory as a ferry mirror
//	DIR/keys/mirror.key       the mirror key (0600): signs the TUF targets
//	DIR/keys/online.key       generated at init (0600): signs snapshot and timestamp
//	DIR/tuf/                  TUF metadata, served under /tuf/ (see Freshness)
//	DIR/devices.db            device check-ins (SQLite), made by serve
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
// Package mirror/server serves a Store over HTTP: the read half of the OCI
// distribution API, the TUF metadata, trust roots and device check-ins,
// under limits for a network that is not trusted.
//
// # Freshness
//
// Signatures say who made a bundle, not whether the mirror a device asks
// is up to date: a frozen mirror, or one that replays what it served last
// month, would hand out old, validly signed bundles forever. So the mirror
// publishes TUF metadata (go-tuf/v2's metadata package; the spec's
// consistent-snapshot layout):
//
//	root       names the keys of every role; signed by the root key
//	targets    one target per bundle, path "<name>/<version>", length and
//	           sha256 = the manifest's, custom fields: name, version, tag,
//	           device types, manifest digest, payload size
//	snapshot   the version and hash of targets.json
//	timestamp  the version and hash of snapshot.json, expiring soon
//
// Keys, by how often they sign and where they live:
//
//	root       offline: 'ferry mirror init --root-key' (never stored), else
//	           the mirror key; renewed by 'ferry mirror refresh --root-key'
//	targets    the mirror key (init --key, DIR/keys/mirror.key): signs when
//	           'add' or 'sync' changes the bundle list
//	snapshot,  the online key, generated at init (DIR/keys/online.key):
//	timestamp  signs on every add, sync and refresh, and every
//	           --refresh-interval while 'serve' runs
//
// The split is what makes a stolen online key (the one the long-running
// server uses) harmless beyond a denial of service: it can re-sign
// timestamps and snapshots, but not list a bundle, because targets need
// the mirror key; a device refuses targets signed by anything else. To
// make that real, run 'serve' as a user that can read keys/online.key but
// not keys/mirror.key (its refreshes then only renew snapshot and
// timestamp). A stolen mirror key lets a thief list bundles, which devices
// still refuse unless the release keys of their trust root signed them.
// All keys are verify's key types, ECDSA P-256 by default (TUF keytype
// "ecdsa", scheme "ecdsa-sha2-nistp256"; P-384, ed25519 and RSA-PSS map to
// theirs).
//
// Expiries (DIR/tuf/config.json): root and targets a year, snapshot a
// week, timestamp a day ('init --timestamp-expiry', 'refresh
// --timestamp-expiry'); a role is re-signed when half its lifetime is
// gone, the timestamp every time. Each write goes versioned file first,
// timestamp.json last, so a device that read a timestamp finds the
// snapshot and targets it names (the last 16 versions are kept).
//
// Devices check it with package tufclient: not expired (freeze), never
// older than what they saw before (rollback), signed by the right role,
// and the bundle they install listed with its manifest digest
// (mix-and-match).
//
// # Check-ins
//
// Devices POST a small JSON report (package checkin: device id and type,
// installed bundle and version, last result, time, optional error) to
// /ferry/v1/checkin. The server validates it (at most 16 KiB: 413 beyond,
// 400 with a reason for anything malformed) and records it in
// DIR/devices.db with package devices, which says how they are kept and
// ordered (a report dated more than devices.MaxClockAhead after the
// mirror's clock is refused, 400). Reports ingested from a stick count as
// received when they were made (at the latest now), so an old stick does
// not override what a device said since.
package mirror
