package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// flakyServer serves content with Range support (http.ServeContent, which
// honours If-Range) but cuts the connection after cut bytes of each of the
// first drops responses.
func flakyServer(t *testing.T, content []byte, cut int64, drops int32, etag func() string) (*httptest.Server, *atomic.Int32) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		if etag != nil {
			w.Header().Set("ETag", etag())
		}
		if n > drops {
			http.ServeContent(w, r, "b.bundle", time.Unix(1700000000, 0), bytes.NewReader(content))
			return
		}
		rec := &cutWriter{ResponseWriter: w, left: cut}
		http.ServeContent(rec, r, "b.bundle", time.Unix(1700000000, 0), bytes.NewReader(content))
	}))
	t.Cleanup(srv.Close)
	return srv, &requests
}

// cutWriter passes on left bytes of the body, then drops the connection.
type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if int64(len(b)) > c.left {
		c.ResponseWriter.Write(b[:c.left])
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	c.left -= int64(len(b))
	return c.ResponseWriter.Write(b)
}

func fastReader(url string) *HTTPReader {
	h := NewHTTPReader(context.Background(), http.DefaultClient, url)
	h.Backoff = time.Millisecond
	return h
}

func TestHTTPReaderResumes(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	srv, requests := flakyServer(t, content, 100<<10, 3, func() string { return `"v1"` })
	h := fastReader(srv.URL)
	got, err := io.ReadAll(h)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("got %d bytes, want the %d served", len(got), len(content))
	}
	if n := requests.Load(); n != 4 {
		t.Errorf("%d requests, want 4 (3 cut, 1 resumed to the end)", n)
	}
}

func TestHTTPReaderFailures(t *testing.T) {
	content := bytes.Repeat([]byte("x"), 300<<10)
	var version atomic.Int32
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		retries int
		want    string
	}{
		{"changed on the server", func(w http.ResponseWriter, r *http.Request) {
			// A new ETag each time: If-Range fails and the server sends
			// the whole (new) file with 200.
			w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, version.Add(1)))
			cw := &cutWriter{ResponseWriter: w, left: 10 << 10}
			http.ServeContent(cw, r, "b", time.Time{}, bytes.NewReader(content))
		}, 3, "changed since the download started"},
		{"no range support", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(content)))
			cw := &cutWriter{ResponseWriter: w, left: 10 << 10}
			cw.Write(content)
		}, 3, "cannot resume"},
		{"wrong Content-Range", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Range") != "" {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(content)-1, len(content)))
				w.WriteHeader(http.StatusPartialContent)
				w.Write(content)
				return
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(content)))
			cw := &cutWriter{ResponseWriter: w, left: 10 << 10}
			cw.Write(content)
		}, 3, "server sent from 0"},
		{"not found", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, 3, "404"},
		{"always cut", func(w http.ResponseWriter, r *http.Request) {
			cw := &cutWriter{ResponseWriter: w, left: 0}
			http.ServeContent(cw, r, "b", time.Time{}, bytes.NewReader(content))
		}, 2, "3 attempts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			h := fastReader(srv.URL)
			h.Retries = tc.retries
			_, err := io.ReadAll(h)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestHTTPReaderContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	h := NewHTTPReader(ctx, http.DefaultClient, srv.URL)
	h.Backoff = time.Hour
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := io.ReadAll(h)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// An install streams from a server that drops the connection mid-payload
// and ends with the same slot content as from a file.
func TestInstallOverFlakyHTTP(t *testing.T) {
	d := newDevice(t, "true")
	payload := strings.Repeat("a big system image ", 50000)
	b := d.bundle(bundleSpec{version: "1.0.0", rootfs: payload})
	srv, requests := flakyServer(t, b, int64(len(b))/3, 2, nil) // Last-Modified is the validator
	err := d.do(func(a *Agent) error {
		src, err := OpenSource(context.Background(), srv.URL+"/b.bundle", nil, SourceOptions{})
		if err != nil {
			return err
		}
		defer src.Close()
		src.(readCloser).Closer.(*HTTPReader).Backoff = time.Millisecond
		_, err = a.Install(context.Background(), src, srv.URL)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.read("slot-b.img"); got != payload {
		t.Errorf("slot b holds %d bytes, want %d", len(got), len(payload))
	}
	if requests.Load() != 3 {
		t.Errorf("%d requests", requests.Load())
	}
}

func TestOpenSource(t *testing.T) {
	r, err := OpenSource(context.Background(), "-", strings.NewReader("stdin"), SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); string(b) != "stdin" {
		t.Errorf("got %q", b)
	}
	if _, err := OpenSource(context.Background(), "/nonexistent/b.bundle", nil, SourceOptions{}); err == nil {
		t.Error("opened a missing file")
	}
}
