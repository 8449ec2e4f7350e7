// Package server serves a mirror store (package mirror) over HTTP: what
// 'ferry mirror serve' runs. Serve(ctx, listener, Options) serves until ctx
// ends; tests hand it a listener of their own, so there is no free-port race.
//
// OCI answers the read half of the distribution API from a mirror.Store:
// /v2/, manifests and blobs (GET and HEAD, Range, Docker-Content-Digest),
// tags/list with n/last pagination, and referrers with the artifactType
// filter; OCI error bodies (NAME_UNKNOWN, MANIFEST_UNKNOWN, BLOB_UNKNOWN);
// 405 for anything that writes. Blobs are sent with http.ServeContent from
// their files, so the kernel copies them (sendfile) and memory stays flat.
// Handler puts the TUF metadata (/tuf/) and device check-ins beside it:
// that is what 'ferry mirror serve' serves.
//
// Serve runs it on a network that is not trusted, under Limits: deadlines
// on every read and write (a response's write deadline moves on with each
// WriteChunk sent, so a slow download that keeps moving finishes while a
// stalled one is dropped), caps on connections in all and per client IP,
// and on check-ins a token bucket per client IP (429 with Retry-After) and
// a cap on recorded devices (507). Each limit that bites is logged at most
// once a minute per kind. The check-in database failing (a full disk)
// answers 503 and never stops the TUF re-signing.
//
// Check-ins (docs/fleet.md) are judged in order: the signature
// (checkin.OpenSigned), the mirror id (one of the store's MirrorIDs), then
// the device's status and counter (devices.Store.Accept). An enrolled
// device's report is recorded (204), an unknown or pending device is
// listed as pending (202), and every refusal is answered with its reason
// and logged, at most once a minute per reason. Unsigned (version 1)
// check-ins are refused (401) unless HandlerOptions.AcceptLegacy keeps
// them among the legacy devices.
//
// Delta streams (bundle/FORMAT.md §15.9): GET
// /ferry/v1/delta/NAME/TARGET/BASE, for chunk indexes TARGET and BASE
// that repository NAME holds, is answered with the stream the store makes
// (mirror.Store.WriteDeltaStream), sent as it is made and cached, then
// served from the cache with http.ServeContent (Range, If-Range on its
// strong ETag). One stream is made per key at a time (other requests for
// it wait and get the cached file) and at most MaxDeltaGenerations in
// all: beyond, 503, and the device fetches frames by range. 404 when the
// repository lacks either index or the store the payloads' parts.
//
// Assignments (docs/fleet.md §11): a signed check-in POSTed to
// /ferry/v1/assignment is judged and recorded as a check-in, then
// answered with the device's assignment (devices.Store.AssignmentFor),
// signed with the store's assignment key (transport/assign): 200 and the
// envelope, or 204 when it is assigned nothing. Serve moves the
// deployments on every EvaluateInterval (a minute) as soak times end.
//
// Relay (docs/fleet.md §13, HandlerOptions.Relay, 'ferry mirror serve
// --relay'): a site mirror serves the devices of the upstream it relays
// the upstream's TUF metadata under /tuf/ in place of its own, their
// relayed assignments as the upstream signed them, and keeps their
// verified check-ins verbatim for the next sync up; it signs and
// records nothing of them.
package server
