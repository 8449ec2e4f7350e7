package httpget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Reader streams a URL and, when the connection drops, reconnects with
// "Range: bytes=N-" and goes on from byte N, so the reader sees one
// unbroken stream. The resumed response must be a 206 whose Content-Range
// starts at N; "If-Range" with the first response's ETag (or Last-Modified)
// makes a server whose file changed send it whole instead, which is an
// error rather than a mix of two files. A drop is retried Retries times
// without progress, waiting Backoff, then twice as long, up to 30 s.
type Reader struct {
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

// NewReader returns a reader of url with 8 retries from 500 ms.
func NewReader(ctx context.Context, client *http.Client, url string) *Reader {
	return &Reader{Client: client, URL: url, Retries: 8, Backoff: 500 * time.Millisecond, ctx: ctx, size: -1}
}

// errPermanent marks failures a retry cannot fix.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

func (h *Reader) Read(p []byte) (int, error) {
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
func (h *Reader) retry(err error) bool {
	var perm errPermanent
	h.failures++
	if errors.As(err, &perm) || h.failures > h.Retries || h.ctx.Err() != nil {
		h.err = fmt.Errorf("download %s (at byte %d, %d attempts): %w", h.URL, h.off, h.failures, err)
		return false
	}
	t := time.NewTimer(Backoff(h.Backoff, 30*time.Second, h.failures))
	defer t.Stop()
	select {
	case <-h.ctx.Done():
		h.err = fmt.Errorf("download %s: %w", h.URL, h.ctx.Err())
		return false
	case <-t.C:
		return true
	}
}

func (h *Reader) connect() error {
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
func (h *Reader) checkContentRange(cr string) error {
	start, _, total, err := ParseContentRange(cr)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if start != h.off {
		return fmt.Errorf("resume: asked for byte %d, server sent from %d", h.off, start)
	}
	if total >= 0 && h.size >= 0 && total != h.size {
		return fmt.Errorf("resume: file is now %d bytes, was %d", total, h.size)
	}
	return nil
}

// Close ends the current response.
func (h *Reader) Close() error {
	if h.body != nil {
		h.body.Close()
		h.body = nil
	}
	return nil
}

// ParseContentRange parses the Content-Range header of a 206 response,
// "bytes FIRST-LAST/SIZE" (RFC 9110 §14.4), SIZE "*" when the server does
// not know it (size -1). It is the one parser of that header in ferry.
func ParseContentRange(h string) (first, last, size int64, err error) {
	bad := func() (int64, int64, int64, error) { return 0, 0, 0, fmt.Errorf("malformed Content-Range %q", h) }
	rest, ok := strings.CutPrefix(h, "bytes ")
	rng, total, ok2 := strings.Cut(rest, "/")
	a, b, ok3 := strings.Cut(rng, "-")
	if !ok || !ok2 || !ok3 {
		return bad()
	}
	if first, err = parseUint(a); err != nil {
		return bad()
	}
	if last, err = parseUint(b); err != nil || last < first {
		return bad()
	}
	size = -1
	if total != "*" {
		if size, err = parseUint(total); err != nil || size <= last {
			return bad()
		}
	}
	return first, last, size, nil
}

// parseUint parses a non-empty run of ASCII digits.
func parseUint(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a number: %q", s)
	}
	return strconv.ParseInt(s, 10, 64)
}

// Backoff is ferry's one retry policy: the wait before attempt n (n >= 1)
// after a failure is first, doubled for each attempt before it, and at
// most max.
func Backoff(first, max time.Duration, n int) time.Duration {
	if n < 1 {
		n = 1
	}
	wait := first << (n - 1)
	if wait > max || wait <= 0 || n > 62 {
		wait = max
	}
	return wait
}
