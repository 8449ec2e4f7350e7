package operator

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/transport/checkin"
)

// TestConsoleSession: log-in, the session cookie's attributes, log-out,
// and a page without a session sending to the log-in page.
func TestConsoleSession(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		f := newFleet(t, backend)
		f.user("ana", devices.Operator)
		b := f.browser()
		resp, _ := b.do("GET", "/console/devices", nil, nil)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login?next=%2Fconsole%2Fdevices" {
			t.Fatalf("a page without a session: %d to %q, want 303 to the log-in page", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, csrf := b.login("ana", "ana-password!")
		if resp.StatusCode != http.StatusSeeOther || csrf == "" {
			t.Fatalf("log-in: %d, csrf %q", resp.StatusCode, csrf)
		}
		var session *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == sessionCookie {
				session = c
			}
		}
		if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || session.Secure {
			t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/ (not Secure on plain http)", session)
		}
		resp, page := b.do("GET", "/console/", nil, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="who">ana · operator`) {
			t.Fatalf("overview: %d\n%s", resp.StatusCode, page)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("CSP %q: want default-src 'none' and no script source", csp)
		}
		if strings.Contains(strings.ToLower(page), "<script") {
			t.Error("a console page carries a script")
		}
		resp, _ = b.do("POST", "/console/logout", url.Values{"csrf": {csrf}}, nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("log-out: %d", resp.StatusCode)
		}
		// The old cookie, sent again, names no session.
		old := f.browser()
		old.c.Jar.SetCookies(&url.URL{Scheme: "http", Host: strings.TrimPrefix(f.url, "http://")}, []*http.Cookie{session})
		if resp, _ := old.do("GET", "/console/", nil, nil); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("the session cookie works after log-out: %d", resp.StatusCode)
		}
	})
}

// TestConsoleSecureCookie: behind TLS (here: said so) the session cookie
// is Secure and takes the __Host- prefix.
func TestConsoleSecureCookie(t *testing.T) {
	f := newFleet(t, "sqlite")
	f.user("ana", devices.Operator)
	f.op.o.SecureCookies = true
	b := f.browser()
	_, page := b.do("GET", "/console/login", nil, nil)
	resp, _ := b.do("POST", "/console/login", url.Values{"login": {hidden(page, "login")}, "user": {"ana"}, "password": {"ana-password!"}}, nil)
	found := false
	for _, c := range resp.Cookies() {
		if c.Name == secureSessionCookie && c.Secure && c.HttpOnly && c.Path == "/" && c.SameSite == http.SameSiteStrictMode {
			found = true
		}
	}
	if resp.StatusCode != http.StatusSeeOther || !found {
		t.Errorf("log-in behind TLS: %d, cookies %v; want a Secure __Host- session cookie", resp.StatusCode, resp.Header["Set-Cookie"])
	}
}

// TestConsoleLoginLimits: wrong passwords are limited per account (and
// per client): the right password is refused while the limit holds, and
// taken once it lets go. A log-in form that did not come from the
// console is refused.
func TestConsoleLoginLimits(t *testing.T) {
	f := newFleet(t, "sqlite")
	f.user("ana", devices.Operator)
	b := f.browser()
	for i := range loginBurstUser {
		if resp, _ := b.login("ana", "guess-"+string(rune('a'+i))+"-password"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	resp, _ := b.login("ana", "ana-password!")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the right password while limited: %d, want 429 with Retry-After", resp.StatusCode)
	}
	if !strings.Contains(f.logText(), `console log-in of "ana" from 127.0.0.1 refused: too many failures`) {
		t.Errorf("the log does not say so:\n%s", f.logText())
	}
	f.clock.Add(31 * time.Second)
	if resp, csrf := b.login("ana", "ana-password!"); resp.StatusCode != http.StatusSeeOther || csrf == "" {
		t.Errorf("after the wait: %d", resp.StatusCode)
	}

	// Login CSRF: without the form's token, or from another site.
	c := f.browser()
	_, page := c.do("GET", "/console/login", nil, nil)
	for name, tc := range map[string]struct {
		form url.Values
		hdr  map[string]string
	}{
		"no token":     {url.Values{"user": {"ana"}, "password": {"ana-password!"}}, nil},
		"wrong token":  {url.Values{"login": {"x" + hidden(page, "login")}, "user": {"ana"}, "password": {"ana-password!"}}, nil},
		"another site": {url.Values{"login": {hidden(page, "login")}, "user": {"ana"}, "password": {"ana-password!"}}, map[string]string{"Origin": "http://evil.example"}},
	} {
		resp, page := c.do("POST", "/console/login", tc.form, tc.hdr)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, `id="reason">csrf<`) {
			t.Errorf("%s: %d, want 403 csrf", name, resp.StatusCode)
		}
	}
}

// TestConsoleChanges: only an operator's form with the session's CSRF
// token changes anything; a read-only user's forged POST is refused, and
// so is a POST without the token or from another site. Nothing changes.
func TestConsoleChanges(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		f := newFleet(t, backend)
		f.user("ana", devices.Operator)
		f.user("bo", devices.ReadOnly)
		pending := newDevice("gw-new")
		if got := f.checkin(pending, nil); got != http.StatusAccepted {
			t.Fatalf("check-in: %d", got)
		}
		op, ro := f.browser(), f.browser()
		_, opCSRF := op.login("ana", "ana-password!")
		_, roCSRF := ro.login("bo", "bo-password!")

		_, page := ro.do("GET", "/console/enrollments", nil, nil)
		if !strings.Contains(page, pending.id[:16]) || strings.Contains(page, "approve-") || strings.Contains(page, "<button type=\"submit\" class=\"approve") {
			t.Errorf("a read-only user's enrollments page: the device missing, or change buttons shown\n%s", page)
		}
		_, page = op.do("GET", "/console/enrollments", nil, nil)
		if !strings.Contains(page, `id="approve-`+pending.id[:16]+`"`) {
			t.Errorf("an operator's enrollments page has no approve button\n%s", page)
		}

		approve := "/console/devices/" + pending.id + "/approve"
		for name, tc := range map[string]struct {
			b      *browser
			form   url.Values
			hdr    map[string]string
			reason string
		}{
			"read-only, forged": {ro, url.Values{"csrf": {roCSRF}}, nil, "forbidden"},
			"no CSRF token":     {op, url.Values{}, nil, "csrf"},
			"wrong CSRF token":  {op, url.Values{"csrf": {roCSRF}}, nil, "csrf"},
			"another site":      {op, url.Values{"csrf": {opCSRF}}, map[string]string{"Origin": "http://evil.example"}, "csrf"},
		} {
			resp, page := tc.b.do("POST", approve, tc.form, tc.hdr)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, `id="reason">`+tc.reason+`<`) {
				t.Errorf("%s: %d, want 403 %s", name, resp.StatusCode, tc.reason)
			}
		}
		if rec, _, _ := f.db.Show(context.Background(), pending.id); rec.Status != devices.Pending {
			t.Fatalf("a refused POST changed the device: %s", rec.Status)
		}
		resp, _ := op.do("POST", approve, url.Values{"csrf": {opCSRF}, "back": {"enrollments"}}, map[string]string{"Origin": f.url})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/enrollments" {
			t.Fatalf("approve: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if rec, _, _ := f.db.Show(context.Background(), pending.id); rec.Status != devices.Enrolled {
			t.Errorf("after approve: %s", rec.Status)
		}
		if log := f.logText(); !strings.Contains(log, "approve by ana (session)") || !strings.Contains(log, "console change by bo refused") {
			t.Errorf("the log lacks the change or the refusal:\n%s", log)
		}
	})
}

// TestConsoleEscapes: text from devices is shown as text. A signed report
// carries free text only in its error; names are checked by the
// check-in parser, so a hostile name is written straight into the
// database (as a damaged or future database might hold it).
func TestConsoleEscapes(t *testing.T) {
	f := newFleet(t, "sqlite")
	f.user("ana", devices.Operator)
	d := newDevice("gw-1")
	f.enroll(d)
	hostile := `<script>document.title="pwned"</script><img src=x onerror=alert(1)>` + "\u202e"
	if got := f.checkin(d, func(inv *checkin.Inventory) { inv.Result, inv.Error = "failed", hostile }); got != http.StatusNoContent {
		t.Fatalf("check-in: %d", got)
	}
	x := newDevice("x")
	inv := &checkin.Inventory{Mirror: f.mirrorID, Device: x.id, PublicKey: x.key.Public().(ed25519.PublicKey), Counter: 1, Time: time.Now(),
		Name: "<script>", DeviceType: "board-a", AgentVersion: "a", Version: "1.0.0", Result: "idle"}
	if _, err := checkin.Sign(inv, x.key); err == nil {
		t.Error("a check-in named <script> is signed, so a mirror would parse it")
	}
	db, err := sql.Open("sqlite", filepath.Join(f.store.Dir(), devices.File))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE fleet_devices SET name = ? WHERE device_id = ?`, hostile, d.id); err != nil {
		t.Fatal(err)
	}
	b := f.browser()
	b.login("ana", "ana-password!")
	for _, path := range []string{"/console/", "/console/devices", "/console/devices/" + d.id} {
		_, page := b.do("GET", path, nil, nil)
		low := strings.ToLower(page)
		if strings.Contains(low, "<script") || strings.Contains(low, "<img") || strings.Contains(page, "\u202e") {
			t.Errorf("%s: device text became markup (or kept its bidi override)", path)
		}
		if !strings.Contains(page, "&lt;script&gt;document.title=") {
			t.Errorf("%s: the hostile text is not shown escaped", path)
		}
	}
}
