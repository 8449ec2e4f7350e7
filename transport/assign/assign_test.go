package assign

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/internal/depcheck"
	"github.com/ferry-update/ferry/transport/checkin"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func key(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

const (
	mirrorID = "1111111111111111111111111111111111111111111111111111111111111111"
	deviceID = "2222222222222222222222222222222222222222222222222222222222222222"
)

func sample() *Assignment {
	return &Assignment{Mirror: mirrorID, Device: deviceID, Deployment: 7, Bundle: "gateway", Version: "2.0.0",
		Digest: "sha256:" + strings.Repeat("ab", 32), Counter: 1000, Issued: t0, Expires: t0.Add(24 * time.Hour)}
}

func reasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func TestSignOpenCheck(t *testing.T) {
	k := key(1)
	pub := k.Public().(ed25519.PublicKey)
	env, err := Sign(sample(), k)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(env, []ed25519.PublicKey{key(9).Public().(ed25519.PublicKey), pub})
	if err != nil {
		t.Fatal(err)
	}
	if *a != *sample() {
		t.Fatalf("got %+v", a)
	}
	if err := a.Check(deviceID, []string{"x", mirrorID}, t0.Add(time.Hour), 1000); err != nil {
		t.Fatalf("check: %v", err)
	}
}

// TestRefusals: everything a device must refuse, and why.
func TestRefusals(t *testing.T) {
	k := key(1)
	pub := k.Public().(ed25519.PublicKey)
	keys := []ed25519.PublicKey{pub}
	sign := func(change func(a *Assignment)) []byte {
		a := sample()
		change(a)
		payload, _ := json.Marshal(a)
		env := checkin.Envelope{PayloadType: PayloadType, Payload: payload,
			Signatures: []checkin.Signature{{KeyID: KeyID(pub), Sig: ed25519.Sign(k, checkin.PAE(PayloadType, payload))}}}
		b, _ := json.Marshal(env)
		return b
	}
	good := sign(func(*Assignment) {})
	var env checkin.Envelope
	json.Unmarshal(good, &env)
	reenc := func(change func(e *checkin.Envelope)) []byte {
		e := env
		e.Signatures = append([]checkin.Signature(nil), env.Signatures...)
		change(&e)
		b, _ := json.Marshal(e)
		return b
	}
	for _, c := range []struct {
		name string
		env  []byte
		keys []ed25519.PublicKey
		want Reason
	}{
		{"not JSON", []byte("assign me"), keys, Malformed},
		{"an array", []byte("[]"), keys, Malformed},
		{"too large", []byte(`{"x":"` + strings.Repeat("a", MaxEnvelopeSize) + `"}`), keys, Malformed},
		{"another payload type", reenc(func(e *checkin.Envelope) { e.PayloadType = checkin.PayloadType }), keys, Malformed},
		{"no signature", reenc(func(e *checkin.Envelope) { e.Signatures = nil }), keys, Malformed},
		{"forged: another key", sign(func(*Assignment) {}), []ed25519.PublicKey{key(2).Public().(ed25519.PublicKey)}, BadSignature},
		{"no key published", good, nil, BadSignature},
		{"payload changed", reenc(func(e *checkin.Envelope) {
			e.Payload = []byte(strings.Replace(string(e.Payload), "2.0.0", "9.0.0", 1))
		}), keys, BadSignature},
		{"signature by a key id it does not have", reenc(func(e *checkin.Envelope) { e.Signatures[0].KeyID = strings.Repeat("0", 64) }), keys, BadSignature},
		{"unknown field", signPayload(k, []byte(`{"mirror":"`+mirrorID+`","install":"anything"}`)), keys, Malformed},
		{"no expiry", sign(func(a *Assignment) { a.Expires = time.Time{} }), keys, Malformed},
		{"valid too long", sign(func(a *Assignment) { a.Expires = a.Issued.Add(MaxValidity + time.Hour) }), keys, Malformed},
		{"bad digest", sign(func(a *Assignment) { a.Digest = "md5:00" }), keys, Malformed},
		{"zero counter", sign(func(a *Assignment) { a.Counter = 0 }), keys, Malformed},
		{"no deployment", sign(func(a *Assignment) { a.Deployment = 0 }), keys, Malformed},
		{"bundle name with a slash", sign(func(a *Assignment) { a.Bundle = "../etc" }), keys, Malformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(c.env, c.keys)
			if got := reasonOf(err); got != c.want {
				t.Fatalf("Open: %v, want reason %q", err, c.want)
			}
		})
	}
	a := sample()
	for _, c := range []struct {
		name   string
		device string
		mirror string
		now    time.Time
		last   uint64
		want   Reason
	}{
		{"for another device", strings.Repeat("3", 64), mirrorID, t0, 0, Foreign},
		{"from another mirror", deviceID, strings.Repeat("4", 64), t0, 0, Foreign},
		{"expired", deviceID, mirrorID, a.Expires, 0, Expired},
		{"older than the last", deviceID, mirrorID, t0, 1001, Replayed},
		{"the same again", deviceID, mirrorID, t0, 1000, ""},
		{"newer", deviceID, mirrorID, t0, 999, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := reasonOf(a.Check(c.device, []string{c.mirror}, c.now, c.last)); got != c.want {
				t.Fatalf("Check: %q, want %q", got, c.want)
			}
		})
	}
}

func signPayload(k ed25519.PrivateKey, payload []byte) []byte {
	env := checkin.Envelope{PayloadType: PayloadType, Payload: payload,
		Signatures: []checkin.Signature{{KeyID: KeyID(k.Public().(ed25519.PublicKey)), Sig: ed25519.Sign(k, checkin.PAE(PayloadType, payload))}}}
	b, _ := json.Marshal(env)
	return b
}

// FuzzOpen: whatever a mirror (or someone in its place) sends, Open
// returns an assignment or an *Error, never panics, and only the
// signing key's assignments ever open.
func FuzzOpen(f *testing.F) {
	k := key(1)
	pub := k.Public().(ed25519.PublicKey)
	good, err := Sign(sample(), k)
	if err != nil {
		f.Fatal(err)
	}
	other, _ := Sign(sample(), key(2))
	for _, s := range [][]byte{good, other, []byte(`{}`), []byte(`{"payloadType":"` + PayloadType + `","payload":"e30=","signatures":[{"keyid":"x","sig":"AA=="}]}`)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Open(b, []ed25519.PublicKey{pub})
		if err != nil {
			if reasonOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if a.Validate() != nil {
			t.Fatal("opened an invalid assignment")
		}
		// It opened: so it must carry a valid signature by k.
		var env checkin.Envelope
		if json.Unmarshal(b, &env) != nil {
			t.Fatal("opened what is not an envelope")
		}
		ok := false
		for _, s := range env.Signatures {
			ok = ok || ed25519.Verify(pub, checkin.PAE(env.PayloadType, env.Payload), s.Sig)
		}
		if !ok {
			t.Fatal("opened without a valid signature")
		}
	})
}

// TestDependencies: the agent imports this package.
func TestDependencies(t *testing.T) {
	const self = depcheck.Module + "/transport/assign"
	for _, dep := range depcheck.Deps(t, nil, self) {
		if !dep.Standard && dep.Path != self && dep.Path != depcheck.Module+"/transport/checkin" && dep.Path != depcheck.Module+"/transport/wire" {
			t.Errorf("assign depends on %s", dep.Path)
		}
	}
}
