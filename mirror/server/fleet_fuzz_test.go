package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/checkin"
)

// FuzzCheckinHandler feeds the mirror's check-in endpoint any body. It
// never panics, answers only with the statuses docs/fleet.md lists, and
// changes the enrolled device's record only when it answers 204 to a
// check-in that really is that device's, signed by its key.
func FuzzCheckinHandler(f *testing.F) {
	s := newStore(f)
	d, err := devices.OpenDir(s.Dir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })
	h := server.NewHandler(s, server.HandlerOptions{Devices: d})
	root, err := os.ReadFile(s.TUFRootPath())
	if err != nil {
		f.Fatal(err)
	}
	mirrorID, err := checkin.MirrorID(root)
	if err != nil {
		f.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	ctx := context.Background()
	if _, err := d.Enroll(ctx, []devices.Enrollment{{PublicKey: pub}}, "fuzz", time.Now()); err != nil {
		f.Fatal(err)
	}
	id := checkin.DeviceID(pub)
	for i, c := range []uint64{1, 1 << 40} {
		inv := &checkin.Inventory{Mirror: mirrorID, Device: id, PublicKey: pub, Counter: c, Time: time.Now().UTC(),
			DeviceType: "board-a", AgentVersion: "v1", Version: "1.0.0", Components: []checkin.Component{}, Result: "idle"}
		if i == 1 {
			inv.Mirror = "0000000000000000000000000000000000000000000000000000000000000000"
		}
		b, err := checkin.Sign(inv, key)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"deviceId":"gw","deviceType":"b","version":"1","result":"idle","time":"2026-05-01T12:00:00Z"}`))
	f.Add([]byte(`{"payloadType":"x"}`))
	allowed := map[int]bool{202: true, 204: true, 400: true, 401: true, 403: true, 409: true, 413: true, 421: true, 507: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		before, _, err := d.Show(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, checkin.Path, bytes.NewReader(body)))
		if !allowed[w.Code] {
			t.Fatalf("answered %d: %s", w.Code, w.Body)
		}
		after, _, err := d.Show(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusNoContent {
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("answered %d and changed the record", w.Code)
			}
			return
		}
		inv, err := checkin.OpenSigned(body)
		if err != nil || inv.Device != id || inv.Mirror != mirrorID || after.Counter != inv.Counter {
			t.Fatalf("recorded a check-in that is not the enrolled device's: %v", err)
		}
	})
}
