// Package mirror is the mirror store: a local mirror directory of
// bundles (layout, add, sync, roots). It moves bytes and checks digests;
// it never decides trust (package verify does). Serving the directory is
// package mirror/server's job, publishing its TUF metadata package
// tufrepo's, pushing to and pulling from registries package registry's,
// the device records package devices'.
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
//	DIR/keys/online.key       generated at init (0600): signs snapshot and timestamp (tufrepo's)
//	DIR/keys/assign.key       made by the first deployment (0600): signs per-device
//	                          assignments; published in targets.json (assignkey.go)
//	DIR/keys/assign.<id>.pub  a retired assignment key, still published
//	DIR/tuf/                  TUF metadata, served under /tuf/ (tufrepo's; see Freshness)
//	DIR/devices.db            device check-ins (SQLite), made by serve
//	DIR/tmp/                  partial downloads, resumed by the next sync
//	DIR/deltas/               delta streams made for devices (dstream.go), a cache:
//	                          TARGET-BASE.fds, the least recently served removed
//	                          beyond DeltaCacheBytes (2 GiB)
//	DIR/relay/ferry/          a site mirror's relay of an upstream's fleet
//	                          (relay.go): its tuf/ and assignments/ (from sync),
//	                          and reports/ of its devices for it (from ingest,
//	                          and from 'serve --relay': RelayCheckin)
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
// version the store already holds is a *layout.ConflictError. The layout
// rules themselves (tags, annotations, signature artifacts) live in package
// layout, shared with media's sticks and registry's pushes.
//
// # Linked site mirrors
//
// Sync from an http(s):// URL relays a running upstream mirror (link.go,
// docs/fleet.md §13): the relay's reports go up first, their signed
// check-ins posted verbatim to the upstream's check-in endpoint and
// removed once acknowledged (SyncResult.Reports); then the assignments of
// the upstream's running deployments (its operator API, an Upstream with
// a token), its TUF metadata verified by the device's client workflow
// (tufclient.Check) from the pinned upstream root into a temporary
// directory, the bundles its targets list (OCI, chunk-level), and the
// relay takes metadata and assignments as from a stick (relayFrom), the
// timestamp last. Anything the sync cannot read or verify is relayed not
// at all (*LinkError, wrapping *tufclient.Error or the API's error).
// Package mirror/server serves the relay to the upstream's devices
// (HandlerOptions.Relay) with RelayTUFPath, RelayAssignment and
// RelayCheckin.
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
// is up to date, so the mirror publishes TUF metadata in DIR/tuf/. That is
// package tufrepo's job: the store hands it the list of bundles in its
// index (Refresh, Publish, and KeepFresh while 'serve' runs) under its
// writer lock, and gives it the mirror key to sign targets with.
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
// not override what a device said since; 'ferry mirror ingest --enroll'
// enrolls the devices a stick carries (docs/fleet.md §5).
package mirror
