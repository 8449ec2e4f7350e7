// Package checkin is the wire format of a device's report to a ferry
// mirror (docs/fleet.md is its binding specification). It needs nothing
// but the standard library, so the agent can import it; the store stays
// on the mirror's side (package devices).
//
// Version 2, what agents send: the agent fills an Inventory (what the
// device runs, every component and its version, slots, the last
// install's result, free space, uptime), names the mirror it is meant
// for (MirrorID of the mirror TUF root it trusts), its device id
// (DeviceID of its Ed25519 key) and a counter above every one it signed
// before, and Signs it into a DSSE envelope that Send POSTs to
// /ferry/v1/checkin. The mirror's OpenSigned parses the envelope and
// verifies the signature with the key the payload names; whether that
// key is enrolled, the counter above the last and the mirror id its own
// is for the mirror to judge. Refusals carry a Reason (malformed,
// bad-signature, foreign, replayed, rejected, revoked, clock-ahead,
// unsigned) in a RefusedError and in the mirror's answer.
//
// Version 1 (Report, Parse, Post) is the unsigned report of older
// agents: {"deviceId": ..., "deviceType": ..., "version": ..., "result":
// ..., "time": ...}. A mirror refuses it unless it accepts legacy
// devices, and then keeps it apart from the records of devices with keys.
package checkin
