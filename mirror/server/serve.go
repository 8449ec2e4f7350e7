package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/layout"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport/oci"
)

// Error codes of the distribution spec that the server answers with.
const (
	codeNameUnknown     = "NAME_UNKNOWN"
	codeManifestUnknown = "MANIFEST_UNKNOWN"
	codeBlobUnknown     = "BLOB_UNKNOWN"
	codeDigestInvalid   = "DIGEST_INVALID"
	codeNameInvalid     = "NAME_INVALID"
	codeUnsupported     = "UNSUPPORTED"
	codePaginationInv   = "PAGINATION_NUMBER_INVALID"
)

// OCI serves a mirror.Store read-only over the OCI distribution API: the pull
// half of the spec plus tag listing and referrers. Every push or delete is
// answered 405. It reloads index.json when the file changes (an add or
// sync replaces it atomically), and serves blobs with http.ServeContent
// straight from their files, so Range and HEAD work, the kernel's
// sendfile moves the bytes and memory use does not grow with blob size.
type OCI struct {
	s *mirror.Store

	mu   sync.Mutex
	view *view
	seen fileStamp
}

// NewOCI returns the HTTP handler for s.
func NewOCI(s *mirror.Store) *OCI { return &OCI{s: s} }

type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

// view is what the server knows of the store, per repository.
type view struct {
	repos map[string]*repoView
}

type repoView struct {
	tags      map[string]ocispec.Descriptor
	manifests map[digest.Digest]ocispec.Descriptor
	blobs     map[digest.Digest]bool
	referrers map[digest.Digest][]ocispec.Descriptor
	// broken holds manifests whose blob is missing or damaged on disk:
	// they answer with the reason, and the rest of the mirror still serves.
	broken map[digest.Digest]error
}

// current returns the view of the store, reloading it if index.json
// changed since the last request.
func (h *OCI) current() (*view, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, err := os.Stat(h.s.IndexPath())
	if err != nil {
		return nil, err
	}
	stamp := stampOf(st)
	if h.view != nil && stamp == h.seen {
		return h.view, nil
	}
	v, err := h.load()
	if err != nil {
		return nil, err
	}
	h.view, h.seen = v, stamp
	return v, nil
}

func (h *OCI) load() (*view, error) {
	idx, err := h.s.Index()
	if err != nil {
		return nil, err
	}
	v := &view{repos: map[string]*repoView{}}
	for _, d := range idx.Manifests {
		repo := d.Annotations[mirror.RepositoryAnnotation]
		if repo == "" {
			continue
		}
		rv := v.repos[repo]
		if rv == nil {
			rv = &repoView{
				tags:      map[string]ocispec.Descriptor{},
				manifests: map[digest.Digest]ocispec.Descriptor{},
				blobs:     map[digest.Digest]bool{},
				referrers: map[digest.Digest][]ocispec.Descriptor{},
				broken:    map[digest.Digest]error{},
			}
			v.repos[repo] = rv
		}
		if _, tag, ok := strings.Cut(d.Annotations[ocispec.AnnotationRefName], ":"); ok {
			rv.tags[tag] = d
		}
		if _, ok := rv.manifests[d.Digest]; ok {
			continue
		}
		rv.manifests[d.Digest] = ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
		raw, err := h.s.ReadBlob(d.Digest, bundle.MaxManifestSize)
		if err != nil {
			rv.broken[d.Digest] = err
			continue
		}
		m, err := oci.ParseManifest(raw, d.MediaType)
		if err != nil {
			rv.broken[d.Digest] = err
			continue
		}
		rv.blobs[m.Config.Digest] = true
		for _, l := range m.Layers {
			rv.blobs[l.Digest] = true
		}
		if m.Subject != nil {
			at := m.ArtifactType
			if at == "" {
				at = m.Config.MediaType
			}
			rv.referrers[m.Subject.Digest] = append(rv.referrers[m.Subject.Digest], ocispec.Descriptor{
				MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, ArtifactType: at, Annotations: m.Annotations,
			})
		}
	}
	return v, nil
}

// ServeHTTP implements http.Handler.
func (h *OCI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p := r.URL.Path
	if p == "/v2" || p == "/v2/" {
		if !readMethod(w, r) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
		return
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if ok && !readMethod(w, r) {
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, codeUnsupported, "not an OCI distribution API path")
		return
	}
	name, kind, arg, ok := splitPath(rest)
	if !ok {
		writeError(w, http.StatusNotFound, codeUnsupported, "not an OCI distribution API path")
		return
	}
	if !oci.ValidRepository(name) {
		writeError(w, http.StatusBadRequest, codeNameInvalid, "invalid repository name")
		return
	}
	v, err := h.current()
	if err != nil {
		writeError(w, http.StatusInternalServerError, codeUnsupported, "mirror index unreadable: "+err.Error())
		return
	}
	rv := v.repos[name]
	if rv == nil {
		writeError(w, http.StatusNotFound, codeNameUnknown, "repository "+name+" is not in this mirror")
		return
	}
	switch kind {
	case "manifests":
		h.serveManifest(w, r, rv, arg)
	case "blobs":
		h.serveBlob(w, r, rv, arg)
	case "tags":
		serveTags(w, r, name, rv)
	case "referrers":
		serveReferrers(w, r, rv, arg)
	}
}

// splitPath splits NAME/KIND/ARG, where NAME may hold slashes.
func splitPath(rest string) (name, kind, arg string, ok bool) {
	for _, k := range []string{"/manifests/", "/blobs/", "/referrers/"} {
		if i := strings.LastIndex(rest, k); i > 0 {
			arg = rest[i+len(k):]
			if arg == "" || strings.Contains(arg, "/") {
				return "", "", "", false
			}
			return rest[:i], strings.Trim(k, "/"), arg, true
		}
	}
	if n, ok := strings.CutSuffix(rest, "/tags/list"); ok && n != "" {
		return n, "tags", "", true
	}
	return "", "", "", false
}

// readMethod answers anything but GET and HEAD: the mirror is read-only.
func readMethod(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeError(w, http.StatusMethodNotAllowed, codeUnsupported, "this mirror is read-only: push to a registry and 'ferry mirror sync' from it")
	return false
}

func (h *OCI) serveManifest(w http.ResponseWriter, r *http.Request, rv *repoView, ref string) {
	var d ocispec.Descriptor
	var ok bool
	if dg, err := digest.Parse(ref); err == nil {
		d, ok = rv.manifests[dg]
	} else if strings.Contains(ref, ":") {
		writeError(w, http.StatusBadRequest, codeDigestInvalid, "invalid digest")
		return
	} else {
		d, ok = rv.tags[ref]
	}
	if !ok {
		writeError(w, http.StatusNotFound, codeManifestUnknown, "manifest "+ref+" is not in this repository")
		return
	}
	if err := rv.broken[d.Digest]; err != nil {
		writeError(w, http.StatusInternalServerError, codeUnsupported,
			"manifest "+d.Digest.String()+" is damaged on the mirror's disk ("+err.Error()+"); add or sync the bundle again to repair it")
		return
	}
	h.serveFile(w, r, d, d.MediaType, codeManifestUnknown)
}

func (h *OCI) serveBlob(w http.ResponseWriter, r *http.Request, rv *repoView, ref string) {
	d, err := digest.Parse(ref)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeDigestInvalid, "invalid digest")
		return
	}
	if !rv.blobs[d] {
		if _, isManifest := rv.manifests[d]; !isManifest {
			writeError(w, http.StatusNotFound, codeBlobUnknown, "blob "+ref+" is not in this repository")
			return
		}
	}
	h.serveFile(w, r, ocispec.Descriptor{Digest: d}, "application/octet-stream", codeBlobUnknown)
}

// serveFile sends a blob file with http.ServeContent: HEAD, Range and
// conditional requests, and sendfile for the body.
func (h *OCI) serveFile(w http.ResponseWriter, r *http.Request, d ocispec.Descriptor, contentType, unknown string) {
	f, err := os.Open(h.s.BlobPath(d.Digest))
	if err != nil {
		writeError(w, http.StatusNotFound, unknown, "content "+d.Digest.String()+" is missing from the mirror's disk")
		return
	}
	defer f.Close()
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Docker-Content-Digest", d.Digest.String())
	hdr.Set("Etag", `"`+d.Digest.String()+`"`)
	hdr.Set("Cache-Control", "max-age=31536000")
	http.ServeContent(w, r, "", time.Time{}, f)
}

func serveTags(w http.ResponseWriter, r *http.Request, name string, rv *repoView) {
	tags := make([]string, 0, len(rv.tags))
	for t := range rv.tags {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	q := r.URL.Query()
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(tags, last)
		if i < len(tags) && tags[i] == last {
			i++
		}
		tags = tags[i:]
	}
	if ns := q.Get("n"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, codePaginationInv, "n must be a non-negative number")
			return
		}
		if n < len(tags) {
			tags = tags[:n]
			if n > 0 {
				next := url.Values{"n": {ns}, "last": {tags[n-1]}}
				w.Header().Set("Link", "</v2/"+name+"/tags/list?"+next.Encode()+`>; rel="next"`)
			}
		}
	}
	writeJSON(w, "application/json", oci.TagList{Name: name, Tags: tags})
}

func serveReferrers(w http.ResponseWriter, r *http.Request, rv *repoView, ref string) {
	d, err := digest.Parse(ref)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeDigestInvalid, "invalid digest")
		return
	}
	at := r.URL.Query().Get("artifactType")
	ms := []ocispec.Descriptor{}
	for _, m := range rv.referrers[d] {
		if at == "" || m.ArtifactType == at {
			ms = append(ms, m)
		}
	}
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	writeJSON(w, ocispec.MediaTypeImageIndex, layout.NewIndex(ms))
}

func writeJSON(w http.ResponseWriter, contentType string, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
