// Package tufrepo publishes a mirror's TUF metadata: it owns DIR/tuf/ of a
// mirror store directory (and the online key, DIR/keys/online.key) and
// signs root, targets, snapshot and timestamp so devices can tell a
// current mirror from a frozen or replayed one. It does not read the
// store: the store (package mirror) hands it the list of bundles to
// publish as targets, holds its writer lock around each call, and
// supplies the mirror key. Devices check the metadata with package
// transport/tufclient.
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
package tufrepo
