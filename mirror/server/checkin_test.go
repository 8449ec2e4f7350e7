package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/checkin"
)

func checkinServer(t *testing.T) (*mirror.Store, *devices.DB, string) {
	t.Helper()
	s := newStore(t)
	d, err := devices.OpenDir(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	srv := httptest.NewServer(server.NewHandler(s, server.HandlerOptions{Devices: d, AcceptLegacy: true}))
	t.Cleanup(srv.Close)
	return s, d, srv.URL
}

func post(t *testing.T, u, contentType, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(u+checkin.Path, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCheckinValidation(t *testing.T) {
	_, d, u := checkinServer(t)
	good := `{"deviceId":"gw-0001","deviceType":"board-a","bundle":"gateway","version":"1.4.2","result":"committed","time":"2026-05-01T12:00:00Z"}`
	cases := []struct {
		name, contentType, body string
		status                  int
		msg                     string
	}{
		{"valid", "application/json", good, http.StatusNoContent, ""},
		{"valid, unknown fields ignored, no bundle", "application/json", `{"deviceId":"gw-0002","deviceType":"board-a","version":"0.9.0","result":"idle","time":"2026-05-01T12:00:00Z","uptime":12}`, http.StatusNoContent, ""},
		{"bad JSON", "application/json", `{"deviceId":`, http.StatusBadRequest, "not JSON"},
		{"not an object", "application/json", `["gw"]`, http.StatusBadRequest, "want a JSON object"},
		{"trailing data", "application/json", good + `{}`, http.StatusBadRequest, "data after"},
		{"wrong type", "application/json", strings.Replace(good, `"1.4.2"`, `142`, 1), http.StatusBadRequest, "cannot unmarshal"},
		{"missing device id", "application/json", strings.Replace(good, `"deviceId":"gw-0001",`, ``, 1), http.StatusBadRequest, "deviceId: missing"},
		{"missing device type", "application/json", strings.Replace(good, `"deviceType":"board-a",`, ``, 1), http.StatusBadRequest, "deviceType: missing"},
		{"missing version", "application/json", strings.Replace(good, `"version":"1.4.2",`, ``, 1), http.StatusBadRequest, "version: missing"},
		{"missing result", "application/json", strings.Replace(good, `"result":"committed",`, ``, 1), http.StatusBadRequest, "result: missing"},
		{"missing time", "application/json", strings.Replace(good, `,"time":"2026-05-01T12:00:00Z"`, ``, 1), http.StatusBadRequest, "time: missing"},
		{"bad device id", "application/json", strings.Replace(good, `gw-0001`, `gw 0001/../x`, 1), http.StatusBadRequest, "deviceId"},
		{"huge error text", "application/json", strings.Replace(good, `}`, `,"error":"`+strings.Repeat("x", 5000)+`"}`, 1), http.StatusBadRequest, "error: 5000 bytes"},
		{"huge body", "application/json", strings.Replace(good, `}`, `,"pad":"`+strings.Repeat("x", 20<<10)+`"}`, 1), http.StatusRequestEntityTooLarge, "larger than"},
		{"wrong content type", "text/plain", good, http.StatusUnsupportedMediaType, "application/json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := post(t, u, c.contentType, c.body)
			if status != c.status || !strings.Contains(body, c.msg) {
				t.Errorf("got %d %s, want %d and %q", status, body, c.status, c.msg)
			}
			if status >= 400 {
				var e struct{ Error string }
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
					t.Errorf("error body %q is not {\"error\": ...}", body)
				}
			}
		})
	}
	t.Run("GET is not allowed", func(t *testing.T) {
		resp, err := http.Get(u + checkin.Path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
			t.Errorf("GET: %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
		}
	})
	ds, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].ID != "gw-0001" || ds[0].Version != "1.4.2" || ds[0].Result != "committed" || ds[0].Bundle != "gateway" ||
		!ds[0].ReportedAt.Equal(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)) || ds[0].Remote != "127.0.0.1" || ds[1].ID != "gw-0002" || ds[1].Bundle != "" {
		t.Errorf("stored: %+v", ds)
	}
}

func TestCheckinStorage(t *testing.T) {
	s, d, u := checkinServer(t)
	ctx := context.Background()
	// 20 devices report at once, 6 times each; the last report says what
	// each runs now.
	const nDevices, reports = 20, 6
	var wg sync.WaitGroup
	errs := make(chan error, nDevices*reports)
	for i := range nDevices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range reports {
				r := &checkin.Report{
					DeviceID: fmt.Sprintf("dev-%03d", i), DeviceType: "board-a", Bundle: "gateway",
					Version: fmt.Sprintf("1.%d.0", j), Result: "committed", Time: time.Now(),
				}
				if j == reports-1 && i%2 == 1 {
					r.Result, r.Error = "rolled-back", "health check failed: service gatewayd not running"
				}
				if err := checkin.Post(ctx, nil, u, r); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ds, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != nDevices {
		t.Fatalf("%d devices stored, want %d", len(ds), nDevices)
	}
	for i, dv := range ds {
		if dv.ID != fmt.Sprintf("dev-%03d", i) || dv.Version != "1.5.0" || dv.Checkins != reports || dv.LastSeen.IsZero() {
			t.Errorf("device %d: %+v", i, dv)
		}
		if (i%2 == 1) != (dv.Result == "rolled-back" && strings.Contains(dv.Error, "health check")) {
			t.Errorf("device %d: result %s, error %q", i, dv.Result, dv.Error)
		}
	}

	t.Run("history is capped per device", func(t *testing.T) {
		for j := range devices.HistoryPerDevice + 7 {
			r := &checkin.Report{DeviceID: "chatty", DeviceType: "board-a", Version: fmt.Sprintf("0.0.%d", j), Result: "idle", Time: time.Now()}
			if err := d.Record(r, time.Now(), "test"); err != nil {
				t.Fatal(err)
			}
		}
		h, err := d.History("chatty")
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != devices.HistoryPerDevice || h[0].Version != fmt.Sprintf("0.0.%d", devices.HistoryPerDevice+6) || h[len(h)-1].Version != "0.0.7" {
			t.Errorf("history: %d entries, newest %s, oldest %s", len(h), h[0].Version, h[len(h)-1].Version)
		}
	})

	t.Run("an older report arriving later does not roll the state back", func(t *testing.T) {
		now := time.Now()
		for _, r := range []*checkin.Report{
			{DeviceID: "field-7", DeviceType: "board-a", Version: "2.0.0", Result: "committed", Time: now},
			{DeviceID: "field-7", DeviceType: "board-a", Version: "1.0.0", Result: "committed", Time: now.Add(-time.Hour)},
		} {
			if err := d.Record(r, now, "stick"); err != nil {
				t.Fatal(err)
			}
		}
		ds, err := d.List()
		if err != nil {
			t.Fatal(err)
		}
		for _, dv := range ds {
			if dv.ID == "field-7" && (dv.Version != "2.0.0" || dv.Checkins != 2) {
				t.Errorf("field-7: version %s after %d reports, want 2.0.0 after 2", dv.Version, dv.Checkins)
			}
		}
	})

	t.Run("listing from another handle while the server writes", func(t *testing.T) {
		ds, err := devices.ListDir(s.Dir())
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != nDevices+2 {
			t.Errorf("ListDir: %d devices", len(ds))
		}
	})

	t.Run("no database: no devices", func(t *testing.T) {
		ds, err := devices.ListDir(newStore(t).Dir())
		if err != nil || len(ds) != 0 {
			t.Errorf("ListDevices of a new mirror: %v, %v", ds, err)
		}
	})

	t.Run("without a database check-ins are 404", func(t *testing.T) {
		srv := httptest.NewServer(server.NewHandler(s, server.HandlerOptions{}))
		defer srv.Close()
		if status, _ := post(t, srv.URL, "application/json", `{}`); status != http.StatusNotFound {
			t.Errorf("status %d", status)
		}
	})
}

// TestCheckinForgedTime: a report dated far ahead is refused, and one dated
// ahead within MaxClockAhead cannot pin a device's record: the mirror's
// clock orders the reports, and the record keeps both times.
func TestCheckinForgedTime(t *testing.T) {
	_, d, u := checkinServer(t)
	status, body := post(t, u, "application/json",
		`{"deviceId":"gw-0001","deviceType":"board-a","version":"6.6.6","result":"committed","time":"9999-12-31T00:00:00Z"}`)
	if status != http.StatusBadRequest || !strings.Contains(body, "ahead of the mirror's clock") {
		t.Errorf("report dated 9999: %d %s, want 400", status, body)
	}
	if ds, _ := d.List(); len(ds) != 0 {
		t.Errorf("the refused report was stored: %+v", ds)
	}

	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	forged := &checkin.Report{DeviceID: "gw-0002", DeviceType: "board-a", Version: "6.6.6", Result: "committed", Time: t0.Add(devices.MaxClockAhead - time.Minute)}
	real := &checkin.Report{DeviceID: "gw-0002", DeviceType: "board-a", Version: "1.4.2", Result: "committed", Time: t0}
	if err := d.Record(forged, t0, "10.0.0.66"); err != nil {
		t.Fatal(err)
	}
	if err := d.Record(real, t0.Add(time.Second), "10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	ds, err := d.List()
	if err != nil || len(ds) != 1 {
		t.Fatalf("%v %+v", err, ds)
	}
	if dv := ds[0]; dv.Version != "1.4.2" || !dv.ReportedAt.Equal(t0) || !dv.LastSeen.Equal(t0.Add(time.Second)) || dv.Remote != "10.0.0.2" || dv.Checkins != 2 {
		t.Errorf("after a forged and a real report: %+v, want the real one, reported %s, seen %s", dv, t0, t0.Add(time.Second))
	}
	err = d.Record(&checkin.Report{DeviceID: "gw-0002", DeviceType: "board-a", Version: "1", Result: "idle", Time: t0.Add(devices.MaxClockAhead + time.Hour)}, t0, "x")
	var fe *checkin.FieldError
	if !errors.As(err, &fe) || fe.Field != "time" {
		t.Errorf("Record of a report a day and an hour ahead: %v, want a *checkin.FieldError for time", err)
	}
}
