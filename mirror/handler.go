package mirror

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-update/ferry/mirror/checkin"
)

// Handler is everything 'ferry mirror serve' answers: the OCI distribution
// API (Server), the mirror's TUF metadata under /tuf/, the trust roots at
// GET /ferry/v1/roots/N.root.json, and device check-ins at POST
// /ferry/v1/checkin.
type Handler struct {
	store   *Store
	oci     *Server
	devices *Devices
	now     func() time.Time
	logf    func(format string, a ...any)
}

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// Devices stores check-ins; nil answers them 404.
	Devices *Devices
	// Logf, if set, is told about check-ins that could not be stored.
	Logf func(format string, a ...any)
}

// NewHandler returns the HTTP handler of a mirror.
func NewHandler(s *Store, o HandlerOptions) *Handler {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Handler{store: s, oci: NewServer(s), devices: o.Devices, now: time.Now, logf: logf}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/tuf/"):
		h.serveTUF(w, r, p[len("/tuf/"):])
	case strings.HasPrefix(p, RootsPath):
		h.serveRoot(w, r, p[len(RootsPath):])
	case p == checkin.Path:
		h.serveCheckin(w, r)
	default:
		h.oci.ServeHTTP(w, r)
	}
}

// tufFileRE matches the metadata files a mirror serves.
var tufFileRE = regexp.MustCompile(`^(?:[1-9][0-9]{0,18}\.(?:root|snapshot|targets)|root|timestamp|snapshot|targets)\.json$`)

func (h *Handler) serveTUF(w http.ResponseWriter, r *http.Request, name string) {
	// Versioned files (N.root.json, N.targets.json, ...) never change.
	immutable := name != "" && name[0] >= '1' && name[0] <= '9'
	serveJSONFile(w, r, "TUF metadata", name, tufFileRE.MatchString(name), h.store.tufPath(name), immutable)
}

// serveJSONFile answers GET and HEAD for one of the mirror's small JSON
// files (TUF metadata, trust roots); ok says whether name is one it serves.
func serveJSONFile(w http.ResponseWriter, r *http.Request, what, name string, ok bool, path string, immutable bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		jsonError(w, http.StatusMethodNotAllowed, what+" is read-only")
		return
	}
	if !ok {
		jsonError(w, http.StatusNotFound, "no such "+what+" file")
		return
	}
	f, err := os.Open(path)
	if err != nil {
		jsonError(w, http.StatusNotFound, name+" is not on this mirror")
		return
	}
	defer f.Close()
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	if immutable {
		hdr.Set("Cache-Control", "max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, f)
}

func (h *Handler) serveCheckin(w http.ResponseWriter, r *http.Request) {
	if h.devices == nil {
		jsonError(w, http.StatusNotFound, "this mirror does not take check-ins")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		jsonError(w, http.StatusMethodNotAllowed, "POST a JSON check-in")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		jsonError(w, http.StatusUnsupportedMediaType, "want Content-Type application/json")
		return
	}
	if r.ContentLength > checkin.MaxSize {
		jsonError(w, http.StatusRequestEntityTooLarge, checkin.ErrTooLarge.Error())
		return
	}
	rep, err := checkin.Parse(http.MaxBytesReader(w, r.Body, checkin.MaxSize))
	if errors.Is(err, checkin.ErrTooLarge) {
		jsonError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	}
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	remote := r.RemoteAddr
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	} else if remote == "@" || remote == "" {
		remote = "unix" // a Unix socket, behind a proxy
	}
	if err := h.devices.Record(rep, h.now(), remote); err != nil {
		if fe := (*checkin.FieldError)(nil); errors.As(err, &fe) {
			jsonError(w, http.StatusBadRequest, fe.Error())
			return
		}
		h.logf("check-in of %s: %v", rep.DeviceID, err)
		jsonError(w, http.StatusInternalServerError, "the mirror could not store the check-in")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
