package httpget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of Timeouts.
const (
	DefaultConnectTimeout  = 30 * time.Second
	DefaultTLSTimeout      = 30 * time.Second
	DefaultResponseTimeout = 60 * time.Second
	DefaultIdleTimeout     = 60 * time.Second
)

// Timeouts bound each stage of a request; zero means the default.
type Timeouts struct {
	// Connect bounds the TCP connection (name lookup included).
	Connect time.Duration
	// TLS bounds the TLS handshake.
	TLS time.Duration
	// Response bounds the wait for the response header once the request
	// is sent.
	Response time.Duration
	// Idle bounds each wait for more of a response body: a body that
	// delivers nothing for this long fails with an error wrapping
	// ErrIdle. Time the reader spends between reads does not count.
	Idle time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Connect, DefaultConnectTimeout)
	def(&t.TLS, DefaultTLSTimeout)
	def(&t.Response, DefaultResponseTimeout)
	def(&t.Idle, DefaultIdleTimeout)
	return t
}

// ErrIdle is wrapped by the error of a response body that made no progress
// for Timeouts.Idle.
var ErrIdle = errors.New("no data received")

// NewClient returns a client with the timeouts t (zero fields: defaults)
// over its own transport, proxies taken from the environment.
func NewClient(t Timeouts) *http.Client {
	t = t.withDefaults()
	d := &net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   t.TLS,
		ResponseHeaderTimeout: t.Response,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          10,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: &idleTransport{next: tr, idle: t.Idle}}
}

// idleTransport gives every response body an idle-progress timeout.
type idleTransport struct {
	next http.RoundTripper
	idle time.Duration
}

func (t *idleTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = &idleBody{body: resp.Body, idle: t.idle, cancel: cancel, url: req.URL.Redacted()}
	return resp, nil
}

// idleBody cancels its request when a Read waits longer than idle.
type idleBody struct {
	body   io.ReadCloser
	idle   time.Duration
	cancel context.CancelCauseFunc
	url    string

	mu      sync.Mutex
	stalled bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	t := time.AfterFunc(b.idle, func() {
		b.mu.Lock()
		b.stalled = true
		b.mu.Unlock()
		b.cancel(ErrIdle)
	})
	n, err := b.body.Read(p)
	t.Stop()
	if err != nil && err != io.EOF {
		b.mu.Lock()
		stalled := b.stalled
		b.mu.Unlock()
		if stalled {
			return n, fmt.Errorf("%s: %w for %s", b.url, ErrIdle, b.idle)
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	err := b.body.Close()
	b.cancel(nil)
	return err
}
