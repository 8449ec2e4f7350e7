package testutil

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// FlakyServer serves content with Range support (http.ServeContent, which
// honours If-Range) but cuts the connection after cut bytes of each of
// the first drops responses. etag, if set, gives each response's ETag;
// without it Last-Modified is the only validator. It counts requests.
func FlakyServer(t testing.TB, content []byte, cut int64, drops int32, etag func() string) (*httptest.Server, *atomic.Int32) {
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
		http.ServeContent(&CutWriter{ResponseWriter: w, Left: cut}, r, "b.bundle", time.Unix(1700000000, 0), bytes.NewReader(content))
	}))
	t.Cleanup(srv.Close)
	return srv, &requests
}

// CutWriter passes on Left bytes of the body, then drops the connection.
type CutWriter struct {
	http.ResponseWriter
	Left int64
}

func (c *CutWriter) Write(b []byte) (int, error) {
	if int64(len(b)) > c.Left {
		c.ResponseWriter.Write(b[:c.Left])
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	c.Left -= int64(len(b))
	return c.ResponseWriter.Write(b)
}
