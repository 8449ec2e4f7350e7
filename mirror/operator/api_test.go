package operator

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/fleet"
	"github.com/ferry-update/ferry/transport/checkin"
)

// TestAPIDevices drives the device endpoints of the live API on both
// backends: reads with a read-only token, enrollment changes with an
// operator's, and every refusal with its status and reason.
func TestAPIDevices(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		f := newFleet(t, backend)
		op := f.user("ana", devices.Operator)
		ro := f.user("bo", devices.ReadOnly)
		good, bad, stranger := newDevice("gw-1"), newDevice("gw-2"), newDevice("gw-3")
		f.enroll(good, bad)
		for _, c := range []struct {
			d    *device
			edit func(*checkin.Inventory)
			want int
		}{
			{good, nil, http.StatusNoContent},
			{bad, func(inv *checkin.Inventory) {
				inv.Result, inv.Error, inv.Version, inv.Slot.Fallback = "rolled-back", `health check failed: <b>svc</b> "down"`, "1.1.0", true
			}, http.StatusNoContent},
			{stranger, nil, http.StatusAccepted},
		} {
			if got := f.checkin(c.d, c.edit); got != c.want {
				t.Fatalf("check-in of %s: %d, want %d", c.d.name, got, c.want)
			}
		}

		var who Principal
		getJSON(t, f, "/api/v1/whoami", ro, http.StatusOK, &who)
		if who.Name != "bo" || who.Role != devices.ReadOnly || who.Via != "token" {
			t.Errorf("whoami = %+v", who)
		}
		var list DeviceList
		getJSON(t, f, "/api/v1/devices", ro, http.StatusOK, &list)
		if len(list.Devices) != 3 || list.Devices[0].ID != stranger.id || list.Devices[0].Status != devices.Pending {
			t.Fatalf("devices: %d, first %+v; want 3, the pending one first", len(list.Devices), list.Devices[0])
		}
		getJSON(t, f, "/api/v1/devices?status=enrolled", ro, http.StatusOK, &list)
		if len(list.Devices) != 2 {
			t.Errorf("enrolled devices: %d, want 2", len(list.Devices))
		}
		var sum fleet.Overview
		getJSON(t, f, "/api/v1/fleet", ro, http.StatusOK, &sum)
		if sum.Devices != 3 || sum.ByStatus[devices.Pending] != 1 || len(sum.Failing) != 1 || sum.Failing[0].ID != bad.id || !strings.Contains(sum.Failing[0].Inventory.Error, "<b>svc</b>") {
			t.Errorf("fleet summary = %+v", sum)
		}
		var detail DeviceDetail
		getJSON(t, f, "/api/v1/devices/"+bad.id[:10], ro, http.StatusOK, &detail)
		if detail.Device.ID != bad.id || len(detail.History) != 1 || detail.History[0].Inventory.Version != "1.1.0" {
			t.Errorf("device detail = %+v", detail)
		}

		// Changes: the read-only token may not; the operator's may.
		for _, c := range []struct {
			path, token string
			status      int
			reason      Reason
		}{
			{"/api/v1/devices/" + stranger.id + "/approve", "", http.StatusUnauthorized, ReasonUnauthenticated},
			{"/api/v1/devices/" + stranger.id + "/approve", "ferry_000000000000_nope", http.StatusUnauthorized, ReasonUnauthenticated},
			{"/api/v1/devices/" + stranger.id + "/approve", ro, http.StatusForbidden, ReasonForbidden},
			{"/api/v1/devices/" + good.id + "/reject", op, http.StatusConflict, ReasonConflict},
			{"/api/v1/devices/0123456789abcdef/approve", op, http.StatusNotFound, ReasonNotFound},
			{"/api/v1/devices/" + stranger.id[:8] + "/approve", op, http.StatusOK, ""},
			{"/api/v1/devices/" + bad.id + "/revoke", op, http.StatusOK, ""},
			{"/api/v1/devices/" + bad.id + "/approve", op, http.StatusConflict, ReasonConflict},
		} {
			resp, body := f.api("POST", c.path, c.token, nil)
			if resp.StatusCode != c.status {
				t.Errorf("POST %s: %d %s, want %d", c.path, resp.StatusCode, body, c.status)
				continue
			}
			if c.reason != "" {
				checkError(t, body, c.reason)
			}
		}
		rec, _, err := f.db.Show(context.Background(), stranger.id)
		if err != nil || rec.Status != devices.Enrolled {
			t.Errorf("after approve: %+v, %v", rec, err)
		}
		if !strings.Contains(f.logText(), "approve by ana (token)") {
			t.Errorf("the log does not say who approved:\n%s", f.logText())
		}
		if resp, body := f.api("DELETE", "/api/v1/devices/"+good.id, op, nil); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
			t.Errorf("DELETE: %d %v %s", resp.StatusCode, resp.Header, body)
		} else {
			checkError(t, body, ReasonMethod)
		}
		if resp, body := f.api("GET", "/api/v1/nothing", op, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("unknown path: %d %s", resp.StatusCode, body)
		}
		if resp, _ := f.api("GET", "/api/v1/devices", "", nil); resp.Header.Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
	})
}

// TestAPIRateLimit: failed tokens from one client are limited (429 with
// Retry-After, even for a good token), and the limit lets go in time.
func TestAPIRateLimit(t *testing.T) {
	f := newFleet(t, "sqlite")
	op := f.user("ana", devices.Operator)
	for i := range loginBurstClient {
		if resp, _ := f.api("GET", "/api/v1/whoami", "ferry_000000000000_guess", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad token %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	resp, body := f.api("GET", "/api/v1/whoami", op, nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("after %d failures: %d %s, want 429 with Retry-After", loginBurstClient, resp.StatusCode, body)
	}
	checkError(t, body, ReasonRateLimited)
	f.clock.Add(7 * time.Second)
	if resp, body := f.api("GET", "/api/v1/whoami", op, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("after the wait: %d %s", resp.StatusCode, body)
	}
}

func getJSON(t *testing.T, f *testMirror, path, token string, status int, v any) {
	t.Helper()
	resp, body := f.api("GET", path, token, nil)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d %s, want %d", path, resp.StatusCode, body, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

func checkError(t *testing.T, body []byte, reason Reason) {
	t.Helper()
	var e ErrorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Reason != reason || e.Error == "" {
		t.Errorf("error body %s: want reason %q and a message", body, reason)
	}
}
