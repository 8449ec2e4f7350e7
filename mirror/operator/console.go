package operator

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/fleet"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/internal/ratelimit"
)

//go:embed templates
var templateFS embed.FS

// contentSecurityPolicy lets a console page load its own style sheet
// and nothing else: no script at all, no frame, forms only to itself.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Cookie names; a session cookie over TLS takes the __Host- prefix
// (Secure, Path=/, no Domain: no other host may set or read it).
const (
	sessionCookie       = "ferry-session"
	secureSessionCookie = "__Host-ferry-session"
	loginCookie         = "ferry-login"
)

// pages are the console's templates, each the layout with its content.
var pages = func() map[string]*template.Template {
	funcs := template.FuncMap{
		"short": func(id string) string { return id[:min(len(id), 16)] },
		"time": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return display.Time(t)
		},
		"bytes":      func(n uint64) string { return display.Bytes(int64(n)) },
		"dash":       display.OrDash,
		"seconds":    func(s uint64) string { return (time.Duration(s) * time.Second).String() },
		"phaseState": phaseState,
		"duration":   duration,
		"inc":        func(i int) int { return i + 1 },
		"add":        func(a, b int) int { return a + b },
		"failing": func(r any) bool {
			switch r := r.(type) {
			case devices.Record:
				return fleet.Failing(&r)
			case *devices.Record:
				return fleet.Failing(r)
			}
			return false
		},
		"byStatus": func(m map[devices.Status]int, s string) int { return m[devices.Status(s)] },
		"dict": func(kv ...any) map[string]any {
			m := map[string]any{}
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i].(string)] = kv[i+1]
			}
			return m
		},
		// u shows text a device sent: control and bidirectional
		// characters escaped too (html/template escapes the markup).
		"u": func(s string) string { return display.Untrusted(display.OrDash(s)) },
	}
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	out := map[string]*template.Template{}
	names, _ := fs.Glob(templateFS, "templates/*.html")
	for _, n := range names {
		if n == "templates/layout.html" {
			continue
		}
		out[strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, n))
	}
	return out
}()

// view is what a page's template gets.
type view struct {
	Title string
	User  *Principal
	// CSRF is the token every form that changes something carries.
	CSRF string
	// Operator says whether to show the buttons that change things.
	Operator bool
	Data     any
}

func (h *Handler) consoleRoutes() {
	console := func(pattern string, methods map[string]endpoint) {
		h.handle(ConsolePrefix+pattern, h.sessionAuth, h.pageError, methods)
	}
	read := func(fn func(w http.ResponseWriter, r *http.Request, p *Principal)) endpoint {
		return endpoint{need: devices.ReadOnly, fn: fn}
	}
	change := func(fn func(w http.ResponseWriter, r *http.Request, p *Principal)) endpoint {
		return endpoint{need: devices.Operator, fn: fn}
	}
	console("style.css", map[string]endpoint{"GET": {fn: func(w http.ResponseWriter, r *http.Request, _ *Principal) {
		css, _ := templateFS.ReadFile("templates/style.css")
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(css)
	}}})
	console("login", map[string]endpoint{
		"GET":  {fn: func(w http.ResponseWriter, r *http.Request, _ *Principal) { h.loginPage(w, r, http.StatusOK, "") }},
		"POST": {fn: h.login},
	})
	console("logout", map[string]endpoint{"POST": read(h.logout)})
	console("{$}", map[string]endpoint{"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		v, err := h.overview(r.Context())
		if err != nil {
			h.pageError(w, r, err)
			return
		}
		h.render(w, r, p, http.StatusOK, "overview", "Fleet", v)
	})})
	h.consoleFleetRoutes(console, read, change)
	console("devices", map[string]endpoint{"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		recs, err := h.records(r)
		if err != nil {
			h.pageError(w, r, err)
			return
		}
		h.render(w, r, p, http.StatusOK, "devices", "Devices", recs)
	})})
	console("enrollments", map[string]endpoint{"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		recs, err := h.o.Fleet.Records(r.Context())
		if err != nil {
			h.pageError(w, r, err)
			return
		}
		pending := []devices.Record{}
		for _, rec := range recs {
			if rec.Status == devices.Pending {
				pending = append(pending, rec)
			}
		}
		devices.SortByStatus(pending)
		h.render(w, r, p, http.StatusOK, "enrollments", "Pending enrollments", pending)
	})})
	console("devices/{id}", map[string]endpoint{"GET": read(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		rec, hist, err := h.o.Fleet.Show(r.Context(), r.PathValue("id"))
		if err != nil {
			h.pageError(w, r, err)
			return
		}
		h.render(w, r, p, http.StatusOK, "device", "Device "+rec.ID[:16], DeviceDetail{Device: rec, History: hist})
	})})
	console("devices/{id}/{action}", map[string]endpoint{"POST": change(func(w http.ResponseWriter, r *http.Request, p *Principal) {
		action := r.PathValue("action")
		if _, ok := statusActions[action]; !ok {
			h.pageError(w, r, &Error{Status: http.StatusNotFound, Reason: ReasonNotFound, Msg: "no such action " + action})
			return
		}
		rec, err := h.setStatus(r, p, r.PathValue("id"), action)
		if err != nil {
			h.pageError(w, r, err)
			return
		}
		back := ConsolePrefix + "devices/" + rec.ID
		if r.PostFormValue("back") == "enrollments" {
			back = ConsolePrefix + "enrollments"
		}
		http.Redirect(w, r, back, http.StatusSeeOther)
	})})
	h.mux.HandleFunc(ConsolePrefix, func(w http.ResponseWriter, r *http.Request) {
		h.pageError(w, r, &Error{Status: http.StatusNotFound, Reason: ReasonNotFound, Msg: "no such page"})
	})
}

// secure says whether the request's cookies are Secure.
func (h *Handler) secure(r *http.Request) bool { return r.TLS != nil || h.o.SecureCookies }

func (h *Handler) sessionCookieName(r *http.Request) string {
	if h.secure(r) {
		return secureSessionCookie
	}
	return sessionCookie
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteStrictMode})
}

// sessionAuth authenticates a console request by its session cookie;
// a change (POST) must also carry the session's CSRF token and come from
// this site.
func (h *Handler) sessionAuth(r *http.Request, need devices.Role) (*Principal, error) {
	var secret string
	if c, err := r.Cookie(h.sessionCookieName(r)); err == nil {
		secret = c.Value
	}
	p, _, err := h.o.Accounts.SessionPrincipal(r.Context(), secret)
	if errors.Is(err, ErrNoSession) {
		return nil, &Error{Status: http.StatusUnauthorized, Reason: ReasonUnauthenticated, Msg: err.Error()}
	}
	if err != nil {
		return nil, err
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := sameOrigin(r); err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(p.csrf)) != 1 {
			h.logf("console change by %s refused: no valid CSRF token (%s %s)", p.Name, r.Method, r.URL.Path)
			return nil, &Error{Status: http.StatusForbidden, Reason: ReasonCSRF, Msg: "the form's CSRF token is missing or wrong: reload the page and try again"}
		}
	}
	if !p.Can(need) {
		h.logf("console change by %s refused: %s is %s (%s %s)", p.Name, p.Name, p.Role, r.Method, r.URL.Path)
		return nil, forbidden(p, need)
	}
	return p, nil
}

// pageError answers a console request that failed: to the log-in page
// for a GET without a session, else a page saying what went wrong.
func (h *Handler) pageError(w http.ResponseWriter, r *http.Request, err error) {
	e := h.asError(err)
	if e.Status == http.StatusUnauthorized && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		http.Redirect(w, r, ConsolePrefix+"login?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
		return
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(e.RetryAfter/time.Second)+1))
	}
	var p *Principal
	if c, cerr := r.Cookie(h.sessionCookieName(r)); cerr == nil {
		p, _, _ = h.o.Accounts.SessionPrincipal(r.Context(), c.Value)
	}
	h.render(w, r, p, e.Status, "error", http.StatusText(e.Status), e)
}

// render writes a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, p *Principal, status int, page, title string, data any) {
	v := view{Title: title, User: p, Data: data}
	if p != nil {
		v.CSRF, v.Operator = p.csrf, p.Can(devices.Operator)
	}
	var b bytes.Buffer
	if err := pages[page].Execute(&b, v); err != nil {
		h.logf("console page %s: %v", page, err)
		http.Error(w, "the page could not be made; the mirror's log says why", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(b.Bytes())
	}
}

// loginView is the log-in page's data.
type loginView struct {
	Token, Next, User, Problem string
}

// loginPage shows the log-in form with a fresh log-in token, which the
// form posts back beside the cookie of the same value (so another site
// cannot log a browser in to an account of its choosing).
func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request, status int, problem string) {
	tok := randomText(16)
	h.setCookie(w, r, loginCookie, tok, 3600)
	h.render(w, r, nil, status, "login", "Log in", loginView{Token: tok, Next: safeNext(r.FormValue("next")), User: r.PostFormValue("user"), Problem: problem})
}

// safeNext keeps a redirect after log-in on the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, ConsolePrefix) || strings.ContainsAny(next, "\\\r\n") || strings.Contains(next, "//") {
		return ConsolePrefix
	}
	return next
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request, _ *Principal) {
	if err := sameOrigin(r); err != nil {
		h.pageError(w, r, err)
		return
	}
	c, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("login"))) != 1 {
		h.pageError(w, r, &Error{Status: http.StatusForbidden, Reason: ReasonCSRF, Msg: "the log-in form is stale or did not come from this console (cookies must be on): load it again"})
		return
	}
	user, password := r.PostFormValue("user"), r.PostFormValue("password")
	client := ratelimit.Client(r.RemoteAddr)
	if err := h.limited(client, user); err != nil {
		h.logf("console log-in of %q from %s refused: too many failures", user, client)
		h.pageError(w, r, err)
		return
	}
	u, err := h.o.Accounts.Login(r.Context(), user, password)
	if errors.Is(err, ErrBadLogin) {
		h.failed(client, user)
		h.logf("console log-in of %q from %s failed: %v", user, client, err)
		h.loginPage(w, r, http.StatusUnauthorized, err.Error())
		return
	}
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	secret, _, err := h.o.Accounts.StartSession(r.Context(), u.Name)
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	h.setCookie(w, r, h.sessionCookieName(r), secret, int(SessionLifetime/time.Second))
	h.setCookie(w, r, loginCookie, "", -1)
	h.logf("%s (%s) logged in to the console from %s", u.Name, u.Role, client)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, p *Principal) {
	if c, err := r.Cookie(h.sessionCookieName(r)); err == nil {
		if err := h.o.Accounts.EndSession(r.Context(), c.Value); err != nil {
			h.pageError(w, r, err)
			return
		}
	}
	h.setCookie(w, r, h.sessionCookieName(r), "", -1)
	h.logf("%s logged out of the console", p.Name)
	http.Redirect(w, r, ConsolePrefix+"login", http.StatusSeeOther)
}
