// Package stick is the device side of a ferry USB stick: it finds a mounted
// stick, lists the bundles on it, streams one as a canonical bundle archive
// for the agent to verify and install, and writes the install report back
// onto the stick. It is pure Go and imports neither go-diskfs nor
// go-containerregistry (a test fences that), so the agent can use it.
//
// # What is on a stick
//
// A stick (made by `ferry media build`, or by hand) is a FAT32 filesystem
// whose /ferry/ directory is a ferry mirror-store layout, the same OCI image
// layout package mirror keeps on a host:
//
//	/ferry/oci-layout             {"imageLayoutVersion":"1.0.0"}
//	/ferry/index.json             bundle entries tagged "<name>:<tag>", their
//	                              signature manifests "<name>:sha256-<hex>.sig"
//	/ferry/blobs/sha256/<hex>     manifests, configs, signatures, payload parts
//	/ferry/ferry-mirror.json      marks the layout as a mirror store
//	/ferry/trust/                 trust material the build was given (--trust)
//	/ferry/reports/               reports the agents write, one JSON file each
//	/ferry/assignments/<id>.json  a stick built for a deployment: the signed
//	                              assignment (transport/assign) of each device
//	                              it may serve, by device id
//	/ferry/tuf/                   with them: the mirror's TUF root chain
//	                              (N.root.json) and targets.json, which publish
//	                              the assignment keys (tufclient.CheckOffline)
//	/README.txt                   for the technician
//
// Every blob is a file of at most 4 GiB − 1 byte (bundle/FORMAT.md), so any
// bundle fits FAT32.
//
// # Reading
//
// Layout reads a layout through an fs.FS, so the same code reads a mounted
// stick (OpenDir), a layout directory such as a mirror store (OpenLayout),
// and, on the host, an image opened with go-diskfs (transport.FromFS).
// Besides whole bundles (Open) it gives single blobs from an offset
// (OpenBlob), so mirror sync moves only what it lacks. Nothing on a stick is trusted: index.json only finds the
// manifests; manifests and configs are read against their digests;
// Layout.Open streams the bundle through bundle.Assemble, which checks each
// blob against its digest while it streams, and the consumer (the agent,
// through package verify) judges the signatures before it uses a payload
// byte. A stick pulled out mid-read surfaces as an error from Read, never
// as a short but clean stream. Files are opened as hostile input: never
// blocking (a FIFO is refused, not waited on), only regular files and
// directories (ErrNotRegular), and no link that leads out of the stick is
// followed.
//
// # Reports
//
// Stick.WriteReport writes a Report as a new JSON file in /ferry/reports/:
// to a temporary file, fsync, rename, fsync of the directory, so the report
// is on the stick (not in a cache) when it returns, and a stick pulled out
// halfway leaves either the whole report or none. A report tells the
// truth: an install on trial is "pending" until the agent's boot-check
// (or commit, or rollback) decides, and Stick.ReplaceReport then rewrites
// the same file with the outcome, on this stick if it is still in, else
// on the next one; a "skipped" report says why (Reason) and what the
// stick held (Offered). It never writes through
// a link: ferry/ and ferry/reports/ must be directories themselves.
package stick
