package operator

import (
	_ "embed"
	"io"
	"net/http"

	"github.com/ferry-update/ferry/devices"
)

// OpenAPI is the API's description (OpenAPI 3), served at
// /api/v1/openapi.yaml; a test holds the live server to it.
//
//go:embed openapi.yaml
var OpenAPI []byte

// DeviceList is GET /api/v1/devices.
type DeviceList struct {
	Devices []devices.Record `json:"devices"`
}

// DeviceDetail is GET /api/v1/devices/{id}: the record and its stored
// check-ins, newest first.
type DeviceDetail struct {
	Device  *devices.Record  `json:"device"`
	History []devices.Report `json:"history"`
}

// statusActions are the enrollment changes, by the word in their path.
var statusActions = map[string]devices.Status{
	"approve": devices.Enrolled,
	"reject":  devices.Rejected,
	"revoke":  devices.Revoked,
}

func (h *Handler) apiRoutes() {
	api := func(pattern string, methods map[string]endpoint) {
		h.handle(APIPrefix+pattern, h.tokenAuth, h.jsonError, methods)
	}
	read := func(fn func(w http.ResponseWriter, r *http.Request, p *Principal)) endpoint {
		return endpoint{need: devices.ReadOnly, fn: fn}
	}
	change := func(fn func(w http.ResponseWriter, r *http.Request, p *Principal)) endpoint {
		return endpoint{need: devices.Operator, fn: fn}
	}
	api("openapi.yaml", map[string]endpoint{"GET": {fn: func(w http.ResponseWriter, r *http.Request, _ *Principal) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(OpenAPI)
	}}})
	api("whoami", map[string]endpoint{"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		writeJSON(w, http.StatusOK, p)
	})})
	api("fleet", map[string]endpoint{"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		ov, err := h.overview(r.Context())
		if err != nil {
			h.jsonError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, ov)
	})})
	api("devices", map[string]endpoint{"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		recs, err := h.records(r)
		if err != nil {
			h.jsonError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, DeviceList{Devices: recs})
	})})
	api("devices/{id}", map[string]endpoint{"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		rec, hist, err := h.o.Fleet.Show(r.Context(), r.PathValue("id"))
		if err != nil {
			h.jsonError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, DeviceDetail{Device: rec, History: hist})
	})})
	for action := range statusActions {
		api("devices/{id}/"+action, map[string]endpoint{"POST": change(func(w http.ResponseWriter, r *http.Request, p *Principal) {
			rec, err := h.setStatus(r, p, r.PathValue("id"), action)
			if err != nil {
				h.jsonError(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, rec)
		})})
	}
	api("enrollments", map[string]endpoint{"POST": change(h.enroll)})
	h.fleetAPIRoutes(api, read, change)
	// Anything else under the prefix: a JSON 404.
	h.mux.HandleFunc(APIPrefix, func(w http.ResponseWriter, r *http.Request) {
		h.jsonError(w, r, &Error{Status: http.StatusNotFound, Reason: ReasonNotFound, Msg: "no such API path: " + r.URL.Path})
	})
}

// records lists the devices, pending first, optionally of one status
// (?status=pending).
func (h *Handler) records(r *http.Request) ([]devices.Record, error) {
	recs, err := h.o.Fleet.Records(r.Context())
	if err != nil {
		return nil, err
	}
	if st := r.URL.Query().Get("status"); st != "" {
		switch devices.Status(st) {
		case devices.Pending, devices.Enrolled, devices.Rejected, devices.Revoked:
		default:
			return nil, &Error{Status: http.StatusBadRequest, Reason: ReasonBadRequest, Msg: "status " + st + ": want pending, enrolled, rejected or revoked"}
		}
		kept := recs[:0]
		for _, rec := range recs {
			if rec.Status == devices.Status(st) {
				kept = append(kept, rec)
			}
		}
		recs = kept
	}
	devices.SortByStatus(recs)
	return recs, nil
}

// setStatus approves, rejects or revokes a device, and logs who did.
func (h *Handler) setStatus(r *http.Request, p *Principal, id, action string) (*devices.Record, error) {
	rec, err := h.o.Fleet.SetStatus(r.Context(), id, statusActions[action], h.now())
	if err != nil {
		return nil, err
	}
	h.logf("device %s (%s) is %s: %s by %s (%s)", rec.ID[:16], rec.Name, rec.Status, action, p.Name, p.Via)
	return rec, nil
}

// EnrollResults is POST /api/v1/enrollments.
type EnrollResults struct {
	Results []devices.EnrollResult `json:"results"`
}

// enroll enrolls a factory line's list (docs/fleet.md §5): the body is
// the list itself, JSON lines or PEM public keys, whole or not at all.
func (h *Handler) enroll(w http.ResponseWriter, r *http.Request, p *Principal) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, devices.MaxEnrollFile))
	if err != nil {
		h.jsonError(w, r, &Error{Status: http.StatusBadRequest, Reason: ReasonBadRequest, Msg: "read the enrollment list: " + err.Error()})
		return
	}
	es, err := devices.ParseEnrollments(body)
	if err != nil {
		h.jsonError(w, r, &Error{Status: http.StatusBadRequest, Reason: ReasonBadRequest, Msg: "enrollment list: " + err.Error()})
		return
	}
	res, err := h.o.Fleet.Enroll(r.Context(), es, "api:"+p.Name, h.now())
	if err != nil {
		h.jsonError(w, r, err)
		return
	}
	h.logf("%d devices in an enrollment list from %s (%s)", len(es), p.Name, p.Via)
	writeJSON(w, http.StatusOK, EnrollResults{Results: res})
}
