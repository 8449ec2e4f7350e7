package ratelimit

import (
	"testing"
	"time"
)

// TestLimiter drives one key's bucket through a burst, a refusal with the
// wait until the next token, and the refill, on a clock the test moves.
func TestLimiter(t *testing.T) {
	l := New(0.5, 3) // a token every 2 s, 3 at once
	t0 := time.Unix(1_000_000, 0)
	for i := range 3 {
		if ok, _ := l.Allow("a", t0); !ok {
			t.Fatalf("take %d of the burst refused", i+1)
		}
	}
	if ok, wait := l.Allow("a", t0); ok || wait != 2*time.Second {
		t.Fatalf("4th take: ok %v, wait %v; want refused, 2s", ok, wait)
	}
	if ok, _ := l.Allow("b", t0); !ok {
		t.Fatal("another key shares a's bucket")
	}
	if w := l.Wait("a", t0.Add(time.Second)); w != time.Second {
		t.Fatalf("Wait after 1s = %v, want 1s", w)
	}
	if w := l.Wait("a", t0.Add(2*time.Second)); w != 0 {
		t.Fatalf("Wait after 2s = %v, want 0", w)
	}
	// Wait took nothing: the token is still there to Allow, once.
	if ok, _ := l.Allow("a", t0.Add(2*time.Second)); !ok {
		t.Fatal("Wait took the token")
	}
	if ok, _ := l.Allow("a", t0.Add(2*time.Second)); ok {
		t.Fatal("two tokens from one refill")
	}
	// A clock that steps back gives nothing back and takes nothing away.
	if w := l.Wait("a", t0); w <= 0 {
		t.Fatalf("Wait on an earlier clock = %v, want > 0", w)
	}
	var none *Limiter
	if ok, _ := none.Allow("a", t0); !ok || none.Wait("a", t0) != 0 || New(0, 5) != nil {
		t.Fatal("a nil limiter limits")
	}
}

func TestClient(t *testing.T) {
	for in, want := range map[string]string{"192.0.2.1:5000": "192.0.2.1", "[2001:db8::1]:80": "2001:db8::1", "@": "unix", "": "unix", "weird": "weird"} {
		if got := Client(in); got != want {
			t.Errorf("Client(%q) = %q, want %q", in, got, want)
		}
	}
}
