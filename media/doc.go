// Package media makes and reads the USB sticks field technicians carry
// bundles on. It is host-side (it uses go-diskfs); the device reads a
// mounted stick with package transport/stick, which this package also uses
// to read the layout inside an image.
//
// Build makes a stick image: a GPT disk with one FAT32 partition (label
// FERRY) whose /ferry/ directory is a store layout (package
// layout's Files, so that mirror.Open, skopeo and transport/stick all
// read it), with /ferry/trust/, an empty /ferry/reports/ and a README.txt.
// Payload parts are streamed into the clusters go-diskfs allocated for
// them, checked against their digests on the way; memory use is flat.
// go-diskfs v1.9.4's FAT32 defects are worked around in fatfix.go, and
// the tests check every image with fsck.fat, sgdisk and mtools.
//
// With BuildOptions.DeltaFrom a bundle goes on the stick as a delta for
// named base bundles (bundle/FORMAT.md §15.7): only the chunk packs that
// hold a chunk some base lacks, the full bundle added as the fallback
// when the size allows; the stick's index.json says which bases it
// serves, and Inspect shows it.
//
// Write copies an image onto a stick (syncs, reads back, compares
// SHA-256), refusing a disk that is mounted or holds the running system
// (CheckTarget); BuildDevice builds an image sized for a stick and writes
// it there. Inspect lists a stick's bundles with the verdict on them
// (signatures and every payload digest; signatures only when Quick, and
// the verdict says so), and Reports collects the reports agents wrote onto it; both
// check a partition table and FAT before go-diskfs reads them, so a
// damaged or hostile image is an error, never a hang or a panic.
// OpenImage reads the layout inside an image as transport/stick reads a
// mounted stick. Images hands an image's FAT filesystem to transport.Open
// as an fs.FS, so mirror sync and audit read a stick image as they read
// any other place bundles live; IngestReports records its reports as the
// devices' check-ins and, with IngestOptions.Enroll, enrolls the devices
// the stick carries (their verified signed check-ins, and its
// ferry/identities.jsonl).
package media
