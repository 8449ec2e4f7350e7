// Package checkin is the wire format of a device's status report to a
// ferry mirror: the agent builds a Report and Posts it, the mirror Parses
// and stores it ('ferry mirror devices' lists what it stored). It needs
// nothing but the standard library, so the agent can import it; the
// SQLite store stays in package mirror.
//
// The report is one small JSON object, POSTed to /ferry/v1/checkin:
//
//	{"deviceId":"gw-0042","deviceType":"board-a","bundle":"gateway",
//	 "version":"1.4.2","result":"committed","time":"2026-05-01T12:00:00Z"}
//
// deviceId, deviceType, version, result and time are required; bundle
// and error may be left out. Unknown fields are ignored, so newer agents
// can report more to older mirrors. The mirror answers 204 when it stored
// the report, 400 with a JSON {"error": "..."} for a report that is not
// valid, and 413 for a body over MaxSize.
package checkin
