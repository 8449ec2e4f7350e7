package server

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle/dstream"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport/oci"
)

// MaxDeltaGenerations bounds the delta streams a mirror makes at once;
// a request for another one while that many are being made is answered
// 503, and the device fetches frames by range instead.
const MaxDeltaGenerations = 2

// deltaStreams serves delta streams (GET wire.DeltaPath + NAME/TARGET/
// BASE, bundle/FORMAT.md §15.9): a cached one with http.ServeContent
// (Range, If-Range), an uncached one as it is made, while it is written
// to the cache. One stream is made per key at a time: a request for a
// stream being made waits for it and is then served the cached file.
type deltaStreams struct {
	store *mirror.Store
	oci   *OCI
	logf  func(format string, a ...any)
	slots chan struct{}

	mu      sync.Mutex
	running map[string]chan struct{}
}

func newDeltaStreams(s *mirror.Store, o *OCI, logf func(string, ...any)) *deltaStreams {
	return &deltaStreams{store: s, oci: o, logf: logf, slots: make(chan struct{}, MaxDeltaGenerations), running: map[string]chan struct{}{}}
}

// parseDeltaPath splits NAME/TARGET/BASE (NAME may hold slashes).
func parseDeltaPath(rest string) (name string, target, base digest.Digest, ok bool) {
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", "", false
	}
	j := strings.LastIndexByte(rest[:i], '/')
	if j < 0 {
		return "", "", "", false
	}
	name, target, base = rest[:j], digest.Digest(rest[j+1:i]), digest.Digest(rest[i+1:])
	for _, d := range []digest.Digest{target, base} {
		if d.Validate() != nil || d.Algorithm() != digest.SHA256 {
			return "", "", "", false
		}
	}
	return name, target, base, oci.ValidRepository(name)
}

func (d *deltaStreams) serve(w http.ResponseWriter, r *http.Request, rest string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		jsonError(w, http.StatusMethodNotAllowed, "delta streams are read-only")
		return
	}
	name, target, base, ok := parseDeltaPath(rest)
	if !ok {
		jsonError(w, http.StatusNotFound, "want "+"NAME/sha256:TARGET/sha256:BASE")
		return
	}
	// The repository must hold both indexes (as blobs); the cache is
	// shared by all repositories.
	v, err := d.oci.current()
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "mirror index unreadable")
		return
	}
	if rv := v.repos[name]; rv == nil || !rv.blobs[target] || !rv.blobs[base] {
		jsonError(w, http.StatusNotFound, name+" holds no chunk index "+target.String()+" or "+base.String())
		return
	}
	key := target.Encoded() + "-" + base.Encoded()
	for {
		if d.serveCached(w, r, target, base) {
			return
		}
		d.mu.Lock()
		wait, busy := d.running[key]
		if !busy {
			select {
			case d.slots <- struct{}{}:
			default:
				d.mu.Unlock()
				w.Header().Set("Retry-After", "60")
				jsonError(w, http.StatusServiceUnavailable, "the mirror is making other delta streams; fetch the chunks by range")
				return
			}
			wait = make(chan struct{})
			d.running[key] = wait
		}
		d.mu.Unlock()
		if busy {
			select {
			case <-wait:
				continue
			case <-r.Context().Done():
				return
			}
		}
		defer func() {
			d.mu.Lock()
			delete(d.running, key)
			close(wait)
			<-d.slots
			d.mu.Unlock()
		}()
		d.generate(w, r, name, target, base)
		return
	}
}

// serveCached serves the cached stream, if there is one.
func (d *deltaStreams) serveCached(w http.ResponseWriter, r *http.Request, target, base digest.Digest) bool {
	f, err := d.store.CachedDeltaStream(target, base)
	if err != nil {
		return false
	}
	defer f.Close()
	deltaHeaders(w, target, base)
	http.ServeContent(w, r, "", time.Time{}, f)
	return true
}

// deltaHeaders: the stream is a function of its key, so the key is a
// strong ETag, which a resumed download sends back in If-Range.
func deltaHeaders(w http.ResponseWriter, target, base digest.Digest) {
	hdr := w.Header()
	hdr.Set("Content-Type", dstream.MediaType)
	hdr.Set("Etag", `"`+target.Encoded()+"-"+base.Encoded()+`"`)
	hdr.Set("Cache-Control", "max-age=31536000")
}

func (d *deltaStreams) generate(w http.ResponseWriter, r *http.Request, name string, target, base digest.Digest) {
	start := time.Now()
	var out *startWriter
	var to io.Writer // nil: HEAD, served from the cache once made
	if r.Method == http.MethodGet {
		out = &startWriter{w: w, start: func() { deltaHeaders(w, target, base); w.WriteHeader(http.StatusOK) }}
		to = out
	}
	st, err := d.store.WriteDeltaStream(name, target, base, to)
	switch {
	case errors.Is(err, mirror.ErrNoDelta):
		jsonError(w, http.StatusNotFound, err.Error())
	case err != nil:
		d.logf("delta stream of %s %s from %s: %v", name, target, base, err)
		if out == nil || !out.started {
			jsonError(w, http.StatusInternalServerError, "the mirror could not make the delta stream")
		} else {
			panic(http.ErrAbortHandler) // a cut response, not a short stream
		}
	default:
		d.logf("delta stream of %s %s from %s: %d bytes (index %d, %d chunks, %d against the base) made in %s",
			name, target, base, st.Bytes, st.IndexFrame, st.Records, st.Dict, time.Since(start).Round(time.Millisecond))
		if out == nil {
			d.serveCached(w, r, target, base)
		} else if out.failed {
			panic(http.ErrAbortHandler) // the client resumes from the cache
		}
	}
}

// startWriter writes the response's header before its first byte. A
// response that fails (a client gone, a writer that aborts) only fails
// its writes: the stream is still made and cached.
type startWriter struct {
	w               http.ResponseWriter
	start           func()
	started, failed bool
}

var errCut = errors.New("response cut")

func (s *startWriter) Write(b []byte) (n int, err error) {
	if s.failed {
		return 0, errCut
	}
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			s.failed, n, err = true, 0, errCut
		}
	}()
	if !s.started {
		s.started = true
		s.start()
	}
	n, err = s.w.Write(b)
	s.failed = err != nil
	return n, err
}
