package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/ratelimit"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/tufrepo"
)

// Limits bound what clients can make a serving mirror hold: connections,
// time, and check-ins. The zero value of a field means "no limit" only
// where its comment says so; DefaultLimits are what 'ferry mirror serve'
// uses unless told otherwise.
type Limits struct {
	// ReadHeaderTimeout is how long a client may take to send a request's
	// headers, IdleTimeout how long a kept-alive connection may wait for
	// the next request.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// BodyTimeout is how long a client may take to send a request body
	// (check-ins are at most 16 KiB).
	BodyTimeout time.Duration
	// WriteProgressTimeout is how long one chunk (WriteChunk bytes) of a
	// response may take to go out: a slow download that keeps moving
	// finishes, a client that stops reading is dropped.
	WriteProgressTimeout time.Duration
	// MaxConns caps open connections in all (new ones wait to be
	// accepted); MaxConnsPerClient caps them per remote IP (more are
	// closed at once). 0: no cap.
	MaxConns, MaxConnsPerClient int
	// CheckinRate is how many check-ins per second one remote IP may make
	// over time, CheckinBurst how many at once (a token bucket); more are
	// answered 429 with Retry-After. 0: no limit.
	CheckinRate  float64
	CheckinBurst int
	// MaxDevices caps how many devices the mirror records: check-ins
	// of devices it does not know yet are refused (507) beyond it. 0: no cap.
	MaxDevices int
}

// WriteChunk is the unit of progress WriteProgressTimeout applies to.
const WriteChunk = 256 << 10

// DefaultLimits are the limits of 'ferry mirror serve'.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout:    10 * time.Second,
		IdleTimeout:          2 * time.Minute,
		BodyTimeout:          30 * time.Second,
		WriteProgressTimeout: time.Minute,
		MaxConns:             1000,
		MaxConnsPerClient:    64,
		CheckinRate:          1,
		CheckinBurst:         20,
		MaxDevices:           100000,
	}
}

// HTTPServer returns an http.Server for h with l's timeouts. Its
// handler is h wrapped so every request gets a body read deadline and a
// write deadline that moves on with each chunk sent.
func (l Limits) HTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           l.deadlines(h),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
}

// Listener wraps ln with l's connection caps for srv, and has srv tell
// it which connections are idle: at the cap, the connection idle longest
// is closed to take a new one, so only connections in use wait for each
// other. A fleet of agents that keep their connection open between polls
// then needs no cap as large as the fleet.
func (l Limits) Listener(srv *http.Server, ln net.Listener) net.Listener {
	if l.MaxConns <= 0 && l.MaxConnsPerClient <= 0 {
		return ln
	}
	cl := &capListener{Listener: ln, per: l.MaxConnsPerClient, open: map[string]int{}, idle: map[*capConn]time.Time{}, wentIdle: make(chan struct{}, 1)}
	if l.MaxConns > 0 {
		cl.slots = make(chan struct{}, l.MaxConns)
	}
	srv.ConnState = cl.connState
	return cl
}

func (l Limits) deadlines(h http.Handler) http.Handler {
	if l.BodyTimeout <= 0 && l.WriteProgressTimeout <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if l.BodyTimeout > 0 {
			rc.SetReadDeadline(time.Now().Add(l.BodyTimeout))
		}
		if l.WriteProgressTimeout > 0 {
			pw := &progressWriter{ResponseWriter: w, rc: rc, d: l.WriteProgressTimeout}
			pw.extend()
			w = pw
		}
		h.ServeHTTP(w, r)
	})
}

// progressWriter moves the write deadline on before each chunk, so a
// response is bounded by its progress, not by its size.
type progressWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (p *progressWriter) extend() { p.rc.SetWriteDeadline(time.Now().Add(p.d)) }

func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

func (p *progressWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		c := min(len(b), WriteChunk)
		p.extend()
		m, err := p.ResponseWriter.Write(b[:c])
		n += m
		if err != nil {
			return n, err
		}
		b = b[c:]
	}
	return n, nil
}

// ReadFrom keeps the kernel's sendfile for files (http.ServeContent hands
// an *io.LimitedReader of the file), a chunk at a time.
func (p *progressWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := p.ResponseWriter.(io.ReaderFrom)
	lr, limited := src.(*io.LimitedReader)
	if !ok || !limited {
		return io.Copy(struct{ io.Writer }{p}, src)
	}
	var n int64
	for lr.N > 0 {
		p.extend()
		c := &io.LimitedReader{R: lr.R, N: min(lr.N, WriteChunk)}
		m, err := rf.ReadFrom(c)
		n += m
		lr.N -= m
		if err != nil {
			return n, err
		}
		if m == 0 {
			break // the source ended early
		}
	}
	return n, nil
}

// capListener caps connections in all (Accept closes the connection
// idle longest, or waits for a free slot) and per remote IP (more are
// closed at once).
type capListener struct {
	net.Listener
	slots chan struct{}
	per   int

	mu   sync.Mutex
	open map[string]int
	idle map[*capConn]time.Time // since when, for connections between requests
	// wentIdle wakes an Accept waiting for a slot when a connection
	// becomes idle, to close it.
	wentIdle chan struct{}
}

// takeSlot returns once a connection may be accepted: at the cap, after
// closing an idle connection, or waiting for one to close or go idle.
func (c *capListener) takeSlot() {
	for {
		select {
		case c.slots <- struct{}{}:
			return
		default:
		}
		c.closeIdlest()
		select {
		case c.slots <- struct{}{}:
			return
		case <-c.wentIdle:
		}
	}
}

func (c *capListener) Accept() (net.Conn, error) {
	for {
		if c.slots != nil {
			c.takeSlot()
		}
		conn, err := c.Listener.Accept()
		if err != nil {
			if c.slots != nil {
				<-c.slots
			}
			return nil, err
		}
		ip := remoteIP(conn.RemoteAddr().String())
		c.mu.Lock()
		over := c.per > 0 && c.open[ip] >= c.per
		if !over {
			c.open[ip]++
		}
		c.mu.Unlock()
		if over {
			conn.Close()
			if c.slots != nil {
				<-c.slots
			}
			continue
		}
		return &capConn{Conn: conn, l: c, ip: ip}, nil
	}
}

// connState keeps the set of idle connections (http.Server.ConnState).
func (c *capListener) connState(nc net.Conn, st http.ConnState) {
	if tc, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = tc.NetConn() // TLS: the connection under it is ours
	}
	cc, ok := nc.(*capConn)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st == http.StateIdle {
		c.idle[cc] = time.Now()
		select {
		case c.wentIdle <- struct{}{}:
		default:
		}
	} else {
		delete(c.idle, cc)
	}
}

// closeIdlest closes the connection idle longest, if any: its client
// opens a new one for its next request, as after the idle timeout. A
// request that arrives on it just as it closes fails, as it would then.
func (c *capListener) closeIdlest() {
	c.mu.Lock()
	var oldest *capConn
	var since time.Time
	for cc, t := range c.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = cc, t
		}
	}
	delete(c.idle, oldest)
	c.mu.Unlock()
	if oldest != nil {
		oldest.Close()
	}
}

type capConn struct {
	net.Conn
	l    *capListener
	ip   string
	once sync.Once
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.open[c.ip]--; c.l.open[c.ip] <= 0 {
			delete(c.l.open, c.ip)
		}
		delete(c.l.idle, c)
		c.l.mu.Unlock()
		if c.l.slots != nil {
			<-c.l.slots
		}
	})
	return err
}

// remoteIP is the host of a remote address, "unix" for a Unix socket
// (behind a proxy).
func remoteIP(addr string) string { return ratelimit.Client(addr) }

// limitedLog says when a limit bites, at most once per interval per kind,
// with how many times it bit in between, so a flood cannot flood the log.
type limitedLog struct {
	logf     func(format string, a ...any)
	interval time.Duration

	mu    sync.Mutex
	kinds map[string]*logKind
}

type logKind struct {
	last       time.Time
	suppressed int
}

func (l *limitedLog) printf(now time.Time, kind, format string, a ...any) {
	l.mu.Lock()
	k := l.kinds[kind]
	if k == nil {
		k = &logKind{}
		l.kinds[kind] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < l.interval {
		k.suppressed++
		l.mu.Unlock()
		return
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	l.mu.Unlock()
	msg := format
	if n > 0 {
		msg += " (and " + strconv.Itoa(n) + " more like it since the last such line)"
	}
	l.logf(msg, a...)
}

// Options configure Serve.
type Options struct {
	// Store is the mirror served.
	Store  *mirror.Store
	Limits Limits
	// Devices stores check-ins; nil answers them 404 unless Checkins is
	// set.
	Devices devices.Store
	// AcceptLegacy records version 1 (unsigned) check-ins among the
	// legacy records instead of refusing them (HandlerOptions).
	AcceptLegacy bool
	// Checkins, with Devices nil, makes Serve open the store's device
	// database (devices.OpenDir) for check-ins and close it when it returns.
	Checkins bool
	// RefreshInterval is how often the TUF timestamp is re-signed; 0: never.
	RefreshInterval time.Duration
	// Refreshed is told about each re-signing.
	Refreshed func(*tufrepo.Status, error)
	// TLSCert and TLSKey, both or neither, serve https.
	TLSCert, TLSKey string
	// Serving, if set, is called once everything is open and requests
	// are about to be served.
	Serving func()
	// Logf is told when a limit bites or a check-in cannot be stored.
	Logf func(format string, a ...any)
	// Operator, if set, serves the operators' API and console
	// (HandlerOptions.Operator).
	Operator http.Handler
	// AssignmentTTL is how long served assignments are valid
	// (HandlerOptions).
	AssignmentTTL time.Duration
	// Relay serves the store's relay to the upstream's devices
	// (HandlerOptions.Relay).
	Relay bool
	// EvaluateInterval is how often the deployments are moved on as time
	// passes (soak times ending: devices.Store.Evaluate); 0: every minute.
	EvaluateInterval time.Duration
}

// evaluateEvery moves the deployments on every interval until ctx ends.
func evaluateEvery(ctx context.Context, d devices.Store, every time.Duration, logf func(string, ...any)) {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := d.Evaluate(ctx, now); err != nil && ctx.Err() == nil && logf != nil {
				logf("deployments: %v", err)
			}
		}
	}
}

// Serve serves o.Store on ln until ctx ends: the Handler, under
// o.Limits, and the TUF timestamp re-signed every o.RefreshInterval.
// Re-signing does not depend on the check-in database: when that cannot
// be written (a full disk, a file size limit), check-ins get 503 and the
// metadata stays fresh.
func Serve(ctx context.Context, ln net.Listener, o Options) error {
	s := o.Store
	if s == nil {
		return errors.New("serve: no mirror store")
	}
	if o.Devices == nil && o.Checkins {
		d, err := devices.OpenDir(s.Dir())
		if err != nil {
			return err
		}
		defer d.Close()
		o.Devices = d
	}
	srv := o.Limits.HTTPServer(NewHandler(s, HandlerOptions{Devices: o.Devices, AcceptLegacy: o.AcceptLegacy, Logf: o.Logf, Limits: o.Limits, AssignmentTTL: o.AssignmentTTL, Operator: o.Operator, Relay: o.Relay}))
	if o.Devices != nil {
		go evaluateEvery(ctx, o.Devices, o.EvaluateInterval, o.Logf)
	}
	ln = o.Limits.Listener(srv, ln)
	if o.RefreshInterval > 0 {
		report := o.Refreshed
		if report == nil {
			report = func(*tufrepo.Status, error) {}
		}
		go s.KeepFresh(ctx, o.RefreshInterval, report)
	}
	if o.Serving != nil {
		o.Serving()
	}
	errc := make(chan error, 1)
	go func() {
		if o.TLSCert != "" {
			errc <- srv.ServeTLS(ln, o.TLSCert, o.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}
