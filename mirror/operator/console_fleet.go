package operator

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/fleet"
	"github.com/ferry-update/ferry/internal/display"
)

// deploymentsView is the deployments page: the list, and what the form
// for a new one offers.
type deploymentsView struct {
	Deployments []devices.Deployment
	Bundles     []string
	Groups      []devices.Group
	// Problem says why the last form was refused (its values stay).
	Problem string
	Form    deployForm
}

// deployForm is the console's form for a new deployment.
type deployForm struct {
	Bundle, Group, Filter, Phases, Soak, MaxFailures string
}

var defaultDeployForm = deployForm{Phases: "1,10%,50%,100%", Soak: "1h", MaxFailures: "0"}

func (h *Handler) overview(ctx context.Context) (*fleet.Overview, error) {
	ov, err := fleet.Status(ctx, h.o.Fleet, h.now())
	if err != nil {
		return nil, fmt.Errorf("the fleet at a glance: %w", err)
	}
	return ov, nil
}

func (h *Handler) deploymentsView(ctx context.Context, form deployForm, problem string) (*deploymentsView, error) {
	if err := h.evaluate(ctx); err != nil {
		return nil, err
	}
	ds, err := h.o.Fleet.Deployments(ctx)
	if err != nil {
		return nil, err
	}
	gs, err := h.o.Fleet.Groups(ctx)
	if err != nil {
		return nil, err
	}
	var bundles []string
	if h.o.Bundles != nil {
		if bundles, err = h.o.Bundles(ctx); err != nil {
			return nil, err
		}
	}
	return &deploymentsView{Deployments: ds, Bundles: bundles, Groups: gs, Form: form, Problem: problem}, nil
}

// parseDeployForm makes the request a deployment form asks for.
func parseDeployForm(f deployForm) (DeployRequest, error) {
	bad := func(msg string) error {
		return &Error{Status: http.StatusBadRequest, Reason: ReasonBadRequest, Msg: msg}
	}
	req := DeployRequest{Bundle: f.Bundle, Group: f.Group, Filter: strings.TrimSpace(f.Filter)}
	if req.Group != "" && req.Filter != "" {
		return req, bad("choose a group or write a filter, not both")
	}
	var soak time.Duration
	if f.Soak != "" {
		d, err := time.ParseDuration(f.Soak)
		if err != nil || d < 0 {
			return req, bad("soak " + strconv.Quote(f.Soak) + ": want a duration such as 30m or 2h")
		}
		soak = d
	}
	maxFail, err := devices.ParseAmount(f.MaxFailures)
	if err != nil {
		return req, bad("failures allowed: " + err.Error())
	}
	if req.Phases, err = devices.ParsePhases(f.Phases, soak, maxFail); err != nil {
		return req, err
	}
	return req, nil
}

func (h *Handler) consoleFleetRoutes(console func(string, map[string]endpoint), read, change func(func(http.ResponseWriter, *http.Request, *Principal)) endpoint) {
	console("deployments", map[string]endpoint{
		"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
			v, err := h.deploymentsView(r.Context(), defaultDeployForm, "")
			if err != nil {
				h.pageError(w, r, err)
				return
			}
			h.render(w, r, p, http.StatusOK, "deployments", "Deployments", v)
		}),
		"POST": change(func(w http.ResponseWriter, r *http.Request, p *Principal) {
			form := deployForm{Bundle: r.PostFormValue("bundle"), Group: r.PostFormValue("group"), Filter: r.PostFormValue("filter"),
				Phases: r.PostFormValue("phases"), Soak: r.PostFormValue("soak"), MaxFailures: r.PostFormValue("maxFailures")}
			req, err := parseDeployForm(form)
			var d *devices.Deployment
			if err == nil {
				d, err = h.deploy(r.Context(), req, p)
			}
			if err != nil {
				// Back to the form, with what was wrong and what was typed.
				e := h.asError(err)
				if e.Status >= 500 {
					h.pageError(w, r, err)
					return
				}
				v, verr := h.deploymentsView(r.Context(), form, e.Msg)
				if verr != nil {
					h.pageError(w, r, verr)
					return
				}
				h.render(w, r, p, e.Status, "deployments", "Deployments", v)
				return
			}
			http.Redirect(w, r, ConsolePrefix+"deployments/"+strconv.FormatInt(d.ID, 10), http.StatusSeeOther)
		}),
	})
	console("deployments/{id}", map[string]endpoint{"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		id, err := deploymentID(r)
		if err == nil {
			err = h.evaluate(r.Context())
		}
		var d *devices.DeploymentDetail
		if err == nil {
			d, err = h.o.Fleet.DeploymentDetail(r.Context(), id)
		}
		if err != nil {
			h.pageError(w, r, err)
			return
		}
		h.render(w, r, p, http.StatusOK, "deployment", "Deployment "+strconv.FormatInt(d.ID, 10), d)
	})})
	console("deployments/{id}/{action}", map[string]endpoint{"POST": change(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		action := r.PathValue("action")
		id, err := deploymentID(r)
		if _, ok := deploymentActions[action]; err == nil && !ok {
			err = &Error{Status: http.StatusNotFound, Reason: ReasonNotFound, Msg: "no such action " + action}
		}
		if err == nil {
			_, err = h.act(r.Context(), action, id, p, r.PostFormValue("reason"))
		}
		if err != nil {
			h.pageError(w, r, err)
			return
		}
		http.Redirect(w, r, ConsolePrefix+"deployments/"+strconv.FormatInt(id, 10), http.StatusSeeOther)
	})})
}

// templateFuncs for deployments.
func phaseState(d devices.DeploymentDetail, i int) string {
	switch {
	case d.State == devices.Completed || i < d.Phase:
		return "done"
	case i == d.Phase:
		return string(d.State)
	}
	return "ahead"
}

// duration shows a soak for people.
func duration(d time.Duration) string {
	if d == 0 {
		return "none"
	}
	return display.OrDash(strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m"))
}
