package tufclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/internal/verifyio"
	"github.com/ferry-update/ferry/transport/wire"
)

// Size limits of the metadata files, so that a hostile mirror cannot feed
// endless data. Snapshot and targets are bounded by the length their
// parent metadata lists when it lists one.
const (
	MaxRootSize      = 512 << 10
	MaxTimestampSize = 16 << 10
	MaxSnapshotSize  = 1 << 20
	MaxTargetsSize   = 16 << 20
	// MaxRootRotations bounds the root versions one Check walks through.
	MaxRootRotations = 64
)

// Files Check keeps in its state directory: the newest metadata it
// trusted, for rollback protection across runs.
const (
	stateRoot      = "root.json"
	stateTimestamp = "timestamp.json"
	stateSnapshot  = "snapshot.json"
	stateTargets   = "targets.json"
)

// Client checks a ferry mirror's TUF metadata. The zero value is ready to
// use.
type Client struct {
	// HTTP sends the requests; nil means a client over
	// http.DefaultTransport with a 60 s timeout.
	HTTP *http.Client
	// UserAgent, if set, is sent with every request.
	UserAgent string
}

var defaultHTTP = &http.Client{Timeout: 60 * time.Second}

// Check runs the TUF client workflow against the mirror at baseURL
// (http[s]://HOST[:PORT], the address 'ferry mirror serve' listens on) with
// a zero Client. See Client.Check.
func Check(ctx context.Context, baseURL, trustedRootPath, stateDir string, now time.Time) (*Targets, error) {
	return (&Client{}).Check(ctx, baseURL, trustedRootPath, stateDir, now)
}

// Check fetches the mirror's metadata from baseURL/tuf/ and returns the
// bundles its targets list, after TUF's client workflow:
//
//  1. trust the root at trustedRootPath (installed on the device with the
//     agent), or the newer root this device already moved to (stateDir);
//  2. follow N.root.json while the mirror has newer roots, each signed by
//     a threshold of the previous root's and its own root keys;
//  3. refuse an expired final root, then fetch timestamp.json: it must be
//     signed by the timestamp key, not expired (freeze) and not older than
//     the one trusted before, nor point to an older snapshot (rollback);
//  4. fetch the snapshot it names (N.snapshot.json, checked against the
//     length and hash in the timestamp), signed by the snapshot key, not
//     expired, never listing an older targets version;
//  5. fetch the targets it names, checked the same way, signed by the
//     targets key, not expired; parse every target as a ferry bundle.
//
// now is the device's clock, against which expiries are judged. The
// metadata that passed is written to stateDir, so that the next Check
// refuses anything older (a replay) and needs only timestamp.json when
// nothing changed. Every refusal is an *Error; network trouble is an
// *Error of kind Unavailable. One Check at a time may use a stateDir.
func (c *Client) Check(ctx context.Context, baseURL, trustedRootPath, stateDir string, now time.Time) (*Targets, error) {
	base, err := parseBase(baseURL)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("tuf state: %w", err)
	}
	st := state{dir: stateDir}
	trusted, err := st.trustedRoot(trustedRootPath, now)
	if err != nil {
		return nil, err
	}
	v := &verifier{c: c, ctx: ctx, base: base, st: st, trusted: trusted}
	if err := v.updateRoot(); err != nil {
		return nil, err
	}
	if err := v.updateTimestamp(); err != nil {
		return nil, err
	}
	if err := v.updateSnapshot(); err != nil {
		return nil, err
	}
	if err := v.updateTargets(); err != nil {
		return nil, err
	}
	t, err := newTargets(trusted.Targets[metadata.TARGETS])
	if err != nil {
		return nil, &Error{Kind: Malformed, Role: "targets", Err: err}
	}
	t.Host, t.Scheme = base.Host, base.Scheme
	t.RootVersion = trusted.Root.Signed.Version
	t.TimestampVersion = trusted.Timestamp.Signed.Version
	t.TimestampExpires = trusted.Timestamp.Signed.Expires
	t.SnapshotVersion = trusted.Snapshot.Signed.Version
	return t, nil
}

func parseBase(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil {
		return nil, fmt.Errorf("mirror URL %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mirror URL %q: want http[s]://HOST[:PORT]", s)
	}
	return u, nil
}

// verifier is one run of the client workflow.
type verifier struct {
	c       *Client
	ctx     context.Context
	base    *url.URL
	st      state
	trusted *trustedmetadata.TrustedMetadata
}

func (v *verifier) updateRoot() error {
	for range MaxRootRotations {
		next := v.trusted.Root.Signed.Version + 1
		b, err := v.fetch("root", wire.RootFile(next), MaxRootSize)
		if errors.Is(err, errNotFound) {
			break
		}
		if err != nil {
			return err
		}
		if _, err := v.trusted.UpdateRoot(b); err != nil {
			e := classify("root", err)
			e.Msg = wire.RootFile(next)
			if e.Kind == Rollback {
				e.Kind, e.Msg = Mismatch, fmt.Sprintf("%s is not root version %d", wire.RootFile(next), next)
			}
			return e
		}
		if err := v.st.write(stateRoot, b); err != nil {
			return err
		}
	}
	if r := v.trusted.Root.Signed; r.IsExpired(v.trusted.RefTime) {
		return &Error{Kind: Expired, Role: "root", Expires: r.Expires, Msg: "the mirror's root must be renewed with its root key ('ferry mirror refresh --root-key')"}
	}
	return nil
}

func (v *verifier) updateTimestamp() error {
	var haveTS, haveSnap int64
	if local := v.st.read(stateTimestamp, MaxTimestampSize); local != nil {
		// An expired local timestamp is still loaded, for rollback
		// protection; one that no longer verifies (rotated keys) is not.
		v.trusted.UpdateTimestamp(local)
		if ts := v.trusted.Timestamp; ts != nil {
			haveTS = ts.Signed.Version
			if m := ts.Signed.Meta["snapshot.json"]; m != nil {
				haveSnap = m.Version
			}
		}
	}
	b, err := v.fetch("timestamp", wire.TUFFile("timestamp"), MaxTimestampSize)
	if err != nil {
		return err
	}
	offered, perr := metadata.Timestamp().FromBytes(b)
	if perr != nil {
		return &Error{Kind: Malformed, Role: "timestamp", Err: perr}
	}
	_, err = v.trusted.UpdateTimestamp(b)
	switch {
	case err == nil:
		if err := v.st.write(stateTimestamp, b); err != nil {
			return err
		}
	case errors.Is(err, &metadata.ErrEqualVersionNumber{}):
		// Nothing new: the trusted one stays, if it has not expired.
		if ts := v.trusted.Timestamp.Signed; ts.IsExpired(v.trusted.RefTime) {
			return &Error{Kind: Expired, Role: "timestamp", Expires: ts.Expires, Err: err}
		}
	default:
		e := classify("timestamp", err)
		switch e.Kind {
		case Rollback:
			if offered.Signed.Version < haveTS {
				e.Have, e.Got = haveTS, offered.Signed.Version
			} else {
				e.Role, e.Have = "snapshot", haveSnap
				if m := offered.Signed.Meta["snapshot.json"]; m != nil {
					e.Got = m.Version
				}
				e.Msg = "the new timestamp names an older snapshot"
			}
		case Expired:
			e.Expires = offered.Signed.Expires
		}
		return e
	}
	if v.trusted.Timestamp.Signed.Meta["snapshot.json"] == nil {
		return &Error{Kind: Malformed, Role: "timestamp", Msg: "it lists no snapshot.json"}
	}
	return nil
}

func (v *verifier) updateSnapshot() error {
	meta := v.trusted.Timestamp.Signed.Meta["snapshot.json"]
	var haveTargets int64
	if local := v.st.read(stateSnapshot, MaxSnapshotSize); local != nil {
		if _, err := v.trusted.UpdateSnapshot(local, true); err == nil {
			return nil // the snapshot the timestamp names is the one trusted
		}
		if s := v.trusted.Snapshot; s != nil {
			if m := s.Signed.Meta["targets.json"]; m != nil {
				haveTargets = m.Version
			}
		}
	}
	name := "snapshot.json"
	if v.trusted.Root.Signed.ConsistentSnapshot {
		name = wire.TUFVersionFile(meta.Version, "snapshot")
	}
	b, err := v.fetch("snapshot", name, bound(meta.Length, MaxSnapshotSize))
	if err != nil {
		return err
	}
	if _, err := v.trusted.UpdateSnapshot(b, false); err != nil {
		e := classify("snapshot", err)
		offered, perr := metadata.Snapshot().FromBytes(b)
		switch {
		case perr != nil:
		case e.Kind == Expired:
			e.Expires = offered.Signed.Expires
		case e.Kind == Rollback && offered.Signed.Version != meta.Version:
			e.Kind, e.Msg = Mismatch, fmt.Sprintf("version %d, but the timestamp names version %d", offered.Signed.Version, meta.Version)
		case e.Kind == Rollback:
			e.Role, e.Have, e.Msg = "targets", haveTargets, "the new snapshot names older targets"
			if m := offered.Signed.Meta["targets.json"]; m != nil {
				e.Got = m.Version
			}
		case e.Kind == Malformed && v.trusted.Snapshot != nil:
			if name, ok := droppedMeta(v.trusted.Snapshot.Signed.Meta, offered.Signed.Meta); ok {
				e.Kind, e.Role, e.Msg = Rollback, strings.TrimSuffix(name, ".json"), "the new snapshot drops "+name
				if name == "targets.json" {
					e.Have = haveTargets
				}
			}
		}
		return e
	}
	return v.st.write(stateSnapshot, b)
}

// droppedMeta returns the first file, by name, that the trusted snapshot
// lists and the offered one does not: go-tuf refuses such a snapshot, as a
// rollback of that file, but only says so in its message.
func droppedMeta(trusted, offered map[string]*metadata.MetaFiles) (string, bool) {
	names := make([]string, 0, len(trusted))
	for name := range trusted {
		if offered[name] == nil {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "", false
	}
	sort.Strings(names)
	return names[0], true
}

func (v *verifier) updateTargets() error {
	meta := v.trusted.Snapshot.Signed.Meta["targets.json"]
	if meta == nil {
		return &Error{Kind: Malformed, Role: "snapshot", Msg: "it lists no targets.json"}
	}
	if local := v.st.read(stateTargets, MaxTargetsSize); local != nil {
		if _, err := v.trusted.UpdateTargets(local); err == nil {
			return nil
		}
	}
	name := "targets.json"
	if v.trusted.Root.Signed.ConsistentSnapshot {
		name = wire.TUFVersionFile(meta.Version, "targets")
	}
	b, err := v.fetch("targets", name, bound(meta.Length, MaxTargetsSize))
	if err != nil {
		return err
	}
	if _, err := v.trusted.UpdateTargets(b); err != nil {
		e := classify("targets", err)
		if e.Kind == Rollback {
			// go-tuf's only version check here: not the version the
			// snapshot names.
			e.Kind = Mismatch
		}
		if e.Kind == Expired {
			if offered, perr := metadata.Targets().FromBytes(b); perr == nil {
				e.Expires = offered.Signed.Expires
			}
		}
		return e
	}
	return v.st.write(stateTargets, b)
}

// bound is the size limit of a file whose parent lists length n (0: not
// listed).
func bound(n, max int64) int64 {
	if n > 0 && n < max {
		return n
	}
	return max
}

var errNotFound = errors.New("not found")

// fetch GETs baseURL/tuf/name, at most max bytes.
func (v *verifier) fetch(role, name string, max int64) ([]byte, error) {
	u := v.base.JoinPath(wire.TUFDir, name).String()
	req, err := http.NewRequestWithContext(v.ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &Error{Kind: Unavailable, Role: role, Err: err}
	}
	if v.c.UserAgent != "" {
		req.Header.Set("User-Agent", v.c.UserAgent)
	}
	hc := v.c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &Error{Kind: Unavailable, Role: role, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, &Error{Kind: Unavailable, Role: role, Msg: "GET " + u + ": 404 Not Found (is this a ferry mirror with TUF metadata?)", Err: errNotFound}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &Error{Kind: Unavailable, Role: role, Msg: "GET " + u + ": " + resp.Status}
	}
	if resp.ContentLength > max {
		return nil, &Error{Kind: Mismatch, Role: role, Msg: fmt.Sprintf("GET %s: %d bytes, more than the limit of %d", u, resp.ContentLength, max)}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, &Error{Kind: Unavailable, Role: role, Msg: "GET " + u, Err: err}
	}
	if int64(len(b)) > max {
		return nil, &Error{Kind: Mismatch, Role: role, Msg: fmt.Sprintf("GET %s: more than the limit of %d bytes", u, max)}
	}
	return b, nil
}

// peekVersion reads a root's version without trusting it (0 if it cannot
// be parsed).
func peekVersion(b []byte) int64 {
	r, err := metadata.Root().FromBytes(b)
	if err != nil {
		return 0
	}
	return r.Signed.Version
}

// state is the directory of trusted metadata.
type state struct{ dir string }

// read returns a state file, or nil if it is missing or unreadable (the
// workflow then fetches it again).
func (s state) read(name string, max int64) []byte {
	b, err := verifyio.ReadFileLimited(filepath.Join(s.dir, name), max)
	if err != nil {
		return nil
	}
	return b
}

// write replaces a state file durably: a power cut leaves the old or the
// new file, never a torn one.
func (s state) write(name string, b []byte) error {
	if err := atomicfile.WriteFile(filepath.Join(s.dir, name), b, 0o644); err != nil {
		return fmt.Errorf("tuf state %s: %w", name, err)
	}
	return nil
}

// trustedRoot loads the root this device trusts: the one it moved to
// earlier (kept in the state directory) supersedes the one it was
// installed with, unless it was re-provisioned with a newer one (or the
// state file is damaged).
func (st state) trustedRoot(trustedRootPath string, now time.Time) (*trustedmetadata.TrustedMetadata, error) {
	rootBytes, err := verifyio.ReadFileLimited(trustedRootPath, MaxRootSize)
	if err != nil {
		return nil, fmt.Errorf("trusted mirror root: %w", err)
	}
	var trusted *trustedmetadata.TrustedMetadata
	if local := st.read(stateRoot, MaxRootSize); local != nil && peekVersion(local) > peekVersion(rootBytes) {
		trusted, _ = trustedmetadata.New(local)
	}
	if trusted == nil {
		trusted, err = trustedmetadata.New(rootBytes)
	}
	if err != nil {
		e := classify("root", err)
		e.Msg = "the trusted root (" + trustedRootPath + " or " + filepath.Join(st.dir, stateRoot) + ") is not a valid self-signed TUF root"
		return nil, e
	}
	trusted.RefTime = now.UTC()
	return trusted, nil
}
