package audit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/oci"
	"github.com/ferry-update/ferry/transport/tufclient"
	"github.com/ferry-update/ferry/transport/wire"
)

// MirrorMetadata is the state of a mirror's TUF metadata (timestamp,
// snapshot, targets), checked as a device checks it before it installs
// from the mirror.
type MirrorMetadata struct {
	// Present is false for a mirror layout without TUF metadata, such as
	// a stick: offline media cannot prove freshness, and devices do not
	// ask them to.
	Present bool `json:"present"`
	// Root says what the metadata was checked against: a pinned root file,
	// or the mirror's own first root, trusted on first use.
	Root     string `json:"root,omitempty"`
	Pinned   bool   `json:"pinned"`
	Verified bool   `json:"verified"`
	// Error says why the metadata was refused (expired: a freeze; bad
	// signatures; a rollback); every bundle of the mirror then fails.
	Error            string    `json:"error,omitempty"`
	RootVersion      int64     `json:"rootVersion,omitempty"`
	TimestampVersion int64     `json:"timestampVersion,omitempty"`
	SnapshotVersion  int64     `json:"snapshotVersion,omitempty"`
	TargetsVersion   int64     `json:"targetsVersion,omitempty"`
	TimestampExpires time.Time `json:"timestampExpires,omitzero"`
	TargetsExpires   time.Time `json:"targetsExpires,omitzero"`
}

// inProcessBase is the URL under which a mirror directory is read through
// its own server, in process (no socket is opened).
const inProcessBase = "http://ferry-mirror.invalid"

// mirrorDirSource is a mirror directory, or the ferry/ directory of a
// mounted stick (the same layout). It is read the way devices read a
// mirror: through the mirror's own HTTP handler and the device's client
// code, in process.
type mirrorDirSource struct {
	target, dir, kind string
	o                 SourceOptions
}

func (s *mirrorDirSource) List(ctx context.Context) (*Listing, error) {
	st, err := mirror.Open(s.dir)
	if err != nil {
		return nil, fmt.Errorf("audit %s: %w", s.target, err)
	}
	entries, err := st.List()
	if err != nil {
		return nil, fmt.Errorf("audit %s: %w", s.target, err)
	}
	client := &http.Client{Transport: handlerTransport{server.NewHandler(st, server.HandlerOptions{})}}
	l := &Listing{Target: s.target, Kind: s.kind, Mirror: &MirrorMetadata{}}
	var targets *tufclient.Targets
	if _, err := os.Stat(st.TUFRootPath()); err == nil {
		rootPath, desc, pinned := s.o.MirrorRoot, s.o.MirrorRoot, true
		if rootPath == "" {
			rootPath = filepath.Join(filepath.Dir(st.TUFRootPath()), wire.RootFile(1))
			desc, pinned = rootPath+", the mirror's own first root (trusted on first use)", false
		}
		if targets, l.Mirror, err = checkTUF(ctx, client, inProcessBase, rootPath, desc, pinned, s.o.Now); err != nil {
			return nil, fmt.Errorf("audit %s: %w", s.target, err)
		}
	}
	for _, e := range entries {
		ref := oci.Scheme + strings.TrimPrefix(inProcessBase, "http://") + "/" + e.Repository + "@" + e.Digest.String()
		it := Item{
			Ref:  filepath.Join(s.dir, e.Repository) + ":" + e.Tag + "@" + e.Digest.String(),
			Name: e.Name, Version: e.Version,
			Open: func(ctx context.Context) (io.ReadCloser, error) {
				return oci.Open(ctx, ref, oci.Options{Client: client, PlainHTTP: true})
			},
		}
		if targets != nil {
			it.Check = verifyListed(targets)
		}
		l.Items = append(l.Items, it)
	}
	return l, nil
}

// mirrorURLSource is a mirror served over HTTP(S) ('ferry mirror serve').
// The distribution API has no catalogue, so its bundles are what its signed
// TUF targets list.
type mirrorURLSource struct {
	target string
	o      SourceOptions
}

func (s *mirrorURLSource) List(ctx context.Context) (*Listing, error) {
	u, err := url.Parse(strings.TrimSuffix(s.target, "/"))
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("audit %s: want http[s]://HOST[:PORT], the address 'ferry mirror serve' listens on", s.target)
	}
	base := u.Scheme + "://" + u.Host
	client := s.o.HTTPClient
	if client == nil {
		client = &http.Client{}
	}
	rootPath, desc, pinned := s.o.MirrorRoot, s.o.MirrorRoot, true
	if rootPath == "" {
		// Trust on first use: the mirror's first root. The check then
		// still walks every later root, each signed by its predecessor.
		tmp, err := fetchFirstRoot(ctx, client, base)
		if err != nil {
			return nil, fmt.Errorf("audit %s: %w (pin its root with --mirror-root)", s.target, err)
		}
		defer os.Remove(tmp)
		rootPath, desc, pinned = tmp, firstRootURL(base)+" (trusted on first use)", false
	}
	targets, mm, err := checkTUF(ctx, client, base, rootPath, desc, pinned, s.o.Now)
	if err != nil {
		return nil, fmt.Errorf("audit %s: %w", s.target, err)
	}
	l := &Listing{Target: s.target, Kind: KindMirror, Mirror: mm}
	if targets == nil {
		return l, nil // refused: the report says why, and no bundle passes
	}
	opts := oci.Options{Client: client, PlainHTTP: u.Scheme == "http"}
	for _, t := range targets.All() {
		ref := t.Reference(u.Host)
		l.Items = append(l.Items, Item{
			Ref: ref, Name: t.Name, Version: t.Version,
			Open:  func(ctx context.Context) (io.ReadCloser, error) { return oci.Open(ctx, ref, opts) },
			Check: verifyListed(targets),
		})
	}
	return l, nil
}

func verifyListed(t *tufclient.Targets) func(name, version string, d digest.Digest) error {
	return func(name, version string, d digest.Digest) error { return t.Verify(name, version, d.String()) }
}

// checkTUF runs the device's TUF client workflow against the mirror. A
// refusal is reported in the metadata (and fails the mirror's bundles);
// only a mirror that cannot be reached is an error.
func checkTUF(ctx context.Context, client *http.Client, base, rootPath, desc string, pinned bool, now time.Time) (*tufclient.Targets, *MirrorMetadata, error) {
	if now.IsZero() {
		now = time.Now()
	}
	state, err := os.MkdirTemp("", "ferry-audit-tuf-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(state)
	mm := &MirrorMetadata{Present: true, Root: desc, Pinned: pinned}
	t, err := (&tufclient.Client{HTTP: client, UserAgent: "ferry-audit"}).Check(ctx, base, rootPath, state, now)
	if tufclient.IsKind(err, tufclient.Unavailable) {
		return nil, nil, err
	}
	if err != nil {
		mm.Error = err.Error()
		return nil, mm, nil
	}
	mm.Verified = true
	mm.RootVersion, mm.TimestampVersion, mm.SnapshotVersion, mm.TargetsVersion = t.RootVersion, t.TimestampVersion, t.SnapshotVersion, t.TargetsVersion
	mm.TimestampExpires, mm.TargetsExpires = t.TimestampExpires, t.TargetsExpires
	return t, mm, nil
}

// firstRootURL is where a mirror at base serves its first TUF root.
func firstRootURL(base string) string { return base + wire.TUFPath + wire.RootFile(1) }

// fetchFirstRoot downloads BASE/tuf/1.root.json into a temporary file.
func fetchFirstRoot(ctx context.Context, client *http.Client, base string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, firstRootURL(base), nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("mirror root: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("mirror root %s: %s (is this a ferry mirror?)", firstRootURL(base), resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, tufclient.MaxRootSize+1))
	if err != nil {
		return "", fmt.Errorf("mirror root: %w", err)
	}
	if len(b) > tufclient.MaxRootSize {
		return "", fmt.Errorf("mirror root: more than %d bytes", tufclient.MaxRootSize)
	}
	f, err := os.CreateTemp("", "ferry-audit-root-*.json")
	if err != nil {
		return "", err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), f.Close()
}

// handlerTransport answers requests with an http.Handler in process,
// streaming the response body through a pipe (a blob may be gigabytes).
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	pr, pw := io.Pipe()
	w := &pipeResponse{header: http.Header{}, body: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			w.WriteHeader(http.StatusOK) // a handler that wrote nothing
			pw.Close()
		}()
		t.h.ServeHTTP(w, req)
	}()
	select {
	case <-w.ready:
	case <-req.Context().Done():
		pr.CloseWithError(req.Context().Err())
		return nil, req.Context().Err()
	}
	resp := &http.Response{
		Status: strconv.Itoa(w.status) + " " + http.StatusText(w.status), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.sent, Body: pr, ContentLength: -1, Request: req,
	}
	if n, err := strconv.ParseInt(w.sent.Get("Content-Length"), 10, 64); err == nil {
		resp.ContentLength = n
	}
	return resp, nil
}

// pipeResponse is the http.ResponseWriter of handlerTransport.
type pipeResponse struct {
	header, sent http.Header
	status       int
	body         *io.PipeWriter
	once         sync.Once
	ready        chan struct{}
}

func (w *pipeResponse) Header() http.Header { return w.header }

func (w *pipeResponse) WriteHeader(code int) {
	w.once.Do(func() {
		w.status, w.sent = code, w.header.Clone()
		close(w.ready)
	})
}

func (w *pipeResponse) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}
