package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-update/ferry/internal/filekind"
	"github.com/ferry-update/ferry/transport/httpget"
	"github.com/ferry-update/ferry/transport/oci"
)

// SourceOptions configure OpenSource.
type SourceOptions struct {
	// PlainHTTP fetches oci:// references over http:// instead of https://.
	PlainHTTP bool
	// Client sends the requests of http(s) and oci:// sources; nil means
	// a client with the default timeouts of internal/httpget.
	Client *http.Client
}

// OpenSource opens a bundle source: "-" for stdin, an http:// or https://
// URL (read with Range resume, see HTTPReader), an oci://HOST/REPO:TAG or
// oci://HOST/REPO@sha256:... reference to a registry or a ferry mirror
// (pulled with transport/oci as a canonical archive stream, its blobs
// resumed with Range), or a file path. Nothing is spooled to disk. A file
// or a URL whose content is of another kind (a stick or raw image, a key,
// a web page) fails with a *filekind.Error.
func OpenSource(ctx context.Context, src string, stdin io.Reader, opts SourceOptions) (io.ReadCloser, error) {
	client := opts.Client
	if client == nil {
		client = httpget.NewClient(httpget.Timeouts{})
	}
	switch {
	case src == "-":
		return io.NopCloser(bufio.NewReaderSize(stdin, 1<<20)), nil
	case strings.HasPrefix(src, "http://"), strings.HasPrefix(src, "https://"):
		// A URL that serves a page or JSON (a mirror's or registry's
		// address, not a bundle's) is named as such before any install.
		h := NewHTTPReader(ctx, client, src)
		return readCloser{filekind.NewReader(h, filekind.Bundle, true), h}, nil
	case strings.HasPrefix(src, oci.Scheme):
		return oci.Open(ctx, src, oci.Options{Client: client, PlainHTTP: opts.PlainHTTP, UserAgent: "ferry-agent"})
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("open bundle: %w", err)
	}
	// A stick image, a raw image or a key is named as what it is.
	if err := filekind.CheckFile(src, filekind.Bundle, nil); err != nil {
		f.Close()
		return nil, fmt.Errorf("open bundle %s: %w", src, err)
	}
	return f, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// OpenSource opens a bundle source as the package function does, with the
// configuration's [source] settings.
func (a *Agent) OpenSource(ctx context.Context, src string, stdin io.Reader) (io.ReadCloser, error) {
	return OpenSource(ctx, src, stdin, SourceOptions{PlainHTTP: a.cfg.Source.PlainHTTP, Client: a.httpClient(nil)})
}

// HTTPReader streams a URL and, when the connection drops, reconnects with
// "Range: bytes=N-" and goes on from byte N, so the reader sees one
// unbroken stream. The resumed response must be a 206 whose Content-Range
// starts at N; "If-Range" with the first response's ETag (or Last-Modified)
// makes a server whose file changed send it whole instead, which is an
// error rather than a mix of two files. A drop is retried Retries times
// without progress, waiting Backoff, then twice as long, up to 30 s.
type HTTPReader struct {
	Client  *http.Client
	URL     string
	Retries int
	Backoff time.Duration

	ctx       context.Context
	body      io.ReadCloser
	off       int64 // bytes delivered
	size      int64 // total, -1 if unknown
	validator string
	failures  int
	err       error
}

// NewHTTPReader returns a reader of url with 8 retries from 500 ms.
func NewHTTPReader(ctx context.Context, client *http.Client, url string) *HTTPReader {
	return &HTTPReader{Client: client, URL: url, Retries: 8, Backoff: 500 * time.Millisecond, ctx: ctx, size: -1}
}

// errPermanent marks failures a retry cannot fix.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

func (h *HTTPReader) Read(p []byte) (int, error) {
	for h.err == nil {
		if h.body == nil {
			if err := h.connect(); err != nil {
				if !h.retry(err) {
					break
				}
				continue
			}
		}
		n, err := h.body.Read(p)
		h.off += int64(n)
		if n > 0 {
			h.failures = 0
		}
		if err == io.EOF && (h.size < 0 || h.off >= h.size) {
			return n, io.EOF
		}
		if err != nil {
			h.body.Close()
			h.body = nil
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if n > 0 {
				h.retry(err) // decide after handing over what arrived
				return n, nil
			}
			h.retry(err)
			continue
		}
		return n, nil
	}
	return 0, h.err
}

// retry waits before the next attempt, or sets the final error.
func (h *HTTPReader) retry(err error) bool {
	var perm errPermanent
	h.failures++
	if errors.As(err, &perm) || h.failures > h.Retries || h.ctx.Err() != nil {
		h.err = fmt.Errorf("download %s (at byte %d, %d attempts): %w", h.URL, h.off, h.failures, err)
		return false
	}
	wait := h.Backoff << (h.failures - 1)
	if wait > 30*time.Second || wait <= 0 {
		wait = 30 * time.Second
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-h.ctx.Done():
		h.err = fmt.Errorf("download %s: %w", h.URL, h.ctx.Err())
		return false
	case <-t.C:
		return true
	}
}

func (h *HTTPReader) connect() error {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return errPermanent{err}
	}
	if h.off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", h.off))
		if h.validator != "" {
			req.Header.Set("If-Range", h.validator)
		}
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return err
	}
	switch {
	case h.off == 0 && resp.StatusCode == http.StatusOK:
		h.size = resp.ContentLength
		if h.validator = resp.Header.Get("ETag"); h.validator == "" || strings.HasPrefix(h.validator, "W/") {
			h.validator = resp.Header.Get("Last-Modified")
		}
	case h.off > 0 && resp.StatusCode == http.StatusPartialContent:
		if err := h.checkContentRange(resp.Header.Get("Content-Range")); err != nil {
			resp.Body.Close()
			return errPermanent{err}
		}
	case h.off > 0 && resp.StatusCode == http.StatusOK:
		resp.Body.Close()
		return errPermanent{errors.New("server cannot resume (no Range support) or the file changed since the download started")}
	default:
		resp.Body.Close()
		err := fmt.Errorf("server answered %s", resp.Status)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return errPermanent{err}
		}
		return err
	}
	h.body = resp.Body
	return nil
}

// checkContentRange wants "bytes OFF-END/SIZE" starting where we are and,
// when both are known, of the size the first response announced.
func (h *HTTPReader) checkContentRange(cr string) error {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	rng, total, ok2 := strings.Cut(rest, "/")
	first, _, ok3 := strings.Cut(rng, "-")
	start, err := strconv.ParseInt(first, 10, 64)
	if !ok || !ok2 || !ok3 || err != nil {
		return fmt.Errorf("resume: malformed Content-Range %q", cr)
	}
	if start != h.off {
		return fmt.Errorf("resume: asked for byte %d, server sent from %d", h.off, start)
	}
	if n, err := strconv.ParseInt(total, 10, 64); err == nil && h.size >= 0 && n != h.size {
		return fmt.Errorf("resume: file is now %d bytes, was %d", n, h.size)
	}
	return nil
}

// Close ends the current response.
func (h *HTTPReader) Close() error {
	if h.body != nil {
		h.body.Close()
		h.body = nil
	}
	return nil
}
