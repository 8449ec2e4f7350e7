package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/fleet"
)

// Fleet is what the API and the console need of a mirror's fleet: its
// device records and deployments (devices.Fleet), and deployments made
// from the mirror's bundles by reference (NAME:VERSION), whose digest
// the mirror knows (fleet.Local implements it).
type Fleet interface {
	devices.Fleet
	Deploy(ctx context.Context, ref string, spec devices.DeploymentSpec, at time.Time) (*devices.Deployment, error)
	// RelayAssignments signs the assignment of every device the running
	// deployments assign now, valid for valid (0: the default), by
	// device id: what a site mirror relaying this one takes over HTTP.
	RelayAssignments(ctx context.Context, at time.Time, valid time.Duration) (map[string][]byte, error)
}

// DeployRequest is POST /api/v1/deployments: a bundle of the mirror
// (NAME:VERSION) to a group or the devices a filter matches, in phases.
// The operator who makes it is the token's user.
type DeployRequest struct {
	Bundle string          `json:"bundle"`
	Group  string          `json:"group,omitempty"`
	Filter string          `json:"filter,omitempty"`
	Phases []devices.Phase `json:"phases"`
}

// ReasonRequest is the optional body of pause and abort.
type ReasonRequest struct {
	Reason string `json:"reason,omitempty"`
}

// LabelsRequest is POST /api/v1/devices/{id}/labels: labels to set (an
// empty value removes one).
type LabelsRequest struct {
	Set map[string]string `json:"set"`
}

// GroupList is GET /api/v1/groups.
type GroupList struct {
	Groups []devices.Group `json:"groups"`
}

// GroupDetail is GET /api/v1/groups/{name}: the group and the enrolled
// devices in it now.
type GroupDetail struct {
	Group   *devices.Group   `json:"group"`
	Devices []devices.Record `json:"devices"`
}

// DeploymentDetail is GET /api/v1/deployments/{id}: the deployment, its
// devices and its log.
type DeploymentDetail struct {
	Deployment *devices.Deployment `json:"deployment"`
	Targets    []devices.Target    `json:"targets"`
	Events     []devices.Event     `json:"events"`
}

// DeploymentList is GET /api/v1/deployments, newest first.
type DeploymentList struct {
	Deployments []devices.Deployment `json:"deployments"`
}

// RelayAssignmentList is GET /api/v1/relay/assignments: the signed
// assignment (a DSSE envelope, transport/assign) of every device the
// mirror's running deployments assign now, by device id — what a site
// mirror relaying this one keeps for its devices ('ferry mirror sync
// SITE --from URL', docs/fleet.md §13).
type RelayAssignmentList struct {
	Assignments map[string]json.RawMessage `json:"assignments"`
}

// maxBody bounds a JSON request body.
const maxBody = 1 << 20

// decodeBody reads a JSON request body into v: unknown fields, trailing
// data and bodies over maxBody are refused. An empty body leaves v as
// it is when optional.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return &Error{Status: http.StatusBadRequest, Reason: ReasonBadRequest, Msg: "read the request: " + err.Error()}
	}
	if len(b) == 0 && optional {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &Error{Status: http.StatusBadRequest, Reason: ReasonBadRequest, Msg: "the request is not the JSON this path takes: " + err.Error()}
	}
	if dec.More() {
		return &Error{Status: http.StatusBadRequest, Reason: ReasonBadRequest, Msg: "data after the request's JSON object"}
	}
	return nil
}

// deploymentID reads the {id} of a deployment path.
func deploymentID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, &Error{Status: http.StatusBadRequest, Reason: ReasonBadRequest, Msg: fmt.Sprintf("deployment id %q: want a number", r.PathValue("id"))}
	}
	return id, nil
}

// fleetError maps the engine's errors to answers (nil if it is none of
// them).
func fleetError(err error) *Error {
	var dnf *devices.DeploymentNotFoundError
	var gnf *devices.GroupNotFoundError
	var st *devices.StateError
	var ap *devices.ApprovalError
	var sp *devices.SpecError
	var fe *devices.FilterError
	var le *devices.LabelError
	var bnf *fleet.BundleNotFoundError
	switch {
	case errors.As(err, &dnf), errors.As(err, &gnf), errors.As(err, &bnf):
		return &Error{Status: http.StatusNotFound, Reason: ReasonNotFound, Msg: err.Error()}
	case errors.As(err, &st):
		return &Error{Status: http.StatusConflict, Reason: ReasonConflict, Msg: err.Error()}
	case errors.As(err, &ap):
		return &Error{Status: http.StatusForbidden, Reason: ReasonForbidden, Msg: err.Error()}
	case errors.As(err, &sp), errors.As(err, &fe), errors.As(err, &le):
		return &Error{Status: http.StatusBadRequest, Reason: ReasonBadRequest, Msg: err.Error()}
	}
	return nil
}

// evaluate moves the deployments on to the mirror's now (soaks ended,
// thresholds crossed) before they are shown.
func (h *Handler) evaluate(ctx context.Context) error {
	if err := h.o.Fleet.Evaluate(ctx, h.now()); err != nil {
		return fmt.Errorf("evaluate the deployments: %w", err)
	}
	return nil
}

// deploymentActions are what operators do to a deployment, by the word
// in their path.
var deploymentActions = map[string]func(h *Handler, ctx context.Context, id int64, p *Principal, reason string) (*devices.Deployment, error){
	"pause": func(h *Handler, ctx context.Context, id int64, p *Principal, reason string) (*devices.Deployment, error) {
		return h.o.Fleet.Pause(ctx, id, p.Name, reason, h.now())
	},
	"resume": func(h *Handler, ctx context.Context, id int64, p *Principal, _ string) (*devices.Deployment, error) {
		return h.o.Fleet.Resume(ctx, id, p.Name, h.now())
	},
	"abort": func(h *Handler, ctx context.Context, id int64, p *Principal, reason string) (*devices.Deployment, error) {
		return h.o.Fleet.Abort(ctx, id, p.Name, reason, h.now())
	},
	"approve": func(h *Handler, ctx context.Context, id int64, p *Principal, _ string) (*devices.Deployment, error) {
		return h.o.Fleet.Approve(ctx, id, p.Name, h.now())
	},
}

// act does a deployment action as p, and logs it.
func (h *Handler) act(ctx context.Context, action string, id int64, p *Principal, reason string) (*devices.Deployment, error) {
	if len(reason) > 1024 {
		return nil, &Error{Status: http.StatusBadRequest, Reason: ReasonBadRequest, Msg: "a reason of at most 1024 bytes"}
	}
	d, err := deploymentActions[action](h, ctx, id, p, reason)
	if err != nil {
		return nil, err
	}
	h.logf("deployment %d (%s %s): %s by %s (%s); now %s", d.ID, d.Bundle, d.Version, action, p.Name, p.Via, d.State)
	return d, nil
}

// deploy makes a deployment as p.
func (h *Handler) deploy(ctx context.Context, req DeployRequest, p *Principal) (*devices.Deployment, error) {
	spec := devices.DeploymentSpec{Group: req.Group, Filter: req.Filter, Phases: req.Phases, CreatedBy: p.Name}
	d, err := h.o.Fleet.Deploy(ctx, req.Bundle, spec, h.now())
	if err != nil {
		return nil, err
	}
	h.logf("deployment %d of %s %s to %d devices made by %s (%s): %s", d.ID, d.Bundle, d.Version, d.Devices, p.Name, p.Via, d.State)
	return d, nil
}

func (h *Handler) fleetAPIRoutes(api func(string, map[string]endpoint), read, change func(func(http.ResponseWriter, *http.Request, *Principal)) endpoint) {
	answer := func(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
		if err != nil {
			h.jsonError(w, r, err)
			return
		}
		writeJSON(w, status, v)
	}
	api("groups", map[string]endpoint{"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		gs, err := h.o.Fleet.Groups(r.Context())
		answer(w, r, http.StatusOK, GroupList{Groups: gs}, err)
	})})
	api("groups/{name}", map[string]endpoint{
		"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
			g, recs, err := h.o.Fleet.GroupMembers(r.Context(), r.PathValue("name"))
			answer(w, r, http.StatusOK, GroupDetail{Group: g, Devices: recs}, err)
		}),
		"PUT": change(func(w http.ResponseWriter, r *http.Request, p *Principal) {
			var g devices.Group
			if err := decodeBody(w, r, &g, false); err != nil {
				h.jsonError(w, r, err)
				return
			}
			if g.Name != "" && g.Name != r.PathValue("name") {
				h.jsonError(w, r, &Error{Status: http.StatusBadRequest, Reason: ReasonBadRequest, Msg: fmt.Sprintf("the body names group %q, the path %q", g.Name, r.PathValue("name"))})
				return
			}
			g.Name = r.PathValue("name")
			out, err := h.o.Fleet.PutGroup(r.Context(), g, h.now())
			if err == nil {
				h.logf("group %s (%s) put by %s (%s)", out.Name, out.Kind, p.Name, p.Via)
			}
			answer(w, r, http.StatusOK, out, err)
		}),
		"DELETE": change(func(w http.ResponseWriter, r *http.Request, p *Principal) {
			if err := h.o.Fleet.DeleteGroup(r.Context(), r.PathValue("name")); err != nil {
				h.jsonError(w, r, err)
				return
			}
			h.logf("group %s deleted by %s (%s)", r.PathValue("name"), p.Name, p.Via)
			w.WriteHeader(http.StatusNoContent)
		}),
	})
	api("devices/{id}/labels", map[string]endpoint{"POST": change(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		var req LabelsRequest
		if err := decodeBody(w, r, &req, false); err != nil {
			h.jsonError(w, r, err)
			return
		}
		rec, err := h.o.Fleet.SetLabels(r.Context(), r.PathValue("id"), req.Set, h.now())
		answer(w, r, http.StatusOK, rec, err)
	})})
	api("settings", map[string]endpoint{
		"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
			s, err := h.o.Fleet.Settings(r.Context())
			answer(w, r, http.StatusOK, s, err)
		}),
		"PUT": change(func(w http.ResponseWriter, r *http.Request, p *Principal) {
			var s devices.Settings
			if err := decodeBody(w, r, &s, false); err != nil {
				h.jsonError(w, r, err)
				return
			}
			err := h.o.Fleet.SetSettings(r.Context(), s)
			if err == nil {
				h.logf("settings set by %s (%s): %+v", p.Name, p.Via, s)
			}
			answer(w, r, http.StatusOK, s, err)
		}),
	})
	api("deployments", map[string]endpoint{
		"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
			if err := h.evaluate(r.Context()); err != nil {
				h.jsonError(w, r, err)
				return
			}
			ds, err := h.o.Fleet.Deployments(r.Context())
			answer(w, r, http.StatusOK, DeploymentList{Deployments: ds}, err)
		}),
		"POST": change(func(w http.ResponseWriter, r *http.Request, p *Principal) {
			var req DeployRequest
			if err := decodeBody(w, r, &req, false); err != nil {
				h.jsonError(w, r, err)
				return
			}
			d, err := h.deploy(r.Context(), req, p)
			answer(w, r, http.StatusCreated, d, err)
		}),
	})
	// A read-only token is enough: the assignments are what the
	// deployments operators made already hand any polling device; the
	// site that takes them changes nothing here.
	api("relay/assignments", map[string]endpoint{"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		as, err := h.o.Fleet.RelayAssignments(r.Context(), h.now(), 0)
		out := RelayAssignmentList{Assignments: make(map[string]json.RawMessage, len(as))}
		for id, env := range as {
			out.Assignments[id] = env
		}
		answer(w, r, http.StatusOK, out, err)
	})})
	api("deployments/{id}", map[string]endpoint{"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		id, err := deploymentID(r)
		if err == nil {
			err = h.evaluate(r.Context())
		}
		if err != nil {
			h.jsonError(w, r, err)
			return
		}
		d, err := h.o.Fleet.DeploymentDetail(r.Context(), id)
		if err != nil {
			h.jsonError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, DeploymentDetail{Deployment: &d.Deployment, Targets: d.Targets, Events: d.Events})
	})})
	for action := range deploymentActions {
		api("deployments/{id}/"+action, map[string]endpoint{"POST": change(func(w http.ResponseWriter, r *http.Request, p *Principal) {
			var req ReasonRequest
			id, err := deploymentID(r)
			if err == nil {
				err = decodeBody(w, r, &req, true)
			}
			if err != nil {
				h.jsonError(w, r, err)
				return
			}
			d, err := h.act(r.Context(), action, id, p, req.Reason)
			answer(w, r, http.StatusOK, d, err)
		})})
	}
}
