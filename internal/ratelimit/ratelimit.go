// Package ratelimit is a token bucket per client, for a server on a
// network it does not trust: the mirror's check-ins (per client IP) and
// its operators' log-ins (per client IP and per account).
package ratelimit

import (
	"math"
	"net"
	"sync"
	"time"
)

// Limiter is a token bucket per key: each key may take Burst tokens at
// once, and gets Rate tokens a second back. The caller passes the time,
// so tests drive the clock. A nil *Limiter allows everything.
type Limiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the limiter's memory: beyond it, full buckets are
// forgotten (they would allow a burst anyway).
const maxBuckets = 100000

// New returns a limiter of rate tokens a second and bursts of burst
// (at least 1); a rate of 0 or less returns nil, which limits nothing.
func New(rate float64, burst int) *Limiter {
	if rate <= 0 {
		return nil
	}
	return &Limiter{rate: rate, burst: float64(max(burst, 1)), buckets: map[string]*bucket{}}
}

// Rate is the tokens a key gets back per second.
func (l *Limiter) Rate() float64 { return l.rate }

// Burst is how many tokens a key may take at once.
func (l *Limiter) Burst() int { return int(l.burst) }

// Allow takes a token for key at now, or says how long until one.
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.fill(key, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, l.wait(b)
}

// Wait says how long until key has a token at now (0: it has one),
// taking none: for limits that charge only failures, such as wrong
// passwords.
func (l *Limiter) Wait(key string, now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.fill(key, now)
	if b.tokens >= 1 {
		return 0
	}
	return l.wait(b)
}

// fill returns key's bucket with the tokens it got back by now.
func (l *Limiter) fill(key string, now time.Time) *bucket {
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	if now.After(b.at) {
		b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
		b.at = now
	}
	return b
}

func (l *Limiter) wait(b *bucket) time.Duration {
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

func (l *Limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// Client is the host of a remote address (http.Request.RemoteAddr), the
// key a server limits by; "unix" for a Unix socket (behind a proxy).
func Client(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	if addr == "@" || addr == "" {
		return "unix"
	}
	return addr
}
