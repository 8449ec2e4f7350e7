package server

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/wire"
)

// Handler is everything 'ferry mirror serve' answers: the OCI distribution
// API (Server), the mirror's TUF metadata under /tuf/, the trust roots at
// GET /ferry/v1/roots/N.root.json, and device check-ins at POST
// /ferry/v1/checkin.
type Handler struct {
	store   *mirror.Store
	oci     *OCI
	devices *devices.DB
	now     func() time.Time
	logf    func(format string, a ...any)
	limited *limitedLog
	rate    *rateLimiter
}

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// Devices stores check-ins; nil answers them 404.
	Devices *devices.DB
	// Logf, if set, is told about check-ins that could not be stored and
	// about limits that bite, at most once a minute for each kind.
	Logf func(format string, a ...any)
	// Limits: the handler applies CheckinRate, CheckinBurst and
	// MaxDevices (set on Devices); the zero value limits nothing.
	Limits Limits
}

// NewHandler returns the HTTP handler of a mirror.
func NewHandler(s *mirror.Store, o HandlerOptions) *Handler {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if o.Devices != nil {
		o.Devices.SetMaxDevices(o.Limits.MaxDevices)
	}
	return &Handler{store: s, oci: NewOCI(s), devices: o.Devices, now: time.Now, logf: logf,
		limited: &limitedLog{logf: logf, interval: time.Minute, kinds: map[string]*logKind{}},
		rate:    newRateLimiter(o.Limits.CheckinRate, o.Limits.CheckinBurst)}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, wire.TUFPath):
		h.serveTUF(w, r, p[len(wire.TUFPath):])
	case strings.HasPrefix(p, wire.RootsPath):
		h.serveRoot(w, r, p[len(wire.RootsPath):])
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
	serveJSONFile(w, r, "TUF metadata", name, tufFileRE.MatchString(name), h.store.TUFPath(name), immutable)
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
	remote := remoteIP(r.RemoteAddr)
	now := h.now()
	if ok, wait := h.rate.allow(remote, now); !ok {
		h.limited.printf(now, "rate", "check-ins from %s refused (429): more than %g a second, burst %d (--checkin-rate, --checkin-burst)",
			remote, h.rate.rate, int(h.rate.burst))
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		jsonError(w, http.StatusTooManyRequests, "too many check-ins from "+remote+"; retry later")
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
	err = h.devices.Record(rep, now, remote)
	var fe *checkin.FieldError
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.As(err, &fe):
		jsonError(w, http.StatusBadRequest, fe.Error())
	case errors.Is(err, devices.ErrTooMany):
		h.limited.printf(now, "devices", "check-in of new device %s from %s refused (507): %v (--max-devices)", rep.DeviceID, remote, err)
		jsonError(w, http.StatusInsufficientStorage, "the mirror records no more devices")
	default:
		h.limited.printf(now, "store", "check-in of %s refused (503): %v", rep.DeviceID, err)
		w.Header().Set("Retry-After", "60")
		jsonError(w, http.StatusServiceUnavailable, "the mirror cannot store check-ins now; retry later")
	}
}
func jsonError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func (h *Handler) serveRoot(w http.ResponseWriter, r *http.Request, name string) {
	path, ok := h.store.RootFile(name)
	serveJSONFile(w, r, "trust root", name, ok, path, true)
}
