package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/ratelimit"
)

// Paths under which the handler answers.
const (
	APIPrefix     = "/api/v1/"
	ConsolePrefix = "/console/"
)

// Options configure New.
type Options struct {
	// Fleet is the mirror's fleet: devices, groups, deployments.
	Fleet    Fleet
	Accounts *Accounts
	// Bundles lists the mirror's bundles (NAME:VERSION) for the
	// console's deployment form; nil offers none.
	Bundles func(ctx context.Context) ([]string, error)
	// SecureCookies marks the session cookie Secure even on a plain
	// HTTP request: for a mirror behind a TLS proxy. Requests that came
	// over TLS always get Secure cookies.
	SecureCookies bool
	// Logf is told about log-ins, refusals and changes (at most once a
	// minute for each kind of refusal).
	Logf func(format string, a ...any)
	// Now is the clock (time.Now if nil); tests drive it.
	Now func() time.Time
}

// Handler serves the fleet's operators: the JSON API under APIPrefix
// (API tokens) and the web console under ConsolePrefix (sessions).
type Handler struct {
	o        Options
	mux      *http.ServeMux
	routes   []Route
	now      func() time.Time
	logf     func(format string, a ...any)
	byClient *ratelimit.Limiter // failed log-ins and tokens per client IP
	byUser   *ratelimit.Limiter // failed log-ins per account name
}

// Route is one method and path pattern the handler answers
// (net/http ServeMux syntax: /api/v1/devices/{id}).
type Route struct {
	Method, Pattern string
	// Need is the role the route requires; "" for none (public).
	Need devices.Role
}

// Failed log-ins allowed before the limit bites, and how fast it lets go.
const (
	loginBurstClient = 10
	loginRateClient  = 1.0 / 6 // a try every 6 s
	loginBurstUser   = 5
	loginRateUser    = 1.0 / 30 // a try every 30 s
)

// New returns the operators' handler.
func New(o Options) *Handler {
	h := &Handler{o: o, mux: http.NewServeMux(), now: o.Now, logf: o.Logf,
		byClient: ratelimit.New(loginRateClient, loginBurstClient),
		byUser:   ratelimit.New(loginRateUser, loginBurstUser)}
	if h.now == nil {
		h.now = time.Now
	}
	if h.logf == nil {
		h.logf = func(string, ...any) {}
	}
	h.apiRoutes()
	h.consoleRoutes()
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

// Routes lists what the API answers (for its OpenAPI test).
func (h *Handler) Routes() []Route {
	out := []Route{}
	for _, r := range h.routes {
		if strings.HasPrefix(r.Pattern, APIPrefix) {
			out = append(out, r)
		}
	}
	return out
}

// endpoint is one method of a path: the role it needs and what it does.
type endpoint struct {
	need devices.Role
	fn   func(w http.ResponseWriter, r *http.Request, p *Principal)
}

// handle registers pattern with its methods; other methods get 405.
// onErr answers a refusal: JSON for the API, a page for the console.
func (h *Handler) handle(pattern string, auth func(*http.Request, devices.Role) (*Principal, error), onErr func(http.ResponseWriter, *http.Request, error), methods map[string]endpoint) {
	allow := make([]string, 0, len(methods))
	for m, e := range methods {
		allow = append(allow, m)
		h.routes = append(h.routes, Route{Method: m, Pattern: pattern, Need: e.need})
	}
	sort.Strings(allow)
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		e, ok := methods[r.Method]
		if !ok && r.Method == http.MethodHead {
			e, ok = methods[http.MethodGet]
		}
		if !ok {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			onErr(w, r, &Error{Status: http.StatusMethodNotAllowed, Reason: ReasonMethod, Msg: r.Method + " is not allowed here (" + strings.Join(allow, ", ") + ")"})
			return
		}
		var p *Principal
		if e.need != "" {
			var err error
			if p, err = auth(r, e.need); err != nil {
				onErr(w, r, err)
				return
			}
		}
		e.fn(w, r, p)
	})
}

// Reason is an error answer's reason, one word a client can switch on.
type Reason string

// The reasons of error answers (docs/fleet.md, "The console and the API").
const (
	ReasonUnauthenticated Reason = "unauthenticated" // 401: no, or a bad, token or session
	ReasonForbidden       Reason = "forbidden"       // 403: the role does not allow it
	ReasonCSRF            Reason = "csrf"            // 403: a console change without its CSRF token, or from another site
	ReasonNotFound        Reason = "not-found"       // 404
	ReasonMethod          Reason = "method"          // 405
	ReasonBadRequest      Reason = "bad-request"     // 400
	ReasonAmbiguous       Reason = "ambiguous"       // 400: an id prefix names several devices
	ReasonConflict        Reason = "conflict"        // 409: not from the state it is in
	ReasonRateLimited     Reason = "rate-limited"    // 429: too many failed log-ins
	ReasonInternal        Reason = "internal"        // 500
)

// Error is an error answer: {"error": Msg, "reason": Reason}.
type Error struct {
	Status int
	Reason Reason
	Msg    string
	// RetryAfter, if set, is sent as Retry-After (429).
	RetryAfter time.Duration
	// Kind and Detail name a typed error of the fleet and carry its
	// fields (typedErrors).
	Kind   string
	Detail any
}

func (e *Error) Error() string { return e.Msg }

// ErrorBody is the JSON of an error answer.
type ErrorBody struct {
	Error  string `json:"error"`
	Reason Reason `json:"reason"`
	// Kind names the fleet's typed error, and Detail holds its fields,
	// so a client gives the caller the same error the fleet of a
	// mirror directory gives (openapi.yaml, schema Error).
	Kind   string          `json:"kind,omitempty"`
	Detail json.RawMessage `json:"detail,omitempty"`
}

// asError maps an error of the stores to its answer, with the kind and
// fields of a typed error; an error it does not know is a 500 whose text
// stays in the log.
func (h *Handler) asError(err error) *Error {
	e := h.answerOf(err)
	if kind, detail := errorKind(err); kind != "" && e.Kind == "" && e.Status < 500 {
		c := *e
		c.Kind, c.Detail = kind, detail
		return &c
	}
	return e
}

func (h *Handler) answerOf(err error) *Error {
	var e *Error
	var nf *devices.NotFoundError
	var amb *devices.AmbiguousError
	var se *devices.StatusError
	var na *devices.NoAccountError
	if fe := fleetError(err); fe != nil {
		return fe
	}
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &nf), errors.As(err, &na):
		return &Error{Status: http.StatusNotFound, Reason: ReasonNotFound, Msg: err.Error()}
	case errors.As(err, &amb):
		return &Error{Status: http.StatusBadRequest, Reason: ReasonAmbiguous, Msg: err.Error()}
	case errors.As(err, &se):
		return &Error{Status: http.StatusConflict, Reason: ReasonConflict, Msg: err.Error()}
	case errors.Is(err, context.Canceled):
		return &Error{Status: http.StatusServiceUnavailable, Reason: ReasonInternal, Msg: "the request was cancelled"}
	}
	h.logf("operator request failed: %v", err)
	return &Error{Status: http.StatusInternalServerError, Reason: ReasonInternal, Msg: "the mirror could not do it; its log says why"}
}

func (h *Handler) jsonError(w http.ResponseWriter, _ *http.Request, err error) {
	e := h.asError(err)
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Round(time.Second)/time.Second)+1))
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
	}
	body := ErrorBody{Error: e.Msg, Reason: e.Reason, Kind: e.Kind}
	if e.Detail != nil {
		if d, err := json.Marshal(e.Detail); err == nil {
			body.Detail = d
		} else {
			body.Kind = ""
		}
	}
	writeJSON(w, e.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode the answer","reason":"internal"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// limited says whether client (and user, if given) may try to
// authenticate now: too many failures are answered 429.
func (h *Handler) limited(client, user string) error {
	now := h.now()
	wait := h.byClient.Wait(client, now)
	if user != "" {
		wait = max(wait, h.byUser.Wait(user, now))
	}
	if wait > 0 {
		return &Error{Status: http.StatusTooManyRequests, Reason: ReasonRateLimited, RetryAfter: wait,
			Msg: fmt.Sprintf("too many failed log-ins; try again in %s", wait.Round(time.Second)+time.Second)}
	}
	return nil
}

// failed charges a failed authentication to client and user.
func (h *Handler) failed(client, user string) {
	now := h.now()
	h.byClient.Allow(client, now)
	if user != "" {
		h.byUser.Allow(user, now)
	}
}

// tokenAuth authenticates an API request by its bearer token.
func (h *Handler) tokenAuth(r *http.Request, need devices.Role) (*Principal, error) {
	client := ratelimit.Client(r.RemoteAddr)
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, &Error{Status: http.StatusUnauthorized, Reason: ReasonUnauthenticated,
			Msg: "send an API token: Authorization: Bearer ferry_… ('ferry fleet tokens create')"}
	}
	if err := h.limited(client, ""); err != nil {
		return nil, err
	}
	p, err := h.o.Accounts.TokenPrincipal(r.Context(), strings.TrimSpace(token))
	if errors.Is(err, ErrBadToken) {
		h.failed(client, "")
		h.logf("API request from %s refused: %v", client, err)
		return nil, &Error{Status: http.StatusUnauthorized, Reason: ReasonUnauthenticated, Msg: err.Error()}
	}
	if err != nil {
		return nil, err
	}
	if !p.Can(need) {
		return nil, forbidden(p, need)
	}
	return p, nil
}

func forbidden(p *Principal, need devices.Role) error {
	return &Error{Status: http.StatusForbidden, Reason: ReasonForbidden,
		Msg: fmt.Sprintf("%s is %s here: this needs the %s role", p.Name, p.Role, need)}
}

// sameOrigin refuses a request whose Origin (sent by browsers on every
// POST) is another site.
func sameOrigin(r *http.Request) error {
	o := r.Header.Get("Origin")
	if o == "" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || u.Host != r.Host {
		return &Error{Status: http.StatusForbidden, Reason: ReasonCSRF, Msg: "a change from another site (Origin " + o + ") is refused"}
	}
	return nil
}
