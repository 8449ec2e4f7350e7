package httpget

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// silentListener accepts connections and never answers; accepted receives
// each connection once it is accepted.
func silentListener(t *testing.T) (addr string, accepted <-chan net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan net.Conn, 16)
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case ch <- c:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String(), ch
}

// A server that accepts and never answers ends the request, over plain
// HTTP (no response header) and over TLS (no handshake).
func TestSilentServerTimesOut(t *testing.T) {
	addr, _ := silentListener(t)
	c := NewClient(Timeouts{TLS: 100 * time.Millisecond, Response: 100 * time.Millisecond})
	for _, u := range []string{"http://" + addr + "/x", "https://" + addr + "/x"} {
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s: answered %s", u, resp.Status)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%s: %v, want a timeout", u, err)
		}
	}
}

// A body that stops arriving fails with ErrIdle; one that keeps moving
// runs longer than the idle timeout in all, and completes.
func TestIdleBody(t *testing.T) {
	const idle = 200 * time.Millisecond
	next := make(chan bool)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 3; i++ {
			io.WriteString(w, "chunk\n")
			w.(http.Flusher).Flush()
			if r.URL.Path == "/stall" && i == 1 {
				<-r.Context().Done()
				return
			}
			if i < 2 {
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
			}
		}
	}))
	defer srv.Close()
	c := NewClient(Timeouts{Idle: idle})

	// The consumer pauses longer than idle between reads: that is not
	// the link's fault, and the whole transfer outlasts idle too.
	resp, err := c.Get(srv.URL + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	var got strings.Builder
	for i := 0; i < 3; i++ {
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatalf("chunk %d: %v", i+1, err)
		}
		got.Write(buf)
		time.Sleep(2 * idle)
		if i < 2 {
			next <- true
		}
	}
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("end: %q, %v", rest, err)
	}
	resp.Body.Close()
	if got.String() != strings.Repeat("chunk\n", 3) {
		t.Errorf("body %q", got.String())
	}

	resp, err = c.Get(srv.URL + "/stall")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	go func() { next <- true }()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, ErrIdle) {
		t.Fatalf("stalled body: %q, %v; want ErrIdle", b, err)
	}
	if string(b) != "chunk\nchunk\n" {
		t.Errorf("before the stall: %q", b)
	}
}
