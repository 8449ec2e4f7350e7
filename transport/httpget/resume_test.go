package httpget

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-update/ferry/internal/testutil"
)

// ignoresRange is a server (or proxy) that always sends the whole file
// with 200, cutting the first cuts responses after cut bytes; it counts
// requests.
func ignoresRange(content []byte, cut int64, cuts int32, requests *atomic.Int32) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		w.Header().Set("Content-Length", fmt.Sprint(len(content)))
		if n <= cuts {
			(&testutil.CutWriter{ResponseWriter: w, Left: cut}).Write(content)
			return
		}
		w.Write(content)
	}
}

func fastReader(url string) *Reader {
	h := NewReader(context.Background(), http.DefaultClient, url)
	h.Backoff = time.Millisecond
	return h
}

// TestReaderResumes: a cut download goes on where it stopped, from a
// server that honours Range (206) and from one that ignores it and sends
// the whole file again (200), of which what was delivered is discarded.
func TestReaderResumes(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	honours, honoured := testutil.FlakyServer(t, content, 100<<10, 3, func() string { return `"v1"` })
	var requests atomic.Int32
	ignores := httptest.NewServer(ignoresRange(content, 300<<10, 2, &requests))
	defer ignores.Close()
	for _, tc := range []struct {
		name     string
		url      string
		requests func() int32
		want     int32
	}{
		{"Range honoured", honours.URL, honoured.Load, 4}, // 3 cut, 1 resumed to the end
		{"Range ignored", ignores.URL, requests.Load, 3},  // 2 cut, 1 whole
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fastReader(tc.url)
			got, err := io.ReadAll(h)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, content) {
				t.Fatalf("got %d bytes, want the %d served", len(got), len(content))
			}
			if tc.requests() != tc.want {
				t.Errorf("%d requests, want %d", tc.requests(), tc.want)
			}
		})
	}
}

// TestReaderRetriesCountProgress: the retry budget counts attempts that
// deliver nothing, so a download that moves on with every attempt
// finishes however often it is cut.
func TestReaderRetriesCountProgress(t *testing.T) {
	content := bytes.Repeat([]byte("x"), 100<<10)
	srv, requests := testutil.FlakyServer(t, content, 10<<10, 9, func() string { return `"v1"` })
	h := fastReader(srv.URL)
	h.Retries = 1
	got, err := io.ReadAll(h)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	if n := requests.Load(); n != 10 {
		t.Errorf("%d requests, want 10 (9 cut, each with progress, 1 to the end)", n)
	}
}

func TestReaderFailures(t *testing.T) {
	content := bytes.Repeat([]byte("x"), 300<<10)
	var version atomic.Int32
	var counted atomic.Int32
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		retries int
		maxSkip int64
		want    string
	}{
		{"changed on the server", func(w http.ResponseWriter, r *http.Request) {
			// A new ETag each time: If-Range fails and the server sends
			// the whole (new) file with 200.
			w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, version.Add(1)))
			cw := &testutil.CutWriter{ResponseWriter: w, Left: 10 << 10}
			http.ServeContent(cw, r, "b", time.Time{}, bytes.NewReader(content))
		}, 3, 0, "changed since the download started"},
		{"changed length, no validator", func(w http.ResponseWriter, r *http.Request) {
			body := content
			if r.Header.Get("Range") != "" {
				body = content[1:]
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			(&testutil.CutWriter{ResponseWriter: w, Left: 10 << 10}).Write(body)
		}, 3, 0, "is now 307199 bytes, was 307200"},
		{"no range support, beyond MaxSkip", ignoresRange(content, 10<<10, 1, &counted), 3, 4 << 10, "cannot resume"},
		{"no range support, 206 only", ignoresRange(content, 10<<10, 1, &counted), 3, -1, "cannot resume"},
		{"wrong Content-Range", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Range") != "" {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(content)-1, len(content)))
				w.WriteHeader(http.StatusPartialContent)
				w.Write(content)
				return
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(content)))
			cw := &testutil.CutWriter{ResponseWriter: w, Left: 10 << 10}
			cw.Write(content)
		}, 3, 0, "server sent from 0"},
		{"not found", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, 3, 0, "404"},
		{"always cut", func(w http.ResponseWriter, r *http.Request) {
			cw := &testutil.CutWriter{ResponseWriter: w, Left: 0}
			http.ServeContent(cw, r, "b", time.Time{}, bytes.NewReader(content))
		}, 2, 0, "3 attempts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			counted.Store(0)
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			h := fastReader(srv.URL)
			h.Retries, h.MaxSkip = tc.retries, tc.maxSkip
			_, err := io.ReadAll(h)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestReaderContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	h := NewReader(ctx, http.DefaultClient, srv.URL)
	h.Backoff = time.Hour
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := io.ReadAll(h)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// TestReaderOffset: a download continued from a partial file starts with
// a Range request; one continued at its very end (416) is empty.
func TestReaderOffset(t *testing.T) {
	content := []byte("0123456789")
	var mu sync.Mutex
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		http.ServeContent(w, r, "b", time.Time{}, bytes.NewReader(content))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		off  int64
		want string
	}{{0, "0123456789"}, {4, "456789"}, {10, ""}} {
		mu.Lock()
		ranges = nil
		mu.Unlock()
		h := fastReader(srv.URL)
		h.Offset, h.Size = tc.off, int64(len(content))
		if err := h.Open(); err != nil {
			t.Fatalf("offset %d: %v", tc.off, err)
		}
		got, err := io.ReadAll(h)
		if err != nil || string(got) != tc.want {
			t.Errorf("offset %d: %q, %v, want %q", tc.off, got, err, tc.want)
		}
		mu.Lock()
		if want := fmt.Sprintf("bytes=%d-", tc.off); tc.off > 0 && (len(ranges) != 1 || ranges[0] != want) {
			t.Errorf("offset %d: requests with Range %q", tc.off, ranges)
		}
		mu.Unlock()
		h.Close()
		if _, err := h.Read(make([]byte, 1)); err == nil {
			t.Errorf("offset %d: a Read after Close succeeded", tc.off)
		}
	}
}

// TestReaderOpen: Open makes the first request, so an answer the reader
// cannot use is the caller's error before any Read, described by
// ResponseError.
func TestReaderOpen(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	h := fastReader(srv.URL)
	errGone := errors.New("no such blob")
	h.ResponseError = func(*http.Response) error { return errGone }
	if err := h.Open(); !errors.Is(err, errGone) {
		t.Fatalf("Open: %v", err)
	}
}

// TestReaderEnd: with End set the reader asks for a bounded range, also
// when it resumes, and stops at End whatever the server sends: from a
// server that honours Range, one that cuts the answer, and one that
// ignores Range and sends the whole file.
func TestReaderEnd(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	var mu sync.Mutex
	var ranges []string
	record := func(r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
	}
	honours, _ := testutil.FlakyServer(t, content, 1<<30, 0, nil)
	flaky, _ := testutil.FlakyServer(t, content, 50<<10, 1, func() string { return `"v1"` })
	var requests atomic.Int32
	ignores := ignoresRange(content, 0, 0, &requests)
	for _, tc := range []struct {
		name       string
		h          http.Handler
		wantRanges []string
	}{
		{"honoured", honours.Config.Handler, []string{"bytes=100000-299999"}},
		{"cut and resumed", flaky.Config.Handler, []string{"bytes=100000-299999", "bytes=151200-299999"}},
		{"ignored", ignores, []string{"bytes=100000-299999"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ranges = nil
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				record(r)
				tc.h.ServeHTTP(w, r)
			}))
			defer srv.Close()
			h := fastReader(srv.URL)
			h.Offset, h.End, h.Size = 100000, 300000, int64(len(content))
			got, err := io.ReadAll(h)
			h.Close()
			if err != nil || !bytes.Equal(got, content[100000:300000]) {
				t.Fatalf("read %d bytes, %v: want bytes 100000 to 300000", len(got), err)
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(ranges) != fmt.Sprint(tc.wantRanges) {
				t.Errorf("requests with Range %q, want %q", ranges, tc.wantRanges)
			}
		})
	}
}
