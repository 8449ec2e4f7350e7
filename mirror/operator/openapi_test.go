package operator

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/ferry-update/ferry/devices"
)

// apiCall is one request of the OpenAPI test and the status it must get.
type apiCall struct {
	method, path, token string
	status              int
	// invalid: the request breaks the description on purpose (its
	// answer is still checked).
	invalid bool
	// body, of type contentType, is sent with the request.
	body, contentType string
}

// TestOpenAPI holds the live server to openapi.yaml: the file is a valid
// OpenAPI 3 document; every documented path, method and status code is
// answered (by a request made to get it) with the documented JSON
// shape; every route the server answers under /api/v1/ is documented;
// and no answer has a status the file does not list for it.
func TestOpenAPI(t *testing.T) {
	ctx := context.Background()
	for _, ct := range []string{"application/x-ndjson", "application/x-pem-file"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI 3 document: %v", err)
	}

	f := newFleet(t, "sqlite")
	doc.Servers = openapi3.Servers{{URL: f.url + "/api/v1"}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	op := f.user("ana", devices.Operator)
	ro := f.user("bo", devices.ReadOnly)
	good, stranger, gone := newDevice("gw-1"), newDevice("gw-2"), newDevice("gw-3")
	f.enroll(good, gone)
	f.checkin(good, nil)
	f.checkin(stranger, nil)
	if _, err := f.db.SetStatus(ctx, gone.id, devices.Revoked, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	twin := twinPrefix(t, f, good.id)
	unknown := "0123456789abcdef"

	calls := []apiCall{
		{method: "GET", path: "/openapi.yaml", status: 200},
		{method: "GET", path: "/whoami", token: ro, status: 200},
		{method: "GET", path: "/whoami", status: 401},
		{method: "GET", path: "/fleet", token: ro, status: 200},
		{method: "GET", path: "/fleet", token: "ferry_000000000000_x", status: 401},
		{method: "GET", path: "/devices", token: ro, status: 200},
		{method: "GET", path: "/devices?status=pending", token: ro, status: 200},
		{method: "GET", path: "/devices?status=lost", token: ro, status: 400, invalid: true},
		{method: "GET", path: "/devices", status: 401},
		{method: "GET", path: "/devices/" + good.id, token: ro, status: 200},
		{method: "GET", path: "/devices/" + twin, token: ro, status: 400},
		{method: "GET", path: "/devices/" + unknown, token: ro, status: 404},
		{method: "GET", path: "/devices/" + good.id, status: 401},
	}
	for _, action := range []string{"approve", "reject", "revoke"} {
		calls = append(calls,
			apiCall{method: "POST", path: "/devices/" + twin + "/" + action, token: op, status: 400},
			apiCall{method: "POST", path: "/devices/" + good.id + "/" + action, status: 401},
			apiCall{method: "POST", path: "/devices/" + good.id + "/" + action, token: ro, status: 403},
			apiCall{method: "POST", path: "/devices/" + unknown + "/" + action, token: op, status: 404})
	}
	calls = append(calls,
		apiCall{method: "POST", path: "/devices/" + gone.id + "/approve", token: op, status: 409},
		apiCall{method: "POST", path: "/devices/" + good.id + "/reject", token: op, status: 409},
		apiCall{method: "POST", path: "/devices/" + stranger.id + "/reject", token: op, status: 200},
		apiCall{method: "POST", path: "/devices/" + stranger.id + "/approve", token: op, status: 200},
		apiCall{method: "POST", path: "/devices/" + stranger.id + "/revoke", token: op, status: 200},
	)
	pemList := string(pemPublicKey(t, newDevice("gw-9")))
	calls = append(calls,
		apiCall{method: "POST", path: "/enrollments", token: op, status: 200, body: pemList, contentType: "application/x-pem-file"},
		apiCall{method: "POST", path: "/enrollments", token: op, status: 400, body: "{\"publicKey\": 1}\n", contentType: "application/x-ndjson"},
		apiCall{method: "POST", path: "/enrollments", token: ro, status: 403, body: pemList, contentType: "application/x-pem-file"},
		apiCall{method: "POST", path: "/enrollments", status: 401, body: pemList, contentType: "application/x-pem-file"},
	)
	cy := f.user("cy", devices.Operator)
	f.addBundle("sim-os", "2.0.0")
	js := func(method, path, token string, status int, body string) apiCall {
		return apiCall{method: method, path: path, token: token, status: status, body: body, contentType: "application/json"}
	}
	deploy := `{"bundle": "sim-os:2.0.0", "group": "line-1", "phases": [{"size": "1", "soak": "1h0m0s", "maxFailures": "0"}]}`
	calls = append(calls,
		apiCall{method: "GET", path: "/groups", token: ro, status: 200},
		apiCall{method: "GET", path: "/groups", status: 401},
		js("PUT", "/groups/line-1", op, 200, `{"kind": "static", "devices": ["`+good.id+`"]}`),
		js("PUT", "/groups/line-1", ro, 403, `{"kind": "static", "devices": ["`+good.id+`"]}`),
		js("PUT", "/groups/line-1", "", 401, `{"kind": "static", "devices": ["`+good.id+`"]}`),
		js("PUT", "/groups/bad", op, 400, `{"kind": "dynamic", "filter": "site = = x"}`),
		apiCall{method: "GET", path: "/groups/line-1", token: ro, status: 200},
		apiCall{method: "GET", path: "/groups/nope", token: ro, status: 404},
		apiCall{method: "GET", path: "/groups/line-1", status: 401},
		js("PUT", "/groups/tmp", op, 200, `{"kind": "dynamic", "filter": "site = plant-9"}`),
		apiCall{method: "DELETE", path: "/groups/tmp", token: ro, status: 403},
		apiCall{method: "DELETE", path: "/groups/tmp", status: 401},
		apiCall{method: "DELETE", path: "/groups/tmp", token: op, status: 204},
		apiCall{method: "DELETE", path: "/groups/tmp", token: op, status: 404},
		js("POST", "/devices/"+good.id+"/labels", op, 200, `{"set": {"site": "plant-2"}}`),
		js("POST", "/devices/"+good.id+"/labels", op, 400, `{"set": {"Not A Key": "x"}}`),
		js("POST", "/devices/"+good.id+"/labels", ro, 403, `{"set": {"site": "plant-3"}}`),
		js("POST", "/devices/"+good.id+"/labels", "", 401, `{"set": {"site": "plant-3"}}`),
		js("POST", "/devices/"+unknown+"/labels", op, 404, `{"set": {"site": "plant-3"}}`),
		apiCall{method: "GET", path: "/settings", token: ro, status: 200},
		apiCall{method: "GET", path: "/settings", status: 401},
		js("PUT", "/settings", op, 200, `{"requireApproval": false}`),
		js("PUT", "/settings", ro, 403, `{"requireApproval": false}`),
		js("PUT", "/settings", "", 401, `{"requireApproval": false}`),
		apiCall{method: "PUT", path: "/settings", token: op, status: 400, body: `{"requireApproval": "yes"}`, contentType: "application/json", invalid: true},
		apiCall{method: "GET", path: "/deployments", token: ro, status: 200},
		apiCall{method: "GET", path: "/deployments", status: 401},
		js("POST", "/deployments", op, 201, deploy), // 1, running
		js("POST", "/deployments", ro, 403, deploy),
		js("POST", "/deployments", "", 401, deploy),
		js("POST", "/deployments", op, 400, `{"bundle": "sim-os:2.0.0", "phases": [{"size": "1"}]}`),
		js("POST", "/deployments", op, 404, `{"bundle": "sim-os:2.0.0", "group": "nope", "phases": [{"size": "1"}]}`),
		apiCall{method: "GET", path: "/deployments/1", token: ro, status: 200},
		apiCall{method: "GET", path: "/relay/assignments", token: ro, status: 200},
		apiCall{method: "GET", path: "/relay/assignments", status: 401},
		apiCall{method: "GET", path: "/deployments/99", token: ro, status: 404},
		apiCall{method: "GET", path: "/deployments/1", status: 401},
	)
	for _, action := range []string{"pause", "resume", "abort", "approve"} {
		calls = append(calls,
			js("POST", "/deployments/1/"+action, ro, 403, `{}`),
			js("POST", "/deployments/1/"+action, "", 401, `{}`),
			js("POST", "/deployments/99/"+action, op, 404, `{}`))
	}
	calls = append(calls,
		js("POST", "/deployments/1/pause", op, 200, `{"reason": "lunch"}`),
		js("POST", "/deployments/1/pause", op, 409, `{"reason": "lunch"}`),
		js("POST", "/deployments/1/resume", op, 200, `{}`),
		js("POST", "/deployments/1/resume", op, 409, `{}`),
		js("POST", "/deployments/1/abort", op, 200, `{"reason": "bad build"}`),
		js("POST", "/deployments/1/abort", op, 409, `{}`),
		js("PUT", "/settings", op, 200, `{"requireApproval": true}`),
		js("POST", "/deployments", op, 201, deploy), // 2, awaiting approval
		js("POST", "/deployments/2/approve", op, 403, `{}`),
		js("POST", "/deployments/2/approve", cy, 200, `{}`),
		js("POST", "/deployments/2/approve", cy, 409, `{}`),
	)
	// Last: failures enough to be limited (the limit is per client),
	// from a full bucket.
	calls = append(calls, apiCall{method: "refill"})
	for range loginBurstClient {
		calls = append(calls, apiCall{method: "GET", path: "/whoami", token: "ferry_000000000000_guess", status: 401})
	}
	calls = append(calls, apiCall{method: "GET", path: "/whoami", token: ro, status: 429})

	answered := map[string]bool{}
	for _, c := range calls {
		if c.method == "refill" {
			f.clock.Add(time.Hour)
			continue
		}
		status := checkCall(t, f, router, c)
		if status != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, status, c.status)
		}
		answered[c.method+" "+strings.SplitN(c.path, "?", 2)[0]+" "+strconv.Itoa(status)] = true
	}

	// Every documented path, method and status was answered.
	for path, item := range doc.Paths.Map() {
		for method, o := range item.Operations() {
			for code := range o.Responses.Map() {
				concrete := strings.NewReplacer("{id}", good.id).Replace(path)
				found := false
				for k := range answered {
					if m, p, ok := cutCall(k); ok && m == method && matches(path, p) && strings.HasSuffix(k, " "+code) {
						found = true
					}
				}
				if !found {
					t.Errorf("documented but never answered in this test: %s %s %s (e.g. %s)", method, path, code, concrete)
				}
			}
		}
	}
	// Every route the server answers is documented, and the other way round.
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+APIPrefix[:len(APIPrefix)-1]+path] = true
		}
	}
	served := map[string]bool{}
	for _, r := range f.op.Routes() {
		served[r.Method+" "+r.Pattern] = true
		if !documented[r.Method+" "+r.Pattern] {
			t.Errorf("served but not in openapi.yaml: %s %s", r.Method, r.Pattern)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("in openapi.yaml but not served: %s", k)
		}
	}
	// A route's security in the file says what the server asks.
	for _, r := range f.op.Routes() {
		route, _, err := router.FindRoute(httptest(r.Method, f.url+strings.ReplaceAll(r.Pattern, "{id}", good.id)))
		if err != nil {
			t.Errorf("%s %s: %v", r.Method, r.Pattern, err)
			continue
		}
		sec := doc.Security
		if route.Operation.Security != nil {
			sec = *route.Operation.Security
		}
		if public := len(sec) == 0; public != (r.Need == "") {
			t.Errorf("%s %s: the file says public=%v, the server needs %q", r.Method, r.Pattern, public, r.Need)
		}
	}
}

func httptest(method, url string) *http.Request {
	req, _ := http.NewRequest(method, url, nil)
	return req
}

// checkCall makes c on the live server and checks request and answer
// against the description; it returns the status.
func checkCall(t *testing.T, f *testMirror, router routers.Router, c apiCall) int {
	t.Helper()
	ctx := context.Background()
	var send io.Reader
	if c.body != "" {
		send = strings.NewReader(c.body)
	}
	resp, body := f.request(c.method, "/api/v1"+c.path, c.token, c.contentType, send)
	req, _ := http.NewRequest(c.method, f.url+"/api/v1"+c.path, strings.NewReader(c.body))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Errorf("%s %s: not in openapi.yaml: %v", c.method, c.path, err)
		return resp.StatusCode
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}}
	if err := openapi3filter.ValidateRequest(ctx, in); (err != nil) != c.invalid {
		t.Errorf("%s %s: request valid=%v, want %v: %v", c.method, c.path, err == nil, !c.invalid, err)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: in.Options}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s %s → %d: the answer does not follow openapi.yaml: %v\n%s", c.method, c.path, resp.StatusCode, err, trim(body))
	}
	return resp.StatusCode
}

func trim(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// cutCall splits an "METHOD PATH STATUS" key.
func cutCall(k string) (method, path string, ok bool) {
	f := strings.Fields(k)
	if len(f) != 3 {
		return "", "", false
	}
	return f[0], f[1], true
}

// matches reports whether a concrete path fits a documented one.
func matches(pattern, path string) bool {
	ps, qs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(qs) {
		return false
	}
	for i := range ps {
		if !strings.HasPrefix(ps[i], "{") && ps[i] != qs[i] {
			return false
		}
	}
	return true
}

// twinPrefix writes a second device whose id shares the first 12 hex
// digits of id straight into the SQLite database (no key makes such a
// twin in reasonable time), and returns that prefix: it names both.
func twinPrefix(t *testing.T, f *testMirror, id string) string {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(f.store.Dir(), devices.File))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	twin := id[:12] + strings.Repeat("0", 52)
	if twin == id {
		twin = id[:12] + strings.Repeat("1", 52)
	}
	if _, err := db.Exec(`INSERT INTO fleet_devices (device_id, public_key, status, name, device_type, enrolled_by, status_at, first_seen, last_seen, remote, counter, checkins, contacts, inventory)
		VALUES (?, ?, 'pending', 'twin', 'board-a', '', ?, 0, 0, '', 0, 0, 0, '')`, twin, bytes.Repeat([]byte{1}, 32), time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	return id[:12]
}
