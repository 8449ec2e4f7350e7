package operator

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/transport/checkin"
)

// artifactsEnv names a directory for the screenshots the browser tests
// keep; without it they go to a new directory under the system's
// temporary one. Either way the test logs where.
const artifactsEnv = "FERRY_TEST_ARTIFACTS"

// chrome is a headless Chromium driven over the DevTools protocol.
type chrome struct {
	t     *testing.T
	ctx   context.Context
	base  string // the console's server, http://127.0.0.1:PORT
	shots string
	n     atomic.Int32
}

func newChrome(t *testing.T, f *testMirror) *chrome {
	t.Helper()
	bin := testtool.Chromium(t)
	shots := os.Getenv(artifactsEnv)
	if shots == "" {
		var err error
		if shots, err = os.MkdirTemp("", "ferry-console-"); err != nil {
			t.Fatal(err)
		}
	}
	shots = filepath.Join(shots, t.Name())
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", shots)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true))
	// A deadline so a browser that hangs fails the test instead of the
	// whole run; it asserts nothing about speed.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	return &chrome{t: t, ctx: bctx, base: f.url, shots: shots}
}

// do runs steps, failing the test on an error.
func (c *chrome) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, steps...); err != nil {
		c.t.Fatalf("browser: %s: %v", what, err)
	}
}

// get runs an action that reads something, failing the test on an error.
func get[T any](c *chrome, what string, a chromedp.Action[T]) T {
	c.t.Helper()
	v, err := chromedp.Run(c.ctx, a)
	if err != nil {
		c.t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// open goes to a console page and waits for its heading.
func (c *chrome) open(path string) {
	c.t.Helper()
	c.do("open "+path, chromedp.Navigate(c.base+path), chromedp.WaitVisible(chromedp.CSS("h1")))
}

// shot keeps a screenshot of the whole page as NN-name.png.
func (c *chrome) shot(name string) {
	c.t.Helper()
	png := get(c, "screenshot "+name, chromedp.FullScreenshot(100))
	p := filepath.Join(c.shots, fmt.Sprintf("%02d-%s.png", c.n.Add(1), name))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// text is the text of the first element sel (CSS) matches.
func (c *chrome) text(sel string) string {
	c.t.Helper()
	return strings.TrimSpace(get(c, "text of "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// count is how many elements sel (CSS) matches.
func (c *chrome) count(sel string) int {
	c.t.Helper()
	return get(c, "count "+sel, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
}

// login logs in through the log-in form the console sends to.
func (c *chrome) login(user, password string) {
	c.t.Helper()
	c.do("log in as "+user,
		chromedp.Navigate(c.base+"/console/"),
		chromedp.WaitVisible(chromedp.ID("user")),
		chromedp.SendKeys(chromedp.ID("user"), user),
		chromedp.SendKeys(chromedp.ID("password"), password))
	c.shot("login-" + user)
	c.do("submit the log-in", chromedp.Click(chromedp.ID("login")), chromedp.WaitVisible(chromedp.ID("who")))
}

// submit clicks a button that posts a form and waits for the page after.
func (c *chrome) submit(sel string) {
	c.t.Helper()
	c.do("click "+sel, chromedp.Click(chromedp.CSS(sel)), chromedp.WaitNotPresent(chromedp.CSS(sel)), chromedp.WaitVisible(chromedp.CSS("h1")))
}

// forge posts a form the page did not offer (as a user could, with the
// browser's tools): to action, with the session's CSRF token when
// withCSRF, and returns the heading and reason of the page the console
// answers.
func (c *chrome) forge(action string, withCSRF bool) (title, reason string) {
	c.t.Helper()
	js := fmt.Sprintf(`(() => {
		const f = document.createElement("form");
		f.method = "post"; f.action = %q;
		if (%v) {
			const i = document.createElement("input");
			i.type = "hidden"; i.name = "csrf";
			i.value = document.querySelector('input[name="csrf"]').value;
			f.appendChild(i);
		}
		document.body.appendChild(f); f.submit(); return true; })()`, action, withCSRF)
	get(c, "forge a POST to "+action, chromedp.Evaluate[bool](js))
	c.do("wait for the answer", chromedp.WaitVisible(chromedp.ID("reason")))
	return c.text("h1"), c.text("#reason")
}

// TestBrowserEnrollment drives the console in a real Chromium: an
// operator logs in, sees the fleet (a failing device's hostile error
// shown as text), approves a pending device and logs out; a read-only
// user sees no buttons and a POST they forge is refused, as is an
// operator's POST without the CSRF token.
func TestBrowserEnrollment(t *testing.T) {
	f := newFleet(t, "sqlite")
	f.user("ana", devices.Operator)
	f.user("bo", devices.ReadOnly)
	ok, bad, fresh := newDevice("gw-ok"), newDevice("gw-bad"), newDevice("gw-new")
	f.enroll(ok, bad)
	hostile := `<script>document.title="pwned"</script><img src=x onerror="document.title='pwned'">`
	f.checkin(ok, nil)
	f.checkin(bad, func(inv *checkin.Inventory) {
		inv.Version, inv.Result, inv.Error, inv.Slot.Fallback = "1.1.0", "rolled-back", "health check: "+hostile, true
	})
	if got := f.checkin(fresh, nil); got != http.StatusAccepted {
		t.Fatalf("pending check-in: %d", got)
	}
	c := newChrome(t, f)

	c.login("ana", "ana-password!")
	if got := c.text("#who"); got != "ana · operator" {
		t.Errorf("logged in as %q", got)
	}
	if n, p, fl := c.text("#n-devices"), c.text("#n-pending"), c.text("#n-failing"); n != "3" || p != "1" || fl != "1" {
		t.Errorf("overview: %s devices, %s pending, %s failing; want 3, 1, 1", n, p, fl)
	}
	if got := c.text("#failing .error"); got != "health check: "+hostile {
		t.Errorf("the failing device's error reads %q", got)
	}
	title := get(c, "title", chromedp.Title())
	if title != "Fleet · ferry fleet" || c.count("script") != 0 || c.count("main img") != 0 {
		t.Errorf("the device's error became markup: title %q, %d scripts, %d images", title, c.count("script"), c.count("main img"))
	}
	c.shot("overview")

	c.open("/console/devices/" + bad.id)
	if got := c.text("#result"); got != "rolled-back" {
		t.Errorf("device page result %q", got)
	}
	c.shot("device")

	c.open("/console/enrollments")
	c.shot("enrollments")
	c.submit("#approve-" + fresh.id[:16])
	if got := c.text("#none-pending"); got != "No device is waiting." {
		t.Errorf("after approve, the enrollments page says %q", got)
	}
	if rec, _, _ := f.db.Show(context.Background(), fresh.id); rec.Status != devices.Enrolled {
		t.Errorf("approved in the browser, the device is %s", rec.Status)
	}

	// A POST without the CSRF token, in the operator's own browser.
	c.open("/console/devices/" + ok.id)
	if h, reason := c.forge("/console/devices/"+ok.id+"/revoke", false); h != "Forbidden" || reason != "csrf" {
		t.Errorf("a POST without the CSRF token: %q %q, want Forbidden csrf", h, reason)
	}
	c.shot("csrf-refused")
	c.open("/console/")
	c.submit("#logout")
	if c.count("#user") != 1 {
		t.Error("log-out did not lead to the log-in page")
	}

	// The read-only user: no buttons; a forged POST, token and all, is refused.
	c.login("bo", "bo-password!")
	c.open("/console/devices/" + ok.id)
	if n := c.count("main form, main button"); n != 0 {
		t.Errorf("a read-only user sees %d forms or buttons on a device page", n)
	}
	c.shot("read-only-device")
	if h, reason := c.forge("/console/devices/"+ok.id+"/revoke", true); h != "Forbidden" || reason != "forbidden" {
		t.Errorf("a read-only user's forged POST: %q %q, want Forbidden forbidden", h, reason)
	}
	c.shot("read-only-refused")
	if rec, _, _ := f.db.Show(context.Background(), ok.id); rec.Status != devices.Enrolled {
		t.Errorf("a refused POST changed the device: %s", rec.Status)
	}
}

// TestBrowserDeployment drives a phased rollout in a real Chromium: an
// operator makes a deployment of two phases (a canary, then the rest) in
// the console's form; the canary's failed health check pauses it by
// itself, and the page says why and shows the error; the operator
// resumes, then aborts it with a reason. A read-only user sees it without
// a button.
func TestBrowserDeployment(t *testing.T) {
	r := newRollout(t, "sqlite")
	c := newChrome(t, r.testMirror)
	c.login("ana", "ana-password!")
	c.open("/console/deployments")
	c.do("fill the deployment form",
		chromedp.SetValue(chromedp.ID("bundle"), "sim-os:2.0.0"),
		chromedp.SetValue(chromedp.ID("group"), "line-1"),
		chromedp.SetValue(chromedp.ID("phases"), "1,100%"),
		chromedp.SetValue(chromedp.ID("soak"), "1h"),
		chromedp.SetValue(chromedp.ID("maxFailures"), "0"))
	c.shot("deployment-form")
	c.submit("#create")
	if got := c.text("h1"); got != "Deployment 1" {
		t.Fatalf("after the form: %q", got)
	}
	if st, ph := c.text("#state"), c.text("#phase"); st != "running" || !strings.HasPrefix(ph, "1 of 2") {
		t.Errorf("new deployment: state %q, phase %q", st, ph)
	}
	c.shot("deployment-running")

	// The canary's health check fails: the deployment pauses by itself.
	var canary *device
	for _, tg := range r.detail(1).Targets {
		if tg.Phase == 0 {
			canary = r.byDevice(tg.Device)
		}
	}
	r.report(canary, 1, "rolled-back", `health check: <b>gateway</b> exited 3`)
	c.open("/console/deployments/1")
	if st := c.text("#state .badge"); st != "paused" {
		t.Errorf("after the canary failed: %q, want paused", st)
	}
	if reason := c.text("#state-reason"); !strings.Contains(reason, "1 of 1 devices failed, more than the 0 allowed") {
		t.Errorf("the pause's reason reads %q", reason)
	}
	if got := c.text("#failures .error"); got != `health check: <b>gateway</b> exited 3` {
		t.Errorf("the failure's error reads %q", got)
	}
	if c.count("main b") != 0 {
		t.Error("the device's error became markup")
	}
	c.shot("deployment-auto-paused")
	c.open("/console/")
	if got := c.text("#active .badge"); got != "paused" {
		t.Errorf("the overview shows the deployment %q", got)
	}
	c.shot("overview-paused")

	c.open("/console/deployments/1")
	c.submit("#resume")
	if st := c.text("#state .badge"); st != "running" {
		t.Errorf("after resume: %q", st)
	}
	c.do("give a reason", chromedp.SendKeys(chromedp.ID("abort-reason"), "bad build: gateway crashes on board-a"))
	c.submit("#abort")
	if st, reason := c.text("#state .badge"), c.text("#state-reason"); st != "aborted" || !strings.Contains(reason, "bad build: gateway crashes on board-a") {
		t.Errorf("after abort: %q %q", st, reason)
	}
	if n := c.count("main form"); n != 0 {
		t.Errorf("an aborted deployment still offers %d forms", n)
	}
	c.shot("deployment-aborted")
	if d := r.detail(1); d.Deployment.State != devices.Aborted {
		t.Errorf("the engine says %s", d.Deployment.State)
	}

	c.submit("#logout")
	c.login("bo", "bo-password!")
	c.open("/console/deployments")
	if n := c.count("main form"); n != 0 {
		t.Errorf("a read-only user gets %d forms on the deployments page", n)
	}
	c.open("/console/deployments/1")
	c.shot("deployment-read-only")
}
