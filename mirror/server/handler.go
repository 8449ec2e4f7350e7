package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/ratelimit"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/wire"
)

// Handler is everything 'ferry mirror serve' answers: the OCI distribution
// API (Server), the mirror's TUF metadata under /tuf/, the trust roots at
// GET /ferry/v1/roots/N.root.json, delta streams at GET
// /ferry/v1/delta/NAME/TARGET/BASE (bundle/FORMAT.md §15.9), device
// check-ins at POST
// /ferry/v1/checkin, and, when HandlerOptions.Operator is set, the
// operators' API (/api/) and console (/console/).
type Handler struct {
	store   *mirror.Store
	oci     *OCI
	devices devices.Store
	legacy  bool
	ids     *mirrorIDs
	akey    *assignKey
	ttl     time.Duration
	now     func() time.Time
	logf    func(format string, a ...any)
	limited *limitedLog
	rate    *ratelimit.Limiter
	op      http.Handler
	relay   bool
	// maxDevices caps the devices whose check-ins the relay keeps.
	maxDevices int
	deltas     *deltaStreams
}

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// Devices stores check-ins; nil answers them 404.
	Devices devices.Store
	// AcceptLegacy records version 1 check-ins (unsigned, from agents
	// older than device identities) among the legacy records, where
	// they change no device's record; without it they are refused
	// (401, reason "unsigned").
	AcceptLegacy bool
	// Logf, if set, is told about check-ins that could not be stored and
	// about limits that bite, at most once a minute for each kind.
	Logf func(format string, a ...any)
	// Limits: the handler applies CheckinRate, CheckinBurst and
	// MaxDevices (set on Devices); the zero value limits nothing.
	Limits Limits
	// Operator, if set, answers the operators' API (/api/) and console
	// (/console/): package operator's Handler. Nil answers them 404.
	Operator http.Handler
	// AssignmentTTL is how long an assignment the mirror signs is valid
	// (0: DefaultAssignmentTTL).
	AssignmentTTL time.Duration
	// Relay serves the store's relay (docs/fleet.md §13) to the devices
	// of the upstream mirror it relays: the upstream's TUF metadata
	// under /tuf/ (in place of the store's own), and their signed
	// check-ins kept for the upstream (mirror.Store.RelayCheckin), an
	// assignment request answered with the relayed assignment as the
	// upstream signed it. Check-ins made for this mirror are taken as
	// always (when Devices is set).
	Relay bool
}

// DefaultAssignmentTTL is how long a served assignment is valid: devices
// fetch a fresh one at every poll, so a day bounds how long a captured
// one can be played back.
const DefaultAssignmentTTL = 24 * time.Hour

// NewHandler returns the HTTP handler of a mirror.
func NewHandler(s *mirror.Store, o HandlerOptions) *Handler {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if o.Devices != nil {
		o.Devices.SetMaxDevices(o.Limits.MaxDevices)
	}
	ttl := o.AssignmentTTL
	if ttl <= 0 {
		ttl = DefaultAssignmentTTL
	}
	oci := NewOCI(s)
	return &Handler{store: s, oci: oci, devices: o.Devices, legacy: o.AcceptLegacy, ids: &mirrorIDs{store: s}, akey: &assignKey{store: s}, ttl: ttl, now: time.Now, logf: logf,
		limited: &limitedLog{logf: logf, interval: time.Minute, kinds: map[string]*logKind{}},
		rate:    ratelimit.New(o.Limits.CheckinRate, o.Limits.CheckinBurst), op: o.Operator, relay: o.Relay, maxDevices: o.Limits.MaxDevices, deltas: newDeltaStreams(s, oci, logf)}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, wire.TUFPath):
		h.serveTUF(w, r, p[len(wire.TUFPath):])
	case strings.HasPrefix(p, wire.RootsPath):
		h.serveRoot(w, r, p[len(wire.RootsPath):])
	case strings.HasPrefix(p, wire.DeltaPath):
		h.deltas.serve(w, r, p[len(wire.DeltaPath):])
	case p == checkin.Path:
		h.serveCheckin(w, r, nil)
	case p == assign.Path:
		h.serveCheckin(w, r, h.serveAssignment)
	case p == "/console":
		http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
	case strings.HasPrefix(p, "/api/"), strings.HasPrefix(p, "/console/"):
		if h.op == nil {
			jsonError(w, http.StatusNotFound, "this mirror serves no operator console or API ('ferry mirror serve --console')")
			return
		}
		h.op.ServeHTTP(w, r)
	default:
		h.oci.ServeHTTP(w, r)
	}
}

// tufFileRE matches the metadata files a mirror serves.
var tufFileRE = regexp.MustCompile(`^(?:[1-9][0-9]{0,18}\.(?:root|snapshot|targets)|root|timestamp|snapshot|targets)\.json$`)

func (h *Handler) serveTUF(w http.ResponseWriter, r *http.Request, name string) {
	// Versioned files (N.root.json, N.targets.json, ...) never change.
	immutable := name != "" && name[0] >= '1' && name[0] <= '9'
	path := h.store.TUFPath(name)
	if h.relay {
		path = h.store.RelayTUFPath(name)
	}
	serveJSONFile(w, r, "TUF metadata", name, tufFileRE.MatchString(name), path, immutable)
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

// serveCheckin takes a check-in. then, if set, answers a recorded
// signed check-in instead of 204 (the assignment endpoint).
func (h *Handler) serveCheckin(w http.ResponseWriter, r *http.Request, then answerFunc) {
	if h.devices == nil && !h.relay {
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
	if ok, wait := h.rate.Allow(remote, now); !ok {
		h.limited.printf(now, "rate", "check-ins from %s refused (429): more than %g a second, burst %d (--checkin-rate, --checkin-burst)",
			remote, h.rate.Rate(), h.rate.Burst())
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		jsonError(w, http.StatusTooManyRequests, "too many check-ins from "+remote+"; retry later")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		jsonError(w, http.StatusUnsupportedMediaType, "want Content-Type application/json")
		return
	}
	if r.ContentLength > checkin.MaxEnvelopeSize {
		jsonError(w, http.StatusRequestEntityTooLarge, checkin.ErrTooLarge.Error())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, checkin.MaxEnvelopeSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			jsonError(w, http.StatusRequestEntityTooLarge, checkin.ErrTooLarge.Error())
			return
		}
		jsonError(w, http.StatusBadRequest, "read check-in: "+err.Error())
		return
	}
	if checkin.IsSigned(body) {
		h.serveSigned(r.Context(), w, body, now, remote, then)
		return
	}
	if then != nil {
		reasonError(w, http.StatusUnauthorized, checkin.Unsigned, "assignments are for devices that sign their check-ins")
		return
	}
	h.serveLegacy(w, body, now, remote)
}

// serveSigned judges a signed check-in (docs/fleet.md): signature,
// mirror id, enrollment and counter, in that order; only an enrolled
// device's report changes a record. Every refusal is logged with its
// reason (at most once a minute per reason).
func (h *Handler) serveSigned(ctx context.Context, w http.ResponseWriter, body []byte, now time.Time, remote string, then answerFunc) {
	inv, err := checkin.OpenSigned(body)
	if err == nil {
		err = h.checkMirror(inv)
		// Verified, and made for another mirror: the upstream's, if this
		// one relays it.
		if err != nil && h.relay && h.serveRelayed(w, inv, body, now, then != nil) {
			return
		}
	}
	if err == nil && h.devices == nil {
		jsonError(w, http.StatusNotFound, "this mirror takes the check-ins of the devices it relays for an upstream mirror only")
		return
	}
	out := devices.Recorded
	if err == nil {
		out, err = h.devices.Accept(ctx, inv, now, remote)
	}
	device := "?"
	if inv != nil {
		device = inv.Device
	}
	var re *checkin.RefusedError
	var fe *checkin.FieldError
	switch {
	case err == nil && out == devices.Listed:
		h.limited.printf(now, "pending", "check-in of device %s (%s) from %s: not enrolled, listed as pending; nothing recorded ('ferry mirror devices approve %s')",
			inv.Device, inv.Name, remote, inv.Device[:16])
		b, _ := json.Marshal(checkin.PendingBody{Status: "pending", Device: inv.Device,
			Message: "this mirror has not enrolled the device: it is listed as pending an operator's approval, and nothing it reports is recorded"})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		w.Write(b)
	case err == nil && then != nil:
		then(ctx, w, inv, now)
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.As(err, &re):
		h.limited.printf(now, "refused:"+string(re.Reason), "check-in from %s refused (%s): %s", remote, re.Reason, re.Msg)
		reasonError(w, reasonStatus[re.Reason], re.Reason, err.Error())
	case errors.As(err, &fe):
		h.limited.printf(now, "refused:"+string(checkin.Malformed), "check-in from %s refused (%s): %v", remote, checkin.Malformed, fe)
		reasonError(w, http.StatusBadRequest, checkin.Malformed, fe.Error())
	case errors.Is(err, checkin.ErrTooLarge):
		jsonError(w, http.StatusRequestEntityTooLarge, err.Error())
	case errors.Is(err, devices.ErrTooMany):
		h.limited.printf(now, "devices", "check-in of new device %s from %s refused (507): %v (--max-devices)", device, remote, err)
		jsonError(w, http.StatusInsufficientStorage, "the mirror records no more devices")
	default:
		h.limited.printf(now, "store", "check-in of %s refused (503): %v", device, err)
		w.Header().Set("Retry-After", "60")
		jsonError(w, http.StatusServiceUnavailable, "the mirror cannot store check-ins now; retry later")
	}
}

// serveRelayed answers the verified check-in of a device of an upstream
// mirror the store relays for (HandlerOptions.Relay), and reports
// whether it did: the check-in is kept verbatim for the upstream, which
// judges it (enrollment, counter) at the next sync; an assignment
// request gets the relayed assignment as the upstream signed it (200),
// or 204 when the relay holds none. The site signs and records nothing.
func (h *Handler) serveRelayed(w http.ResponseWriter, inv *checkin.Inventory, body []byte, now time.Time, assignment bool) bool {
	ups, err := h.store.RelayUpstreams()
	if err != nil {
		h.limited.printf(now, "relay", "relayed check-in of %s (503): %v", inv.Device, err)
		jsonError(w, http.StatusServiceUnavailable, "the mirror cannot read its relay now; retry later")
		return true
	}
	if !slices.Contains(ups, inv.Mirror) {
		return false
	}
	var full *mirror.RelayFullError
	if err := h.store.RelayCheckin(inv, body, h.maxDevices); errors.As(err, &full) {
		h.limited.printf(now, "devices", "relayed check-in of new device %s refused (507): %v (--max-devices)", inv.Device, err)
		jsonError(w, http.StatusInsufficientStorage, "the mirror keeps no more devices' check-ins")
		return true
	} else if err != nil {
		h.limited.printf(now, "relay", "relayed check-in of %s (503): %v", inv.Device, err)
		w.Header().Set("Retry-After", "60")
		jsonError(w, http.StatusServiceUnavailable, "the mirror cannot keep check-ins now; retry later")
		return true
	}
	var env []byte
	if assignment {
		if env, err = h.store.RelayAssignment(inv.Device); err != nil {
			h.limited.printf(now, "relay", "relayed assignment of %s (503): %v", inv.Device, err)
			jsonError(w, http.StatusServiceUnavailable, "the mirror cannot read its relay now; retry later")
			return true
		}
	}
	if env == nil {
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	writeEnvelope(w, env)
	return true
}

// writeEnvelope answers 200 with an assignment envelope.
func writeEnvelope(w http.ResponseWriter, env []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(env)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(env)
}

// reasonStatus is the HTTP status of each refusal.
var reasonStatus = map[checkin.Reason]int{
	checkin.Malformed:    http.StatusBadRequest,
	checkin.ClockAhead:   http.StatusBadRequest,
	checkin.Unsigned:     http.StatusUnauthorized,
	checkin.BadSignature: http.StatusUnauthorized,
	checkin.Rejected:     http.StatusForbidden,
	checkin.Revoked:      http.StatusForbidden,
	checkin.Replayed:     http.StatusConflict,
	checkin.Foreign:      http.StatusMisdirectedRequest,
}

// checkMirror refuses a report meant for another mirror.
func (h *Handler) checkMirror(inv *checkin.Inventory) error {
	ids, err := h.ids.get()
	if err != nil {
		return err
	}
	if slices.Contains(ids, inv.Mirror) {
		return nil
	}
	return &checkin.RefusedError{Reason: checkin.Foreign, Msg: fmt.Sprintf("device %s addressed its report to mirror %s; this is mirror %s",
		inv.Device, inv.Mirror, ids[0])}
}

// mirrorIDs caches the store's MirrorIDs until its TUF root changes.
type mirrorIDs struct {
	store *mirror.Store
	mu    sync.Mutex
	stamp fileStamp
	ids   []string
}

func (m *mirrorIDs) get() ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := os.Stat(m.store.TUFRootPath())
	if err != nil {
		return nil, fmt.Errorf("mirror id: %w", err)
	}
	if s := stampOf(st); m.ids == nil || s != m.stamp {
		ids, err := m.store.MirrorIDs()
		if err != nil {
			return nil, err
		}
		m.ids, m.stamp = ids, s
	}
	return m.ids, nil
}

// serveLegacy takes a version 1 check-in: unsigned, so it is refused
// unless the mirror accepts legacy devices, and then it goes among the
// legacy records only.
func (h *Handler) serveLegacy(w http.ResponseWriter, body []byte, now time.Time, remote string) {
	if len(body) > checkin.MaxSize {
		jsonError(w, http.StatusRequestEntityTooLarge, checkin.ErrTooLarge.Error())
		return
	}
	rep, err := checkin.ParseBytes(body)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !h.legacy {
		msg := fmt.Sprintf("check-in of %q is not signed: this mirror takes signed check-ins only (update the device's ferry-agent, or serve with --accept-legacy)", rep.DeviceID)
		h.limited.printf(now, "refused:"+string(checkin.Unsigned), "check-in from %s refused (%s): %s", remote, checkin.Unsigned, msg)
		reasonError(w, http.StatusUnauthorized, checkin.Unsigned, msg)
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

func reasonError(w http.ResponseWriter, status int, reason checkin.Reason, msg string) {
	writeJSONStatus(w, status, checkin.ErrorBody{Error: msg, Reason: reason})
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	writeJSONStatus(w, status, checkin.ErrorBody{Error: msg})
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func (h *Handler) serveRoot(w http.ResponseWriter, r *http.Request, name string) {
	path, ok := h.store.RootFile(name)
	serveJSONFile(w, r, "trust root", name, ok, path, true)
}
