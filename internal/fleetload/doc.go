// Package fleetload is the fleet's scale benchmark (docs/fleet.md,
// "Scale"; 'make bench', scripts/bench-fleet.sh): a load generator of
// simulated managed devices that drives a real mirror over HTTP the way
// ferry-agent does.
//
// Each device has its own Ed25519 key (MakeDevices; enrolled on the mirror
// beforehand through the real enrollment path, from the list
// WriteEnrollList writes) and polls every Config.Interval: a signed
// check-in to the assignment endpoint (transport/assign), then a signed
// check-in (transport/checkin), both bound to the mirror's id and carrying
// a rising counter, on one connection from the device's own loopback
// address. The devices marked Download are assigned a bundle by a
// deployment: they verify the signed assignment with the keys the mirror's
// verified TUF targets publish, download the bundle's largest blob in
// Range requests (paced to Config.DownloadRate), check its digest, and
// report the install committed.
//
// Scheduling is open-loop: every poll has an intended start time fixed in
// advance, and latencies are measured from it, so a mirror that stalls is
// charged for the requests that waited behind the stall (no coordinated
// omission). Verify compares what the devices sent with what the mirror's
// database holds.
//
// The package is for the benchmark and its tests; no shipped binary
// imports it.
package fleetload
