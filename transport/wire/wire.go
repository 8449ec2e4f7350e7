// Package wire names, in one place, the paths and file names that ferry's
// host and device sides must agree on: the HTTP paths a mirror serves,
// the file names of trust roots and TUF metadata, the directories of a
// mirror store and of a stick, and the annotations a mirror store puts on
// its index. It is standard library only, so both sides import it.
package wire

import (
	"path/filepath"
	"strconv"
	"strings"
)

// HTTP paths a mirror serves beside the OCI distribution API (/v2/).
const (
	// RootsPath is the URL path under which trust roots are served:
	// GET RootsPath + RootFile(N), 404 when the mirror has no version N.
	RootsPath = "/ferry/v1/roots/"
	// DeltaPath is the URL path under which a ferry mirror serves delta
	// streams (bundle/FORMAT.md §15.9): GET DeltaPath + NAME + "/" +
	// TARGET + "/" + BASE, NAME a repository and TARGET and BASE the
	// digests of chunk indexes; 404 when the mirror holds no such
	// payloads (a registry answers 404 too).
	DeltaPath = "/ferry/v1/delta/"
	// CheckinPath is where devices POST their check-ins.
	CheckinPath = "/ferry/v1/checkin"
	// TUFDir is the directory of the mirror's TUF metadata, in a mirror
	// store and as the URL path /tuf/ on its server.
	TUFDir = "tuf"
	// TUFPath is the URL path under which the TUF metadata is served:
	// GET TUFPath + TUFFile(role), TUFPath + TUFVersionFile(N, role).
	TUFPath = "/" + TUFDir + "/"
)

// File and directory names.
const (
	// RootSuffix ends the file name of a trust root: N.root.json.
	RootSuffix = ".root.json"
	// RootsDir holds the chain of trust roots as N.root.json: in a mirror
	// store, in a stick's layout and in the agent's state directory.
	RootsDir = "roots"
	// TUFRootFile is the current TUF root in TUFDir; the versioned ones
	// are RootFile(N) beside it.
	TUFRootFile = "root.json"
	// StickDir is the layout directory at the root of a stick;
	// StickReportsDir and StickTrustDir are inside it.
	StickDir        = "ferry"
	StickReportsDir = "reports"
	StickTrustDir   = "trust"
	// StickAssignmentsDir, inside StickDir, holds the signed assignments
	// a stick built for a deployment carries, one <device id>.json each;
	// the mirror's TUF root chain and targets.json that publish the
	// assignment keys are beside it in TUFDir (ferry/tuf/).
	StickAssignmentsDir = "assignments"
	// StickIdentitiesFile, inside StickDir, lists the identities of
	// devices ('ferry-agent identity --json' lines) for 'ferry mirror
	// ingest --enroll' to enroll.
	StickIdentitiesFile = "identities.jsonl"
)

// Annotations a mirror store puts on its index.json entries, which the
// device reads from a stick's copy of that layout.
const (
	// RepositoryAnnotation names the repository an entry belongs to.
	RepositoryAnnotation = "dev.ferry.repository"
	// BundleNameAnnotation and BundleVersionAnnotation name the bundle.
	BundleNameAnnotation    = "dev.ferry.bundle.name"
	BundleVersionAnnotation = "dev.ferry.bundle.version"
	// DeltaBasesAnnotation is on the entry of a bundle that a stick
	// carries as a delta ('ferry media build --delta-from'): the
	// versions of the bases it was built for, comma-separated.
	DeltaBasesAnnotation = "dev.ferry.delta.bases"
	// DeltaOnlyAnnotation is "true" on such an entry when the stick
	// holds only the payload parts those bases need, not the full
	// bundle (bundle/FORMAT.md §15.7).
	DeltaOnlyAnnotation = "dev.ferry.delta.only"
)

// RootFile is the file name of trust root (or TUF root) version v:
// "N.root.json".
func RootFile(v int64) string { return strconv.FormatInt(v, 10) + RootSuffix }

// TUFFile is the file name of the current metadata of a TUF role:
// "<role>.json" (root.json, targets.json, snapshot.json, timestamp.json).
func TUFFile(role string) string { return role + ".json" }

// TUFVersionFile is the file name of version v of a TUF role's metadata
// in the consistent-snapshot layout: "N.<role>.json". For the root it is
// RootFile(v).
func TUFVersionFile(v int64, role string) string {
	return strconv.FormatInt(v, 10) + "." + TUFFile(role)
}

// RootFileVersion returns N for a file named N.root.json (any directory
// before it is ignored), and false for any other name or an N below 1.
func RootFileVersion(name string) (int64, bool) {
	n, ok := strings.CutSuffix(filepath.Base(name), RootSuffix)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(n, 10, 64)
	return v, err == nil && v > 0
}
