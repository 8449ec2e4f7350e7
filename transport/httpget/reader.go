package httpget

import (
	"cmp"
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
// unbroken stream. It is ferry's one resumable reader: the agent's
// http(s) sources and transport/oci's blobs both read through it.
//
// A resumed response is a 206 whose Content-Range starts at N, or a 200
// with the whole file (a server or proxy that ignores Range), of which
// the first N bytes are discarded, at most MaxSkip of them. "If-Range"
// with the first response's ETag (or Last-Modified) makes a server whose
// file changed send it whole instead; a 200 whose validator or length
// differs from the first response's is an error rather than a mix of two
// files. A drop is retried Retries times without progress (a response
// that delivers bytes resets the count), waiting Backoff, then twice as
// long, up to MaxBackoff.
type Reader struct {
	Client *http.Client
	URL    string
	// Retries is how many attempts in a row may fail without a byte of
	// progress.
	Retries int
	// Backoff is the first wait before a retry; MaxBackoff caps the
	// doubling (zero: 30 s).
	Backoff, MaxBackoff time.Duration
	// Offset is where the stream starts: a download continued from a
	// partial file. Zero reads the whole URL.
	Offset int64
	// Size is the whole file's length when the caller knows it (a blob's
	// descriptor), else -1: the first 200 response's Content-Length.
	Size int64
	// End, if above zero, ends the stream at byte End (exclusive): every
	// request asks for "Range: bytes=N-(End-1)", so that a small piece of
	// a large file (a chunk of a blob) costs only its bytes. A server
	// that answers with the whole file is read up to End.
	End int64
	// MaxSkip bounds the bytes a resume discards from a 200 answer; zero
	// means DefaultMaxSkip, negative accepts only 206 answers.
	MaxSkip int64
	// Do, if set, sends each request instead of Client.Do (a registry
	// client that authenticates).
	Do func(*http.Request) (*http.Response, error)
	// ResponseError, if set, describes an answer the reader cannot use
	// (a 404 with a registry's error body); the reader closes the body.
	ResponseError func(*http.Response) error

	ctx       context.Context
	body      io.ReadCloser
	started   bool  // a response was read: off > Offset may be resumed
	off       int64 // bytes of the file delivered, from byte 0
	validator string
	failures  int
	closed    bool
	err       error
}

// DefaultMaxSkip is how much of a file a resume re-reads and discards
// when the server answers a Range request with the whole file. Beyond it
// the reader fails, saying the server cannot resume: re-downloading more
// than this on every drop would turn a flaky link into an endless one.
const DefaultMaxSkip = 1 << 30

// NewReader returns a reader of url with 8 retries from 500 ms.
func NewReader(ctx context.Context, client *http.Client, url string) *Reader {
	return &Reader{Client: client, URL: url, Retries: 8, Backoff: 500 * time.Millisecond, ctx: ctx, Size: -1}
}

// errPermanent marks failures a retry cannot fix.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

// Open connects now rather than at the first Read (retrying as Read
// does), so that an answer the reader cannot use, such as a 404, is the
// caller's error before any byte is read.
func (h *Reader) Open() error {
	h.init()
	for h.err == nil && h.body == nil {
		if err := h.connect(); err != nil {
			h.retry(err)
		}
	}
	return h.err
}

func (h *Reader) init() {
	if !h.started && h.off == 0 {
		h.off = h.Offset
	}
}

func (h *Reader) Read(p []byte) (int, error) {
	if h.closed {
		return 0, fmt.Errorf("download %s: read after Close", h.URL)
	}
	h.init()
	for h.err == nil {
		if h.body == nil {
			if err := h.connect(); err != nil {
				if !h.retry(err) {
					break
				}
				continue
			}
		}
		if h.End > 0 {
			if h.off >= h.End {
				return 0, io.EOF
			}
			p = p[:min(int64(len(p)), h.End-h.off)]
		}
		n, err := h.body.Read(p)
		h.off += int64(n)
		if h.End > 0 && h.off >= h.End && (err == nil || err == io.EOF) {
			return n, io.EOF
		}
		if n > 0 {
			h.failures = 0
		}
		if err == io.EOF && (h.Size < 0 || h.off >= h.Size) {
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
	t := time.NewTimer(Backoff(h.Backoff, cmp.Or(h.MaxBackoff, 30*time.Second), h.failures))
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
	switch {
	case h.End > 0:
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", h.off, h.End-1))
	case h.off > 0:
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", h.off))
	}
	if h.off > 0 && h.validator != "" {
		req.Header.Set("If-Range", h.validator)
	}
	do := h.Do
	if do == nil {
		do = h.Client.Do
	}
	resp, err := do(req)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		resp.Body.Close()
		return errPermanent{err}
	}
	switch {
	case h.End > 0 && resp.StatusCode == http.StatusPartialContent:
		if err := h.checkContentRange(resp.Header.Get("Content-Range")); err != nil {
			return fail(err)
		}
		if !h.started {
			h.validator = validator(resp)
		}
	case h.off == 0 && resp.StatusCode == http.StatusOK:
		if h.Size < 0 {
			h.Size = resp.ContentLength
		}
		h.validator = validator(resp)
	case h.off > 0 && resp.StatusCode == http.StatusPartialContent:
		if err := h.checkContentRange(resp.Header.Get("Content-Range")); err != nil {
			return fail(err)
		}
		if !h.started {
			h.validator = validator(resp) // a download continued from Offset
		}
	case h.off > 0 && resp.StatusCode == http.StatusOK:
		if err := h.skip(resp); err != nil {
			return err
		}
	case h.off > 0 && h.off == h.Size && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		// Nothing is left to read (a download continued at its end).
		resp.Body.Close()
		resp.Body = http.NoBody
	default:
		err := fmt.Errorf("server answered %s", resp.Status)
		if h.ResponseError != nil {
			err = h.ResponseError(resp)
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return errPermanent{err}
		}
		return err
	}
	h.started = true
	h.body = resp.Body
	return nil
}

// validator is what If-Range sends back: a strong ETag, else the
// Last-Modified date.
func validator(resp *http.Response) string {
	if v := resp.Header.Get("ETag"); v != "" && !strings.HasPrefix(v, "W/") {
		return v
	}
	return resp.Header.Get("Last-Modified")
}

// skip reads past the h.off bytes already delivered of a 200 answer to a
// resume: the same file sent whole, by a server or proxy that ignores
// Range. A file that changed since the download started is an error.
func (h *Reader) skip(resp *http.Response) error {
	fail := func(err error) error {
		resp.Body.Close()
		return errPermanent{err}
	}
	changed := errors.New("the file changed since the download started")
	switch {
	case h.validator != "" && validator(resp) != h.validator:
		return fail(changed)
	case h.Size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != h.Size:
		return fail(fmt.Errorf("%w: it is now %d bytes, was %d", changed, resp.ContentLength, h.Size))
	case h.MaxSkip < 0 || h.off > cmp.Or(h.MaxSkip, DefaultMaxSkip):
		return fail(fmt.Errorf("server cannot resume (it ignores Range): re-reading %d bytes to continue is more than this reader discards", h.off))
	}
	if _, err := io.CopyN(io.Discard, resp.Body, h.off); err != nil {
		resp.Body.Close()
		if err == io.EOF {
			return fail(fmt.Errorf("%w: it ends before byte %d", changed, h.off))
		}
		return fmt.Errorf("re-reading the first %d bytes: %w", h.off, err)
	}
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
	if total >= 0 && h.Size >= 0 && total != h.Size {
		return fmt.Errorf("resume: file is now %d bytes, was %d", total, h.Size)
	}
	return nil
}

// Close ends the current response; a Read after it fails.
func (h *Reader) Close() error {
	h.closed = true
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
