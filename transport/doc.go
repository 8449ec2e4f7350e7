// Package transport is the device-safe transport tier: where bundles live
// and how their bytes reach a consumer. Everything under transport/ may be
// linked into ferry-agent (pure Go; a depcheck test fences it against
// go-diskfs, go-containerregistry and the other host-only modules). The
// subpackages do the work: oci (registry pulls), stick (the stick layout,
// read from any fs.FS), httpget (the HTTP client and the one resumable
// reader), tufclient (the mirror's TUF metadata), checkin (the check-in
// wire format) and wire (paths and names both sides agree on).
//
// # The Source contract
//
// A Source is a place bundles live. It moves bytes and never decides
// trust: everything it returns is checked by the consumer (package verify
// for signatures, verifyio and bundle.Assemble for digests).
//
//   - List says which bundles the place holds without reading them; an
//     Entry carries what the place's unsigned listing says (Ref, and Name
//     and Version where a layout names them) and, in Err, why a listed
//     bundle cannot be read at all.
//   - Open streams one entry as the canonical bundle archive
//     (bundle/FORMAT.md), whatever the place stores: a file as it is, a
//     layout or registry assembled from its blobs, each checked against
//     its digest while it streams. This is what the agent installs and
//     audit judges.
//   - Head gives an entry's signed head (manifest, config, signatures)
//     without payloads, and OpenBlob a blob by descriptor from a byte
//     offset (a Range request, a seek), so a consumer moves only the
//     blobs it lacks and continues a partial one: mirror sync and delta
//     installs do (Blobs reads a chunk pack's frames by range, and a
//     ferry mirror's delta stream with DeltaStream). Places that can be
//     read only once, front to back (standard input, a URL), fail with
//     ErrStream.
//   - Close releases what the source holds open (an image, an archive).
//
// Open is the one dispatch from a name to a Source (Classify alone says
// which kind it would open): "-", http(s) URLs of bundle files, oci://
// references and repositories, bundle files, directories of bundle files,
// layouts (a mirror directory, a mounted stick or its ferry/ directory)
// and, when Options.Images provides them, stick images and block
// devices. The agent (OpenBundle, through agent.OpenSource), audit and
// mirror sync all open places through it. Host-only places plug in
// through the same interface from the host side: package media reads an
// image's FAT filesystem with go-diskfs and hands it over as an fs.FS, in
// which FromFS reads the stick layout with package stick, as on a device.
package transport
