package checkin

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testRoot is as much of a mirror TUF root as MirrorID reads.
const testRoot = `{"signed":{"_type":"root","roles":{"root":{"keyids":["b2","a1"],"threshold":1}}},"signatures":[]}`

func testInventory(t testing.TB, seed byte) (*Inventory, ed25519.PrivateKey) {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	key := ed25519.NewKeyFromSeed(s)
	pub := key.Public().(ed25519.PublicKey)
	mirror, err := MirrorID([]byte(testRoot))
	if err != nil {
		t.Fatal(err)
	}
	return &Inventory{Mirror: mirror, Device: DeviceID(pub), PublicKey: pub, Counter: 7, Time: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC),
		Name: "gw-0001", DeviceType: "board-a", AgentVersion: "v1.2.3", Bundle: "gateway", Version: "1.4.2",
		Components: []Component{{Name: "gateway", Version: "1.4.2", Slot: "a"}}, Slot: SlotState{Booted: "a"}, Result: "committed",
		FreeBytes: 1 << 30, UptimeSeconds: 60}, key
}

func TestMirrorID(t *testing.T) {
	a, err := MirrorID([]byte(testRoot))
	if err != nil {
		t.Fatal(err)
	}
	// The order of the key ids and every other field do not count.
	b, err := MirrorID([]byte(`{"signed":{"_type":"root","version":7,"roles":{"root":{"keyids":["a1","b2"],"threshold":2},"timestamp":{"keyids":["c3"]}}}}`))
	if err != nil || a != b {
		t.Errorf("same root keys, ids %s and %s (%v)", a, b, err)
	}
	c, _ := MirrorID([]byte(`{"signed":{"_type":"root","roles":{"root":{"keyids":["a1"]}}}}`))
	if c == a {
		t.Error("other root keys, same id")
	}
	for _, bad := range []string{`{}`, `[]`, `{"signed":{"_type":"targets","roles":{"root":{"keyids":["a"]}}}}`, `{"signed":{"_type":"root","roles":{}}}`} {
		if _, err := MirrorID([]byte(bad)); err == nil {
			t.Errorf("MirrorID(%s) took it", bad)
		}
	}
}

func TestSignOpen(t *testing.T) {
	inv, key := testInventory(t, 1)
	b, err := Sign(inv, key)
	if err != nil {
		t.Fatal(err)
	}
	if !IsSigned(b) {
		t.Error("IsSigned: false for a signed check-in")
	}
	got, err := OpenSigned(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, inv) {
		t.Errorf("opened %+v, want %+v", got, inv)
	}
	// The name is optional.
	inv.Name = ""
	if b, err := Sign(inv, key); err != nil {
		t.Errorf("no name: %v", err)
	} else if got, err := OpenSigned(b); err != nil || got.Name != "" {
		t.Errorf("no name: %+v, %v", got, err)
	}
	_, other := testInventory(t, 2)
	if _, err := Sign(inv, other); err == nil {
		t.Error("signed with a key the check-in does not name")
	}
	if IsSigned([]byte(`{"deviceId":"gw","deviceType":"b","version":"1","result":"idle","time":"2026-05-01T12:00:00Z"}`)) {
		t.Error("IsSigned: true for a version 1 report")
	}
}

// TestOpenSignedRefuses: each way a check-in can be wrong is refused with
// its reason or field.
func TestOpenSignedRefuses(t *testing.T) {
	inv, key := testInventory(t, 1)
	good, err := Sign(inv, key)
	if err != nil {
		t.Fatal(err)
	}
	env := func(f func(*Envelope)) []byte {
		var e Envelope
		if err := json.Unmarshal(good, &e); err != nil {
			t.Fatal(err)
		}
		f(&e)
		b, _ := json.Marshal(e)
		return b
	}
	payload := func(f func(map[string]any)) []byte {
		return env(func(e *Envelope) {
			var m map[string]any
			json.Unmarshal(e.Payload, &m)
			f(m)
			e.Payload, _ = json.Marshal(m)
		})
	}
	resign := func(f func(*Inventory)) []byte {
		i2, k2 := testInventory(t, 1)
		f(i2)
		p, _ := json.Marshal(i2)
		b, _ := json.Marshal(Envelope{PayloadType: PayloadType, Payload: p, Signatures: []Signature{{KeyID: i2.Device, Sig: ed25519.Sign(k2, PAE(PayloadType, p))}}})
		return b
	}
	_, otherKey := testInventory(t, 3)
	cases := []struct {
		name   string
		body   []byte
		reason Reason // or
		field  string
	}{
		{"tampered payload", payload(func(m map[string]any) { m["version"] = "9.9.9" }), BadSignature, ""},
		{"signature of another key", env(func(e *Envelope) { e.Signatures[0].Sig = ed25519.Sign(otherKey, PAE(PayloadType, e.Payload)) }), BadSignature, ""},
		{"signature over the payload alone, not PAE", env(func(e *Envelope) { e.Signatures[0].Sig = ed25519.Sign(key, e.Payload) }), BadSignature, ""},
		{"key id not the device", env(func(e *Envelope) { e.Signatures[0].KeyID = strings.Repeat("0", 64) }), BadSignature, ""},
		{"no signature", env(func(e *Envelope) { e.Signatures = nil }), Malformed, ""},
		{"two signatures", env(func(e *Envelope) { e.Signatures = append(e.Signatures, e.Signatures[0]) }), Malformed, ""},
		{"other payload type", env(func(e *Envelope) { e.PayloadType = "application/vnd.ferry.checkin.v3+json" }), Malformed, ""},
		{"payload not JSON", env(func(e *Envelope) { e.Payload = []byte("nope") }), Malformed, ""},
		{"trailing data", append(append([]byte{}, good...), "{}"...), Malformed, ""},
		{"not an object", []byte(`[1]`), Malformed, ""},
		{"device id not the key's", resign(func(i *Inventory) { i.Device = strings.Repeat("a", 64) }), "", "device"},
		{"short key", resign(func(i *Inventory) { i.PublicKey = i.PublicKey[:16] }), "", "publicKey"},
		{"zero counter", resign(func(i *Inventory) { i.Counter = 0 }), "", "counter"},
		{"counter too big", resign(func(i *Inventory) { i.Counter = 1 << 63 }), "", "counter"},
		{"bad mirror id", resign(func(i *Inventory) { i.Mirror = "MIRROR" }), "", "mirror"},
		{"no time", resign(func(i *Inventory) { i.Time = time.Time{} }), "", "time"},
		{"bad name", resign(func(i *Inventory) { i.Name = "gw 1/../x" }), "", "name"},
		{"bad component", resign(func(i *Inventory) { i.Components[0].Name = "Gate way" }), "", "components[0].name"},
		{"bad slot", resign(func(i *Inventory) { i.Slot.Booted = "c" }), "", "slot.booted"},
		{"no agent version", resign(func(i *Inventory) { i.AgentVersion = "" }), "", "agentVersion"},
		{"too many components", resign(func(i *Inventory) {
			for range MaxComponents {
				i.Components = append(i.Components, Component{Name: "c", Version: "1"})
			}
		}), "", "components"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := OpenSigned(c.body)
			if got != nil {
				t.Fatalf("opened: %+v", got)
			}
			var re *RefusedError
			var fe *FieldError
			switch {
			case c.reason != "" && (!errors.As(err, &re) || re.Reason != c.reason):
				t.Errorf("error %v, want reason %s", err, c.reason)
			case c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field):
				t.Errorf("error %v, want a field error for %s", err, c.field)
			}
		})
	}
	if _, err := OpenSigned(make([]byte, MaxEnvelopeSize+1)); err != ErrTooLarge {
		t.Errorf("huge body: %v", err)
	}
}

// FuzzOpenSigned: no input makes the mirror's parser of signed check-ins
// panic; what it accepts is valid, and only the device's own signature
// makes it accept: a changed body that still opens must carry the same
// report.
func FuzzOpenSigned(f *testing.F) {
	inv, key := testInventory(f, 1)
	good, err := Sign(inv, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"payloadType":"` + PayloadType + `","payload":"e30=","signatures":[{"keyid":"x","sig":"AA=="}]}`))
	f.Add([]byte(`{"payloadType":null}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := OpenSigned(data)
		if err != nil {
			if got != nil {
				t.Fatal("an inventory with an error")
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("accepted an invalid check-in: %v", err)
		}
		// Only key 1 signs in the corpus: anything accepted is its report
		// (DeviceID binds the key, the signature binds the payload).
		if got.Device != inv.Device {
			t.Fatalf("accepted a check-in of device %s that no key of the test signed", got.Device)
		}
		var env Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			t.Fatal(err)
		}
		var again Inventory
		if err := json.Unmarshal(env.Payload, &again); err != nil || !reflect.DeepEqual(&again, got) {
			t.Fatalf("payload and opened check-in differ: %v", err)
		}
	})
}
